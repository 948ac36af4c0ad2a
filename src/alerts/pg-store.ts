import type pg from "pg";
import { withTimeout } from "../errors.ts";
import type { Logger } from "../log.ts";
import { openStateDatabase, type StateDatabase } from "../state/postgres.ts";
import {
	acceptedChanges,
	episodeFacts,
	firingGroupFacts,
	type HistoryJob,
	historyJob,
	type StoredEpisode,
} from "./episodes.ts";
import {
	createPostgresEpisodeHistory,
	historyCtes,
	historyParams,
	type LatestEpisodeRow,
	storedEpisode,
} from "./episodes-pg.ts";
import { GROUP_COMMIT_WINDOW_MS, groupCommit } from "./group-commit.ts";
import {
	type AcceptPolicy,
	type AcceptResult,
	type GroupHead,
	type GroupStatus,
	NO_REGROUP,
	planAccepts,
	resolveByHand,
	touchedGroups,
} from "./group-machine.ts";
import { checkMessage, MESSAGE_RETENTION_MS, messageChannel, type QueuedMessage } from "./message-outbox.ts";
import { inAlertManagerOrder, type WebhookPayload } from "./schema.ts";
import {
	type AckIdentity,
	type AckState,
	type AlertStore,
	episodeNonce,
	type GroupState,
	type MessageRow,
	mergeBacklog,
	mergeOutboxStats,
	messageOutcomeOf,
	type OutboxItem,
	queuedAnnouncer,
	type RestartState,
	type SilenceState,
} from "./store.ts";

/**
 * How long a replica's claim on an outbox item it is delivering lasts (unless the store is told
 * otherwise): after it another replica may take the item, should the first have died.
 */
const CLAIM_MS = 15_000;

/** How long /readyz's write probe may wait for a lock or the server before the store counts as not writable. */
const WRITABLE_PROBE_MS = 2_000;

/**
 * Whether a failed group commit may be one payload's fault (a statement refused it), so the others
 * deserve a transaction of their own; not for connection, resource or operator errors (SQLSTATE
 * classes 08, 53, 57, 58) or errors without a SQLSTATE, which every payload would meet again.
 */
function payloadFault(err: unknown): boolean {
	const code = (err as { code?: unknown }).code;
	return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !["08", "53", "57", "58"].includes(code.slice(0, 2));
}

// The group commit's statements, on the pipelining connection reserved for it (StateDatabase.groupCommit):
// two round trips per batch whatever its size. The first carries BEGIN and the three reads below, which
// must be statements of their own (each takes its snapshot when it starts, after the one before has
// finished); the second carries the one write and COMMIT. Unnamed, so they work through PgBouncer in
// transaction mode (named ones are per server connection).

/** Inserts the groups not seen before, in id order, as their first webhook would open them; returns those inserted. */
const CREATE_GROUPS = `INSERT INTO opsbot_state.groups (id, receiver, group_key, channel, mention_role, episode, status,
		first_firing_at, last_signature)
	SELECT id, receiver, group_key, channel, mention_role, 1, status, first_firing_at, last_signature
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[])
		AS u(id, receiver, group_key, channel, mention_role, status, first_firing_at, last_signature)
	ORDER BY id ON CONFLICT (id) DO NOTHING RETURNING id`;

/**
 * Locks every group of the batch in id order (those this transaction inserted are locked already) and
 * returns their heads. A statement after CREATE_GROUPS: its snapshot has every group of the batch, also
 * one another replica inserted and committed while CREATE_GROUPS ran.
 */
const LOCK_GROUPS =
	"SELECT id, episode, status, first_firing_at, last_signature, resolved_at, flaps" +
	" FROM opsbot_state.groups WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE";

/**
 * Per group: the undelivered outbox rows of its current episode (oldest first) and its latest episode in
 * the history. A statement after LOCK_GROUPS: its snapshot includes what the transactions the locks
 * waited for committed. Outbox rows and episodes of a group are only written under its lock.
 */
const READ_LOCKED = `SELECT g.id AS group_id,
		(SELECT coalesce(array_agg(o.id ORDER BY o.id), '{}') FROM opsbot_state.outbox o
			WHERE o.group_id = g.id AND o.episode = g.episode AND NOT o.done) AS undelivered,
		e.episode, e.ended_at, e.alerts, e.event_count
	FROM opsbot_state.groups g
	LEFT JOIN LATERAL (SELECT episode, ended_at, alerts, event_count FROM opsbot_state.episodes
		WHERE group_id = g.id ORDER BY episode DESC LIMIT 1) e ON true
	WHERE g.id = ANY($1::text[])`;

/**
 * Writes a batch's plan and its history in one statement: each changed group's new state and payload,
 * the superseded rows marked done, the new rows, and the episodes and events (episodes-pg.ts).
 */
const WRITE_BATCH = `WITH payloads AS (SELECT $1::jsonb AS list),
	changed AS (
		UPDATE opsbot_state.groups g SET mention_role = u.mention_role, episode = u.episode, status = u.status,
			first_firing_at = u.first_firing_at, last_signature = u.last_signature, severity_rank = u.severity_rank,
			last_payload = (SELECT list FROM payloads) -> u.slot, resolved_at = u.resolved_at, flaps = u.flaps::jsonb,
			ack = CASE WHEN u.clear THEN NULL ELSE g.ack END, silence = CASE WHEN u.clear THEN NULL ELSE g.silence END,
			restart = CASE WHEN u.clear THEN NULL ELSE g.restart END
		FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::bigint[], $7::text[], $8::smallint[], $9::int[],
			$10::bool[], $16::bigint[], $17::text[])
			AS u(id, mention_role, episode, status, first_firing_at, last_signature, severity_rank, slot, clear,
				resolved_at, flaps)
		WHERE g.id = u.id RETURNING g.id),
	superseded AS (UPDATE opsbot_state.outbox SET done = true WHERE id = ANY($11::bigint[]) RETURNING id),
	queued AS (
		INSERT INTO opsbot_state.outbox (group_id, episode, payload, created_at, next_attempt_at)
		SELECT q.group_id, q.episode, (SELECT list FROM payloads) -> q.slot, q.at, q.at
		FROM unnest($12::text[], $13::int[], $14::int[], $15::bigint[]) WITH ORDINALITY AS q(group_id, episode, slot, at, n)
		ORDER BY q.n RETURNING id),
	${historyCtes(18)}
	SELECT 1`;

type LockedGroup = {
	id: string;
	episode: number;
	status: GroupStatus;
	first_firing_at: string | number;
	last_signature: string;
	resolved_at: string | number | null;
	flaps: number[] | null;
};

type LockedRead = { group_id: string; undelivered: string[] } & (
	| LatestEpisodeRow
	| { episode: null; ended_at: null; alerts: null; event_count: null }
);

/**
 * One group commit, as two round trips: inserts the groups the batch touches not seen before, locks them
 * all, reads their heads and histories; then writes what group-machine.ts decides and commits. Groups are
 * inserted and locked in id order, so two replicas committing batches that share groups wait for each
 * other instead of deadlocking.
 */
async function acceptBatch(
	client: pg.PoolClient,
	commit: (...last: Promise<unknown>[]) => Promise<void>,
	jobs: readonly HistoryJob[],
	policy: AcceptPolicy,
): Promise<readonly AcceptResult[]> {
	const fresh = touchedGroups(jobs).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
	const ids = fresh.map((e) => e.id);
	// New groups are inserted as their first webhook would open them; the write below sets what the whole batch decided.
	const [created, locked, read] = await Promise.all([
		client.query<{ id: string }>(CREATE_GROUPS, [
			ids,
			fresh.map((e) => e.job.receiver),
			fresh.map((e) => e.job.groupKey),
			fresh.map((e) => e.target.channel),
			fresh.map((e) => e.target.mentionRole ?? null),
			fresh.map((e) => e.job.status),
			fresh.map((e) => e.job.startedAt),
			fresh.map((e) => e.job.signature),
		]),
		client.query<LockedGroup>(LOCK_GROUPS, [ids]),
		client.query<LockedRead>(READ_LOCKED, [ids]),
	]);
	const isNew = new Set(created.rows.map((r) => r.id));
	const reads = new Map(read.rows.map((r) => [r.group_id, r]));
	const heads = new Map<string, GroupHead>();
	for (const r of locked.rows)
		if (!isNew.has(r.id))
			heads.set(r.id, {
				episode: r.episode,
				status: r.status,
				firstFiringAt: Number(r.first_firing_at),
				signature: r.last_signature,
				resolvedAt: r.resolved_at === null ? null : Number(r.resolved_at),
				flaps: r.flaps ?? [],
				undelivered: (reads.get(r.id)?.undelivered ?? []).map(Number),
			});
	const plan = planAccepts(jobs, heads, policy);
	if (plan.groups.length === 0) return plan.results;
	const stored = new Map<string, StoredEpisode>();
	for (const r of read.rows) if (r.episode !== null) stored.set(r.group_id, storedEpisode(r));
	// Each payload travels once, in one JSON array, and both tables take their copy from it.
	const slot = new Map<number, number>();
	for (const j of [...plan.enqueue.map((q) => q.job), ...plan.groups.map((g) => g.job)])
		if (!slot.has(j)) slot.set(j, slot.size);
	const payloads = `[${[...slot.keys()].map((j) => jobs[j]!.json).join(",")}]`;
	const { groups, enqueue } = plan;
	await commit(
		client.query(WRITE_BATCH, [
			payloads,
			groups.map((g) => g.id),
			groups.map((g) => g.mentionRole),
			groups.map((g) => g.episode),
			groups.map((g) => g.status),
			groups.map((g) => g.firstFiringAt),
			groups.map((g) => g.signature),
			groups.map((g) => g.severityRank),
			groups.map((g) => slot.get(g.job)!),
			groups.map((g) => g.resetActions),
			plan.supersede,
			enqueue.map((q) => q.groupId),
			enqueue.map((q) => q.episode),
			enqueue.map((q) => slot.get(q.job)!),
			enqueue.map((q) => q.at),
			groups.map((g) => g.resolvedAt),
			groups.map((g) => JSON.stringify(g.flaps)),
			...historyParams(acceptedChanges(groups, jobs), stored),
		]),
	);
	return plan.results;
}

type GroupRow = {
	id: string;
	channel: string;
	first_firing_at: string | number;
	episode: number;
	status: string;
	last_signature: string;
	message_id: string | null;
	message_episode: number | null;
	last_payload: WebhookPayload;
	ack: AckState | null;
	silence: SilenceState | null;
	restart: RestartState | null;
};

function groupState(row: GroupRow): GroupState {
	return {
		groupId: row.id,
		channel: row.channel,
		episode: row.episode,
		status: row.status,
		firstFiringAt: Number(row.first_firing_at),
		messageId: row.message_episode === row.episode ? row.message_id : null,
		payload: inAlertManagerOrder(row.last_payload),
		ack: row.ack,
		silence: row.silence,
		restart: row.restart,
		signature: row.last_signature,
	};
}

/** A storm summary as the store keeps it (the type lives beside the AlertStore interface). */
type StormState = NonNullable<Awaited<ReturnType<AlertStore["stormSummary"]>>>;

/**
 * Delivery order within a channel (an SQL expression over outbox o and groups g): a firing group without
 * its message yet by its severity_rank (0 critical, 1 any other), then 2 for updates and resolutions.
 */
const DELIVERY_CLASS_PG =
	"CASE WHEN o.episode = g.episode AND g.status = 'firing' AND g.message_episode IS DISTINCT FROM g.episode " +
	"THEN g.severity_rank ELSE 2 END";

/**
 * The alert store in PostgreSQL (opsbot's own database, state/postgres.ts), so several replicas share
 * groups and outbox. Items are claimed with a lease (FOR UPDATE SKIP LOCKED), and Discord's
 * enforce_nonce covers a replica dying mid-post.
 */
export async function openPostgresAlertStore(
	url: string,
	log: Logger,
	options: { statementTimeoutMs?: number; policy?: AcceptPolicy } = {},
): Promise<AlertStore> {
	const db = openStateDatabase(url, log, options);
	try {
		await db.query("SELECT 1"); // migrated now: a database that cannot be reached or migrated fails the open
	} catch (err) {
		await db.close().catch(() => undefined);
		throw err;
	}
	const store = await postgresAlertStore(db, options.policy);
	return {
		...store,
		async close() {
			await store.close();
			await db.close();
		},
	};
}

/**
 * The alert store on the state database's pool; `policy`, how webhooks open episodes (the regroup
 * window). close() finishes pending group commits; the pool is the caller's.
 */
export async function postgresAlertStore(
	db: StateDatabase,
	policy: AcceptPolicy = NO_REGROUP,
	options: { claimMs?: number } = {},
): Promise<AlertStore> {
	const claimMs = options.claimMs ?? CLAIM_MS;
	const tx = db.tx;
	// Sent and failed messages are kept a while for outcome() and their keys, then forgotten.
	await db.query("DELETE FROM opsbot_state.message_outbox WHERE state <> 'queued' AND done_at < $1", [
		Date.now() - MESSAGE_RETENTION_MS,
	]);

	const episodes = createPostgresEpisodeHistory(db, tx);
	const queued = queuedAnnouncer();
	/** A transaction that may queue something for Discord: delivery hears of it after the COMMIT. */
	const txQueuing = async <T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
		const result = await tx(work);
		queued.announce();
		return result;
	};

	// Changes made by buttons reach the message through the same durable outbox as AlertManager's.
	// With `expectedAck`, a compare-and-set on who acknowledged and when (NULLs: nobody); the row lock the
	// UPDATE takes makes a second replica's concurrent UPDATE re-check the condition against the winner's ack.
	const requeue = (
		id: string,
		column: "ack" | "silence" | "restart",
		value: AckState | SilenceState | RestartState | null,
		expectedAck?: AckIdentity | null,
	) =>
		txQueuing(async (client) => {
			const condition =
				expectedAck === undefined
					? ""
					: " AND ack->>'userId' IS NOT DISTINCT FROM $3 AND (ack->>'at')::numeric IS NOT DISTINCT FROM $4";
			const params: unknown[] = [value === null ? null : JSON.stringify(value), id];
			if (expectedAck !== undefined) params.push(expectedAck?.userId ?? null, expectedAck?.at ?? null);
			const { rows } = await client.query<{ episode: number; last_payload: WebhookPayload | null }>(
				`UPDATE opsbot_state.groups SET ${column} = $1 WHERE id = $2${condition} RETURNING episode, last_payload`,
				params,
			);
			const row = rows[0];
			if (row?.last_payload)
				await client.query(
					"INSERT INTO opsbot_state.outbox (group_id, episode, payload, created_at, next_attempt_at) " +
						"VALUES ($1, $2, $3, $4, $4)",
					[id, row.episode, JSON.stringify(row.last_payload), Date.now()],
				);
			return row !== undefined;
		});

	/**
	 * Group commit (group-commit.ts): webhooks that arrive within GROUP_COMMIT_WINDOW_MS of the first, or
	 * while a commit is in flight, are written together, in one transaction, so one WAL flush covers them
	 * all. If it fails for something a payload did, each is retried in a transaction of its own, so only the
	 * one at fault fails; if the server is away, all fail at once.
	 */
	const accepts = groupCommit<HistoryJob, AcceptResult>({
		commit: (batch) => db.groupCommit((client, commit) => acceptBatch(client, commit, batch, policy)),
		retryAlone: payloadFault,
		windowMs: GROUP_COMMIT_WINDOW_MS,
	});

	return {
		async accept(payload, targets, now = Date.now()) {
			const result = await accepts.add(historyJob(payload, targets, now));
			if (result.queued > 0) queued.announce();
			return result;
		},
		async dueChannels(now = Date.now()) {
			const { rows } = await db.query<{ channel: string }>(
				`SELECT DISTINCT g.channel FROM opsbot_state.outbox o JOIN opsbot_state.groups g ON g.id = o.group_id
				WHERE NOT o.done AND o.next_attempt_at <= $1
				UNION SELECT channel FROM opsbot_state.message_outbox WHERE state = 'queued' AND next_attempt_at <= $1`,
				[now],
			);
			return rows.map((r) => r.channel);
		},
		next: (channel, now = Date.now()) =>
			tx(async (client) => {
				const { rows } = await client.query<{
					id: string;
					group_id: string;
					episode: number;
					payload: WebhookPayload;
					attempts: number;
				}>(
					`WITH due AS (
						SELECT o.group_id, o.episode FROM opsbot_state.outbox o JOIN opsbot_state.groups g ON g.id = o.group_id
						WHERE g.channel = $1 AND NOT o.done AND o.next_attempt_at <= $2
						ORDER BY ${DELIVERY_CLASS_PG}, o.id LIMIT 1 FOR UPDATE OF o SKIP LOCKED)
					 UPDATE opsbot_state.outbox o SET next_attempt_at = $3 FROM due
					 WHERE o.group_id = due.group_id AND o.episode = due.episode AND NOT o.done
					 RETURNING o.id, o.group_id, o.episode, o.payload, o.attempts`,
					[channel, now, now + claimMs],
				);
				if (rows.length === 0) return undefined;
				const newest = rows.reduce((a, b) => (BigInt(b.id) > BigInt(a.id) ? b : a));
				const group = (
					await client.query<{
						channel: string;
						mention_role: string | null;
						first_firing_at: string;
						message_id: string | null;
						message_episode: number | null;
						chart_attachment: string | null;
						ack: AckState | null;
						silence: SilenceState | null;
						restart: RestartState | null;
						episode: number;
						flaps: number[] | null;
						previous_message_id: string | null;
					}>(
						"SELECT channel, mention_role, first_firing_at, message_id, message_episode, chart_attachment," +
							" ack, silence, restart, episode, flaps, previous_message_id FROM opsbot_state.groups WHERE id = $1",
						[newest.group_id],
					)
				).rows[0]!;
				const ours = group.message_episode === newest.episode;
				const current = group.episode === newest.episode;
				const item: OutboxItem = {
					id: Number(newest.id),
					groupId: newest.group_id,
					channel: group.channel,
					mentionRole: group.mention_role,
					episode: newest.episode,
					messageId: ours ? group.message_id : null,
					chartAttachment: ours ? group.chart_attachment : null,
					firstFiringAt: Number(group.first_firing_at),
					attempts: newest.attempts,
					payload: inAlertManagerOrder(newest.payload),
					nonce: episodeNonce(newest.group_id, newest.episode),
					ack: group.ack,
					silence: group.silence,
					restart: group.restart,
					flaps: current ? (group.flaps ?? []) : [],
					previousMessageId: current ? (ours ? group.previous_message_id : group.message_id) : null,
				};
				return item;
			}),
		delivered: (item, messageId, chartAttachment = null) =>
			tx(async (client) => {
				// The group row first, as accept locks them (groups, then outbox): the other order could deadlock with an accept.
				// A new episode's first post keeps the one before's message, for the new card's link to it.
				await client.query(
					`UPDATE opsbot_state.groups SET message_id = $1, message_episode = $2, chart_attachment = $4,
					previous_message_id = CASE WHEN message_episode IS DISTINCT FROM $2 AND message_id IS NOT NULL
						THEN message_id ELSE previous_message_id END WHERE id = $3`,
					[messageId, item.episode, item.groupId, chartAttachment],
				);
				await client.query(
					"UPDATE opsbot_state.outbox SET done = true WHERE group_id = $1 AND episode = $2 AND id <= $3",
					[item.groupId, item.episode, item.id],
				);
				// Updates that arrived during delivery were leased with it: make them due now.
				await client.query(
					"UPDATE opsbot_state.outbox SET next_attempt_at = $3 WHERE group_id = $1 AND episode = $2 AND NOT done",
					[item.groupId, item.episode, Date.now()],
				);
			}),
		refresh: (groupId, episode) =>
			txQueuing(async (client) => {
				const { rows } = await client.query<{ last_payload: WebhookPayload | null }>(
					"SELECT last_payload FROM opsbot_state.groups WHERE id = $1 AND episode = $2 FOR UPDATE",
					[groupId, episode],
				);
				const row = rows[0];
				if (row?.last_payload)
					await client.query(
						"INSERT INTO opsbot_state.outbox (group_id, episode, payload, created_at, next_attempt_at) " +
							"VALUES ($1, $2, $3, $4, $4)",
						[groupId, episode, JSON.stringify(row.last_payload), Date.now()],
					);
			}),
		async retryLater(item, at) {
			await db.query(
				"UPDATE opsbot_state.outbox SET attempts = attempts + 1, next_attempt_at = $3 " +
					"WHERE group_id = $1 AND episode = $2 AND NOT done",
				[item.groupId, item.episode, at],
			);
		},
		async abandon(item) {
			await db.query("UPDATE opsbot_state.outbox SET done = true WHERE group_id = $1 AND episode = $2 AND id <= $3", [
				item.groupId,
				item.episode,
				item.id,
			]);
		},
		async pending() {
			const { rows } = await db.query<{ n: number }>(
				`SELECT (SELECT count(*) FROM opsbot_state.outbox WHERE NOT done)::int
				+ (SELECT count(*) FROM opsbot_state.message_outbox WHERE state = 'queued')::int AS n`,
			);
			return rows[0]?.n ?? 0;
		},
		async backlog(channel, now = Date.now()) {
			const { rows } = await db.query<{ pending: number; due: number; unposted: number; next_due: string | null }>(
				`SELECT count(*)::int AS pending, (count(*) FILTER (WHERE first_due <= $2))::int AS due,
					(count(*) FILTER (WHERE unposted))::int AS unposted, min(first_due) AS next_due FROM (
					SELECT min(o.next_attempt_at) AS first_due,
						bool_or(o.episode = g.episode AND g.status = 'firing'
							AND g.message_episode IS DISTINCT FROM g.episode) AS unposted
					FROM opsbot_state.outbox o JOIN opsbot_state.groups g ON g.id = o.group_id
					WHERE g.channel = $1 AND NOT o.done GROUP BY o.group_id, o.episode) e`,
				[channel, now],
			);
			const row = rows[0]!;
			const messages = (
				await db.query<{ pending: number; due: number; next_due: string | null }>(
					`SELECT count(*)::int AS pending, (count(*) FILTER (WHERE next_attempt_at <= $2))::int AS due,
					min(next_attempt_at) AS next_due FROM opsbot_state.message_outbox WHERE state = 'queued' AND channel = $1`,
					[channel, now],
				)
			).rows[0]!;
			return mergeBacklog(
				{
					pending: row.pending,
					due: row.due,
					unposted: row.unposted,
					nextDueAt: row.next_due === null ? null : Number(row.next_due),
				},
				{
					pending: messages.pending,
					due: messages.due,
					nextDueAt: messages.next_due === null ? null : Number(messages.next_due),
				},
			);
		},
		async firingGroups(channel) {
			const { rows } = await db.query<
				{
					id: string;
					episode: number;
					first_firing_at: string;
					message_id: string | null;
					message_episode: number | null;
					last_payload: WebhookPayload | null;
				} & Parameters<typeof firingGroupFacts>[0]
			>(
				`SELECT g.id, g.episode, g.first_firing_at, g.message_id, g.message_episode, e.name, e.environment,
					e.severity, e.firing_alerts, CASE WHEN e.group_id IS NULL THEN g.last_payload END AS last_payload
				FROM opsbot_state.groups g
				LEFT JOIN opsbot_state.episodes e ON e.group_id = g.id AND e.episode = g.episode
				WHERE g.channel = $1 AND g.status = 'firing' AND g.last_payload IS NOT NULL`,
				[channel],
			);
			return rows.map((r) => ({
				groupId: r.id,
				firstFiringAt: Number(r.first_firing_at),
				messageId: r.message_episode === r.episode ? r.message_id : null,
				facts: firingGroupFacts(r, () => r.last_payload as WebhookPayload),
			}));
		},
		async stormSummary(channel) {
			const { rows } = await db.query<{
				channel: string;
				state: StormState["state"];
				message_id: string | null;
				nonce: string;
				started_at: string;
				ended_at: string | null;
				groups: string[];
			}>("SELECT * FROM opsbot_state.storm_summaries WHERE channel = $1", [channel]);
			const row = rows[0];
			return (
				row && {
					channel: row.channel,
					state: row.state,
					messageId: row.message_id,
					nonce: row.nonce,
					startedAt: Number(row.started_at),
					endedAt: row.ended_at === null ? null : Number(row.ended_at),
					groups: row.groups,
				}
			);
		},
		async saveStormSummary(s) {
			await db.query(
				`INSERT INTO opsbot_state.storm_summaries (channel, state, message_id, nonce, started_at, ended_at, groups)
				 VALUES ($1, $2, $3, $4, $5, $6, $7)
				 ON CONFLICT (channel) DO UPDATE SET state = excluded.state, message_id = excluded.message_id,
				 nonce = excluded.nonce, started_at = excluded.started_at, ended_at = excluded.ended_at, groups = excluded.groups`,
				[s.channel, s.state, s.messageId, s.nonce, s.startedAt, s.endedAt, JSON.stringify(s.groups)],
			);
		},
		async stormChannels() {
			const { rows } = await db.query<{ channel: string }>(
				"SELECT channel FROM opsbot_state.storm_summaries WHERE state <> 'over'",
			);
			return rows.map((r) => r.channel);
		},
		async stats() {
			const [groups, outbox] = await Promise.all([
				db.query<{ status: string; count: number }>(
					"SELECT status, count(*)::int AS count FROM opsbot_state.groups GROUP BY status",
				),
				db.query<{ channel: string; depth: number; oldest: string }>(
					`SELECT g.channel, count(*)::int AS depth, min(o.created_at) AS oldest
					FROM opsbot_state.outbox o JOIN opsbot_state.groups g ON g.id = o.group_id WHERE NOT o.done GROUP BY g.channel
					UNION ALL SELECT channel, count(*)::int, min(created_at) FROM opsbot_state.message_outbox
					WHERE state = 'queued' GROUP BY channel`,
				),
			]);
			return { groups: groups.rows, outbox: mergeOutboxStats(outbox.rows) };
		},
		async writable() {
			// A real commit, bounded: a read-only standby (25006), a full disk, or the tables an accept writes locked
			// (ROW EXCLUSIVE, what its INSERT and UPDATE take, waits behind a LOCK TABLE) all say "not writable".
			const probe = tx(async (client) => {
				await client.query("SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $1, true)", [
					String(WRITABLE_PROBE_MS),
				]);
				await client.query("LOCK TABLE opsbot_state.groups, opsbot_state.outbox IN ROW EXCLUSIVE MODE");
				await client.query(
					"INSERT INTO opsbot_state.readiness (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
				);
			});
			// withTimeout also bounds the wait for a pool connection, which the timeouts above do not cover.
			return withTimeout(probe, WRITABLE_PROBE_MS + 1_000).then(
				() => true,
				() => false,
			);
		},
		async group(id) {
			const { rows } = await db.query<GroupRow>(
				"SELECT * FROM opsbot_state.groups WHERE id = $1 AND last_payload IS NOT NULL",
				[id],
			);
			return rows[0] ? groupState(rows[0]) : undefined;
		},
		async silencedGroups(after, limit) {
			const { rows } = await db.query<GroupRow>(
				"SELECT * FROM opsbot_state.groups WHERE silence IS NOT NULL AND status <> 'resolved' " +
					"AND last_payload IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
				[after, limit],
			);
			return rows.map(groupState);
		},
		async listGroups(after, limit) {
			const { rows } = await db.query<GroupRow>(
				"SELECT * FROM opsbot_state.groups WHERE last_payload IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
				[after, limit],
			);
			return rows.map(groupState);
		},
		async openGroups(after, limit) {
			const { rows } = await db.query<GroupRow>(
				"SELECT * FROM opsbot_state.groups WHERE status <> 'resolved' AND last_payload IS NOT NULL" +
					" AND id > $1 ORDER BY id LIMIT $2",
				[after, limit],
			);
			return rows.map(groupState);
		},
		resolveGroup: (id, expectedSignature, now = Date.now(), reconciled = false) =>
			txQueuing(async (client) => {
				const { rows } = await client.query<GroupRow>("SELECT * FROM opsbot_state.groups WHERE id = $1 FOR UPDATE", [
					id,
				]);
				const row = rows[0];
				const resolved = resolveByHand(
					row?.last_payload ? groupState(row) : undefined,
					expectedSignature,
					now,
					reconciled,
				);
				if (!row || !resolved) return false;
				const json = JSON.stringify(resolved.payload);
				await client.query(
					"UPDATE opsbot_state.groups SET status = 'resolved', last_signature = $1, last_payload = $2, resolved_at = $4" +
						" WHERE id = $3",
					[resolved.signature, json, id, now],
				);
				await client.query(
					"INSERT INTO opsbot_state.outbox (group_id, episode, payload, created_at, next_attempt_at) " +
						"VALUES ($1, $2, $3, $4, $4)",
					[id, row.episode, json, now],
				);
				await episodes.apply(client, [
					{
						groupId: id,
						channel: row.channel,
						episode: row.episode,
						status: "resolved",
						firstFiringAt: Number(row.first_firing_at),
						facts: episodeFacts(resolved.payload),
						at: now,
					},
				]);
				return true;
			}),
		async heartbeat(name, at) {
			await db.query(
				"INSERT INTO opsbot_state.heartbeats (name, at) VALUES ($1, $2)" +
					" ON CONFLICT (name) DO UPDATE SET at = greatest(opsbot_state.heartbeats.at, excluded.at)",
				[name, at],
			);
		},
		async heartbeatState(name) {
			const { rows } = await db.query<{ at: string; alarmed_at: string | null }>(
				"SELECT at, alarmed_at FROM opsbot_state.heartbeats WHERE name = $1",
				[name],
			);
			const row = rows[0];
			return row && { at: Number(row.at), alarmedAt: row.alarmed_at === null ? null : Number(row.alarmed_at) };
		},
		async setHeartbeatAlarm(name, expected, alarm) {
			const { rowCount } = await db.query(
				"UPDATE opsbot_state.heartbeats SET alarmed_at = $1 WHERE name = $2 AND alarmed_at IS NOT DISTINCT FROM $3",
				[alarm, name, expected],
			);
			return rowCount === 1;
		},
		setAck: (id, ack, expected) => requeue(id, "ack", ack, expected),
		async setSilence(id, silence) {
			await requeue(id, "silence", silence);
		},
		async setRestart(id, restart) {
			await requeue(id, "restart", restart);
		},
		async enqueueMessage(message, now = Date.now()) {
			checkMessage(message);
			const { rowCount } = await db.query(
				`INSERT INTO opsbot_state.message_outbox (key, channel, message, created_at, next_attempt_at)
				VALUES ($1, $2, $3, $4, $4) ON CONFLICT (key) DO NOTHING`,
				[message.key, messageChannel(message), JSON.stringify(message), now],
			);
			if (rowCount === 1) queued.announce();
			return rowCount === 1;
		},
		async messageOutcome(key) {
			const { rows } = await db.query<MessageRow>(
				"SELECT state, attempts, result, done_at FROM opsbot_state.message_outbox WHERE key = $1",
				[key],
			);
			return rows[0] && messageOutcomeOf(rows[0]);
		},
		async nextMessage(channel, now = Date.now()) {
			// Leased like next()'s items: another replica takes it only if this one dies before it is sent.
			const { rows } = await db.query<{
				id: string;
				key: string;
				channel: string;
				attempts: number;
				message: QueuedMessage;
			}>(
				`UPDATE opsbot_state.message_outbox SET next_attempt_at = $3 WHERE id = (
					SELECT id FROM opsbot_state.message_outbox WHERE state = 'queued' AND channel = $1 AND next_attempt_at <= $2
					ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
				RETURNING id, key, channel, attempts, message`,
				[channel, now, now + claimMs],
			);
			const row = rows[0];
			return row && { ...row, id: Number(row.id) };
		},
		async messageSent(item, resultId, now = Date.now()) {
			await db.query(
				`UPDATE opsbot_state.message_outbox SET state = 'sent', result = $2, done_at = $3
				WHERE id = $1 AND state = 'queued'`,
				[item.id, resultId, now],
			);
		},
		async messageFailed(item, reason, now = Date.now()) {
			await db.query(
				`UPDATE opsbot_state.message_outbox SET state = 'failed', result = $2, done_at = $3
				WHERE id = $1 AND state = 'queued'`,
				[item.id, reason, now],
			);
		},
		async retryMessageLater(item, at) {
			await db.query(
				`UPDATE opsbot_state.message_outbox SET attempts = attempts + 1, next_attempt_at = $2
				WHERE id = $1 AND state = 'queued'`,
				[item.id, at],
			);
		},
		history: episodes.history,
		onQueued: queued.on,
		async close() {
			// Webhooks waiting for a group commit are written (or refused) before the pool ends.
			await accepts.drain();
		},
	};
}
