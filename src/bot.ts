import type { AlertRelay } from "./alerts/relay.ts";
import { COMMANDS, COMPONENTS } from "./commands/index.ts";
import type { Config } from "./config.ts";
import { type AppContext, createContext } from "./context.ts";
import { createDiscordClient } from "./discord/client.ts";
import { instrumentDiscord } from "./discord/instrument.ts";
import { createRouter } from "./discord/router.ts";
import type { Logger } from "./log.ts";
import { type GatewayLease, startGatewayLease } from "./state/gateway-lease.ts";
import { waitForStateDatabase } from "./state/wait-for-state.ts";

/** A running opsbot: what `npm start` runs, minus reading the config and the process's signals. */
export interface Bot {
	readonly ctx: AppContext;
	/** The alert relay, when `alerts` is configured. */
	readonly relay: AlertRelay | undefined;
	/** Stops taking webhooks, finishes replies in flight, leaves the gateway, closes every connection. */
	stop(): Promise<void>;
	/**
	 * When work stop() waits for ends by its own timeout, where that is later than a usual drain: a container restart in
	 * flight.
	 */
	busyUntil(): number | undefined;
	/**
	 * Gives up on what stop() still waits for (the process exits next): a restart in flight is recorded as interrupted,
	 * its user told.
	 */
	abandon(): Promise<void>;
}

/**
 * The composition root: config -> context -> router -> Discord client (through the gateway lease
 * with STATE_DATABASE_URL) -> alert relay. `onFatal` is called when the bot cannot go on (login
 * failed, gateway lease lost); the caller stops it and exits non-zero.
 */
export async function startBot(config: Config, log: Logger, onFatal: (reason: string) => void): Promise<Bot> {
	// Without its state database opsbot waits (saying so, and on /readyz) rather than exit into a crash loop.
	if (config.env.STATE_DATABASE_URL)
		await waitForStateDatabase(config.env.STATE_DATABASE_URL, log.child({ svc: "state" }), {
			...(config.ops.alerts ? { listen: config.ops.alerts.listen } : {}),
		});
	const { ctx, close } = await createContext(config, log);
	const router = createRouter(COMMANDS, COMPONENTS, ctx);
	const client = createDiscordClient({
		...(config.env.DISCORD_API_URL ? { apiUrl: config.env.DISCORD_API_URL } : {}),
		router,
		log,
	});
	instrumentDiscord(client, ctx.services.metrics);

	let lease: GatewayLease | undefined;
	const stateUrl = config.env.STATE_DATABASE_URL;
	if (stateUrl) {
		// Replicas: only the lease holder opens the gateway (so each interaction reaches one of them);
		// every replica sends through REST, delivering alerts from the shared outbox.
		// required in "bot" mode: loadConfig refused to start without it
		client.rest.setToken(config.env.DISCORD_TOKEN ?? "");
		lease = startGatewayLease({
			url: stateUrl,
			log: log.child({ svc: "gateway-lease" }),
			ttlMs: config.ops.replicas.leaseSeconds * 1_000,
			pollMs: config.ops.replicas.renewSeconds * 1_000,
			onAcquired: () => {
				client.login(config.env.DISCORD_TOKEN).catch((err: unknown) => {
					log.error({ err }, "could not log in to the Discord gateway");
					onFatal("login failed");
				});
			},
			// Without its connection this replica cannot tell whether another took the lease: it leaves the gateway at once.
			onLost: (err) => {
				log.error({ err }, "lost the Discord gateway lease");
				onFatal("gateway lease lost");
			},
		});
	} else {
		await client.login(config.env.DISCORD_TOKEN);
	}
	// A replica without the lease is a standby, ready to take webhooks; with the lease, it is ready once connected.
	// The relay (fastify, delivery, charts) is loaded only when `alerts` is configured: about 6 MiB of
	// idle memory a bot without alerts does not need (bench/RESULTS.md, "Memory").
	const relay = config.ops.alerts
		? await (await import("./alerts/relay.ts")).startAlertRelay(config, client, log, ctx.services, {
				standby: () => lease !== undefined && !lease.held(),
			})
		: undefined;
	return {
		ctx,
		relay,
		async stop() {
			await relay?.close(); // stop taking webhooks first; the outbox keeps the rest for the next start
			await router.drain();
			await client.destroy();
			await lease?.stop(); // after the gateway is closed, so the next holder never overlaps this one
			await close();
		},
		busyUntil: () => ctx.services.alertState.running.until(),
		abandon: () => ctx.services.alertState.running.interruptAll(),
	};
}
