import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";
import type { Bot } from "./bot.ts";

/**
 * Most V8's young generation (both semi-spaces) may take. V8 grows it whenever much of it survives a
 * scavenge, and on a machine with a few GB it grows to 2 x 64 MB in a burst of webhooks and keeps it:
 * most of what a storm added to opsbot's RSS (16 MB of it already while the modules load). 8 MB holds
 * a burst's objects until they die (measured: RSS in a 50x100 storm 153-157 MB instead of 240-260,
 * CPU per webhook no higher). `node --max-semi-space-size=4` would bound it too, but only from the
 * command line, which opsbot does not choose.
 */
const YOUNG_GENERATION_BYTES = 8 * 1024 * 1024;

/**
 * Bounds the young generation by steering V8's growth factor, which it reads each time it grows the
 * space: doubling while that stays within the bound, no growth once it would not.
 */
function boundYoungGeneration(): void {
	let factor = 0;
	const steer = () => {
		const young = getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? YOUNG_GENERATION_BYTES;
		const wanted = young * 2 <= YOUNG_GENERATION_BYTES ? 2 : 1;
		if (wanted !== factor) setFlagsFromString(`--semi-space-growth-factor=${(factor = wanted)}`);
	};
	steer();
	setInterval(steer, 100).unref();
}

// No growth at all while the modules load (they are imported below, in main(), for this): loading
// would otherwise grow the space in one go, before any steering could run.
setFlagsFromString("--semi-space-growth-factor=1");

const DRAIN_MS = 15_000;
const ABANDON_MS = 5_000;

/** Reads the config, starts the bot (src/bot.ts), and stops it on SIGTERM/SIGINT: drain, close, exit. */
async function main(): Promise<void> {
	const [{ startBot }, { ConfigError, readConfig }, { createLogger }] = await Promise.all([import("./bot.ts"), import("./config.ts"), import("./log.ts")]);
	boundYoungGeneration();
	const config = readConfig("bot");
	if (config instanceof ConfigError) {
		process.stderr.write(`${config.message}\n`);
		process.exit(78); // EX_CONFIG: nothing was connected
	}
	const log = createLogger({ level: config.env.LOG_LEVEL, pretty: config.env.LOG_PRETTY });
	let bot: Bot | undefined;
	let stopping = false;
	// What cannot finish in time is recorded and answered as interrupted (bounded: the exit must come).
	const giveUp = async (why: string) => {
		log.warn({ why }, "stopping before the work in flight finished");
		await Promise.race([bot?.abandon(), new Promise((resolve) => setTimeout(resolve, ABANDON_MS))]);
		process.exit(1);
	};
	let watchdog: NodeJS.Timeout | undefined;
	const shutdown = async (signal: string, code = 0) => {
		if (stopping) {
			// A second signal: the operator wants out now.
			if (signal === "SIGTERM" || signal === "SIGINT") void giveUp(`second ${signal}`);
			return;
		}
		stopping = true;
		log.info({ signal }, "shutting down: finishing replies in flight");
		const started = Date.now();
		// The usual drain is 15 s; a container restart in flight is waited for up to its own timeout.
		const watch = () => {
			const left = Math.max(started + DRAIN_MS, bot?.busyUntil() ?? 0) - Date.now();
			if (left > 0) watchdog = setTimeout(watch, left).unref();
			else void giveUp("drain timeout");
		};
		watch();
		await bot?.stop();
		clearTimeout(watchdog);
		log.info("stopped");
		process.exit(code);
	};
	process.on("SIGTERM", () => void shutdown("SIGTERM"));
	process.on("SIGINT", () => void shutdown("SIGINT"));
	bot = await startBot(config, log, (reason) => void shutdown(reason, 1));
}

main().catch((err: unknown) => {
	process.stderr.write(`opsbot failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
	process.exit(1);
});
