import { randomUUID } from "node:crypto";
import type { Logger } from "../log.ts";
import { createPool } from "../pg-pool.ts";
import { migratePostgres } from "./postgres.ts";

/** Which replica holds the Discord gateway. */
export interface GatewayLease {
	/** True while this process holds the lease. */
	held(): boolean;
	stop(): Promise<void>;
}

/**
 * Takes the lease if it is free or expired, or renews it if this holder has it; returns a row when this holder holds it
 * now.
 */
const CLAIM_SQL = `INSERT INTO opsbot_state.gateway_lease AS l (id, holder, expires_at)
	VALUES (1, $1, clock_timestamp() + make_interval(secs => $2::float8 / 1000))
	ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
	WHERE l.holder = excluded.holder OR l.expires_at < clock_timestamp()
	RETURNING holder`;

/**
 * A lease row (holder id, expiry) renewed by short transactions, so it works through any pooler
 * (PgBouncer in transaction mode shares server sessions, which made a session advisory lock look held
 * by every replica) and survives a connection blip. The holder renews every `pollMs`; a standby asks
 * as often and takes the row once it has expired, so after a holder dies another takes over within
 * `ttlMs` + `pollMs`. A holder that could not renew gives up (`onLost`: main shuts down, to come back
 * as a standby) `marginMs` before the expiry it last wrote, measured from before that renewal was
 * sent, so two replicas never both think they hold it. Stopping deletes the row: the next takes over at once.
 */
export function startGatewayLease(options: {
	url: string;
	log: Logger;
	pollMs?: number;
	ttlMs?: number;
	onAcquired: () => void;
	onLost: (err: unknown) => void;
}): GatewayLease {
	const pollMs = options.pollMs ?? 5_000;
	const ttlMs = options.ttlMs ?? Math.max(15_000, pollMs * 3);
	const marginMs = Math.min(2_000, ttlMs / 4);
	const holder = randomUUID();
	const pool = createPool(
		{
			connectionString: options.url,
			max: 1,
			application_name: "opsbot-gateway-lease",
			// Not shorter for a short lease: the expiry watch below gives up in time whatever a query does,
			// and the first ask also migrates the schema, which a loaded server may take seconds over.
			connectionTimeoutMillis: 5_000,
			query_timeout: 5_000,
		},
		options.log,
		"gateway lease",
	);
	let holding = false;
	let stopped = false;
	let timer: NodeJS.Timeout | undefined;
	let announced = false;
	let validUntil = 0;
	let schemaReady = false;

	const claim = async (): Promise<boolean> => {
		if (!schemaReady) {
			// The lease table is in the state database's one migration list (the lease starts before the stores).
			await migratePostgres(pool);
			schemaReady = true;
		}
		const sentAt = performance.now();
		const { rows } = await pool.query(CLAIM_SQL, [holder, ttlMs]);
		if (rows.length === 0) return false;
		validUntil = sentAt + ttlMs - marginMs;
		return true;
	};

	const giveUp = (err: unknown) => {
		if (!holding || stopped) return;
		holding = false;
		// Lost is final: the process shuts down on it, and must not take the gateway back meanwhile.
		stopped = true;
		clearTimeout(timer);
		clearInterval(expiryTimer);
		options.onLost(err);
	};
	// Without a renewal by then another replica may take the row: stop holding first.
	const watchExpiry = () => {
		if (holding && !stopped && performance.now() >= validUntil)
			giveUp(new Error("could not renew the gateway lease in time"));
	};

	const tick = async () => {
		if (stopped) return;
		try {
			const got = await claim();
			if (stopped) return;
			if (got && !holding) {
				holding = true;
				options.log.info("holding the Discord gateway lease");
				options.onAcquired();
			} else if (!got && holding) {
				giveUp(new Error("another replica holds the gateway lease"));
			} else if (!got && !announced) {
				options.log.info("standing by: another replica holds the Discord gateway");
				announced = true;
			}
		} catch (err) {
			options.log.warn(
				{ err },
				holding ? "could not renew the gateway lease; retrying" : "could not ask for the gateway lease",
			);
			watchExpiry();
		}
		if (!stopped)
			timer = setTimeout(
				() => void tick(),
				holding ? Math.min(pollMs, Math.max(50, validUntil - performance.now() - pollMs)) : pollMs,
			);
	};
	const expiryTimer = setInterval(watchExpiry, Math.min(250, pollMs)).unref();
	void tick();
	return {
		held: () => holding && performance.now() < validUntil,
		async stop() {
			stopped = true;
			clearTimeout(timer);
			clearInterval(expiryTimer);
			holding = false;
			// Deleting the row lets the next replica take over at once instead of after the expiry.
			await pool
				.query("DELETE FROM opsbot_state.gateway_lease WHERE id = 1 AND holder = $1", [holder])
				.catch((err: unknown) =>
					options.log.warn({ err }, "could not release the gateway lease; it expires on its own"),
				);
			await pool.end().catch(() => undefined);
		},
	};
}
