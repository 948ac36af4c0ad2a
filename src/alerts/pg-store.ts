import pg from "pg";
import type { Logger } from "../log.ts";
import type { WebhookPayload } from "./schema.ts";
import { acceptJob, episodeNonce, groupId, payloadSignature, resolvedPayload, type AcceptJob, type AcceptResult, type AckState, type AlertStore, type GroupState, type OutboxItem, type RestartState, type SilenceState } from "./store.ts";

/** How long a replica may hold an outbox item it is delivering before another replica may take it. */
const LEASE_MS = 30_000;

/** Most webhooks one group commit writes (one statement's arrays and one JSON array of payloads). */
const MAX_GROUP_COMMIT = 256;

/** A webhook waiting for the next group commit. */
interface PendingAccept extends AcceptJob {
	readonly resolve: (result: AcceptResult) => void;
	readonly reject: (err: unknown) => void;
}

/**
 * Whether a failed group commit may be one payload's fault (a statement refused it), so the others
 * deserve a transaction of their own; not for connection, resource or operator errors (SQLSTATE
 * classes 08, 53, 57, 58) or errors without a SQLSTATE, which every payload would meet again.
 */
function payloadFault(err: unknown): boolean {
	const code = (err as { code?: unknown }).code;
	return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !["08", "53", "57", "58"].includes(code.slice(0, 2));
}

// The group commit's statements: a batch costs two round trips besides BEGIN and COMMIT, whatever its
// size. Unnamed, so they work through PgBouncer in transaction mode (named ones are per server connection).

/** Inserts the groups not seen before (in id order), and locks and returns the others as they were before this statement. */
const LOCK_GROUPS = `WITH created AS (
		INSERT INTO opsbot_state.groups (id, receiver, group_key, channel, mention_role, episode, status, first_firing_at, last_signature)
		SELECT id, receiver, group_key, channel, mention_role, 1, status, first_firing_at, last_signature
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[]) AS u(id, receiver, group_key, channel, mention_role, status, first_firing_at, last_signature)
		ORDER BY id ON CONFLICT (id) DO NOTHING RETURNING id),
	existing AS (SELECT id, episode, status, first_firing_at, last_signature FROM opsbot_state.groups WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE)
	SELECT (SELECT coalesce(array_agg(id), '{}') FROM created) AS created, (SELECT coalesce(json_agg(existing), '[]') FROM existing) AS existing`;

/** Locks and returns groups another replica created after LOCK_GROUPS's snapshot (so neither of its parts saw them). */
const LOCK_LATE_GROUPS = "SELECT id, episode, status, first_firing_at, last_signature FROM opsbot_state.groups WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE";

/**
 * Writes the batch's outcome: each changed group's new state and payload, the outbox rows, and marks
 * done the updates the new rows supersede. An update between an episode's oldest undelivered row (its
 * place in the channel's order) and its newest (what next() sends) would never be sent, so an episode
 * keeps at most two undelivered rows however many webhooks arrive. Safe while one of them is being
 * sent: delivered() marks done up to the row it sent, and the newest stays.
 */
const WRITE_BATCH = `WITH payloads AS (SELECT $7::jsonb AS list),
	changed AS (
		UPDATE opsbot_state.groups g SET episode = u.episode, status = u.status, first_firing_at = u.first_firing_at, last_signature = u.last_signature,
			mention_role = u.mention_role, last_payload = (SELECT list FROM payloads) -> u.slot,
			ack = CASE WHEN u.clear THEN NULL ELSE g.ack END, silence = CASE WHEN u.clear THEN NULL ELSE g.silence END, restart = CASE WHEN u.clear THEN NULL ELSE g.restart END
		FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[], $8::int[], $9::bool[]) AS u(id, episode, status, first_firing_at, last_signature, mention_role, slot, clear)
		WHERE g.id = u.id RETURNING g.id),
	superseded AS (
		UPDATE opsbot_state.outbox o SET done = true
		FROM (SELECT x.group_id, x.episode, min(x.id) AS first FROM opsbot_state.outbox x
			JOIN unnest($10::text[], $11::int[]) AS q(group_id, episode) ON q.group_id = x.group_id AND q.episode = x.episode
			WHERE NOT x.done GROUP BY x.group_id, x.episode) k
		WHERE o.group_id = k.group_id AND o.episode = k.episode AND NOT o.done AND o.id > k.first RETURNING o.id)
	INSERT INTO opsbot_state.outbox (group_id, episode, payload, created_at, next_attempt_at)
	SELECT q.group_id, q.episode, (SELECT list FROM payloads) -> q.slot, q.at, q.at
	FROM unnest($10::text[], $11::int[], $12::int[], $13::bigint[]) WITH ORDINALITY AS q(group_id, episode, slot, at, n) ORDER BY q.n`;

type LockedGroup = { id: string; episode: number; status: string; first_firing_at: string | number; last_signature: string };

/**
 * One group commit: the same decisions accept() makes for one webhook at a time (new group, retry or
 * HA duplicate, update, new episode after a resolve), for a batch. Groups are inserted and locked in
 * id order, so two replicas committing batches that share groups wait for each other instead of
 * deadlocking. Of several updates to one episode in the batch only the last gets an outbox row: the
 * others would be superseded at once.
 */
async function acceptBatch(client: pg.PoolClient, jobs: readonly PendingAccept[]): Promise<AcceptResult[]> {
	const entries = jobs.flatMap((job, j) => job.targets.map((target) => ({ j, job, target, id: groupId(job.receiver, job.groupKey, target.channel) })));
	const firstOf = new Map<string, (typeof entries)[number]>();
	for (const e of entries) if (!firstOf.has(e.id)) firstOf.set(e.id, e);
	const fresh = [...firstOf.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
	const [lock] = (await client.query<{ created: string[]; existing: LockedGroup[] }>(LOCK_GROUPS, [fresh.map((e) => e.id), fresh.map((e) => e.job.receiver), fresh.map((e) => e.job.groupKey), fresh.map((e) => e.target.channel), fresh.map((e) => e.target.mentionRole ?? null), fresh.map((e) => e.job.status), fresh.map((e) => e.job.startedAt), fresh.map((e) => e.job.signature)])).rows;
	const locked = lock!.existing;
	const seen = new Set([...lock!.created, ...locked.map((r) => r.id)]);
	const late = fresh.filter((e) => !seen.has(e.id)).map((e) => e.id);
	if (late.length > 0) locked.push(...(await client.query<LockedGroup>(LOCK_LATE_GROUPS, [late])).rows);

	type State = { episode: number; status: string; firstFiringAt: number; signature: string; mentionRole: string | null; job: number; clear: boolean };
	const groups = new Map<string, State>();
	for (const r of locked) groups.set(r.id, { episode: r.episode, status: r.status, firstFiringAt: Number(r.first_firing_at), signature: r.last_signature, mentionRole: null, job: -1, clear: false });
	const results = jobs.map(() => ({ queued: 0, duplicates: 0 }));
	const queued = new Map<string, { id: string; episode: number; j: number; now: number }>();
	for (const { j, job, target, id } of entries) {
		const row = groups.get(id);
		let state: State;
		if (!row) {
			state = { episode: 1, status: job.status, firstFiringAt: job.startedAt, signature: job.signature, mentionRole: target.mentionRole ?? null, job: j, clear: false };
		} else {
			if (row.signature === job.signature) {
				results[j]!.duplicates++;
				continue;
			}
			// A group that fires again after resolving starts a new episode, unacknowledged and unsilenced.
			const reopened = row.status === "resolved" && job.status === "firing";
			state = {
				episode: reopened ? row.episode + 1 : row.episode,
				status: job.status,
				firstFiringAt: reopened ? job.startedAt : Math.min(row.firstFiringAt, job.startedAt),
				signature: job.signature,
				mentionRole: target.mentionRole ?? null,
				job: j,
				clear: row.clear || reopened,
			};
		}
		groups.set(id, state);
		const key = `${id}:${state.episode}`;
		queued.delete(key); // re-inserted: the outbox rows keep arrival order
		queued.set(key, { id, episode: state.episode, j, now: job.now });
		results[j]!.queued++;
	}
	if (queued.size === 0) return results;
	// Each payload travels once, in one JSON array, and both tables take their copy from it.
	const rows = [...queued.values()];
	const changed = [...groups.entries()].filter(([, g]) => g.job >= 0);
	const slot = new Map<number, number>();
	for (const j of [...rows.map((q) => q.j), ...changed.map(([, g]) => g.job)]) if (!slot.has(j)) slot.set(j, slot.size);
	const payloads = `[${[...slot.keys()].map((j) => jobs[j]!.json).join(",")}]`;
	await client.query(WRITE_BATCH, [
		changed.map(([id]) => id),
		changed.map(([, g]) => g.episode),
		changed.map(([, g]) => g.status),
		changed.map(([, g]) => g.firstFiringAt),
		changed.map(([, g]) => g.signature),
		changed.map(([, g]) => g.mentionRole),
		payloads,
		changed.map(([, g]) => slot.get(g.job)!),
		changed.map(([, g]) => g.clear),
		rows.map((q) => q.id),
		rows.map((q) => q.episode),
		rows.map((q) => slot.get(q.j)!),
		rows.map((q) => q.now),
	]);
	return results;
}

/**
 * The longest any statement of the state store may run. Its statements touch a few rows by key;
 * one that takes seconds is stuck behind a lock or a sick server, and the receiver must answer
 * AlertManager (which retries a 5xx) rather than hang with it.
 */
export const STATE_STATEMENT_TIMEOUT_MS = 5_000;

/**
 * The state store's pool settings: two connections, and statement_timeout set on each new
 * connection with SET (not as a startup parameter, which PgBouncer refuses).
 */
export function statePoolConfig(url: string, statementTimeoutMs = STATE_STATEMENT_TIMEOUT_MS): pg.PoolConfig {
	return {
		connectionString: url,
		max: 2,
		application_name: "opsbot-state",
		connectionTimeoutMillis: 5_000,
		onConnect: async (client) => {
			await client.query("SELECT set_config('statement_timeout', $1, false)", [String(statementTimeoutMs)]);
		},
	};
}

type GroupRow = { id: string; channel: string; episode: number; status: string; last_signature: string; message_id: string | null; message_episode: number | null; last_payload: WebhookPayload; ack: AckState | null; silence: SilenceState | null; restart: RestartState | null };

function groupState(row: GroupRow): GroupState {
	return { groupId: row.id, channel: row.channel, episode: row.episode, status: row.status, messageId: row.message_episode === row.episode ? row.message_id : null, payload: row.last_payload, ack: row.ack, silence: row.silence, restart: row.restart, signature: row.last_signature };
}

/** A storm summary as the store keeps it (the type lives beside the AlertStore interface). */
type StormState = NonNullable<Awaited<ReturnType<AlertStore["stormSummary"]>>>;

/**
 * Delivery order within a channel (an SQL expression over outbox o and groups g): 0 for a critical
 * firing group without its message yet, 1 for another such group, 2 for updates and resolutions.
 */
const DELIVERY_CLASS_PG = `CASE WHEN o.episode = g.episode AND g.status = 'firing' AND g.message_episode IS DISTINCT FROM g.episode
	THEN (CASE WHEN lower(g.last_payload->'commonLabels'->>'severity') = 'critical' THEN 0 ELSE 1 END) ELSE 2 END`;

const MIGRATIONS = [
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
];

/**
 * The alert store in PostgreSQL (STATE_DATABASE_URL: opsbot's own database, never the
 * application's), so several replicas share groups and outbox. Items are claimed with a lease
 * (FOR UPDATE SKIP LOCKED), and Discord's enforce_nonce covers a replica dying mid-post.
 */
export async function openPostgresAlertStore(url: string, log: Logger, options: { statementTimeoutMs?: number } = {}): Promise<AlertStore> {
	const pool = new pg.Pool(statePoolConfig(url, options.statementTimeoutMs));
	pool.on("error", (err) => log.warn({ err }, "state database client errored"));
	const tx = async <T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
		const client = await pool.connect();
		try {
			await client.query("BEGIN");
			const result = await work(client);
			await client.query("COMMIT");
			return result;
		} catch (err) {
			await client.query("ROLLBACK").catch(() => undefined);
			throw err;
		} finally {
			client.release();
		}
	};
	await tx(async (client) => {
		// Replicas starting together migrate one at a time.
		await client.query("SELECT pg_advisory_xact_lock(hashtext('opsbot_state.migrations'))");
		await client.query("CREATE SCHEMA IF NOT EXISTS opsbot_state");
		await client.query("CREATE TABLE IF NOT EXISTS opsbot_state.schema_version (version INTEGER NOT NULL)");
		const { rows } = await client.query<{ v: number | null }>("SELECT max(version) AS v FROM opsbot_state.schema_version");
		const current = rows[0]?.v ?? 0;
		for (const [i, sql] of MIGRATIONS.slice(current).entries()) {
			await client.query(sql);
			await client.query("INSERT INTO opsbot_state.schema_version (version) VALUES ($1)", [current + i + 1]);
		}
		// Not a migration (older opsbots ignore it): without it, marking a delivery done and leasing an
		// episode's updates scan every outbox row ever written, and delivery slows as the table grows.
		await client.query("CREATE INDEX IF NOT EXISTS outbox_episode ON opsbot_state.outbox (group_id, episode)");
	});

	// Changes made by buttons reach the message through the same durable outbox as AlertManager's.
	const requeue = (id: string, column: "ack" | "silence" | "restart", value: AckState | SilenceState | RestartState | null) =>
		tx(async (client) => {
			const { rows } = await client.query<{ episode: number; last_payload: WebhookPayload | null }>(`UPDATE opsbot_state.groups SET ${column} = $1 WHERE id = $2 RETURNING episode, last_payload`, [value === null ? null : JSON.stringify(value), id]);
			const row = rows[0];
			if (row?.last_payload) await client.query("INSERT INTO opsbot_state.outbox (group_id, episode, payload, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $4)", [id, row.episode, JSON.stringify(row.last_payload), Date.now()]);
		});

	let accepts: PendingAccept[] = [];
	let committing = false;
	let committed: Promise<void> = Promise.resolve();

	/**
	 * Group commit: webhooks that arrive while a commit is in flight wait for it and are then written
	 * together, in one transaction of a few statements, so one WAL flush covers them all. Each caller
	 * hears back after that COMMIT. If it fails for something a payload did, each is retried in a
	 * transaction of its own, so only the one at fault fails; if the server is away, all fail at once.
	 */
	async function commitAccepts(): Promise<void> {
		try {
			while (accepts.length > 0) {
				const batch = accepts.slice(0, MAX_GROUP_COMMIT);
				accepts = accepts.slice(batch.length);
				try {
					const results = await tx((client) => acceptBatch(client, batch));
					batch.forEach((job, i) => job.resolve(results[i]!));
				} catch (err) {
					if (batch.length === 1 || !payloadFault(err)) {
						for (const job of batch) job.reject(err);
						continue;
					}
					for (const job of batch) {
						try {
							job.resolve((await tx((client) => acceptBatch(client, [job])))[0]!);
						} catch (own) {
							job.reject(own);
						}
					}
				}
			}
		} finally {
			committing = false;
		}
	}

	return {
		async accept(payload, targets, now = Date.now()) {
			const job = acceptJob(payload, targets, now);
			return new Promise<AcceptResult>((resolve, reject) => {
				accepts.push({ ...job, resolve, reject });
				if (!committing) {
					committing = true;
					committed = new Promise((done) => setImmediate(() => void commitAccepts().then(done)));
				}
			});
		},
		async dueChannels(now = Date.now()) {
			const { rows } = await pool.query<{ channel: string }>("SELECT DISTINCT g.channel FROM opsbot_state.outbox o JOIN opsbot_state.groups g ON g.id = o.group_id WHERE NOT o.done AND o.next_attempt_at <= $1", [now]);
			return rows.map((r) => r.channel);
		},
		next: (channel, now = Date.now()) =>
			tx(async (client) => {
				const { rows } = await client.query<{ id: string; group_id: string; episode: number; payload: WebhookPayload; attempts: number }>(
					`WITH due AS (
						SELECT o.group_id, o.episode FROM opsbot_state.outbox o JOIN opsbot_state.groups g ON g.id = o.group_id
						WHERE g.channel = $1 AND NOT o.done AND o.next_attempt_at <= $2
						ORDER BY ${DELIVERY_CLASS_PG}, o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED)
					 UPDATE opsbot_state.outbox o SET next_attempt_at = $3 FROM due
					 WHERE o.group_id = due.group_id AND o.episode = due.episode AND NOT o.done
					 RETURNING o.id, o.group_id, o.episode, o.payload, o.attempts`,
					[channel, now, now + LEASE_MS],
				);
				if (rows.length === 0) return undefined;
				const newest = rows.reduce((a, b) => (BigInt(b.id) > BigInt(a.id) ? b : a));
				const group = (await client.query<{ channel: string; mention_role: string | null; first_firing_at: string; message_id: string | null; message_episode: number | null; ack: AckState | null; silence: SilenceState | null; restart: RestartState | null }>("SELECT channel, mention_role, first_firing_at, message_id, message_episode, ack, silence, restart FROM opsbot_state.groups WHERE id = $1", [newest.group_id])).rows[0]!;
				const item: OutboxItem = {
					id: Number(newest.id),
					groupId: newest.group_id,
					channel: group.channel,
					mentionRole: group.mention_role,
					episode: newest.episode,
					messageId: group.message_episode === newest.episode ? group.message_id : null,
					firstFiringAt: Number(group.first_firing_at),
					attempts: newest.attempts,
					payload: newest.payload,
					nonce: episodeNonce(newest.group_id, newest.episode),
					ack: group.ack,
					silence: group.silence,
					restart: group.restart,
				};
				return item;
			}),
		delivered: (item, messageId) =>
			tx(async (client) => {
				await client.query("UPDATE opsbot_state.outbox SET done = true WHERE group_id = $1 AND episode = $2 AND id <= $3", [item.groupId, item.episode, item.id]);
				// Updates that arrived during delivery were leased with it: make them due now.
				await client.query("UPDATE opsbot_state.outbox SET next_attempt_at = $3 WHERE group_id = $1 AND episode = $2 AND NOT done", [item.groupId, item.episode, Date.now()]);
				await client.query("UPDATE opsbot_state.groups SET message_id = $1, message_episode = $2 WHERE id = $3", [messageId, item.episode, item.groupId]);
			}),
		async retryLater(item, at) {
			await pool.query("UPDATE opsbot_state.outbox SET attempts = attempts + 1, next_attempt_at = $3 WHERE group_id = $1 AND episode = $2 AND NOT done", [item.groupId, item.episode, at]);
		},
		async abandon(item) {
			await pool.query("UPDATE opsbot_state.outbox SET done = true WHERE group_id = $1 AND episode = $2 AND id <= $3", [item.groupId, item.episode, item.id]);
		},
		async pending() {
			const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM opsbot_state.outbox WHERE NOT done");
			return rows[0]?.n ?? 0;
		},
		async backlog(channel, now = Date.now()) {
			const { rows } = await pool.query<{ pending: number; due: number; unposted: number; next_due: string | null }>(
				`SELECT count(*)::int AS pending, (count(*) FILTER (WHERE first_due <= $2))::int AS due, (count(*) FILTER (WHERE unposted))::int AS unposted, min(first_due) AS next_due FROM (
					SELECT min(o.next_attempt_at) AS first_due, bool_or(o.episode = g.episode AND g.status = 'firing' AND g.message_episode IS DISTINCT FROM g.episode) AS unposted
					FROM opsbot_state.outbox o JOIN opsbot_state.groups g ON g.id = o.group_id WHERE g.channel = $1 AND NOT o.done GROUP BY o.group_id, o.episode) e`,
				[channel, now],
			);
			const row = rows[0]!;
			return { pending: row.pending, due: row.due, unposted: row.unposted, nextDueAt: row.next_due === null ? null : Number(row.next_due) };
		},
		async firingGroups(channel) {
			const { rows } = await pool.query<{ id: string; episode: number; first_firing_at: string; message_id: string | null; message_episode: number | null; last_payload: WebhookPayload }>(
				"SELECT id, episode, first_firing_at, message_id, message_episode, last_payload FROM opsbot_state.groups WHERE channel = $1 AND status = 'firing' AND last_payload IS NOT NULL",
				[channel],
			);
			return rows.map((r) => ({ groupId: r.id, firstFiringAt: Number(r.first_firing_at), messageId: r.message_episode === r.episode ? r.message_id : null, payload: r.last_payload }));
		},
		async stormSummary(channel) {
			const { rows } = await pool.query<{ channel: string; state: StormState["state"]; message_id: string | null; nonce: string; started_at: string; ended_at: string | null; groups: string[] }>("SELECT * FROM opsbot_state.storm_summaries WHERE channel = $1", [channel]);
			const row = rows[0];
			return row && { channel: row.channel, state: row.state, messageId: row.message_id, nonce: row.nonce, startedAt: Number(row.started_at), endedAt: row.ended_at === null ? null : Number(row.ended_at), groups: row.groups };
		},
		async saveStormSummary(s) {
			await pool.query(
				`INSERT INTO opsbot_state.storm_summaries (channel, state, message_id, nonce, started_at, ended_at, groups) VALUES ($1, $2, $3, $4, $5, $6, $7)
				 ON CONFLICT (channel) DO UPDATE SET state = excluded.state, message_id = excluded.message_id, nonce = excluded.nonce, started_at = excluded.started_at, ended_at = excluded.ended_at, groups = excluded.groups`,
				[s.channel, s.state, s.messageId, s.nonce, s.startedAt, s.endedAt, JSON.stringify(s.groups)],
			);
		},
		async stormChannels() {
			const { rows } = await pool.query<{ channel: string }>("SELECT channel FROM opsbot_state.storm_summaries WHERE state <> 'over'");
			return rows.map((r) => r.channel);
		},
		async stats() {
			const [groups, outbox] = await Promise.all([
				pool.query<{ status: string; count: number }>("SELECT status, count(*)::int AS count FROM opsbot_state.groups GROUP BY status"),
				pool.query<{ channel: string; depth: number; oldest: string }>("SELECT g.channel, count(*)::int AS depth, min(o.created_at) AS oldest FROM opsbot_state.outbox o JOIN opsbot_state.groups g ON g.id = o.group_id WHERE NOT o.done GROUP BY g.channel"),
			]);
			return { groups: groups.rows, outbox: outbox.rows.map((r) => ({ channel: r.channel, depth: r.depth, oldestAt: Number(r.oldest) })) };
		},
		async writable() {
			try {
				const { rows } = await pool.query<{ ok: boolean }>("SELECT NOT pg_is_in_recovery() AS ok");
				return rows[0]?.ok === true;
			} catch {
				return false;
			}
		},
		async group(id) {
			const { rows } = await pool.query<GroupRow>("SELECT * FROM opsbot_state.groups WHERE id = $1 AND last_payload IS NOT NULL", [id]);
			return rows[0] ? groupState(rows[0]) : undefined;
		},
		async silencedGroups(after, limit) {
			const { rows } = await pool.query<GroupRow>("SELECT * FROM opsbot_state.groups WHERE silence IS NOT NULL AND status <> 'resolved' AND last_payload IS NOT NULL AND id > $1 ORDER BY id LIMIT $2", [after, limit]);
			return rows.map(groupState);
		},
		async listGroups(after, limit) {
			const { rows } = await pool.query<GroupRow>("SELECT * FROM opsbot_state.groups WHERE last_payload IS NOT NULL AND id > $1 ORDER BY id LIMIT $2", [after, limit]);
			return rows.map(groupState);
		},
		resolveGroup: (id, expectedSignature, now = Date.now()) =>
			tx(async (client) => {
				const { rows } = await client.query<GroupRow>("SELECT * FROM opsbot_state.groups WHERE id = $1 FOR UPDATE", [id]);
				const row = rows[0];
				if (!row?.last_payload || row.status === "resolved" || row.last_signature !== expectedSignature) return false;
				const payload = resolvedPayload(row.last_payload, now);
				await client.query("UPDATE opsbot_state.groups SET status = 'resolved', last_signature = $1, last_payload = $2 WHERE id = $3", [payloadSignature(payload), JSON.stringify(payload), id]);
				await client.query("INSERT INTO opsbot_state.outbox (group_id, episode, payload, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $4)", [id, row.episode, JSON.stringify(payload), now]);
				return true;
			}),
		setAck: (id, ack) => requeue(id, "ack", ack),
		setSilence: (id, silence) => requeue(id, "silence", silence),
		setRestart: (id, restart) => requeue(id, "restart", restart),
		async close() {
			// Webhooks waiting for a group commit are written (or refused) before the pool ends.
			await committed;
			await pool.end();
		},
	};
}
