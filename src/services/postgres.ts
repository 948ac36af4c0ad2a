import type pg from "pg";
import { UserFacingError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { createPool, loadPg } from "../pg-pool.ts";
import { describeNetworkCode } from "./http.ts";

/** A bounded, read-only handle on one PostgreSQL database (directly or through PgBouncer). */
export interface Database {
	/** Runs one parameterised statement in a READ ONLY transaction under `statement_timeout`. */
	read<Row extends object>(sql: string, params?: readonly unknown[], options?: { timeoutMs?: number }): Promise<Row[]>;
	/**
	 * Runs `work` in a transaction whose statement_timeout is set locally; for the few writes opsbot makes
	 * (pg_terminate_backend). `leaveNothing`: end with ROLLBACK after dropping session advisory locks, so
	 * session settings, notifications and WAL messages the work made vanish with it (on this connection
	 * or the PgBouncer server connection it borrowed, which a later transaction may get).
	 */
	transaction<T>(work: (client: pg.PoolClient) => Promise<T>, options?: TransactionOptions): Promise<T>;
	/** Connections this pool holds right now (in use + idle); never more than `maxConnections`. */
	readonly held: () => number;
	readonly applicationName: string;
	close(): Promise<void>;
}

/** How Database.transaction runs its work. */
export interface TransactionOptions {
	readonly timeoutMs?: number;
	readonly readOnly?: boolean;
	readonly leaveNothing?: boolean;
}

/** Settings for createDatabase. */
export interface DatabaseOptions {
	readonly url: string;
	readonly maxConnections: number;
	readonly statementTimeoutMs: number;
	readonly applicationName?: string;
	readonly log: Logger;
}

/**
 * Creates a small pg pool. statement_timeout is set per transaction with set_config(..., true),
 * not as a startup parameter: PgBouncer 1.18 refuses unknown startup parameters and transaction
 * pooling forgets session settings (PROTOCOLS.md §3.1, §4.4).
 */
export function createDatabase(options: DatabaseOptions): Database {
	const applicationName = options.applicationName ?? "opsbot";
	// pg-pool would also apply connectionTimeoutMillis to waiting for a busy pooled connection, failing
	// requests queued behind others as "timed out" (a burst of /pool presses through a pool of 2). The bound
	// goes to opening each connection only; the queue drains within the holders' own statement timeouts.
	const connectTimeoutMs = Math.min(options.statementTimeoutMs, 10_000);
	class BoundedConnectClient extends loadPg().Client {
		constructor(config?: string | pg.ClientConfig) {
			super({
				...(typeof config === "string" ? { connectionString: config } : config),
				connectionTimeoutMillis: connectTimeoutMs,
			});
		}
	}
	const pool = createPool(
		{
			Client: BoundedConnectClient,
			connectionString: options.url,
			max: options.maxConnections,
			application_name: applicationName,
			idleTimeoutMillis: 30_000,
			// Client-side backstop in case the server never answers; the server-side timeout is set below.
			query_timeout: options.statementTimeoutMs + 2_000,
		},
		options.log,
		"postgres",
	);

	async function transaction<T>(
		work: (client: pg.PoolClient) => Promise<T>,
		txOptions: TransactionOptions = {},
	): Promise<T> {
		const client = await pool.connect();
		let broken: Error | undefined;
		try {
			await client.query(txOptions.readOnly === false ? "BEGIN" : "BEGIN READ ONLY");
			await client.query("SELECT set_config('statement_timeout', $1, true)", [
				String(txOptions.timeoutMs ?? options.statementTimeoutMs),
			]);
			const result = await work(client);
			if (txOptions.leaveNothing) {
				await client.query("SELECT pg_advisory_unlock_all()");
				await client.query("ROLLBACK");
			} else await client.query("COMMIT");
			return result;
		} catch (err) {
			// A connection that cannot roll back (dropped by the server) leaves the pool; the next one is fresh.
			await client.query("ROLLBACK").catch((rollbackErr: unknown) => {
				broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
			});
			// A session advisory lock survives its failed transaction (best effort: through PgBouncer this may run elsewhere).
			if (txOptions.leaveNothing && !broken)
				await client.query("SELECT pg_advisory_unlock_all()").catch(() => undefined);
			throw err;
		} finally {
			client.release(broken);
		}
	}

	return {
		applicationName,
		read: (sql, params = [], readOptions = {}) =>
			transaction(async (client) => (await client.query(sql, params as unknown[])).rows, {
				...readOptions,
				readOnly: true,
			}),
		transaction,
		held: () => pool.totalCount,
		close: () => pool.end(),
	};
}

/** Lazily created databases, one per environment; nothing connects until a command needs it. */
export interface DatabaseRegistry {
	get(environment: string): Database | undefined;
	/**
	 * The database SQL checks run on: a pool of its own under `checksUrl` when the environment names one, else get()'s.
	 */
	forChecks(environment: string): Database | undefined;
	close(): Promise<void>;
}

/**
 * Builds the registry from a lookup of environment -> connection settings (`checksUrl`: postgres.checksUrlEnv's value).
 */
export function createDatabaseRegistry(
	settings: (environment: string) => (Omit<DatabaseOptions, "log"> & { readonly checksUrl?: string }) | undefined,
	log: Logger,
): DatabaseRegistry {
	const open = new Map<string, Database>();
	const opened = (key: string, environment: string, options: Omit<DatabaseOptions, "log">) => {
		const existing = open.get(key);
		if (existing) return existing;
		const db = createDatabase({ ...options, log: log.child({ db: environment }) });
		open.set(key, db);
		return db;
	};
	return {
		get(environment) {
			const options = settings(environment);
			return options && opened(environment, environment, options);
		},
		forChecks(environment) {
			const options = settings(environment);
			if (!options?.checksUrl) return options && opened(environment, environment, options);
			return opened(`${environment}\0checks`, environment, { ...options, url: options.checksUrl });
		},
		async close() {
			await Promise.allSettled([...open.values()].map((db) => db.close()));
			open.clear();
		},
	};
}

/** Plain words for a pg failure, safe to show a user (no connection string, no SQL). */
export function describePgFailure(err: unknown): string {
	const e = err as { code?: string; message?: string } | undefined;
	const network = describeNetworkCode(e?.code);
	if (network) return network;
	switch (e?.code) {
		case "28P01":
		case "28000":
			return "authentication failed";
		case "3D000":
			return "database does not exist";
		case "53300":
			return "too many connections (max_connections reached)";
		case "57014":
			return "query cancelled by statement_timeout";
		case "57P01":
			// pg_terminate_backend (a DBA, or a check) as well as a fast shutdown.
			return "connection closed by the server";
		case "57P03":
			return "server is shutting down or starting up";
		case "08P01":
			// PgBouncer reports the server connection under its client dying with this code.
			if (e.message && /server conn crashed|server closed the connection|terminat/i.test(e.message))
				return "connection terminated";
			return "protocol violation";
		default:
			if (e?.message && /timeout/i.test(e.message)) return "timed out";
			if (e?.message && /terminated/i.test(e.message)) return "connection terminated";
			return "query failed";
	}
}

// Failures that say the server is unreachable or going away, not that the query was wrong.
const UNREACHABLE = new Set([
	"ECONNREFUSED",
	"ENOTFOUND",
	"EAI_AGAIN",
	"EHOSTUNREACH",
	"ENETUNREACH",
	"ETIMEDOUT",
	"ECONNRESET",
	"57P01",
	"57P02",
	"57P03",
	"08000",
	"08001",
	"08003",
	"08004",
	"08006",
]);

/**
 * A pg failure the user can understand and act on (server down, opsbot's login refused, server
 * full, query too slow) as a UserFacingError in plain words naming only the environment; undefined
 * for anything else (a bug, a missing table), which stays an internal error. Never carries pg's own
 * message, the host or the connection string; the original error rides along as `cause` for the log.
 */
export function pgUserFacingError(err: unknown, environment: string, timeoutMs?: number): UserFacingError | undefined {
	if (err instanceof UserFacingError) return err;
	const e = err as { code?: string; message?: string } | undefined;
	const code = e?.code ?? "";
	const described = describePgFailure(err);
	const within = timeoutMs ? ` within ${formatSeconds(timeoutMs)}` : " in time";
	if (code === "28P01" || code === "28000") {
		return new UserFacingError(
			`opsbot could not log in to the PostgreSQL of ${environment} (authentication failed). An admin should check ` +
				`the user and password in its database URL.`,
			{ cause: err },
		);
	}
	if (code === "3D000")
		return new UserFacingError(
			`The PostgreSQL of ${environment} has no such database. An admin should check the database name in opsbot's ` +
				`database URL.`,
			{ cause: err },
		);
	if (code === "53300")
		return new UserFacingError(
			`The PostgreSQL of ${environment} refused opsbot's connection: too many connections (max_connections ` +
				`reached). See /pool ${environment}.`,
			{ cause: err },
		);
	if (code === "57014" || described === "timed out") {
		return new UserFacingError(
			`The PostgreSQL of ${environment} did not answer${within} ` +
				`(${code === "57014" ? "statement_timeout" : "timed out"}): it may be overloaded or the table locked. Try ` +
				`again in a moment; /health ${environment} shows whether it is up.`,
			{ cause: err, unavailable: true },
		);
	}
	if (UNREACHABLE.has(code) || described === "connection terminated") {
		return new UserFacingError(
			`The PostgreSQL of ${environment} is not reachable (${described}). Check /health ${environment} and try ` +
				`again once it is back.`,
			{ cause: err, unavailable: true },
		);
	}
	return undefined;
}

function formatSeconds(ms: number): string {
	return `${Number((ms / 1000).toFixed(1))} s`;
}
