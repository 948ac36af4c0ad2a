import type { OpsFile } from "../config.ts";
import type { PgBouncerPool } from "./pgbouncer.ts";
import type { EndableSessions, PgBouncerUsage, PoolSnapshot, PostgresUsage, Session } from "./pool.ts";

/** Thresholds from the config's `pool` section. */
export type PoolThresholds = OpsFile["pool"];

/** How close to exhaustion a pool is, in the thresholds' words. */
export type PoolSeverity = "ok" | "warn" | "critical";

/** The likely cause of trouble, as data; the report says it in words. */
export type PoolCause =
	/**
	 * Many connections from one application idle longer than `idleMinutes`: a client pool that keeps what it no longer
	 * uses.
	 */
	| {
			readonly kind: "stale-idle";
			readonly count: number;
			readonly application: string;
			readonly olderThanMinutes: number;
	  }
	/** Sessions idle in a transaction longer than `olderThanMinutes`; `longest` is the one idle longest. */
	| {
			readonly kind: "idle-in-transaction";
			readonly count: number;
			readonly longest: Session;
			readonly olderThanMinutes: number;
	  }
	/** Sessions waiting on other sessions' locks; `blockers` are the pids holding them, each once. */
	| { readonly kind: "blocked"; readonly count: number; readonly blockers: readonly number[] }
	/** Clients queued in PgBouncer; `worst` is the pool with the longest wait. */
	| { readonly kind: "pgbouncer-waiting"; readonly clients: number; readonly worst: PgBouncerPool };

/** What /pool concludes from a snapshot: how bad it is, why, and the sessions grouped the way the report shows them. */
export interface PoolDiagnosis {
	readonly severity: PoolSeverity;
	/** Connections used as a whole percentage of the usable ones; absent when PostgreSQL could not be read. */
	readonly percent?: number;
	readonly cause?: PoolCause;
	/** Client sessions per state, most first. */
	readonly byState: readonly { readonly state: string; readonly count: number }[];
	/** Client sessions per application and client address, most first. */
	readonly bySource: readonly { readonly application: string; readonly clientAddr: string; readonly count: number }[];
	/** Idle sessions, the longest idle first. */
	readonly idle: readonly Session[];
	/** Sessions idle in a transaction (aborted or not), the longest first. */
	readonly idleInTransaction: readonly Session[];
	/** Sessions waiting on another session's locks, the longest waiting first. */
	readonly blocked: readonly Session[];
	/** The End button that fits: what it would end and how many sessions qualify now; absent when it would end nothing. */
	readonly offer?: EndOffer;
}

/** An End button /pool offers: sessions of opsbot's own database in that state for longer than `olderThanMinutes`. */
export interface EndOffer {
	readonly sessions: EndableSessions;
	readonly olderThanMinutes: number;
	/** How many qualify in the snapshot; the press looks again. */
	readonly count: number;
}

/** Whether the PostgreSQL half of a snapshot was read. */
export function isPostgresUsage(value: PoolSnapshot["postgres"]): value is PostgresUsage {
	return !("error" in value);
}

/** Whether the snapshot has a PgBouncer half that was read. */
export function isBouncerUsage(value: PoolSnapshot["pgbouncer"]): value is PgBouncerUsage {
	return value !== undefined && !("error" in value);
}

/** A session connected and doing nothing. */
export function isIdle(s: Session): boolean {
	return s.state === "idle";
}

/** A session inside a transaction and doing nothing ("idle in transaction", or "(aborted)"): it holds its locks. */
export function isIdleInTransaction(s: Session): boolean {
	return s.state.startsWith("idle in transaction");
}

/** A session waiting on another session's locks. */
export function isBlocked(s: Session): boolean {
	return s.blockedBy.length > 0;
}

/** Counts items per key, in the order keys first appear. */
export function groupCount<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
	const counts = new Map<string, number>();
	for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
	return counts;
}

const mostFirst = <K>(counts: Map<K, number>): [K, number][] => [...counts.entries()].sort((a, b) => b[1] - a[1]);
const longestFirst = (sessions: readonly Session[]): Session[] =>
	[...sessions].sort((a, b) => b.stateSeconds - a.stateSeconds);

/** Judges a snapshot against the thresholds: the severity, the likely cause and the session groups. */
export function diagnosePool(snapshot: PoolSnapshot, thresholds: PoolThresholds): PoolDiagnosis {
	const bouncer = snapshot.pgbouncer;
	const pg = isPostgresUsage(snapshot.postgres) ? snapshot.postgres : undefined;
	const sessions = pg?.sessions ?? [];
	const idleInTransaction = longestFirst(sessions.filter(isIdleInTransaction));
	const blocked = longestFirst(sessions.filter(isBlocked));
	let severity: PoolSeverity = "critical";
	let percent: number | undefined;
	if (pg) {
		percent = Math.round((pg.used / pg.usable) * 100);
		severity = percent >= thresholds.criticalPercent ? "critical" : percent >= thresholds.warnPercent ? "warn" : "ok";
		// An open transaction left alone too long, or a session stuck behind locks, is worth a look at any usage.
		if (
			severity === "ok" &&
			(idleInTransaction.some((s) => s.stateSeconds >= thresholds.idleInTransactionMinutes * 60) || blocked.length > 0)
		)
			severity = "warn";
	}
	if (
		severity === "ok" &&
		bouncer &&
		(!isBouncerUsage(bouncer) || bouncer.pools.some((p) => p.clientsWaiting > 0 && p.maxWaitSeconds >= 1))
	)
		severity = "warn";
	const cause = pg ? likelyCause(pg, isBouncerUsage(bouncer) ? bouncer : undefined, thresholds) : undefined;
	const offer = pg ? endOffer(pg, cause, thresholds) : undefined;
	return {
		severity,
		...(percent === undefined ? {} : { percent }),
		...(cause ? { cause } : {}),
		...(offer ? { offer } : {}),
		byState: mostFirst(groupCount(sessions, (s) => s.state)).map(([state, count]) => ({ state, count })),
		bySource: mostFirst(groupCount(sessions, (s) => `${s.application}\u0000${s.clientAddr}`)).map(([key, count]) => {
			const [application = "", clientAddr = ""] = key.split("\u0000");
			return { application, clientAddr, count };
		}),
		idle: longestFirst(sessions.filter(isIdle)),
		idleInTransaction,
		blocked,
	};
}

/**
 * The End button that fits the cause: sessions idle in transaction when they are the cause (ending idle
 * connections cannot touch them), otherwise idle connections older than `idleMinutes`; none when it
 * would end nothing. Only sessions of opsbot's own database count, as only those can be ended.
 */
function endOffer(pg: PostgresUsage, cause: PoolCause | undefined, thresholds: PoolThresholds): EndOffer | undefined {
	const [sessions, olderThanMinutes, matches]: [EndableSessions, number, (s: Session) => boolean] =
		cause?.kind === "idle-in-transaction"
			? ["idle-in-transaction", thresholds.idleInTransactionMinutes, isIdleInTransaction]
			: ["idle", thresholds.idleMinutes, isIdle];
	const count = pg.sessions.filter(
		(s) => s.database === pg.database && matches(s) && s.stateSeconds >= olderThanMinutes * 60,
	).length;
	return count > 0 ? { sessions, olderThanMinutes, count } : undefined;
}

// The first sign present is named: stale idle connections, then open transactions, then locks, then
// PgBouncer's queue (which the others often cause).
function likelyCause(
	pg: PostgresUsage,
	bouncer: PgBouncerUsage | undefined,
	thresholds: PoolThresholds,
): PoolCause | undefined {
	const staleIdle = pg.sessions.filter((s) => isIdle(s) && s.stateSeconds >= thresholds.idleMinutes * 60);
	const [top] = mostFirst(groupCount(staleIdle, (s) => s.application));
	// One application holding at least five, and at least a fifth of those used, is worth naming; fewer is noise.
	if (top && top[1] >= Math.max(5, pg.used * 0.2))
		return { kind: "stale-idle", count: top[1], application: top[0], olderThanMinutes: thresholds.idleMinutes };
	const olderThanMinutes = thresholds.idleInTransactionMinutes;
	const stuck = pg.sessions.filter((s) => isIdleInTransaction(s) && s.stateSeconds >= olderThanMinutes * 60);
	if (stuck.length > 0)
		return {
			kind: "idle-in-transaction",
			count: stuck.length,
			longest: stuck.reduce((a, b) => (b.stateSeconds > a.stateSeconds ? b : a)),
			olderThanMinutes,
		};
	const blocked = pg.sessions.filter(isBlocked);
	if (blocked.length > 0)
		return { kind: "blocked", count: blocked.length, blockers: [...new Set(blocked.flatMap((s) => s.blockedBy))] };
	const waiting = bouncer?.pools.filter((p) => p.clientsWaiting > 0) ?? [];
	if (waiting.length > 0)
		return {
			kind: "pgbouncer-waiting",
			clients: waiting.reduce((n, p) => n + p.clientsWaiting, 0),
			worst: waiting.reduce((a, b) => (b.maxWaitSeconds > a.maxWaitSeconds ? b : a)),
		};
	return undefined;
}
