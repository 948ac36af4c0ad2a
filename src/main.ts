import { enableCompileCache, flushCompileCache } from "node:module";
import type { Bot } from "./bot.ts";

// V8's compiled code of every module (ours once type-stripped, and node_modules) is kept on disk and
// reused by the next start: 25 MiB less idle RSS and a faster start (bench/RESULTS.md, "Memory").
// NODE_COMPILE_CACHE names the directory (the image prepares one at build); else the OS temp dir.
// The modules are imported in main(), after this, so that they are the ones cached.
enableCompileCache();

const DRAIN_MS = 15_000;
const ABANDON_MS = 5_000;

/** Reads the config, starts the bot (src/bot.ts), and stops it on SIGTERM/SIGINT: drain, close, exit. */
async function main(): Promise<void> {
	// The config first: a config error is told without loading discord.js and the rest of the bot.
	const { ConfigError, readConfig } = await import("./config.ts");
	const config = readConfig("bot");
	if (config instanceof ConfigError) {
		process.stderr.write(`${config.message}\n`);
		process.exit(78); // EX_CONFIG: nothing was connected
	}
	const [{ startBot }, { createLogger }] = await Promise.all([import("./bot.ts"), import("./log.ts")]);
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
	flushCompileCache(); // the start-up modules are loaded: write them now, not only at exit (a crash writes nothing)
}

main().catch((err: unknown) => {
	process.stderr.write(`opsbot failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
	process.exit(1);
});
