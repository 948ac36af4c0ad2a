import type { LogLevel } from "./logql.ts";
import type { LogEntry } from "./logs.ts";

// Where the API's JSON lines (and common loggers') keep the message, the level and the fields worth showing.
const MESSAGE_FIELDS = ["message", "msg", "event", "error"];
const LEVEL_FIELDS = ["level", "levelname", "severity", "lvl"];
const USEFUL_FIELDS = [
	"correlation_id",
	"user_id",
	"action",
	"resource_type",
	"resource_id",
	"status",
	"method",
	"path",
	"duration_ms",
];

// A level word in a plain line: "2026-11-20 ERROR …", "[warning] …".
const PLAIN_LEVEL = /\b(DEBUG|INFO|WARN(?:ING)?|ERROR|CRITICAL|FATAL)\b/i;

/** A log line made readable: level and message pulled out of JSON lines, with the useful fields beside them. */
export interface ReadableLine {
	readonly time: Date;
	/** The level as the line (or its stream's `level` label) spells it, if it has one. */
	readonly level: string | undefined;
	/** That level read as one of opsbot's levels (`info` when the line has none). */
	readonly severity: LogLevel;
	readonly message: string;
	readonly fields: readonly [string, string][];
}

/**
 * Reads a level as loggers spell it ("ERR", "Warning", "FATAL", "crit") as one of opsbot's levels; `info` when there is
 * none.
 */
export function severityOf(level: string | undefined): LogLevel {
	const l = (level ?? "").toLowerCase();
	if (/crit|fatal/.test(l)) return "critical";
	if (/err/.test(l)) return "error";
	if (/warn/.test(l)) return "warning";
	if (/debug/.test(l)) return "debug";
	return "info";
}

/** Parses one line: JSON lines by their message field, plain lines as they are. */
export function readableLine(entry: LogEntry): ReadableLine {
	const time = new Date(Number(entry.ns / 1_000_000n));
	const text = entry.line.trim();
	if (text.startsWith("{")) {
		try {
			const obj = JSON.parse(text) as Record<string, unknown>;
			const message = MESSAGE_FIELDS.map((k) => obj[k]).find((v) => typeof v === "string") as string | undefined;
			const level =
				(LEVEL_FIELDS.map((k) => obj[k]).find((v) => typeof v === "string") as string | undefined) ??
				entry.labels.level;
			const fields = USEFUL_FIELDS.filter((k) => obj[k] !== undefined && obj[k] !== null).map(
				(k) => [k, String(obj[k])] as [string, string],
			);
			return { time, level, severity: severityOf(level), message: message ?? text, fields };
		} catch {
			// Not JSON after all: shown as plain text.
		}
	}
	const level = PLAIN_LEVEL.exec(text)?.[1] ?? entry.labels.level;
	return { time, level, severity: severityOf(level), message: text, fields: [] };
}
