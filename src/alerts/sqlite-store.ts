import { statfsSync } from "node:fs";
import { dirname } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { openSqliteDatabase } from "../state/sqlite.ts";
import { acceptedChanges, episodeFacts, firingGroupFacts, type HistoryJob, historyJob } from "./episodes.ts";
import { createSqliteEpisodeHistory } from "./episodes-sqlite.ts";
import { GROUP_COMMIT_WINDOW_MS, groupCommit } from "./group-commit.ts";
import {
	type AcceptPolicy,
	type AcceptResult,
	type GroupHead,
	type GroupStatus,
	planAccepts,
	resolveByHand,
	touchedGroups,
} from "./group-machine.ts";
import { checkMessage, MESSAGE_RETENTION_MS, messageChannel, type QueuedMessage } from "./message-outbox.ts";
import type { WebhookPayload } from "./schema.ts";
import {
	type AckState,
	type AlertStore,
	episodeNonce,
	type GroupState,
	type MessageRow,
	mergeBacklog,
	mergeOutboxStats,
	messageOutcomeOf,
	queuedAnnouncer,
	type RestartState,
	type SilenceState,
	type StormSummary,
} from "./store.ts";

/**
 * Delivery order within a channel (an SQL expression over outbox o and groups g): a firing group without
 * its message yet by its severity_rank (0 critical, 1 any other), then 2 for updates and resolutions.
 */
const DELIVERY_CLASS_SQLITE =
	"CASE WHEN o.episode = g.episode AND g.status = 'firing' AND g.message_episode IS NOT g.episode " +
	"THEN g.severity_rank ELSE 2 END";

/** Primary SQLite result codes that mean the database cannot be written (full, I/O error, read-only, damaged). */
const STORAGE_ERRORS = new Set([8, 10, 11, 13, 14, 26]);

function isStorageError(err: unknown): boolean {
	const code = (err as { errcode?: unknown }).errcode;
	return typeof code === "number" && STORAGE_ERRORS.has(code & 0xff);
}

// writable() writes at least this much, and as much as the write that last failed for lack of room (up to the cap).
const PROBE_MIN_BYTES = 1_024;
const PROBE_MAX_BYTES = 8 * 1024 * 1024;

/**
 * What one accept writes beyond its JSON (stored twice: the group's payload and the outbox row) per
 * target: B-tree and index pages, each a whole 4 KiB WAL frame.
 */
const ACCEPT_PAGES_BYTES = 16 * 1024;
/**
 * writable() also wants this many of the largest recent accepts to fit in the file system's free space:
 * a probe of a few KiB succeeds on a disk where the next webhook (which AlertManager sends again and
 * again) would not fit, and a burst writes several before a checkpoint can reuse the WAL.
 */
const ACCEPT_HEADROOM = 8;
/** …and never less than this free. */
const MIN_FREE_BYTES = 512 * 1024;
/** How many recent accepts the size estimate remembers. */
const RECENT_ACCEPTS = 32;

/** Free bytes for an unprivileged writer on the file system holding `path`; undefined where it cannot be told. */
function freeBytes(path: string): number | undefined {
	try {
		const fs = statfsSync(dirname(path));
		return fs.bavail * fs.bsize;
	} catch {
		return undefined;
	}
}

type GroupRow = {
	id: string;
	channel: string;
	first_firing_at: number;
	episode: number;
	status: string;
	last_signature: string;
	message_id: string | null;
	message_episode: number | null;
	last_payload: string | null;
	ack: string | null;
	silence: string | null;
	restart: string | null;
};

function groupState(row: GroupRow & { last_payload: string }): GroupState {
	return {
		groupId: row.id,
		channel: row.channel,
		episode: row.episode,
		status: row.status,
		firstFiringAt: row.first_firing_at,
		messageId: row.message_episode === row.episode ? row.message_id : null,
		payload: JSON.parse(row.last_payload) as WebhookPayload,
		ack: row.ack ? (JSON.parse(row.ack) as AckState) : null,
		silence: row.silence ? (JSON.parse(row.silence) as SilenceState) : null,
		restart: row.restart ? (JSON.parse(row.restart) as RestartState) : null,
		signature: row.last_signature,
	};
}

/**
 * Opens (creating and migrating) the embedded store: SQLite in WAL mode, synchronous = FULL (a commit
 * has reached the disk when it returns), webhooks group-committed.
 * `maxPageCount` caps the database's size in pages (SQLite's max_page_count); past it writes fail with SQLITE_FULL.
 */
export function openAlertStore(
	path: string,
	options: { maxPageCount?: number; policy?: AcceptPolicy } = {},
): AlertStore {
	const db = openSqliteDatabase(path, options);
	const store = sqliteAlertStore(db, path, options.policy);
	return {
		...store,
		async close() {
			await store.close();
			db.close();
		},
	};
}

/**
 * The alert store on an open state database (state/sqlite.ts, migrated); `path` is its file, for the
 * free-space check; `policy`, how webhooks open episodes (the regroup window). close() writes the webhooks
 * waiting for a group commit; the database is the caller's.
 */
export function sqliteAlertStore(db: DatabaseSync, path: string, policy?: AcceptPolicy): AlertStore {
	// Sent and failed messages are kept a while for outcome() and their keys, then forgotten.
	db.prepare("DELETE FROM message_outbox WHERE state <> 'queued' AND done_at < ?").run(
		Date.now() - MESSAGE_RETENTION_MS,
	);

	const getGroup = db.prepare("SELECT * FROM groups WHERE id = ?");
	// What accept decides on, without the stored payload (up to a few hundred KB to copy into JS per webhook).
	const getGroupHead = db.prepare(
		"SELECT episode, status, first_firing_at, last_signature, resolved_at, flaps FROM groups WHERE id = ?",
	);
	const undeliveredOfEpisode = db.prepare(
		"SELECT id FROM outbox WHERE group_id = ? AND episode = ? AND done = 0 ORDER BY id",
	);
	const insertGroup =
		db.prepare(`INSERT INTO groups (id, receiver, group_key, channel, mention_role, episode, status, first_firing_at,
		last_signature, severity_rank, last_payload, resolved_at, flaps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
	const updateGroup = db.prepare(
		`UPDATE groups SET mention_role = ?, episode = ?, status = ?, first_firing_at = ?, last_signature = ?,
		severity_rank = ?, last_payload = ?, resolved_at = ?, flaps = ?,
		ack = iif(?, NULL, ack), silence = iif(?, NULL, silence), restart = iif(?, NULL, restart) WHERE id = ?`,
	);
	const resolveStmt = db.prepare(
		"UPDATE groups SET status = 'resolved', last_signature = ?, last_payload = ?, resolved_at = ? WHERE id = ?",
	);
	const setAckStmt = db.prepare("UPDATE groups SET ack = ? WHERE id = ?");
	// Compare-and-set on who acknowledged and when: NULLs for "nobody" match a NULL ack (json_extract(NULL) is NULL).
	const setAckIfStmt = db.prepare(
		"UPDATE groups SET ack = ? WHERE id = ? AND json_extract(ack, '$.userId') IS ? AND json_extract(ack, '$.at') IS ?",
	);
	const setSilenceStmt = db.prepare("UPDATE groups SET silence = ? WHERE id = ?");
	const setRestartStmt = db.prepare("UPDATE groups SET restart = ? WHERE id = ?");
	const silenced = db.prepare(
		"SELECT * FROM groups WHERE silence IS NOT NULL AND status <> 'resolved' AND last_payload IS NOT NULL " +
			"AND id > ? ORDER BY id LIMIT ?",
	);
	const listed = db.prepare("SELECT * FROM groups WHERE last_payload IS NOT NULL AND id > ? ORDER BY id LIMIT ?");
	const openStmt = db.prepare(
		"SELECT * FROM groups WHERE status <> 'resolved' AND last_payload IS NOT NULL AND id > ? ORDER BY id LIMIT ?",
	);
	const insertOutbox = db.prepare(
		"INSERT INTO outbox (group_id, episode, payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)",
	);
	const supersede = db.prepare("UPDATE outbox SET done = 1 WHERE id = ?");
	const dueChannels = db.prepare(
		`SELECT DISTINCT g.channel FROM outbox o JOIN groups g ON g.id = o.group_id
		WHERE o.done = 0 AND o.next_attempt_at <= ?
		UNION SELECT channel FROM message_outbox WHERE state = 'queued' AND next_attempt_at <= ?`,
	);
	const oldestDue = db.prepare(
		`SELECT o.group_id, o.episode FROM outbox o JOIN groups g ON g.id = o.group_id
		WHERE g.channel = ? AND o.done = 0 AND o.next_attempt_at <= ?
		ORDER BY ${DELIVERY_CLASS_SQLITE}, o.id LIMIT 1`,
	);
	const newestOfEpisode = db.prepare(
		"SELECT id, payload, attempts FROM outbox WHERE group_id = ? AND episode = ? AND done = 0 ORDER BY id DESC LIMIT 1",
	);
	const markDone = db.prepare("UPDATE outbox SET done = 1 WHERE group_id = ? AND episode = ? AND id <= ?");
	// A new episode's first post keeps the one before's message, for the new card's link to it.
	const setMessage = db.prepare(
		`UPDATE groups SET message_id = ?1, message_episode = ?2, chart_attachment = ?3,
		previous_message_id = iif(message_episode IS NOT ?2 AND message_id IS NOT NULL, message_id, previous_message_id)
		WHERE id = ?4`,
	);
	const retry = db.prepare(
		"UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE group_id = ? AND episode = ? AND done = 0",
	);
	const pendingCount = db.prepare(
		`SELECT (SELECT count(*) FROM outbox WHERE done = 0)
		+ (SELECT count(*) FROM message_outbox WHERE state = 'queued') AS n`,
	);
	const insertMessage = db.prepare(
		`INSERT INTO message_outbox (key, channel, message, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (key) DO NOTHING`,
	);
	const messageByKey = db.prepare("SELECT state, attempts, result, done_at FROM message_outbox WHERE key = ?");
	const oldestMessage = db.prepare(
		`SELECT id, key, channel, attempts, message FROM message_outbox
		WHERE state = 'queued' AND channel = ? AND next_attempt_at <= ? ORDER BY id LIMIT 1`,
	);
	const finishMessage = db.prepare(
		"UPDATE message_outbox SET state = ?, result = ?, done_at = ? WHERE id = ? AND state = 'queued'",
	);
	const retryMessage = db.prepare(
		"UPDATE message_outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ? AND state = 'queued'",
	);
	const messageBacklog = db.prepare(
		`SELECT count(*) AS pending, coalesce(sum(next_attempt_at <= ?), 0) AS due, min(next_attempt_at) AS next_due
		FROM message_outbox WHERE state = 'queued' AND channel = ?`,
	);
	const messageStats = db.prepare(
		`SELECT channel, count(*) AS depth, min(created_at) AS oldest FROM message_outbox
		WHERE state = 'queued' GROUP BY channel`,
	);
	const probeWrite = db.prepare("INSERT INTO write_probe (pad) VALUES (zeroblob(?))");
	const probeClear = db.prepare("DELETE FROM write_probe");
	const backlogStmt = db.prepare(
		`SELECT count(*) AS pending, coalesce(sum(first_due <= ?), 0) AS due, coalesce(sum(unposted), 0) AS unposted,
		min(first_due) AS next_due FROM (
		SELECT min(o.next_attempt_at) AS first_due,
		(o.episode = g.episode AND g.status = 'firing' AND g.message_episode IS NOT g.episode) AS unposted
		FROM outbox o JOIN groups g ON g.id = o.group_id WHERE g.channel = ? AND o.done = 0 GROUP BY o.group_id, o.episode)`,
	);
	const firingStmt = db.prepare(
		`SELECT g.id, g.episode, g.first_firing_at, g.message_id, g.message_episode, e.name, e.environment, e.severity,
			e.firing_alerts, CASE WHEN e.group_id IS NULL THEN g.last_payload END AS last_payload
		FROM groups g LEFT JOIN episodes e ON e.group_id = g.id AND e.episode = g.episode
		WHERE g.channel = ? AND g.status = 'firing' AND g.last_payload IS NOT NULL`,
	);
	const getStorm = db.prepare("SELECT * FROM storm_summaries WHERE channel = ?");
	const putStorm = db.prepare(
		`INSERT INTO storm_summaries (channel, state, message_id, nonce, started_at, ended_at, groups)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (channel) DO UPDATE SET state = excluded.state, message_id = excluded.message_id,
		nonce = excluded.nonce, started_at = excluded.started_at, ended_at = excluded.ended_at, groups = excluded.groups`,
	);
	const stormChannelsStmt = db.prepare("SELECT channel FROM storm_summaries WHERE state <> 'over'");
	const heartbeatStmt = db.prepare(
		"INSERT INTO heartbeats (name, at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET at = max(at, excluded.at)",
	);
	const heartbeatGet = db.prepare("SELECT at, alarmed_at FROM heartbeats WHERE name = ?");
	const heartbeatAlarm = db.prepare("UPDATE heartbeats SET alarmed_at = ? WHERE name = ? AND alarmed_at IS ?");
	const groupStats = db.prepare("SELECT status, count(*) AS count FROM groups GROUP BY status");
	const outboxStats = db.prepare(
		"SELECT g.channel AS channel, count(*) AS depth, min(o.created_at) AS oldest FROM outbox o JOIN groups g " +
			"ON g.id = o.group_id WHERE o.done = 0 GROUP BY g.channel",
	);

	/**
	 * Bytes of the last write that failed for a storage reason (disk full, I/O error), until a write as large succeeds.
	 */
	let failedWriteBytes: number | undefined;

	/**
	 * Runs `work` in one write transaction. `bytes`: roughly how much it writes, for writable()'s probe after a failure.
	 */
	function tx<T>(work: () => T, bytes = 0): T {
		db.exec("BEGIN IMMEDIATE");
		try {
			const result = work();
			db.exec("COMMIT");
			if (failedWriteBytes !== undefined && bytes >= failedWriteBytes) failedWriteBytes = undefined;
			return result;
		} catch (err) {
			// On SQLITE_FULL and I/O errors SQLite has already rolled the transaction back; a ROLLBACK
			// then fails with "no transaction is active", which must not replace the real error.
			if (db.isTransaction) {
				try {
					db.exec("ROLLBACK");
				} catch {
					// The original error is the one that says what went wrong.
				}
			}
			if (isStorageError(err)) failedWriteBytes = Math.max(bytes, PROBE_MIN_BYTES);
			throw err;
		}
	}

	/**
	 * A batch of webhooks' changes, inside the caller's transaction: reads the heads of the groups they
	 * touch, and writes what group-machine.ts decides.
	 */
	function acceptBatch(jobs: readonly HistoryJob[]): readonly AcceptResult[] {
		const heads = new Map<string, GroupHead>();
		for (const { id } of touchedGroups(jobs)) {
			const row = getGroupHead.get(id) as
				| {
						episode: number;
						status: GroupStatus;
						first_firing_at: number;
						last_signature: string;
						resolved_at: number | null;
						flaps: string | null;
				  }
				| undefined;
			if (!row) continue;
			const undelivered = (undeliveredOfEpisode.all(id, row.episode) as { id: number }[]).map((r) => r.id);
			heads.set(id, {
				episode: row.episode,
				status: row.status,
				firstFiringAt: row.first_firing_at,
				signature: row.last_signature,
				resolvedAt: row.resolved_at,
				flaps: row.flaps ? (JSON.parse(row.flaps) as number[]) : [],
				undelivered,
			});
		}
		const plan = planAccepts(jobs, heads, policy);
		for (const g of plan.groups) {
			const job = jobs[g.job]!;
			if (g.created)
				insertGroup.run(
					g.id,
					job.receiver,
					job.groupKey,
					g.channel,
					g.mentionRole,
					g.episode,
					g.status,
					g.firstFiringAt,
					g.signature,
					g.severityRank,
					job.json,
					g.resolvedAt,
					JSON.stringify(g.flaps),
				);
			else
				updateGroup.run(
					g.mentionRole,
					g.episode,
					g.status,
					g.firstFiringAt,
					g.signature,
					g.severityRank,
					job.json,
					g.resolvedAt,
					JSON.stringify(g.flaps),
					Number(g.resetActions),
					Number(g.resetActions),
					Number(g.resetActions),
					g.id,
				);
		}
		for (const id of plan.supersede) supersede.run(id);
		for (const row of plan.enqueue) insertOutbox.run(row.groupId, row.episode, jobs[row.job]!.json, row.at, row.at);
		episodes.apply(acceptedChanges(plan.groups, jobs));
		return plan.results;
	}

	const acceptBytes = (job: HistoryJob) => (2 * job.json.length + ACCEPT_PAGES_BYTES) * job.targets.length;
	// The estimated size of recent accepts (including ones that failed), for writable()'s free-space check.
	const recentAccepts: number[] = [];

	/**
	 * Group commit (group-commit.ts): every webhook that arrived within GROUP_COMMIT_WINDOW_MS of the first
	 * is written in one transaction, so one WAL sync (synchronous = FULL) covers them all. If the shared
	 * transaction fails, each webhook is retried in a transaction of its own, so one that cannot be stored
	 * (e.g. too large for the disk left) fails alone.
	 */
	const accepts = groupCommit<HistoryJob, AcceptResult>({
		commit: (batch) =>
			tx(
				() => acceptBatch(batch),
				batch.reduce((sum, job) => sum + acceptBytes(job), 0),
			),
		retryAlone: () => true,
		windowMs: GROUP_COMMIT_WINDOW_MS,
	});

	const episodes = createSqliteEpisodeHistory(db, (work) => tx(work));
	const queued = queuedAnnouncer();

	// Changes made by buttons reach the message through the same durable outbox as AlertManager's.
	// `change` returns whether it changed anything: a refused compare-and-set queues nothing.
	function requeue(id: string, change: () => boolean): boolean {
		const added = tx(() => {
			if (!change()) return false;
			const row = getGroup.get(id) as { episode: number; last_payload: string | null } | undefined;
			if (row?.last_payload) insertOutbox.run(id, row.episode, row.last_payload, Date.now(), Date.now());
			return Boolean(row?.last_payload);
		});
		if (added) queued.announce();
		return added;
	}
	const wrote = (result: { changes: number | bigint }) => Number(result.changes) > 0;

	return {
		async accept(payload, targets, now = Date.now()) {
			// Everything that does not need the database is done here, outside the shared transaction.
			const job = historyJob(payload, targets, now);
			recentAccepts.push((2 * job.json.length + ACCEPT_PAGES_BYTES) * targets.length);
			if (recentAccepts.length > RECENT_ACCEPTS) recentAccepts.shift();
			const result = await accepts.add(job);
			if (result.queued > 0) queued.announce();
			return result;
		},
		dueChannels: async (now = Date.now()) => (dueChannels.all(now, now) as { channel: string }[]).map((r) => r.channel),
		async next(channel, now = Date.now()) {
			const due = oldestDue.get(channel, now) as { group_id: string; episode: number } | undefined;
			if (!due) return undefined;
			const newest = newestOfEpisode.get(due.group_id, due.episode) as {
				id: number;
				payload: string;
				attempts: number;
			};
			const group = getGroup.get(due.group_id) as {
				channel: string;
				mention_role: string | null;
				first_firing_at: number;
				message_id: string | null;
				message_episode: number | null;
				chart_attachment: string | null;
				episode: number;
				ack: string | null;
				silence: string | null;
				restart: string | null;
				flaps: string | null;
				previous_message_id: string | null;
			};
			const ours = group.message_episode === due.episode;
			const current = due.episode === group.episode;
			return {
				id: newest.id,
				groupId: due.group_id,
				channel: group.channel,
				mentionRole: group.mention_role,
				episode: due.episode,
				messageId: ours ? group.message_id : null,
				chartAttachment: ours ? group.chart_attachment : null,
				firstFiringAt: group.first_firing_at,
				attempts: newest.attempts,
				payload: JSON.parse(newest.payload) as WebhookPayload,
				nonce: episodeNonce(due.group_id, due.episode),
				ack: group.ack ? (JSON.parse(group.ack) as AckState) : null,
				silence: group.silence ? (JSON.parse(group.silence) as SilenceState) : null,
				restart: group.restart ? (JSON.parse(group.restart) as RestartState) : null,
				flaps: current && group.flaps ? (JSON.parse(group.flaps) as number[]) : [],
				previousMessageId: current ? (ours ? group.previous_message_id : group.message_id) : null,
			};
		},
		async delivered(item, messageId, chartAttachment = null) {
			tx(() => {
				markDone.run(item.groupId, item.episode, item.id);
				setMessage.run(messageId, item.episode, chartAttachment, item.groupId);
			});
		},
		async refresh(groupId, episode) {
			const added = tx(() => {
				const row = getGroup.get(groupId) as { episode: number; last_payload: string | null } | undefined;
				if (!row?.last_payload || row.episode !== episode) return false;
				insertOutbox.run(groupId, episode, row.last_payload, Date.now(), Date.now());
				return true;
			});
			if (added) queued.announce();
		},
		async retryLater(item, at) {
			retry.run(at, item.groupId, item.episode);
		},
		async abandon(item) {
			markDone.run(item.groupId, item.episode, item.id);
		},
		pending: async () => (pendingCount.get() as { n: number }).n,
		async backlog(channel, now = Date.now()) {
			const row = backlogStmt.get(now, channel) as {
				pending: number;
				due: number;
				unposted: number;
				next_due: number | null;
			};
			const messages = messageBacklog.get(now, channel) as { pending: number; due: number; next_due: number | null };
			return mergeBacklog(
				{ pending: row.pending, due: row.due, unposted: row.unposted, nextDueAt: row.next_due },
				{ pending: messages.pending, due: messages.due, nextDueAt: messages.next_due },
			);
		},
		async firingGroups(channel) {
			const rows = firingStmt.all(channel) as ({
				id: string;
				episode: number;
				first_firing_at: number;
				message_id: string | null;
				message_episode: number | null;
				last_payload: string | null;
			} & Parameters<typeof firingGroupFacts>[0])[];
			return rows.map((r) => ({
				groupId: r.id,
				firstFiringAt: r.first_firing_at,
				messageId: r.message_episode === r.episode ? r.message_id : null,
				facts: firingGroupFacts(r, () => JSON.parse(r.last_payload as string) as WebhookPayload),
			}));
		},
		async stormSummary(channel) {
			const row = getStorm.get(channel) as
				| {
						channel: string;
						state: StormSummary["state"];
						message_id: string | null;
						nonce: string;
						started_at: number;
						ended_at: number | null;
						groups: string;
				  }
				| undefined;
			return (
				row && {
					channel: row.channel,
					state: row.state,
					messageId: row.message_id,
					nonce: row.nonce,
					startedAt: row.started_at,
					endedAt: row.ended_at,
					groups: JSON.parse(row.groups) as string[],
				}
			);
		},
		async saveStormSummary(s) {
			tx(() =>
				putStorm.run(s.channel, s.state, s.messageId, s.nonce, s.startedAt, s.endedAt, JSON.stringify(s.groups)),
			);
		},
		stormChannels: async () => (stormChannelsStmt.all() as { channel: string }[]).map((r) => r.channel),
		async heartbeat(name, at) {
			tx(() => heartbeatStmt.run(name, at));
		},
		async heartbeatState(name) {
			const row = heartbeatGet.get(name) as { at: number; alarmed_at: number | null } | undefined;
			return row && { at: row.at, alarmedAt: row.alarmed_at };
		},
		setHeartbeatAlarm: async (name, expected, alarm) =>
			tx(() => heartbeatAlarm.run(alarm, name, expected).changes === 1),
		stats: async () => ({
			groups: groupStats.all() as { status: string; count: number }[],
			outbox: mergeOutboxStats([
				...(outboxStats.all() as { channel: string; depth: number; oldest: number }[]),
				...(messageStats.all() as { channel: string; depth: number; oldest: number }[]),
			]),
		}),
		// A real write, committed: taking the write lock alone succeeds on a full disk. After a write
		// failed for lack of room, the probe is as large as that write, so "writable" means it would fit now.
		// And the file system must have room for a few webhooks the size of recent ones: on a nearly full
		// disk a small probe succeeds while every real webhook fails.
		async writable() {
			const free = path === ":memory:" ? undefined : freeBytes(path);
			if (free !== undefined && free < Math.max(MIN_FREE_BYTES, ACCEPT_HEADROOM * Math.max(0, ...recentAccepts)))
				return false;
			const bytes = Math.min(Math.max(failedWriteBytes ?? 0, PROBE_MIN_BYTES), PROBE_MAX_BYTES);
			try {
				tx(() => probeWrite.run(bytes));
				tx(() => probeClear.run());
				failedWriteBytes = undefined;
				return true;
			} catch {
				return false;
			}
		},
		async group(id) {
			const row = getGroup.get(id) as GroupRow | undefined;
			if (!row?.last_payload) return undefined;
			return groupState(row as GroupRow & { last_payload: string });
		},
		async setAck(id, ack, expected) {
			const value = ack ? JSON.stringify(ack) : null;
			return requeue(id, () =>
				wrote(
					expected === undefined
						? setAckStmt.run(value, id)
						: setAckIfStmt.run(value, id, expected?.userId ?? null, expected?.at ?? null),
				),
			);
		},
		async setSilence(id, silence) {
			requeue(id, () => wrote(setSilenceStmt.run(silence ? JSON.stringify(silence) : null, id)));
		},
		async setRestart(id, restart) {
			requeue(id, () => wrote(setRestartStmt.run(JSON.stringify(restart), id)));
		},
		silencedGroups: async (after, limit) =>
			(silenced.all(after, limit) as (GroupRow & { last_payload: string })[]).map(groupState),
		listGroups: async (after, limit) =>
			(listed.all(after, limit) as (GroupRow & { last_payload: string })[]).map(groupState),
		openGroups: async (after, limit) =>
			(openStmt.all(after, limit) as (GroupRow & { last_payload: string })[]).map(groupState),
		async resolveGroup(id, expectedSignature, now = Date.now(), reconciled = false) {
			const resolved = tx(() => {
				const row = getGroup.get(id) as GroupRow | undefined;
				const resolved = resolveByHand(
					row?.last_payload ? groupState(row as GroupRow & { last_payload: string }) : undefined,
					expectedSignature,
					now,
					reconciled,
				);
				if (!row || !resolved) return false;
				const json = JSON.stringify(resolved.payload);
				resolveStmt.run(resolved.signature, json, now, id);
				insertOutbox.run(id, row.episode, json, now, now);
				episodes.apply([
					{
						groupId: id,
						channel: row.channel,
						episode: row.episode,
						status: "resolved",
						firstFiringAt: row.first_firing_at,
						facts: episodeFacts(resolved.payload),
						at: now,
					},
				]);
				return true;
			});
			if (resolved) queued.announce();
			return resolved;
		},
		async enqueueMessage(message, now = Date.now()) {
			checkMessage(message);
			const { changes } = tx(() =>
				insertMessage.run(message.key, messageChannel(message), JSON.stringify(message), now, now),
			);
			if (changes === 1) queued.announce();
			return changes === 1;
		},
		async messageOutcome(key) {
			const row = messageByKey.get(key) as MessageRow | undefined;
			return row && messageOutcomeOf(row);
		},
		async nextMessage(channel, now = Date.now()) {
			const row = oldestMessage.get(channel, now) as
				| { id: number; key: string; channel: string; attempts: number; message: string }
				| undefined;
			return row && { ...row, message: JSON.parse(row.message) as QueuedMessage };
		},
		async messageSent(item, resultId, now = Date.now()) {
			finishMessage.run("sent", resultId, now, item.id);
		},
		async messageFailed(item, reason, now = Date.now()) {
			finishMessage.run("failed", reason, now, item.id);
		},
		async retryMessageLater(item, at) {
			retryMessage.run(at, item.id);
		},
		history: episodes.history,
		onQueued: queued.on,
		async close() {
			// Webhooks waiting for the next group commit are written (or refused) before the file closes.
			await accepts.drain();
		},
	};
}
