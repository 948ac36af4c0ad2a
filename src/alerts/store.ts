import { createHash } from "node:crypto";
import { statfsSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { preparePrivateDatabase } from "../state/private-files.ts";
import {
	type AcceptJob,
	type AcceptPolicy,
	type AcceptResult,
	acceptJob,
	type GroupHead,
	type GroupStatus,
	planAccepts,
	resolveByHand,
	touchedGroups,
} from "./group-machine.ts";
import {
	checkMessage,
	MESSAGE_RETENTION_MS,
	type MessageItem,
	type MessageOutcome,
	messageChannel,
	type QueuedMessage,
} from "./message-outbox.ts";
import type { RouteTarget } from "./routing.ts";
import type { WebhookPayload } from "./schema.ts";

export {
	type AcceptJob,
	type AcceptResult,
	acceptJob,
	groupId,
	payloadSignature,
	resolvedPayload,
} from "./group-machine.ts";

/** Who acknowledged a group, and when (ms). */
export interface AckState {
	readonly userId: string;
	readonly username: string;
	readonly at: number;
}

/** The AlertManager silence opsbot created for a group. */
export interface SilenceState {
	readonly id: string;
	readonly username: string;
	readonly until: number;
}

/** The last restart someone ran from the group's message. */
export interface RestartState {
	readonly userId: string;
	readonly container: string;
	readonly at: number;
	readonly ok: boolean;
	/** Why a failed restart failed, for the card: the exit code and the first line of its error output, or what went wrong on the way. */
	readonly exitCode?: number | null;
	readonly reason?: string;
}

/** A group as buttons see it: its latest payload and what people did about it. */
export interface GroupState {
	readonly groupId: string;
	readonly channel: string;
	readonly episode: number;
	readonly status: string;
	/** When the episode's first alert started firing (ms): escalation's clock starts there. */
	readonly firstFiringAt: number;
	readonly messageId: string | null;
	readonly payload: WebhookPayload;
	readonly ack: AckState | null;
	readonly silence: SilenceState | null;
	readonly restart: RestartState | null;
	/** What the group's last notification was (payloadSignature): a change since a read shows someone else updated it. */
	readonly signature: string;
}

/** A queued delivery: the newest payload of one group episode in one channel (older ones are coalesced into it). */
export interface OutboxItem {
	readonly id: number;
	readonly groupId: string;
	readonly channel: string;
	readonly mentionRole: string | null;
	readonly episode: number;
	/** The Discord message of this episode, once posted: later payloads edit it. */
	readonly messageId: string | null;
	/** The id of that message's chart attachment, once attached: edits keep it instead of drawing and uploading it again. */
	readonly chartAttachment: string | null;
	readonly firstFiringAt: number;
	readonly attempts: number;
	readonly payload: WebhookPayload;
	/** Discord's enforce_nonce key: posting the same episode twice returns the first message. */
	readonly nonce: string;
	readonly ack: AckState | null;
	readonly silence: SilenceState | null;
	readonly restart: RestartState | null;
	/** When the group flapped (re-opened within the regroup window), within the last hour. */
	readonly flaps: readonly number[];
	/** The message of the group's previous episode, for the card's link to it. */
	readonly previousMessageId: string | null;
}

/**
 * A channel's storm summary: the one message that lists every firing group while the channel's
 * backlog cannot be posted at Discord's pace, kept here so a restart edits it instead of posting another.
 */
export interface StormSummary {
	readonly channel: string;
	/** active: posted (or about to be) and kept current; failed: Discord refused it, the groups go on without it; over: the backlog drained. */
	readonly state: "active" | "failed" | "over";
	readonly messageId: string | null;
	/** Discord's enforce_nonce key for posting it: a post repeated after a crash returns the first message. */
	readonly nonce: string;
	readonly startedAt: number;
	readonly endedAt: number | null;
	/** Every group the summary has listed during this storm. */
	readonly groups: readonly string[];
}

/** The dead man's switch's stored state for one always-firing alert. */
export interface HeartbeatState {
	/** When it last arrived (or the watch began), ms. */
	readonly at: number;
	/** The `at` whose silence was alarmed, until the alarm is over; null when none is raised. */
	readonly alarmedAt: number | null;
}

/** What a channel still has to send, counted in group episodes. */
export interface ChannelBacklog {
	/** Not delivered yet, due or waiting for a retry. */
	readonly pending: number;
	readonly due: number;
	/** Firing groups whose own message is not posted yet. */
	readonly unposted: number;
	/** When the earliest pending episode is due (ms), or null when nothing is pending. */
	readonly nextDueAt: number | null;
	/** Of `due`, queued messages of the message outbox (counted in pending and due as one each). */
	readonly messagesDue: number;
}

/** A firing group as the storm summary lists it. */
export interface FiringGroup {
	readonly groupId: string;
	readonly firstFiringAt: number;
	/** Its own message for the current episode, once posted. */
	readonly messageId: string | null;
	readonly payload: WebhookPayload;
}

/** What /metrics shows of the store. */
export interface StoreStats {
	readonly groups: readonly { readonly status: string; readonly count: number }[];
	readonly outbox: readonly { readonly channel: string; readonly depth: number; readonly oldestAt: number }[];
}

/** opsbot's durable alert state: groups, their messages, and the delivery outbox. */
export interface AlertStore {
	/** Durably queues the payload for each target channel; returns once committed. */
	accept(payload: WebhookPayload, targets: readonly RouteTarget[], now?: number): Promise<AcceptResult>;
	dueChannels(now?: number): Promise<string[]>;
	/**
	 * Claims the next due item of a channel (for a lease, so another replica does not take it too): firing
	 * groups without a message first, critical ones before the rest, then updates and resolutions; oldest first within each.
	 */
	next(channel: string, now?: number): Promise<OutboxItem | undefined>;
	/** Marks the item sent as `messageId`, and remembers the message's chart attachment for the episode's later edits. */
	delivered(item: OutboxItem, messageId: string, chartAttachment?: string | null): Promise<void>;
	/** Queues a re-render of the group's message when `episode` is still its current one (e.g. its chart is ready now). */
	refresh(groupId: string, episode: number): Promise<void>;
	retryLater(item: OutboxItem, at: number): Promise<void>;
	/** Drops an item Discord will never accept (e.g. 4xx), so it cannot block its channel. */
	abandon(item: OutboxItem): Promise<void>;
	pending(): Promise<number>;
	writable(): Promise<boolean>;
	/** A group by id (the id alert buttons carry), or undefined for an unknown one. */
	group(groupId: string): Promise<GroupState | undefined>;
	/** Records or clears an acknowledgement and queues a re-render of the group's message. */
	setAck(groupId: string, ack: AckState | null): Promise<void>;
	/** Records or clears a silence and queues a re-render of the group's message. */
	setSilence(groupId: string, silence: SilenceState | null): Promise<void>;
	/** Records the last restart and queues a re-render of the group's message. */
	setRestart(groupId: string, restart: RestartState): Promise<void>;
	/** Groups with an opsbot silence whose current episode has not resolved, in id order after `after`: one bounded page. */
	silencedGroups(after: string, limit: number): Promise<GroupState[]>;
	/** Every group with a payload, in id order after `after`: one bounded page (for `opsbot alerts`). */
	listGroups(after: string, limit: number): Promise<GroupState[]>;
	/** What the channel still has to send. */
	backlog(channel: string, now?: number): Promise<ChannelBacklog>;
	/** The channel's firing groups (their current episodes), for the storm summary. */
	firingGroups(channel: string): Promise<FiringGroup[]>;
	/** The channel's latest storm summary (possibly over), or undefined. */
	stormSummary(channel: string): Promise<StormSummary | undefined>;
	/** Creates or replaces the channel's storm summary. */
	saveStormSummary(summary: StormSummary): Promise<void>;
	/** Channels whose storm summary is not over. */
	stormChannels(): Promise<string[]>;
	/**
	 * The dead man's switch (deadman.ts): records that the always-firing alert `name` arrived at `at`.
	 * The first call also starts the watch (`at` then is when opsbot began to wait for it).
	 */
	heartbeat(name: string, at: number): Promise<void>;
	/** When `name` last arrived (or the watch began), and the arrival an alarm was raised for; undefined: not watched. */
	heartbeatState(name: string): Promise<HeartbeatState | undefined>;
	/** Marks the silence since `at` alarmed (`at`), or the alarm over (null); only if the row still reads `expected`. */
	setHeartbeatAlarm(name: string, expected: number | null, alarm: number | null): Promise<boolean>;
	/** Groups by status and, per channel, queued deliveries and when the oldest was queued (for /metrics). */
	stats(): Promise<StoreStats>;
	/**
	 * Marks the group's current episode resolved (every alert ended at `now`) and queues the re-render,
	 * as a resolved notification would; only if the group still fires with `expectedSignature`. For groups
	 * AlertManager no longer holds but sent no resolved notification about (`reconciled`: the card says so).
	 */
	/** The message outbox (message-outbox.ts): queues a message; false when its key was queued before. */
	enqueueMessage(message: QueuedMessage, now?: number): Promise<boolean>;
	/** What became of the message queued under `key`. */
	messageOutcome(key: string): Promise<MessageOutcome | undefined>;
	/** Claims the channel's oldest due message (for a lease, as next() does). */
	nextMessage(channel: string, now?: number): Promise<MessageItem | undefined>;
	/** Records the message sent as `resultId` (the posted message, or the started thread). */
	messageSent(item: MessageItem, resultId: string, now?: number): Promise<void>;
	/** Gives the message up: Discord refused it for good (or opsbot kept failing to send it). */
	messageFailed(item: MessageItem, reason: string, now?: number): Promise<void>;
	retryMessageLater(item: MessageItem, at: number): Promise<void>;
	resolveGroup(groupId: string, expectedSignature: string, now?: number, reconciled?: boolean): Promise<boolean>;
	/** Groups whose current episode has not resolved, in id order after `after`: one bounded page (for reconciliation). */
	openGroups(after: string, limit: number): Promise<GroupState[]>;
	close(): Promise<void>;
}

const MIGRATIONS = [
	`CREATE TABLE groups (
		id TEXT PRIMARY KEY,
		receiver TEXT NOT NULL,
		group_key TEXT NOT NULL,
		channel TEXT NOT NULL,
		mention_role TEXT,
		episode INTEGER NOT NULL,
		status TEXT NOT NULL,
		first_firing_at INTEGER NOT NULL,
		last_signature TEXT NOT NULL,
		message_id TEXT,
		message_episode INTEGER
	);
	CREATE TABLE outbox (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		group_id TEXT NOT NULL REFERENCES groups(id),
		episode INTEGER NOT NULL,
		payload TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt_at INTEGER NOT NULL,
		done INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX outbox_pending ON outbox (done, next_attempt_at);`,
	`ALTER TABLE groups ADD COLUMN last_payload TEXT;
	ALTER TABLE groups ADD COLUMN ack TEXT;
	ALTER TABLE groups ADD COLUMN silence TEXT;`,
	`ALTER TABLE groups ADD COLUMN restart TEXT;`,
	`CREATE TABLE storm_summaries (
		channel TEXT PRIMARY KEY,
		state TEXT NOT NULL,
		message_id TEXT,
		nonce TEXT NOT NULL,
		started_at INTEGER NOT NULL,
		ended_at INTEGER,
		groups TEXT NOT NULL
	);`,
	// next() ordered by json_extract() over each undelivered row's group payload (85 ms at 5,000 rows, on
	// the event loop); the rank is now written at accept time. Backfilled with the expression it replaces.
	`ALTER TABLE groups ADD COLUMN severity_rank INTEGER NOT NULL DEFAULT 1;
	UPDATE groups SET severity_rank = 0 WHERE lower(json_extract(last_payload, '$.commonLabels.severity')) = 'critical';`,
	// What next() and backlog() read of both tables, in covering indexes. Rows of either table are mostly
	// payload, and a column added after last_payload sits behind its overflow pages: with the rank in its
	// column but read from the rows, next() still took 45-70 ms at 5,000 undelivered rows; with these, 3 ms.
	`DROP INDEX outbox_pending;
	CREATE INDEX outbox_pending ON outbox (done, next_attempt_at, group_id, episode);
	CREATE INDEX groups_delivery ON groups (channel, id, episode, status, message_episode, severity_rank);`,
	// The message's chart, attached once per episode (message_episode): edits keep it by this id.
	`ALTER TABLE groups ADD COLUMN chart_attachment TEXT;`,
	// The message outbox (message-outbox.ts): messages other than the cards, each once under its key.
	`CREATE TABLE message_outbox (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		key TEXT NOT NULL UNIQUE,
		channel TEXT NOT NULL,
		message TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt_at INTEGER NOT NULL,
		state TEXT NOT NULL DEFAULT 'queued',
		result TEXT,
		done_at INTEGER
	);
	CREATE INDEX message_outbox_queued ON message_outbox (state, channel, next_attempt_at);`,
	// Flapping (issue 22): when the episode resolved, its re-fires within the regroup window (JSON array
	// of ms), and the previous episode's message for the new card's link.
	`ALTER TABLE groups ADD COLUMN resolved_at INTEGER;
	ALTER TABLE groups ADD COLUMN flaps TEXT;
	ALTER TABLE groups ADD COLUMN previous_message_id TEXT;`,
	// The dead man's switch (issue 22): when each always-firing alert last arrived, and the alarm raised.
	`CREATE TABLE heartbeats (name TEXT PRIMARY KEY, at INTEGER NOT NULL, alarmed_at INTEGER);`,
];

/**
 * Delivery order within a channel (an SQL expression over outbox o and groups g): a firing group without
 * its message yet by its severity_rank (0 critical, 1 any other), then 2 for updates and resolutions.
 */
const DELIVERY_CLASS_SQLITE =
	"CASE WHEN o.episode = g.episode AND g.status = 'firing' AND g.message_episode IS NOT g.episode THEN g.severity_rank ELSE 2 END";

/** Discord's enforce_nonce value for one episode of one group (at most 25 characters). */
export function episodeNonce(groupId: string, episode: number): string {
	return createHash("sha256").update(`${groupId}:${episode}`).digest("base64url").slice(0, 25);
}

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
	episode: number;
	status: string;
	first_firing_at: number;
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

/** A message outbox row as outcome() reads it (both backends). */
export type MessageRow = {
	state: "queued" | "sent" | "failed";
	attempts: number;
	result: string | null;
	done_at: number | string | null;
};

export function messageOutcomeOf(row: MessageRow): MessageOutcome {
	if (row.state === "queued") return { state: "queued", attempts: row.attempts };
	const at = Number(row.done_at);
	return row.state === "sent"
		? { state: "sent", id: row.result ?? "", at }
		: { state: "failed", reason: row.result ?? "", at };
}

/** A channel's backlog of cards and of messages, together (messages are never "unposted" cards). */
export function mergeBacklog(
	cards: Omit<ChannelBacklog, "messagesDue">,
	messages: { pending: number; due: number; nextDueAt: number | null },
): ChannelBacklog {
	const dues = [cards.nextDueAt, messages.nextDueAt].filter((d): d is number => d !== null);
	return {
		pending: cards.pending + messages.pending,
		due: cards.due + messages.due,
		unposted: cards.unposted,
		nextDueAt: dues.length > 0 ? Math.min(...dues) : null,
		messagesDue: messages.due,
	};
}

/** Per-channel queue figures of cards and messages added up, for /metrics. */
export function mergeOutboxStats(
	rows: readonly { channel: string; depth: number; oldest: number | string }[],
): StoreStats["outbox"] {
	const merged = new Map<string, { channel: string; depth: number; oldestAt: number }>();
	for (const r of rows) {
		const seen = merged.get(r.channel);
		const oldestAt = Number(r.oldest);
		if (seen)
			merged.set(r.channel, { ...seen, depth: seen.depth + r.depth, oldestAt: Math.min(seen.oldestAt, oldestAt) });
		else merged.set(r.channel, { channel: r.channel, depth: r.depth, oldestAt });
	}
	return [...merged.values()];
}

/** A webhook waiting for the next group commit. */
interface PendingAccept extends AcceptJob {
	readonly resolve: (result: AcceptResult) => void;
	readonly reject: (err: unknown) => void;
}

/**
 * How long the first webhook of a group commit waits for others to join it. The COMMIT's WAL sync runs
 * on the event loop (node:sqlite is synchronous), and no webhook is read while it waits for the disk: a
 * few milliseconds of gathering mean fewer, larger commits and less of that time. Measured at 500/s
 * (ack p99, three runs each): 26-44 ms committing every turn of the event loop, 22-26 ms with 3 ms;
 * the p50 rises from ~2 to ~5 ms (bench/RESULTS.md).
 */
const GROUP_COMMIT_WINDOW_MS = 3;

/**
 * Most webhooks one group commit writes. The receiver's connection cap (128) keeps batches below
 * this in practice; the bound keeps one synchronous transaction from holding the event loop for long.
 */
const MAX_GROUP_COMMIT = 256;

/**
 * Opens (creating and migrating) the embedded store: SQLite in WAL mode, synchronous = FULL (a commit
 * has reached the disk when it returns), webhooks group-committed.
 * `maxPageCount` caps the database's size in pages (SQLite's max_page_count); past it writes fail with SQLITE_FULL.
 */
export function openAlertStore(
	path: string,
	options: { maxPageCount?: number; policy?: AcceptPolicy } = {},
): AlertStore {
	preparePrivateDatabase(path);
	const db = new DatabaseSync(path);
	db.exec(
		"PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
	);
	db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
	const current = (db.prepare("SELECT max(version) AS v FROM schema_version").get() as { v: number | null }).v ?? 0;
	MIGRATIONS.slice(current).forEach((sql, i) => {
		db.exec("BEGIN");
		db.exec(sql);
		db.prepare("INSERT INTO schema_version (version) VALUES (?)").run(current + i + 1);
		db.exec("COMMIT");
	});
	// Not a migration: it holds nothing, and older opsbots ignore it.
	db.exec("CREATE TABLE IF NOT EXISTS write_probe (pad BLOB NOT NULL)");
	// Not a migration either (older opsbots ignore it): without it, marking a delivery done and finding the
	// newest update of an episode scan every outbox row ever written, and delivery slows as the file grows.
	db.exec("CREATE INDEX IF NOT EXISTS outbox_episode ON outbox (group_id, episode, done)");
	// Sent and failed messages are kept a while for outcome() and their keys, then forgotten.
	db.prepare("DELETE FROM message_outbox WHERE state <> 'queued' AND done_at < ?").run(
		Date.now() - MESSAGE_RETENTION_MS,
	);
	if (options.maxPageCount !== undefined)
		db.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor(options.maxPageCount))}`);

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
	const updateGroup =
		db.prepare(`UPDATE groups SET mention_role = ?, episode = ?, status = ?, first_firing_at = ?, last_signature = ?, severity_rank = ?, last_payload = ?,
		resolved_at = ?, flaps = ?,
		ack = iif(?, NULL, ack), silence = iif(?, NULL, silence), restart = iif(?, NULL, restart) WHERE id = ?`);
	const resolveStmt = db.prepare(
		"UPDATE groups SET status = 'resolved', last_signature = ?, last_payload = ?, resolved_at = ? WHERE id = ?",
	);
	const setAckStmt = db.prepare("UPDATE groups SET ack = ? WHERE id = ?");
	const setSilenceStmt = db.prepare("UPDATE groups SET silence = ? WHERE id = ?");
	const setRestartStmt = db.prepare("UPDATE groups SET restart = ? WHERE id = ?");
	const silenced = db.prepare(
		"SELECT * FROM groups WHERE silence IS NOT NULL AND status <> 'resolved' AND last_payload IS NOT NULL AND id > ? ORDER BY id LIMIT ?",
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
	const oldestDue =
		db.prepare(`SELECT o.group_id, o.episode FROM outbox o JOIN groups g ON g.id = o.group_id WHERE g.channel = ? AND o.done = 0 AND o.next_attempt_at <= ?
		ORDER BY ${DELIVERY_CLASS_SQLITE}, o.id LIMIT 1`);
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
	const backlogStmt =
		db.prepare(`SELECT count(*) AS pending, coalesce(sum(first_due <= ?), 0) AS due, coalesce(sum(unposted), 0) AS unposted, min(first_due) AS next_due FROM (
		SELECT min(o.next_attempt_at) AS first_due, (o.episode = g.episode AND g.status = 'firing' AND g.message_episode IS NOT g.episode) AS unposted
		FROM outbox o JOIN groups g ON g.id = o.group_id WHERE g.channel = ? AND o.done = 0 GROUP BY o.group_id, o.episode)`);
	const firingStmt = db.prepare(
		"SELECT id, episode, first_firing_at, message_id, message_episode, last_payload FROM groups WHERE channel = ? AND status = 'firing' AND last_payload IS NOT NULL",
	);
	const getStorm = db.prepare("SELECT * FROM storm_summaries WHERE channel = ?");
	const putStorm =
		db.prepare(`INSERT INTO storm_summaries (channel, state, message_id, nonce, started_at, ended_at, groups) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (channel) DO UPDATE SET state = excluded.state, message_id = excluded.message_id, nonce = excluded.nonce, started_at = excluded.started_at, ended_at = excluded.ended_at, groups = excluded.groups`);
	const stormChannelsStmt = db.prepare("SELECT channel FROM storm_summaries WHERE state <> 'over'");
	const heartbeatStmt = db.prepare(
		"INSERT INTO heartbeats (name, at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET at = max(at, excluded.at)",
	);
	const heartbeatGet = db.prepare("SELECT at, alarmed_at FROM heartbeats WHERE name = ?");
	const heartbeatAlarm = db.prepare("UPDATE heartbeats SET alarmed_at = ? WHERE name = ? AND alarmed_at IS ?");
	const groupStats = db.prepare("SELECT status, count(*) AS count FROM groups GROUP BY status");
	const outboxStats = db.prepare(
		"SELECT g.channel AS channel, count(*) AS depth, min(o.created_at) AS oldest FROM outbox o JOIN groups g ON g.id = o.group_id WHERE o.done = 0 GROUP BY g.channel",
	);

	/** Bytes of the last write that failed for a storage reason (disk full, I/O error), until a write as large succeeds. */
	let failedWriteBytes: number | undefined;

	/** Runs `work` in one write transaction. `bytes`: roughly how much it writes, for writable()'s probe after a failure. */
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
	function acceptBatch(jobs: readonly AcceptJob[]): readonly AcceptResult[] {
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
		const plan = planAccepts(jobs, heads, options.policy);
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
		return plan.results;
	}

	const acceptBytes = (job: PendingAccept) => (2 * job.json.length + ACCEPT_PAGES_BYTES) * job.targets.length;
	// The estimated size of recent accepts (including ones that failed), for writable()'s free-space check.
	const recentAccepts: number[] = [];
	let accepts: PendingAccept[] = [];
	let commitScheduled = false;

	/**
	 * Group commit: every webhook that arrived within GROUP_COMMIT_WINDOW_MS of the first is written in one
	 * transaction, so one WAL sync (synchronous = FULL) covers them all; each caller hears back only
	 * after that COMMIT returned. If the shared transaction fails, each webhook is retried in a
	 * transaction of its own, so one that cannot be stored (e.g. too large for the disk left) fails alone.
	 */
	function commitAccepts(): void {
		commitScheduled = false;
		const batch = accepts;
		accepts = [];
		if (batch.length === 0) return;
		if (batch.length > 1) {
			let results: readonly AcceptResult[] | undefined;
			try {
				results = tx(
					() => acceptBatch(batch),
					batch.reduce((sum, job) => sum + acceptBytes(job), 0),
				);
			} catch {
				// Each alone below; the error that matters is the one its own transaction meets.
			}
			if (results) {
				for (const [i, job] of batch.entries()) job.resolve(results[i]!);
				return;
			}
		}
		for (const job of batch) {
			try {
				job.resolve(tx(() => acceptBatch([job])[0]!, acceptBytes(job)));
			} catch (err) {
				job.reject(err);
			}
		}
	}

	// Changes made by buttons reach the message through the same durable outbox as AlertManager's.
	function requeue(id: string, change: () => void): void {
		tx(() => {
			change();
			const row = getGroup.get(id) as { episode: number; last_payload: string | null } | undefined;
			if (row?.last_payload) insertOutbox.run(id, row.episode, row.last_payload, Date.now(), Date.now());
		});
	}

	return {
		async accept(payload, targets, now = Date.now()) {
			// Everything that does not need the database is done here, outside the shared transaction.
			const job = acceptJob(payload, targets, now);
			recentAccepts.push((2 * job.json.length + ACCEPT_PAGES_BYTES) * targets.length);
			if (recentAccepts.length > RECENT_ACCEPTS) recentAccepts.shift();
			return new Promise<AcceptResult>((resolve, reject) => {
				accepts.push({ ...job, resolve, reject });
				if (accepts.length >= MAX_GROUP_COMMIT) commitAccepts();
				else if (!commitScheduled) {
					commitScheduled = true;
					setTimeout(commitAccepts, GROUP_COMMIT_WINDOW_MS);
				}
			});
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
			tx(() => {
				const row = getGroup.get(groupId) as { episode: number; last_payload: string | null } | undefined;
				if (row?.last_payload && row.episode === episode)
					insertOutbox.run(groupId, episode, row.last_payload, Date.now(), Date.now());
			});
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
			const rows = firingStmt.all(channel) as {
				id: string;
				episode: number;
				first_firing_at: number;
				message_id: string | null;
				message_episode: number | null;
				last_payload: string;
			}[];
			return rows.map((r) => ({
				groupId: r.id,
				firstFiringAt: r.first_firing_at,
				messageId: r.message_episode === r.episode ? r.message_id : null,
				payload: JSON.parse(r.last_payload) as WebhookPayload,
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
		async setAck(id, ack) {
			requeue(id, () => setAckStmt.run(ack ? JSON.stringify(ack) : null, id));
		},
		async setSilence(id, silence) {
			requeue(id, () => setSilenceStmt.run(silence ? JSON.stringify(silence) : null, id));
		},
		async setRestart(id, restart) {
			requeue(id, () => setRestartStmt.run(JSON.stringify(restart), id));
		},
		silencedGroups: async (after, limit) =>
			(silenced.all(after, limit) as (GroupRow & { last_payload: string })[]).map(groupState),
		listGroups: async (after, limit) =>
			(listed.all(after, limit) as (GroupRow & { last_payload: string })[]).map(groupState),
		openGroups: async (after, limit) =>
			(openStmt.all(after, limit) as (GroupRow & { last_payload: string })[]).map(groupState),
		async resolveGroup(id, expectedSignature, now = Date.now(), reconciled = false) {
			return tx(() => {
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
				return true;
			});
		},
		async enqueueMessage(message, now = Date.now()) {
			checkMessage(message);
			return (
				tx(() => insertMessage.run(message.key, messageChannel(message), JSON.stringify(message), now, now)).changes ===
				1
			);
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
		async close() {
			// Webhooks waiting for the next group commit are written (or refused) before the file closes.
			commitAccepts();
			db.close();
		},
	};
}
