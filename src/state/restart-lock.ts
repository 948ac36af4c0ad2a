import { randomBytes } from "node:crypto";
import { readlinkSync } from "node:fs";
import { hostname } from "node:os";
import type { RestartClaim, RestartLock } from "./contracts.ts";
import type { StateDatabase } from "./postgres.ts";

export type { RestartClaim, RestartLock, TakenOver } from "./contracts.ts";

/**
 * Who holds a claim: host (with its PID namespace, so containers sharing a hostname differ), pid,
 * and a random id per process start. Stored as JSON with the claim.
 */
interface Holder {
	readonly host: string;
	readonly pid: number;
	readonly instance: string;
}

function pidNamespace(): string {
	try {
		return readlinkSync("/proc/self/ns/pid");
	} catch {
		return "";
	}
}

const THIS_PROCESS: Holder = {
	host: `${hostname()} ${pidNamespace()}`.trim(),
	pid: process.pid,
	instance: randomBytes(6).toString("hex"),
};

/** This process as a claim's holder; tests pass another to act as a second process. */
export function thisProcessHolder(): string {
	return JSON.stringify(THIS_PROCESS);
}

// A holder renews its claim this often while its restart runs …
export const RESTART_HEARTBEAT_MS = 2_000;
// … so a claim not renewed for this long is from a holder that died (on any host).
const HEARTBEAT_STALE_MS = 10_000;
// Claims written before holders were stored: runSsh gives up after 120 s, so one this old is from a dead process.
const LEGACY_STALE_MS = 10 * 60_000;

/**
 * Whether the process that wrote `holder` is certainly gone: it ran on this host (same PID
 * namespace) under a pid that no longer exists. Anything else (another host, a pid in use) is
 * left to the heartbeat.
 */
export function holderIsGone(holder: string | null): boolean {
	let parsed: Partial<Holder>;
	try {
		parsed = JSON.parse(holder ?? "") as Partial<Holder>;
	} catch {
		return false;
	}
	if (parsed.host !== THIS_PROCESS.host || typeof parsed.pid !== "number" || parsed.pid <= 0) return false;
	// this process, or one before it with the same pid: the heartbeat tells
	if (parsed.pid === THIS_PROCESS.pid) return false;
	try {
		process.kill(parsed.pid, 0);
		return false;
	} catch (err) {
		return (err as NodeJS.ErrnoException).code === "ESRCH"; // EPERM: it exists, as another user
	}
}

/** Renews this process's claims while their restarts run. */
function heartbeats(beat: (key: string) => Promise<unknown>) {
	const timers = new Map<string, NodeJS.Timeout>();
	return {
		start(key: string) {
			clearInterval(timers.get(key));
			// A missed beat is retried at the next one; only ~5 missed in a row let another process take over.
			timers.set(key, setInterval(() => void beat(key).catch(() => undefined), RESTART_HEARTBEAT_MS).unref());
		},
		stop(key: string) {
			clearInterval(timers.get(key));
			timers.delete(key);
		},
	};
}

/**
 * In opsbot_state.restarts: a claim is one conditional INSERT … ON CONFLICT DO UPDATE … WHERE (or
 * UPDATE … WHERE for a takeover), so of replicas pressing at once exactly one gets a row back and
 * restarts; the others read why not.
 */
export function createPostgresRestartLock(db: StateDatabase, holder = thisProcessHolder()): RestartLock {
	const stale = `CASE WHEN r.heartbeat_at IS NULL
		THEN r.started_at <= clock_timestamp() - make_interval(secs => ${LEGACY_STALE_MS / 1000})
		ELSE r.heartbeat_at <= clock_timestamp() - make_interval(secs => ${HEARTBEAT_STALE_MS / 1000}) END`;
	const beats = heartbeats((key) =>
		db.query(
			"UPDATE opsbot_state.restarts SET heartbeat_at = clock_timestamp() WHERE key = $1 AND running AND holder = $2",
			[key, holder],
		),
	);
	return {
		async acquire(key, cooldownMs) {
			const found = await db.query<{
				running: boolean;
				last_at: Date;
				started_at: Date;
				holder: string | null;
				stale: boolean;
			}>(`SELECT running, last_at, started_at, holder, ${stale} AS stale FROM opsbot_state.restarts r WHERE key = $1`, [
				key,
			]);
			const row = found.rows[0];
			if (row?.running) {
				const gone = holderIsGone(row.holder);
				if (row.holder === holder || (!gone && !row.stale)) return { ok: false, reason: "running" };
				// Compare-and-set: of replicas taking over at once, the first renews the claim and the rest find it fresh.
				const taken = await db.query(
					`UPDATE opsbot_state.restarts r
					SET running = true, started_at = clock_timestamp(), heartbeat_at = clock_timestamp(), holder = $2
					WHERE key = $1 AND running AND ((${stale}) OR ($3::text IS NOT NULL AND holder = $3)) RETURNING key`,
					[key, holder, gone ? row.holder : null],
				);
				if (taken.rows.length === 0) return { ok: false, reason: "running" };
				beats.start(key);
				return {
					ok: true,
					tookOver: {
						holder: row.holder ?? "unknown",
						startedAt: row.started_at.getTime(),
						why: gone ? "process gone" : "no heartbeat",
					},
				};
			}
			const { rows } = await db.query(
				`INSERT INTO opsbot_state.restarts AS r (key, running, started_at, last_at, holder, heartbeat_at)
				VALUES ($1, true, clock_timestamp(), clock_timestamp(), $3, clock_timestamp())
				ON CONFLICT (key) DO UPDATE
				SET running = true, started_at = clock_timestamp(), heartbeat_at = clock_timestamp(), holder = $3
				WHERE NOT r.running AND r.last_at <= clock_timestamp() - make_interval(secs => $2::double precision / 1000)
				RETURNING key`,
				[key, cooldownMs, holder],
			);
			if (rows.length > 0) {
				beats.start(key);
				return { ok: true };
			}
			const now = await db.query<{ running: boolean; last_at: Date }>(
				"SELECT running, last_at FROM opsbot_state.restarts WHERE key = $1",
				[key],
			);
			const current = now.rows[0];
			// Gone between the two statements, or claimed meanwhile: "running", the safe answer (the user presses again).
			if (!current || current.running) return { ok: false, reason: "running" };
			return { ok: false, reason: "cooldown", lastAt: current.last_at.getTime() };
		},
		async release(key) {
			beats.stop(key);
			await db.query(
				"UPDATE opsbot_state.restarts SET running = false, last_at = clock_timestamp(), holder = NULL, " +
					"heartbeat_at = NULL WHERE key = $1 AND running AND holder = $2",
				[key, holder],
			);
		},
	};
}

/**
 * The same claims in the state file's `restarts` table (one process, surviving its restart): see
 * createPostgresRestartLock.
 */
export function createSqliteRestartLock(
	db: () => {
		exec(sql: string): void;
		prepare(sql: string): {
			get(...params: (string | number | null)[]): unknown;
			run(...params: (string | number | null)[]): unknown;
		};
	},
	now: () => number,
	holder = thisProcessHolder(),
): RestartLock {
	const beats = heartbeats(async (key) =>
		db()
			.prepare("UPDATE restarts SET heartbeat_at = ? WHERE key = ? AND running = 1 AND holder = ?")
			.run(now(), key, holder),
	);
	const isStale = (row: { started_at: number; heartbeat_at: number | null }, t: number) =>
		row.heartbeat_at === null ? t - row.started_at >= LEGACY_STALE_MS : t - row.heartbeat_at >= HEARTBEAT_STALE_MS;
	return {
		async acquire(key, cooldownMs) {
			const d = db();
			d.exec("BEGIN IMMEDIATE");
			try {
				const t = now();
				const row = d
					.prepare("SELECT running, started_at, last_at, holder, heartbeat_at FROM restarts WHERE key = ?")
					.get(key) as
					| { running: number; started_at: number; last_at: number; holder: string | null; heartbeat_at: number | null }
					| undefined;
				let claim: RestartClaim = { ok: true };
				if (row?.running) {
					const gone = holderIsGone(row.holder);
					if (row.holder === holder || (!gone && !isStale(row, t))) claim = { ok: false, reason: "running" };
					else
						claim = {
							ok: true,
							tookOver: {
								holder: row.holder ?? "unknown",
								startedAt: row.started_at,
								why: gone ? "process gone" : "no heartbeat",
							},
						};
				} else if (row && t - row.last_at < cooldownMs) claim = { ok: false, reason: "cooldown", lastAt: row.last_at };
				if (claim.ok) {
					d.prepare(
						`INSERT INTO restarts (key, running, started_at, last_at, holder, heartbeat_at) VALUES (?1, 1, ?2, ?2, ?3, ?2)
						ON CONFLICT (key) DO UPDATE SET running = 1, started_at = ?2, holder = ?3, heartbeat_at = ?2`,
					).run(key, t, holder);
				}
				d.exec("COMMIT");
				if (claim.ok) beats.start(key);
				return claim;
			} catch (err) {
				d.exec("ROLLBACK");
				throw err;
			}
		},
		async release(key) {
			beats.stop(key);
			db()
				.prepare(
					"UPDATE restarts SET running = 0, last_at = ?, holder = NULL, heartbeat_at = NULL WHERE key = ? " +
						"AND running = 1 AND holder = ?",
				)
				.run(now(), key, holder);
		},
	};
}
