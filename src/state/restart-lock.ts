import type { StateDatabase } from "./db.ts";

/** What acquire() decided. */
export type RestartClaim = { ok: true } | { ok: false; reason: "running" } | { ok: false; reason: "cooldown"; lastAt: number };

/** One restart at a time per container, and a cooldown after each, across every replica sharing the store. */
export interface RestartLock {
	/** Claims `key` for a restart unless one is running or the last ended less than `cooldownMs` ago. */
	acquire(key: string, cooldownMs: number): Promise<RestartClaim>;
	/** Ends the claim; the cooldown counts from now. */
	release(key: string): Promise<void>;
}

// A claim older than this is from a replica that died mid-restart (runSsh gives up after 120 s).
const STALE_RUNNING_MS = 10 * 60_000;

/** In this process only (no STATE_DATABASE_URL). */
export function createMemoryRestartLock(now: () => number = Date.now): RestartLock {
	const state = new Map<string, { running: boolean; startedAt: number; lastAt: number }>();
	return {
		async acquire(key, cooldownMs) {
			const previous = state.get(key);
			const t = now();
			if (previous?.running && t - previous.startedAt < STALE_RUNNING_MS) return { ok: false, reason: "running" };
			if (previous && !previous.running && t - previous.lastAt < cooldownMs) return { ok: false, reason: "cooldown", lastAt: previous.lastAt };
			state.set(key, { running: true, startedAt: t, lastAt: previous?.lastAt ?? t });
			return { ok: true };
		},
		async release(key) {
			const t = now();
			state.set(key, { running: false, startedAt: state.get(key)?.startedAt ?? t, lastAt: t });
		},
	};
}

/**
 * In opsbot_state.restarts: a claim is one INSERT … ON CONFLICT DO UPDATE … WHERE, so of replicas
 * pressing at once exactly one gets a row back and restarts; the others read why not.
 */
export function createPostgresRestartLock(db: StateDatabase): RestartLock {
	return {
		async acquire(key, cooldownMs) {
			const { rows } = await db.query(
				`INSERT INTO opsbot_state.restarts AS r (key, running, started_at, last_at) VALUES ($1, true, clock_timestamp(), clock_timestamp())
				ON CONFLICT (key) DO UPDATE SET running = true, started_at = clock_timestamp()
				WHERE (NOT r.running AND r.last_at <= clock_timestamp() - make_interval(secs => $2::double precision / 1000))
					OR (r.running AND r.started_at <= clock_timestamp() - make_interval(secs => $3::double precision / 1000))
				RETURNING key`,
				[key, cooldownMs, STALE_RUNNING_MS],
			);
			if (rows.length > 0) return { ok: true };
			const found = await db.query<{ running: boolean; last_at: Date }>("SELECT running, last_at FROM opsbot_state.restarts WHERE key = $1", [key]);
			const row = found.rows[0];
			// Gone between the two statements: treat as running, the safe answer (the user presses again).
			if (!row || row.running) return { ok: false, reason: "running" };
			return { ok: false, reason: "cooldown", lastAt: row.last_at.getTime() };
		},
		async release(key) {
			await db.query("UPDATE opsbot_state.restarts SET running = false, last_at = clock_timestamp() WHERE key = $1", [key]);
		},
	};
}
