import type pg from "pg";
import type { Logger } from "../log.ts";
import { createPool } from "../pg-pool.ts";

/** opsbot's own PostgreSQL (STATE_DATABASE_URL) for the state replicas share besides alerts: tables created on first use. */
export interface StateDatabase {
	/** Runs a query once the schema exists. */
	query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
	readonly url: string;
	close(): Promise<void>;
}

// Created idempotently (IF NOT EXISTS) rather than numbered: the alert store owns schema_version's numbers.
const SCHEMA = [
	"CREATE SCHEMA IF NOT EXISTS opsbot_state",
	`CREATE TABLE IF NOT EXISTS opsbot_state.pending (
		token TEXT PRIMARY KEY,
		kind TEXT NOT NULL,
		user_id TEXT NOT NULL,
		value JSONB NOT NULL,
		created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
		expires_at TIMESTAMPTZ NOT NULL
	)`,
	"CREATE INDEX IF NOT EXISTS pending_user ON opsbot_state.pending (kind, user_id, created_at)",
	"CREATE INDEX IF NOT EXISTS pending_expiry ON opsbot_state.pending (expires_at)",
	`CREATE TABLE IF NOT EXISTS opsbot_state.actions (
		id BIGSERIAL PRIMARY KEY,
		at TIMESTAMPTZ NOT NULL,
		user_id TEXT NOT NULL,
		username TEXT NOT NULL,
		action TEXT NOT NULL,
		target TEXT NOT NULL,
		result TEXT NOT NULL,
		details JSONB
	)`,
	`CREATE TABLE IF NOT EXISTS opsbot_state.restarts (
		key TEXT PRIMARY KEY,
		running BOOLEAN NOT NULL,
		started_at TIMESTAMPTZ NOT NULL,
		last_at TIMESTAMPTZ NOT NULL
	)`,
	// Who holds a running claim and when it last renewed it, so a claim of a dead process is taken over at once.
	"ALTER TABLE opsbot_state.restarts ADD COLUMN IF NOT EXISTS holder TEXT, ADD COLUMN IF NOT EXISTS heartbeat_at TIMESTAMPTZ",
];

/** Opens a small pool; the schema is made (under the migrations advisory lock) before the first query. */
export function openStateDatabase(url: string, log: Logger): StateDatabase {
	const pool = createPool(
		{
			connectionString: url,
			max: 4,
			application_name: "opsbot-state",
			connectionTimeoutMillis: 5_000,
			// A press waits on these queries; a stuck one must fail the press, not hang it past Discord's 15 minutes.
			onConnect: async (client) => {
				await client.query("SELECT set_config('statement_timeout', '10000', false)");
			},
		},
		log,
		"state database",
	);
	let ready: Promise<void> | undefined;
	const migrate = () => createSchema(pool, SCHEMA);
	return {
		url,
		async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
			// A failed attempt is retried on the next query instead of failing every later one.
			ready ??= migrate().catch((err: unknown) => {
				ready = undefined;
				throw err;
			});
			await ready;
			return pool.query<R>(sql, params);
		},
		close: () => pool.end(),
	};
}

/**
 * Runs idempotent DDL (IF NOT EXISTS) in one transaction under the migrations advisory lock, so
 * replicas starting together create the tables one at a time. A transaction-level lock, so it works
 * through PgBouncer in transaction mode.
 */
export async function createSchema(pool: pg.Pool, statements: readonly string[]): Promise<void> {
	const client = await pool.connect();
	try {
		await client.query("BEGIN");
		await client.query("SELECT pg_advisory_xact_lock(hashtext('opsbot_state.migrations'))");
		for (const sql of statements) await client.query(sql);
		await client.query("COMMIT");
	} catch (err) {
		// A connection that cannot roll back (dropped by the server) leaves the pool.
		let broken: Error | undefined;
		await client.query("ROLLBACK").catch((rollbackErr: unknown) => (broken = rollbackErr as Error));
		client.release(broken);
		throw err;
	}
	client.release();
}
