import type pg from "pg";
import type { Logger } from "../log.ts";
import { createPool } from "../pg-pool.ts";

/**
 * opsbot's own PostgreSQL (STATE_DATABASE_URL, never the application's), shared by replicas: one
 * pool, one ordered migration list, one transaction helper, for every store in schema opsbot_state
 * (alert groups and outbox, message outbox, pending state, restart claims, action log, gateway lease).
 */
export interface StateDatabase {
	/** One statement, on any connection of the pool. */
	query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
	/** Runs `work` in one transaction on one connection; rolls back (and drops a broken connection) on failure. */
	tx<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
	/**
	 * A pipelined transaction (pipelinedTransaction) on the connection reserved for the alert store's group
	 * commits: a connection of its own, so delivery, buttons and the action log on the shared pool never
	 * keep a webhook's acknowledgement waiting for a connection.
	 */
	groupCommit<T>(work: PipelinedWork<T>): Promise<T>;
	readonly url: string;
	close(): Promise<void>;
}

/**
 * The longest any statement of the state database may run. Its statements touch a few rows by key;
 * one that takes seconds is stuck behind a lock or a sick server, and the receiver must answer
 * AlertManager (which retries a 5xx), and a press its user, rather than hang with it.
 */
export const STATE_STATEMENT_TIMEOUT_MS = 5_000;

/**
 * The state pool's settings: a few connections, and statement_timeout set on each new connection
 * with SET (not as a startup parameter, which PgBouncer refuses). A replica opens one more, with the
 * same settings, for the alert store's group commits (StateDatabase.groupCommit).
 */
export function statePoolConfig(url: string, statementTimeoutMs = STATE_STATEMENT_TIMEOUT_MS): pg.PoolConfig {
	return {
		connectionString: url,
		max: 4,
		application_name: "opsbot-state",
		connectionTimeoutMillis: 5_000,
		onConnect: async (client) => {
			await client.query("SELECT set_config('statement_timeout', $1, false)", [String(statementTimeoutMs)]);
		},
	};
}

/**
 * Every change to schema opsbot_state, in order; schema_version holds how many have run. Append
 * only. Entries 1-8 are the alert store's list as it was; 9 and 10 bring in, idempotently, what
 * opsbot created outside the list before (IF NOT EXISTS: a database written by those versions has them).
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
	`CREATE TABLE opsbot_state.groups (
		id TEXT PRIMARY KEY,
		receiver TEXT NOT NULL,
		group_key TEXT NOT NULL,
		channel TEXT NOT NULL,
		mention_role TEXT,
		episode INTEGER NOT NULL,
		status TEXT NOT NULL,
		first_firing_at BIGINT NOT NULL,
		last_signature TEXT NOT NULL,
		message_id TEXT,
		message_episode INTEGER
	);
	CREATE TABLE opsbot_state.outbox (
		id BIGSERIAL PRIMARY KEY,
		group_id TEXT NOT NULL REFERENCES opsbot_state.groups(id),
		episode INTEGER NOT NULL,
		payload JSONB NOT NULL,
		created_at BIGINT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt_at BIGINT NOT NULL,
		done BOOLEAN NOT NULL DEFAULT false
	);
	CREATE INDEX outbox_pending ON opsbot_state.outbox (next_attempt_at) WHERE NOT done;`,
	`ALTER TABLE opsbot_state.groups ADD COLUMN last_payload JSONB, ADD COLUMN ack JSONB, ADD COLUMN silence JSONB;`,
	`ALTER TABLE opsbot_state.groups ADD COLUMN restart JSONB;`,
	`CREATE TABLE opsbot_state.storm_summaries (
		channel TEXT PRIMARY KEY,
		state TEXT NOT NULL,
		message_id TEXT,
		nonce TEXT NOT NULL,
		started_at BIGINT NOT NULL,
		ended_at BIGINT,
		groups JSONB NOT NULL
	);`,
	// next() ordered by a path into each undelivered row's group payload, detoasted per row; the rank is
	// written at accept time, backfilled with the expression it replaces (bench/RESULTS.md).
	`ALTER TABLE opsbot_state.groups ADD COLUMN severity_rank SMALLINT NOT NULL DEFAULT 1;
	UPDATE opsbot_state.groups SET severity_rank = 0 WHERE lower(last_payload->'commonLabels'->>'severity') = 'critical';`,
	// The message's chart, attached once per episode (message_episode): edits keep it by this id.
	`ALTER TABLE opsbot_state.groups ADD COLUMN chart_attachment TEXT;`,
	// The message outbox (alerts/message-outbox.ts): messages other than the cards, each once under its key.
	`CREATE TABLE opsbot_state.message_outbox (
		id BIGSERIAL PRIMARY KEY,
		key TEXT NOT NULL UNIQUE,
		channel TEXT NOT NULL,
		message JSONB NOT NULL,
		created_at BIGINT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt_at BIGINT NOT NULL,
		state TEXT NOT NULL DEFAULT 'queued',
		result TEXT,
		done_at BIGINT
	);
	CREATE INDEX message_outbox_queued ON opsbot_state.message_outbox (channel, next_attempt_at) WHERE state = 'queued';`,
	// Each group's episodes and what happened in them (alerts/episodes.ts).
	`CREATE TABLE opsbot_state.episodes (
		group_id TEXT NOT NULL,
		episode INTEGER NOT NULL,
		channel TEXT NOT NULL,
		name TEXT NOT NULL,
		environment TEXT,
		severity TEXT,
		started_at BIGINT NOT NULL,
		ended_at BIGINT,
		acked_at BIGINT,
		acked_by TEXT,
		alerts JSONB NOT NULL DEFAULT '{}',
		firing_alerts INTEGER NOT NULL DEFAULT 0,
		alert_count INTEGER NOT NULL DEFAULT 0,
		event_count INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (group_id, episode)
	);
	CREATE INDEX episodes_started ON opsbot_state.episodes (started_at)
		INCLUDE (group_id, name, environment, acked_at, ended_at);
	CREATE INDEX episodes_ended ON opsbot_state.episodes (ended_at);
	CREATE INDEX episodes_open ON opsbot_state.episodes (group_id) WHERE ended_at IS NULL;
	CREATE TABLE opsbot_state.episode_events (
		id BIGSERIAL PRIMARY KEY,
		group_id TEXT NOT NULL,
		episode INTEGER NOT NULL,
		at BIGINT NOT NULL,
		kind TEXT NOT NULL,
		actor_id TEXT,
		actor_name TEXT,
		details JSONB NOT NULL
	);
	CREATE INDEX episode_events_episode ON opsbot_state.episode_events (group_id, episode, id);
	INSERT INTO opsbot_state.episodes (group_id, episode, channel, name, environment, severity, started_at, acked_at,
		acked_by, firing_alerts, alert_count)
	SELECT id, episode, channel,
		coalesce(last_payload->'commonLabels'->>'alertname', last_payload->'groupLabels'->>'alertname', '?'),
		coalesce(last_payload->'commonLabels'->>'env', last_payload->'commonLabels'->>'environment'),
		lower(last_payload->'commonLabels'->>'severity'),
		first_firing_at, (ack->>'at')::bigint, ack->>'username',
		jsonb_array_length(last_payload->'alerts'), jsonb_array_length(last_payload->'alerts')
	FROM opsbot_state.groups WHERE status = 'firing' AND last_payload IS NOT NULL;`,
	// Pending state, the action log and restart claims: created on first use by state/db.ts before.
	`CREATE TABLE IF NOT EXISTS opsbot_state.pending (
		token TEXT PRIMARY KEY,
		kind TEXT NOT NULL,
		user_id TEXT NOT NULL,
		value JSONB NOT NULL,
		created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
		expires_at TIMESTAMPTZ NOT NULL
	);
	CREATE INDEX IF NOT EXISTS pending_user ON opsbot_state.pending (kind, user_id, created_at);
	CREATE INDEX IF NOT EXISTS pending_expiry ON opsbot_state.pending (expires_at);
	CREATE TABLE IF NOT EXISTS opsbot_state.actions (
		id BIGSERIAL PRIMARY KEY,
		at TIMESTAMPTZ NOT NULL,
		user_id TEXT NOT NULL,
		username TEXT NOT NULL,
		action TEXT NOT NULL,
		target TEXT NOT NULL,
		result TEXT NOT NULL,
		details JSONB
	);
	CREATE TABLE IF NOT EXISTS opsbot_state.restarts (
		key TEXT PRIMARY KEY,
		running BOOLEAN NOT NULL,
		started_at TIMESTAMPTZ NOT NULL,
		last_at TIMESTAMPTZ NOT NULL
	);
	ALTER TABLE opsbot_state.restarts
		ADD COLUMN IF NOT EXISTS holder TEXT, ADD COLUMN IF NOT EXISTS heartbeat_at TIMESTAMPTZ;`,
	// What the alert store and the gateway lease created outside the list before. outbox_episode: marking a
	// delivery done and leasing an episode's updates would scan every outbox row; readiness: the one row
	// writable() rewrites, so /readyz proves a commit goes through.
	`CREATE INDEX IF NOT EXISTS outbox_episode ON opsbot_state.outbox (group_id, episode);
	CREATE TABLE IF NOT EXISTS opsbot_state.readiness (id SMALLINT PRIMARY KEY, at TIMESTAMPTZ NOT NULL);
	CREATE TABLE IF NOT EXISTS opsbot_state.gateway_lease (
		id SMALLINT PRIMARY KEY, holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL
	);`,
	// Flapping (issue 22): when the episode resolved, its re-fires within the regroup window (ms), and the
	// previous episode's message for the new card's link.
	`ALTER TABLE opsbot_state.groups ADD COLUMN resolved_at BIGINT, ADD COLUMN flaps JSONB,
		ADD COLUMN previous_message_id TEXT;`,
	// The dead man's switch (issue 22): when each always-firing alert last arrived, and the alarm raised.
	`CREATE TABLE opsbot_state.heartbeats (name TEXT PRIMARY KEY, at BIGINT NOT NULL, alarmed_at BIGINT);`,
];

/**
 * A transaction's work on a pipelining connection. Statements it sends without awaiting go out
 * together (the first ones right behind BEGIN); `commit(...last)` sends COMMIT right behind `last`
 * (statements sent and not yet awaited) and settles once all of them and the COMMIT have answered.
 * Not calling it commits after `work` returns.
 */
export type PipelinedWork<T> = (
	client: pg.PoolClient,
	commit: (...last: Promise<unknown>[]) => Promise<void>,
) => Promise<T>;

/**
 * Runs `work` in one transaction on a connection of `pool`, which must pipeline (PoolConfig.pipeline):
 * BEGIN is not waited for on its own, nor is COMMIT behind the last statement, so a transaction costs one
 * round trip per point where `work` must read before it can write, plus one. A statement that fails aborts
 * the transaction, so those pipelined behind it fail too and a COMMIT behind it answers ROLLBACK: the
 * first error is the one thrown, and a COMMIT that did not commit throws. Rolls back on failure.
 */
export async function pipelinedTransaction<T>(pool: pg.Pool, work: PipelinedWork<T>): Promise<T> {
	const client = await pool.connect();
	let committed = false;
	const begun = client.query("BEGIN");
	begun.catch(() => undefined); // its error reaches the caller through commit() or work's own statements
	const commit = async (...last: Promise<unknown>[]) => {
		const sent = client.query("COMMIT");
		const answers = await Promise.all([begun, ...last, sent]);
		const tag = (answers.at(-1) as pg.QueryResult).command;
		if (tag !== "COMMIT") throw new Error(`COMMIT answered ${tag}: the transaction was not committed`);
		committed = true;
	};
	try {
		const result = await work(client, commit);
		if (!committed) await commit();
		client.release();
		return result;
	} catch (err) {
		await rollBack(client);
		throw err;
	}
}

/** Runs `work` in one transaction on a connection of `pool`. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
	const client = await pool.connect();
	try {
		await client.query("BEGIN");
		const result = await work(client);
		await client.query("COMMIT");
		client.release();
		return result;
	} catch (err) {
		await rollBack(client);
		throw err;
	}
}

/** Rolls a failed transaction back and returns the connection; one that cannot roll back (dropped) leaves the pool. */
async function rollBack(client: pg.PoolClient): Promise<void> {
	let broken: Error | undefined;
	await client.query("ROLLBACK").catch((rollbackErr: unknown) => (broken = rollbackErr as Error));
	client.release(broken);
}

/**
 * Brings schema opsbot_state up to POSTGRES_MIGRATIONS, in one transaction under an advisory lock, so
 * replicas starting together migrate one at a time. A transaction-level lock, so it works through
 * PgBouncer in transaction mode.
 */
export async function migratePostgres(pool: pg.Pool): Promise<void> {
	await inTransaction(pool, async (client) => {
		await client.query("SELECT pg_advisory_xact_lock(hashtext('opsbot_state.migrations'))");
		await client.query("CREATE SCHEMA IF NOT EXISTS opsbot_state");
		await client.query("CREATE TABLE IF NOT EXISTS opsbot_state.schema_version (version INTEGER NOT NULL)");
		const { rows } = await client.query<{ v: number | null }>(
			"SELECT max(version) AS v FROM opsbot_state.schema_version",
		);
		const current = rows[0]?.v ?? 0;
		for (const [i, sql] of POSTGRES_MIGRATIONS.slice(current).entries()) {
			await client.query(sql);
			await client.query("INSERT INTO opsbot_state.schema_version (version) VALUES ($1)", [current + i + 1]);
		}
	});
}

/**
 * Opens the one pool. The schema is migrated before the first statement (not at open: a CLI command
 * that needs no state must not fail because the state database is away); a failed migration is
 * tried again by the next statement instead of failing every later one.
 */
export function openStateDatabase(
	url: string,
	log: Logger,
	options: { statementTimeoutMs?: number } = {},
): StateDatabase {
	const config = statePoolConfig(url, options.statementTimeoutMs);
	const pool = createPool(config, log, "state database");
	const commits = createPool({ ...config, max: 1, pipeline: true }, log, "state database");
	let ready: Promise<void> | undefined;
	const migrated = () =>
		(ready ??= migratePostgres(pool).catch((err: unknown) => {
			ready = undefined;
			throw err;
		}));
	return {
		url,
		async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
			await migrated();
			return pool.query<R>(sql, params);
		},
		async tx(work) {
			await migrated();
			return inTransaction(pool, work);
		},
		async groupCommit(work) {
			await migrated();
			return pipelinedTransaction(commits, work);
		},
		close: async () => {
			await Promise.all([pool.end(), commits.end()]);
		},
	};
}
