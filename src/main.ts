import { startAlertRelay, type AlertRelay } from "./alerts/relay.ts";
import { COMMANDS, COMPONENTS } from "./commands/index.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { createContext } from "./context.ts";
import { createDiscordClient } from "./discord/client.ts";
import { instrumentDiscord } from "./discord/instrument.ts";
import { createRouter } from "./discord/router.ts";
import { loadDotEnv } from "./env-file.ts";
import { createLogger } from "./log.ts";
import { startGatewayLease, type GatewayLease } from "./state/gateway-lease.ts";

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
	let lease: GatewayLease | undefined;
	let stopping = false;
	const shutdown = async (signal: string, code = 0) => {
		if (stopping) return;
		stopping = true;
		log.info({ signal }, "shutting down: finishing replies in flight");
		const forceExit = setTimeout(() => process.exit(1), 15_000).unref();
		await relay?.close(); // stop taking webhooks first; the outbox keeps the rest for the next start
		await router.drain();
		await client.destroy();
		await lease?.stop(); // after the gateway is closed, so the next holder never overlaps this one
		await close();
		clearTimeout(forceExit);
		log.info("stopped");
		process.exit(code);
	};
	process.on("SIGTERM", () => void shutdown("SIGTERM"));
	process.on("SIGINT", () => void shutdown("SIGINT"));

	const stateUrl = config.env.STATE_DATABASE_URL;
	if (stateUrl) {
		// Replicas: only the lease holder opens the gateway (so each interaction reaches one of them);
		// every replica sends through REST, delivering alerts from the shared outbox.
		client.rest.setToken(config.env.DISCORD_TOKEN ?? ""); // required in "bot" mode: loadConfig refused to start without it
		lease = startGatewayLease({
			url: stateUrl,
			log: log.child({ svc: "gateway-lease" }),
			onAcquired: () => {
				client.login(config.env.DISCORD_TOKEN).catch((err: unknown) => {
					log.error({ err }, "could not log in to the Discord gateway");
					void shutdown("login failed", 1);
				});
			},
			// Without its connection this replica cannot tell whether another took the lease: it leaves the gateway at once.
			onLost: (err) => {
				log.error({ err }, "lost the Discord gateway lease");
				void shutdown("gateway lease lost", 1);
			},
		});
	} else {
		await client.login(config.env.DISCORD_TOKEN);
	}
	// A replica without the lease is a standby, ready to take webhooks; with the lease, it is ready once connected.
	relay = await startAlertRelay(config, client, log, ctx.services.alertState, ctx.services.metrics, { standby: () => lease !== undefined && !lease.held() });
}

main().catch((err: unknown) => {
	process.stderr.write(`opsbot failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
	process.exit(1);
});
