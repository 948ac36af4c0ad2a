import type { Logger } from "../log.ts";
import { createPgBouncerAdmin, type PgBouncerPool } from "./pgbouncer.ts";
import { type Database, describePgFailure } from "./postgres.ts";
import type { PrometheusService } from "./prometheus.ts";

/** One client session as pg_stat_activity shows it. */
export interface Session {
	readonly pid: number;
	readonly backendStart: string;
	readonly database: string;
	readonly user: string;
	readonly application: string;
	readonly clientAddr: string;
	readonly state: string;
	/** Seconds since `state` last changed (time idle, or idle in transaction). */
	readonly stateSeconds: number;
	readonly blockedBy: readonly number[];
}

/** PostgreSQL's side: connection use against the limit. */
export interface PostgresUsage {
	/** The database opsbot is connected to: the only one whose sessions it may end. */
	readonly database: string;
	readonly maxConnections: number;
	readonly reserved: number;
	/** max_connections minus superuser_reserved_connections: what applications can actually use. */
	readonly usable: number;
	/** Client sessions in use, opsbot's own not counted. */
	readonly used: number;
	/** Every client session except opsbot's own. */
	readonly sessions: readonly Session[];
	/** opsbot's own sessions (the one running this query, its idle pooled ones) left out of the figures. */
	readonly ownSessions: number;
}

/** PgBouncer's side: pools and per-database traffic. */
export interface PgBouncerUsage {
	/** Client figures without opsbot's own clients. */
	readonly pools: readonly PgBouncerPool[];
	/** opsbot's own PgBouncer clients left out of the figures. */
	readonly ownClients: number;
	readonly stats: readonly { database: string; queriesPerSecond: number; avgQueryMs: number; avgWaitMs: number }[];
}

/** Everything /pool shows for one environment. A half that failed carries a plain reason instead. */
export interface PoolSnapshot {
	readonly environment: string;
	readonly takenAt: Date;
	readonly postgres: PostgresUsage | { readonly error: string };
	readonly pgbouncer?: PgBouncerUsage | { readonly error: string };
}

/** One sample of connections used, for the chart. */
export interface UsageSample {
	readonly at: number;
	readonly used: number;
}

/**
 * Which sessions an End button ends: connections doing nothing ("idle"), or sessions doing nothing inside an open
 * transaction ("idle-in-transaction", aborted or not), which hold their locks until they end.
 */
export type EndableSessions = "idle" | "idle-in-transaction";

/** pg_stat_activity states each kind of End covers; passed to the SQL as a parameter. */
const ENDABLE_STATES: Record<EndableSessions, readonly string[]> = {
	idle: ["idle"],
	"idle-in-transaction": ["idle in transaction", "idle in transaction (aborted)"],
};

/** The sessions an End press would end, re-checked when it runs. */
export interface TerminationCandidate {
	readonly pid: number;
	readonly backendStart: string;
	readonly application: string;
	readonly clientAddr: string;
	readonly idleSeconds: number;
}

/** What pg_terminate_backend did for each candidate. */
export interface TerminationResult {
	readonly ended: readonly TerminationCandidate[];
	/** Candidates that no longer qualified (gone, busy again, replaced) and were left alone. */
	readonly skipped: number;
}

/** Reads connection usage and ends idle (or idle in transaction) sessions on request. */
export interface PoolService {
	snapshot(environment: string): Promise<PoolSnapshot>;
	/** Sessions of opsbot's own database in that state for longer than `olderThanMinutes` (default: idle ones). */
	idleCandidates(
		environment: string,
		olderThanMinutes: number,
		sessions?: EndableSessions,
	): Promise<TerminationCandidate[]>;
	terminate(
		environment: string,
		candidates: readonly TerminationCandidate[],
		olderThanMinutes: number,
		sessions?: EndableSessions,
	): Promise<TerminationResult>;
	/**
	 * Connections used over the last hours: from Prometheus (postgres-exporter) when configured, else opsbot's own
	 * samples.
	 */
	history(environment: string): Promise<{ samples: readonly UsageSample[]; source: string }>;
}

/** Dependencies; typed by the parts used. */
export interface PoolDeps {
	readonly database: (environment: string) => Database | undefined;
	/** The PgBouncer admin console URL of an environment, if it has one. */
	readonly pgbouncerAdminUrl: (environment: string) => { url: string; timeoutMs: number } | undefined;
	/** The Prometheus of an environment, if it has one. */
	readonly prometheus?: Pick<PrometheusService, "forEnvironment">;
	readonly log: Logger;
	readonly maxSamples?: number;
	readonly historyHours?: number;
}

interface ActivityRow {
	pid: number;
	backend_start: string;
	datname: string | null;
	usename: string | null;
	application_name: string | null;
	client_addr: string | null;
	state: string | null;
	state_seconds: number | null;
	blocked_by: number[];
	max_connections: number;
	reserved: number;
	own: number;
	current_database: string;
}

// One statement: settings ride along on every row so the snapshot is a single consistent read.
// opsbot's own sessions are left out: the backend running this very query (through PgBouncer it is
// the server connection PgBouncer lent opsbot) and any session named like opsbot ($1), such as its
// idle pooled connections, so /pool never reports opsbot's own query as load.
const ACTIVITY_SQL = `
SELECT a.pid, a.backend_start::text AS backend_start, a.datname, a.usename, a.application_name,
       host(a.client_addr) AS client_addr, a.state,
       EXTRACT(EPOCH FROM now() - a.state_change)::float8 AS state_seconds,
       pg_blocking_pids(a.pid) AS blocked_by,
       s.max_connections, s.reserved, s.own, s.current_database
FROM (SELECT current_setting('max_connections')::int AS max_connections, current_database() AS current_database,
             current_setting('superuser_reserved_connections')::int AS reserved,
             (SELECT count(*) FROM pg_stat_activity
               WHERE backend_type = 'client backend'
                 AND (pid = pg_backend_pid() OR application_name = $1))::int AS own) s
LEFT JOIN pg_stat_activity a ON a.backend_type = 'client backend'
  AND a.pid <> pg_backend_pid() AND a.application_name IS DISTINCT FROM $1`;

// The sessions an End press offers: in one of the states ($2) for longer than $1 seconds, client
// backends of this database only, never opsbot's own.
const CANDIDATES_SQL = `
SELECT pid, backend_start::text AS backend_start, application_name, host(client_addr) AS client_addr,
       EXTRACT(EPOCH FROM now() - state_change)::float8 AS idle_seconds
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND state = ANY($2::text[]) AND datname = current_database()
  AND state_change < now() - make_interval(secs => $1) AND pid <> pg_backend_pid()
  AND application_name IS DISTINCT FROM $3
ORDER BY state_change
LIMIT 1000`;

// Re-checks every condition at the moment of termination: same backend (pid + backend_start), still
// in the same kind of state ($5) for long enough, a client backend of this database, and never
// opsbot's own sessions.
const TERMINATE_SQL = `
SELECT a.pid, pg_terminate_backend(a.pid) AS ended
FROM pg_stat_activity a
JOIN unnest($1::int[], $2::timestamptz[]) AS c(pid, backend_start)
  ON a.pid = c.pid AND a.backend_start = c.backend_start
WHERE a.backend_type = 'client backend'
  AND a.state = ANY($5::text[])
  AND a.state_change < now() - make_interval(secs => $3)
  AND a.datname = current_database()
  AND a.pid <> pg_backend_pid()
  AND a.application_name IS DISTINCT FROM $4`;

/** Creates the pool service. */
export function createPoolService(deps: PoolDeps): PoolService {
	const history = new Map<string, UsageSample[]>();
	const maxSamples = deps.maxSamples ?? 720;

	function remember(environment: string, sample: UsageSample): void {
		const list = history.get(environment) ?? [];
		list.push(sample);
		if (list.length > maxSamples) list.splice(0, list.length - maxSamples);
		history.set(environment, list);
	}

	function requireDatabase(environment: string): Database {
		const db = deps.database(environment);
		if (!db) throw new Error(`environment ${environment} has no postgres configured`);
		return db;
	}

	async function readPostgres(environment: string): Promise<PostgresUsage> {
		const db = requireDatabase(environment);
		const rows = await db.read<ActivityRow>(ACTIVITY_SQL, [db.applicationName]);
		const first = rows[0];
		if (!first) throw new Error("no settings row");
		const sessions: Session[] = rows
			.filter((r) => r.pid !== null)
			.map((r) => ({
				pid: r.pid,
				backendStart: r.backend_start,
				database: r.datname ?? "",
				user: r.usename ?? "",
				application: r.application_name ?? "",
				clientAddr: r.client_addr ?? "local socket",
				state: r.state ?? "unknown",
				stateSeconds: Math.max(0, r.state_seconds ?? 0),
				blockedBy: r.blocked_by ?? [],
			}));
		return {
			database: first.current_database,
			maxConnections: first.max_connections,
			reserved: first.reserved,
			usable: Math.max(1, first.max_connections - first.reserved),
			used: sessions.length,
			sessions,
			ownSessions: first.own,
		};
	}

	async function readPgBouncer(environment: string, url: string, timeoutMs: number): Promise<PgBouncerUsage> {
		const own = deps.database(environment)?.applicationName ?? "opsbot";
		const { pools, ownClients, stats } = await createPgBouncerAdmin({ url, timeoutMs, applicationName: own }).usage(
			own,
			{ stats: true },
		);
		return {
			pools,
			ownClients,
			stats: stats
				.filter((row) => row.database !== "pgbouncer")
				.map((row) => ({
					database: String(row.database ?? ""),
					queriesPerSecond: Number(row.avg_query_count ?? 0),
					// PgBouncer reports these averages in microseconds.
					avgQueryMs: Number(row.avg_query_time ?? 0) / 1000,
					avgWaitMs: Number(row.avg_wait_time ?? 0) / 1000,
				})),
		};
	}

	return {
		async snapshot(environment) {
			const takenAt = new Date();
			const bouncer = deps.pgbouncerAdminUrl(environment);
			const [pgResult, bouncerResult] = await Promise.allSettled([
				readPostgres(environment),
				bouncer ? readPgBouncer(environment, bouncer.url, bouncer.timeoutMs) : Promise.resolve(undefined),
			]);
			if (pgResult.status === "fulfilled") remember(environment, { at: takenAt.getTime(), used: pgResult.value.used });
			else deps.log.warn({ err: pgResult.reason, environment }, "pool: postgres read failed");
			if (bouncerResult.status === "rejected")
				deps.log.warn({ err: bouncerResult.reason, environment }, "pool: pgbouncer read failed");
			return {
				environment,
				takenAt,
				postgres: pgResult.status === "fulfilled" ? pgResult.value : { error: describePgFailure(pgResult.reason) },
				...(bouncer
					? {
							pgbouncer:
								bouncerResult.status === "fulfilled" && bouncerResult.value
									? bouncerResult.value
									: {
											error: describePgFailure(bouncerResult.status === "rejected" ? bouncerResult.reason : undefined),
										},
						}
					: {}),
			};
		},
		async idleCandidates(environment, olderThanMinutes, sessions = "idle") {
			const db = requireDatabase(environment);
			const rows = await db.read<{
				pid: number;
				backend_start: string;
				application_name: string | null;
				client_addr: string | null;
				idle_seconds: number;
			}>(CANDIDATES_SQL, [olderThanMinutes * 60, ENDABLE_STATES[sessions], db.applicationName]);
			return rows.map((r) => ({
				pid: r.pid,
				backendStart: r.backend_start,
				application: r.application_name ?? "",
				clientAddr: r.client_addr ?? "local socket",
				idleSeconds: r.idle_seconds,
			}));
		},
		async terminate(environment, candidates, olderThanMinutes, sessions = "idle") {
			if (candidates.length === 0) return { ended: [], skipped: 0 };
			const db = requireDatabase(environment);
			const rows = await db.transaction(
				async (client) =>
					(
						await client.query<{ pid: number; ended: boolean }>(TERMINATE_SQL, [
							candidates.map((c) => c.pid),
							candidates.map((c) => c.backendStart),
							olderThanMinutes * 60,
							db.applicationName,
							ENDABLE_STATES[sessions],
						])
					).rows,
				{ readOnly: false },
			);
			const endedPids = new Set(rows.filter((r) => r.ended).map((r) => r.pid));
			const ended = candidates.filter((c) => endedPids.has(c.pid));
			return { ended, skipped: candidates.length - ended.length };
		},
		async history(environment) {
			const hours = deps.historyHours ?? 6;
			const own = { samples: history.get(environment) ?? [], source: "opsbot samples" };
			const prometheus = deps.prometheus?.forEnvironment(environment);
			if (!prometheus) return own;
			const end = new Date();
			try {
				// postgres-exporter's pg_stat_activity_count is per database and state; the sum is connections in use.
				const series = await prometheus.queryRange("sum(pg_stat_activity_count)", {
					start: new Date(end.getTime() - hours * 3_600_000),
					end,
					stepSeconds: (hours * 3600) / 120,
				});
				const points = series[0]?.points ?? [];
				return points.length >= 2
					? { samples: points.map((p) => ({ at: p.at, used: p.value })), source: "Prometheus" }
					: own;
			} catch (err) {
				deps.log.info({ err, environment }, "pool: no history from Prometheus, using own samples");
				return own;
			}
		},
	};
}
