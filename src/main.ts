import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";
import type { AlertRelay } from "./alerts/relay.ts";
import type { GatewayLease } from "./state/gateway-lease.ts";

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

/** Composition root: config -> context -> Discord client; SIGTERM/SIGINT -> drain, close, exit. */
async function main(): Promise<void> {
	const [{ startAlertRelay }, { COMMANDS, COMPONENTS }, { ConfigError, loadConfig }, { createContext }, { createDiscordClient }, { instrumentDiscord }, { createRouter }, { loadDotEnv }, { createLogger }, { startGatewayLease }] = await Promise.all([
		import("./alerts/relay.ts"),
		import("./commands/index.ts"),
		import("./config.ts"),
		import("./context.ts"),
		import("./discord/client.ts"),
		import("./discord/instrument.ts"),
		import("./discord/router.ts"),
		import("./env-file.ts"),
		import("./log.ts"),
		import("./state/gateway-lease.ts"),
	]);
	boundYoungGeneration();
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
	relay = await startAlertRelay(config, client, log, ctx.services, { standby: () => lease !== undefined && !lease.held() });
}

main().catch((err: unknown) => {
	process.stderr.write(`opsbot failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
	process.exit(1);
});
