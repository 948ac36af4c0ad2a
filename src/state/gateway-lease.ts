import pg from "pg";
import type { Logger } from "../log.ts";

/** Which replica holds the Discord gateway. */
export interface GatewayLease {
	/** True while this process holds the lease. */
	held(): boolean;
	stop(): Promise<void>;
}

// Any 64-bit key; the name keeps it readable in pg_locks.
const LEASE_SQL = "SELECT pg_try_advisory_lock(hashtext('opsbot_state.gateway')) AS got";

/**
 * A session-level advisory lock on a connection of its own: whoever holds it runs the gateway. When
 * the holder dies its connection drops and PostgreSQL releases the lock, so a standby polling every
 * `pollMs` takes over within that time plus the server noticing the dead connection (at once for a
 * killed process; about 20 s for a host that vanished, by the keepalives set below). The holder
 * checks its connection every `pollMs` with a 5 s timeout, so one cut off from the server gives up
 * (`onLost`: main shuts down, to come back as a standby) before the server lets another take over.
 */
export function startGatewayLease(options: { url: string; log: Logger; pollMs?: number; onAcquired: () => void; onLost: (err: unknown) => void }): GatewayLease {
	const pollMs = options.pollMs ?? 5_000;
	let client: pg.Client | undefined;
	let holding = false;
	let stopped = false;
	let timer: NodeJS.Timeout | undefined;
	let announced = false;

	const connect = async (): Promise<pg.Client> => {
		const c = new pg.Client({ connectionString: options.url, application_name: "opsbot-gateway-lease", connectionTimeoutMillis: 5_000, keepAlive: true, keepAliveInitialDelayMillis: 5_000, query_timeout: 5_000 });
		const lost = (err: unknown) => {
			if (client === c) client = undefined;
			if (holding && !stopped) {
				holding = false;
				options.onLost(err);
			}
		};
		c.on("error", (err) => {
			options.log.warn({ err }, "gateway lease connection errored");
			lost(err);
		});
		c.on("end", () => lost(new Error("gateway lease connection ended")));
		await c.connect();
		// The server must notice a holder whose host died or was cut off (no FIN, no RST) well within
		// 30 s, not after the OS's two-hour keepalive default: probe after 5 s idle, every 5 s, give up
		// after 3 (PostgreSQL 12+; an older server keeps its own settings).
		await c.query("SELECT set_config('tcp_keepalives_idle', '5', false), set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false), set_config('tcp_user_timeout', '15000', false)").catch((err: unknown) => options.log.warn({ err }, "could not shorten the lease connection's keepalives"));
		return c;
	};
	// The holder checks its connection as often as standbys poll, so a lost lease is noticed as soon as it can be taken.
	const heartbeat = async () => {
		try {
			await client?.query("SELECT 1");
		} catch (err) {
			const c = client;
			client = undefined;
			if (holding && !stopped) {
				holding = false;
				options.onLost(err);
			}
			await c?.end().catch(() => undefined);
		}
		if (holding && !stopped) timer = setTimeout(() => void heartbeat(), pollMs);
	};
	const poll = async () => {
		if (stopped || holding) return;
		try {
			client ??= await connect();
			const { rows } = await client.query<{ got: boolean }>(LEASE_SQL);
			if (rows[0]?.got && !stopped) {
				holding = true;
				options.log.info("holding the Discord gateway lease");
				options.onAcquired();
				timer = setTimeout(() => void heartbeat(), pollMs);
			}
		} catch (err) {
			options.log.warn({ err }, "could not ask for the gateway lease");
			const c = client;
			client = undefined;
			await c?.end().catch(() => undefined);
		} finally {
			if (!stopped && !holding) {
				if (!announced) options.log.info("standing by: another replica holds the Discord gateway");
				announced = true;
				timer = setTimeout(() => void poll(), pollMs);
			}
		}
	};
	void poll();
	return {
		held: () => holding,
		async stop() {
			stopped = true;
			clearTimeout(timer);
			holding = false;
			// Ending the session releases the lock for the next replica at once.
			await client?.end().catch(() => undefined);
		},
	};
}
