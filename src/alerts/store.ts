import { createHash } from "node:crypto";
import type { EpisodeHistory, ListedFacts } from "./episodes.ts";
import type { AcceptResult } from "./group-machine.ts";
import type { MessageItem, MessageOutcome, QueuedMessage } from "./message-outbox.ts";
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

/** What identifies an acknowledgement for a compare-and-set: who, and when. */
export type AckIdentity = Pick<AckState, "userId" | "at">;

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
	/**
	 * Why a failed restart failed, for the card: the exit code and the first line of its error output, or what went wrong
	 * on the way.
	 */
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
	/**
	 * The id of that message's chart attachment, once attached: edits keep it instead of drawing and uploading it again.
	 */
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
	/**
	 * active: posted (or about to be) and kept current; failed: Discord refused it, the groups go on without it; over: the
	 * backlog drained.
	 */
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

/**
 * A firing group as a storm summary lists it. Read from the group's current episode in the history, not
 * from its payload: a summary refreshes while the storm lasts, and reading every group's payload each
 * time held up the webhooks' commits (episodes.ts: listedFacts).
 */
export interface FiringGroup {
	readonly groupId: string;
	readonly firstFiringAt: number;
	/** Its own message for the current episode, once posted. */
	readonly messageId: string | null;
	readonly facts: ListedFacts;
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
	 * groups without a message first, critical ones before the rest, then updates and resolutions; oldest first within
	 * each.
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
	/**
	 * Records or clears an acknowledgement and queues a re-render of the group's message. With `expected`,
	 * only when the group's acknowledgement is still that one (same user and time; null: none), checked and
	 * written in one transaction: of two presses that read the same state, one wins and the other hears false.
	 * Returns whether it wrote (false also for an unknown group).
	 */
	setAck(groupId: string, ack: AckState | null, expected?: AckIdentity | null): Promise<boolean>;
	/** Records or clears a silence and queues a re-render of the group's message. */
	setSilence(groupId: string, silence: SilenceState | null): Promise<void>;
	/** Records the last restart and queues a re-render of the group's message. */
	setRestart(groupId: string, restart: RestartState): Promise<void>;
	/**
	 * Groups with an opsbot silence whose current episode has not resolved, in id order after `after`: one bounded page.
	 */
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
	resolveGroup(groupId: string, expectedSignature: string, now?: number, reconciled?: boolean): Promise<boolean>;
	/** Groups whose current episode has not resolved, in id order after `after`: one bounded page (for reconciliation). */
	openGroups(after: string, limit: number): Promise<GroupState[]>;
	/** The groups' episodes and what happened in them (episodes.ts), written with the notifications. */
	readonly history: EpisodeHistory;
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
	/**
	 * Calls `listener` after every commit that queued something for Discord (a webhook's update, a press's
	 * re-render, a chart's refresh, a resolution by hand, a message): delivery hears of work at once instead
	 * of at its next poll, and no writer has to tell it. Returns the unsubscribe.
	 */
	onQueued(listener: () => void): () => void;
	close(): Promise<void>;
}

/** Discord's enforce_nonce value for one episode of one group (at most 25 characters). */
export function episodeNonce(groupId: string, episode: number): string {
	return createHash("sha256").update(`${groupId}:${episode}`).digest("base64url").slice(0, 25);
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

/** The listeners of AlertStore.onQueued, for both adapters. */
export function queuedAnnouncer(): { on(listener: () => void): () => void; announce(): void } {
	const listeners = new Set<() => void>();
	return {
		on(listener) {
			listeners.add(listener);
			return () => void listeners.delete(listener);
		},
		announce() {
			for (const listener of listeners) listener();
		},
	};
}
