import { startAlertRelay, type AlertRelay } from "./alerts/relay.ts";
import { COMMANDS, COMPONENTS } from "./commands/index.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { createContext } from "./context.ts";
import { createDiscordClient } from "./discord/client.ts";
import { instrumentDiscord } from "./discord/instrument.ts";
import { createRouter } from "./discord/router.ts";
import { loadDotEnv } from "./env-file.ts";
import { createLogger } from "./log.ts";

/** Composition root: config -> context -> Discord client; SIGTERM/SIGINT -> drain, close, exit. */
async function main(): Promise<void> {
	loadDotEnv();
	let config;
	try {
		config = loadConfig(process.env, "bot");
	} catch (err) {
		if (err instanceof ConfigError) {
			process.stderr.write(`${err.message}\n`);
			process.exit(78); // EX_CONFIG: nothing was connected
		}
		throw err;
	}
	const log = createLogger({ level: config.env.LOG_LEVEL, pretty: config.env.LOG_PRETTY });
	const { ctx, close } = createContext(config, log);
	const router = createRouter(COMMANDS, COMPONENTS, ctx);
	const client = createDiscordClient({ ...(config.env.DISCORD_API_URL ? { apiUrl: config.env.DISCORD_API_URL } : {}), router, log });
	instrumentDiscord(client, ctx.services.metrics);

	let relay: AlertRelay | undefined;
	let stopping = false;
	const shutdown = async (signal: string) => {
		if (stopping) return;
		stopping = true;
		log.info({ signal }, "shutting down: finishing replies in flight");
		const forceExit = setTimeout(() => process.exit(1), 15_000).unref();
		await relay?.close(); // stop taking webhooks first; the outbox keeps the rest for the next start
		await router.drain();
		await client.destroy();
		await close();
		clearTimeout(forceExit);
		log.info("stopped");
		process.exit(0);
	};
	process.on("SIGTERM", () => void shutdown("SIGTERM"));
	process.on("SIGINT", () => void shutdown("SIGINT"));

	await client.login(config.env.DISCORD_TOKEN);
	relay = await startAlertRelay(config, client, log, ctx.services.alertState, ctx.services.metrics);
}

main().catch((err: unknown) => {
	process.stderr.write(`opsbot failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
	process.exit(1);
});
