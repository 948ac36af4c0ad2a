import { type Logger, pino } from "pino";

export type { Logger };

/** Paths pino blanks out wherever they appear in a log object; secrets never reach a log line. */
export const REDACT_PATHS = [
	"token",
	"*.token",
	"password",
	"*.password",
	"*.connectionString",
	"connectionString",
	"headers.authorization",
	"*.headers.authorization",
	"req.headers.authorization",
	"req.headers.cookie",
	"secrets",
	"*.secrets",
	"privateKey",
	"*.privateKey",
];

/** The root logger; pretty output only when asked for (LOG_PRETTY), never tied to NODE_ENV. */
export function createLogger(
	options: { level: string; pretty: boolean },
	destination?: pino.DestinationStream,
): Logger {
	const base = { level: options.level, redact: { paths: REDACT_PATHS, censor: "[redacted]" } };
	if (options.pretty) return pino({ ...base, transport: { target: "pino-pretty", options: { colorize: true } } });
	return destination ? pino(base, destination) : pino(base);
}
