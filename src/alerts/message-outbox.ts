import { createHash } from "node:crypto";
import type { APIActionRowComponent, APIComponentInMessageActionRow, APIEmbed } from "discord.js";
import { DISCORD_LIMITS } from "../render/limits.ts";

/**
 * The message outbox: messages that are not an alert group's card (escalation mentions, reminders,
 * dead man's switch notices, silence announcements, thread posts) reach Discord through the same
 * durable outbox, worker and per-channel budget as the cards.
 *
 * - `enqueue(message)` commits the message under the caller's `key`; the same key again is a no-op
 *   (returns false), so two replicas or a restart that enqueue the same thing never post it twice.
 * - Delivery posts it with Discord's enforce_nonce (a nonce derived from the key), so a post repeated
 *   after a kill -9 returns the first message; a thread start repeated after a crash finds the thread.
 * - `outcome(key)` says what happened: still queued, sent (the message id, or the thread id for a
 *   thread start), or failed (Discord refused it for good, e.g. 403/404: the caller may degrade, say
 *   reply on the card instead of posting into its thread).
 */
export interface MessageOutbox {
	/** Durably queues the message; false when a message with its key was queued before (whatever became of it). */
	enqueue(message: QueuedMessage): Promise<boolean>;
	/** What became of the message queued under `key`; undefined for a key never queued (or long forgotten). */
	outcome(key: string): Promise<MessageOutcome | undefined>;
}

/** Where a message goes: a channel, a thread (a thread id is a channel id), or a reply to a message. */
export type MessageTarget =
	| { readonly channel: string; readonly replyTo?: string | undefined }
	| { readonly thread: string };

/** Who a message may ping: exactly these roles and users (allowed_mentions parse is always empty: never @everyone). */
export interface MessageMentions {
	readonly roles?: readonly string[];
	readonly users?: readonly string[];
	/** Whether a reply pings the author of the message it replies to (default false). */
	readonly repliedUser?: boolean;
}

/** A small text file a post carries (e.g. a command's full output when the message shows an excerpt). */
export interface MessageFile {
	/** A plain file name: letters, digits, ".", "_" and "-", e.g. `restart-output.txt`. */
	readonly name: string;
	/** Sent as UTF-8 text/plain; kept in the outbox with the rest of the message, so it is bounded. */
	readonly text: string;
}

/** A message to post. */
export interface QueuedPost {
	readonly kind: "post";
	/** The caller's dedupe key (at most 200 characters), e.g. `escalation:<group>:<episode>:<step>`. */
	readonly key: string;
	readonly target: MessageTarget;
	readonly content?: string;
	readonly embeds?: readonly APIEmbed[];
	readonly components?: readonly APIActionRowComponent<APIComponentInMessageActionRow>[];
	readonly mentions?: MessageMentions;
	/** Attached text files: at most MAX_MESSAGE_FILES, MAX_MESSAGE_FILE_BYTES of UTF-8 in all. */
	readonly files?: readonly MessageFile[];
}

/** A thread to start on a message (its id becomes the thread's: Discord gives them the same id). */
export interface QueuedThread {
	readonly kind: "thread";
	/** The caller's dedupe key, e.g. `thread:<group>:<episode>`: outcome(key) gives the thread id. */
	readonly key: string;
	readonly channel: string;
	readonly messageId: string;
	/** 1-100 characters. */
	readonly name: string;
	/** Minutes of inactivity before Discord archives the thread: 60, 1440, 4320 or 10080 (default 1440). */
	readonly autoArchiveMinutes?: 60 | 1440 | 4320 | 10080;
}

export type QueuedMessage = QueuedPost | QueuedThread;

/** What became of a queued message. */
export type MessageOutcome =
	| { readonly state: "queued"; readonly attempts: number }
	/** `id`: the posted message, or the started thread. */
	| { readonly state: "sent"; readonly id: string; readonly at: number }
	| { readonly state: "failed"; readonly reason: string; readonly at: number };

/** A queued message as delivery claims it. */
export interface MessageItem {
	readonly id: number;
	readonly key: string;
	/** The channel whose budget the write uses: the route's channel (the thread's id for a post into a thread). */
	readonly channel: string;
	readonly attempts: number;
	readonly message: QueuedMessage;
}

export const MAX_MESSAGE_KEY = 200;
const SNOWFLAKE = /^\d{17,20}$/;
/** Discord's own cap on each of allowed_mentions' roles and users. */
const MAX_MENTIONS = 100;
const MAX_COMPONENT_ROWS = 5;
const THREAD_NAME = 100;
/** Discord takes 10 files a message; the outbox keeps them in its rows, so their size is bounded too. */
export const MAX_MESSAGE_FILES = 10;
export const MAX_MESSAGE_FILE_BYTES = 64 * 1024;
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** The channel a message's write is paced by (the channel in its route). */
export function messageChannel(message: QueuedMessage): string {
	if (message.kind === "thread") return message.channel;
	return "thread" in message.target ? message.target.thread : message.target.channel;
}

/** Discord's enforce_nonce value for a queued message (at most 25 characters), the same on every attempt. */
export function messageNonce(key: string): string {
	return createHash("sha256").update(`message:${key}`).digest("base64url").slice(0, 25);
}

/**
 * Why Discord would refuse the message (or it breaks the outbox's rules), or undefined when it is fine.
 * enqueue() throws on a problem: a caller's bug is told at once, not found in a log later.
 */
export function messageProblem(message: QueuedMessage): string | undefined {
	if (typeof message.key !== "string" || message.key.length === 0 || message.key.length > MAX_MESSAGE_KEY)
		return `the key must be 1-${MAX_MESSAGE_KEY} characters`;
	const ids = (what: string, list: readonly string[]) =>
		list.every((id) => SNOWFLAKE.test(id)) ? undefined : `${what} must be Discord ids (snowflakes)`;
	if (message.kind === "thread") {
		return (
			ids("the channel and message", [message.channel, message.messageId]) ??
			(message.name.trim().length === 0 || message.name.length > THREAD_NAME
				? `a thread name must be 1-${THREAD_NAME} characters`
				: undefined)
		);
	}
	const { target } = message;
	const targetIds =
		"thread" in target ? [target.thread] : [target.channel, ...(target.replyTo ? [target.replyTo] : [])];
	const roles = message.mentions?.roles ?? [];
	const users = message.mentions?.users ?? [];
	const embeds = message.embeds ?? [];
	const files = message.files ?? [];
	if ((message.content ?? "").length === 0 && embeds.length === 0 && files.length === 0)
		return "a message needs content, an embed or a file";
	return (
		ids("the target", targetIds) ??
		filesProblem(files) ??
		ids("mentioned roles and users", [...roles, ...users]) ??
		((message.content ?? "").length > DISCORD_LIMITS.content
			? `content must be at most ${DISCORD_LIMITS.content} characters`
			: undefined) ??
		(embeds.length > DISCORD_LIMITS.embedsPerMessage
			? `at most ${DISCORD_LIMITS.embedsPerMessage} embeds`
			: undefined) ??
		((message.components ?? []).length > MAX_COMPONENT_ROWS
			? `at most ${MAX_COMPONENT_ROWS} component rows`
			: undefined) ??
		(roles.length > MAX_MENTIONS || users.length > MAX_MENTIONS
			? `at most ${MAX_MENTIONS} mentioned roles and ${MAX_MENTIONS} users`
			: undefined)
	);
}

function filesProblem(files: readonly MessageFile[]): string | undefined {
	if (files.length > MAX_MESSAGE_FILES) return `at most ${MAX_MESSAGE_FILES} files`;
	const bad = files.find((f) => typeof f.name !== "string" || !FILE_NAME.test(f.name));
	if (bad) return `a file name must be 1-100 letters, digits, ".", "_" or "-" (not ${JSON.stringify(bad.name)})`;
	if (new Set(files.map((f) => f.name)).size < files.length) return "file names must differ";
	if (files.some((f) => typeof f.text !== "string")) return "a file's text must be a string";
	// PostgreSQL's JSONB, where the outbox keeps the message, cannot hold a NUL character.
	if (files.some((f) => f.text.includes("\u0000"))) return "a file's text must not contain NUL characters";
	const bytes = files.reduce((sum, f) => sum + Buffer.byteLength(f.text, "utf8"), 0);
	return bytes > MAX_MESSAGE_FILE_BYTES ? `files must be at most ${MAX_MESSAGE_FILE_BYTES} bytes in all` : undefined;
}

/** Throws a clear error for a message Discord would refuse (see messageProblem). */
export function checkMessage(message: QueuedMessage): void {
	const problem = messageProblem(message);
	if (problem) throw new TypeError(`cannot queue message ${JSON.stringify(message.key)}: ${problem}`);
}

/** allowed_mentions for a queued post: exactly the roles and users it names, never @everyone or @here. */
export function allowedMentions(mentions: MessageMentions | undefined) {
	return {
		parse: [] as [],
		roles: [...(mentions?.roles ?? [])],
		users: [...(mentions?.users ?? [])],
		replied_user: mentions?.repliedUser ?? false,
	};
}

/** Messages sent or failed are forgotten (their keys may be queued again) after this. */
export const MESSAGE_RETENTION_MS = 30 * 24 * 60 * 60_000;

/** The store's half of the message outbox (both alert stores implement it). */
export interface MessageOutboxStore {
	enqueueMessage(message: QueuedMessage): Promise<boolean>;
	messageOutcome(key: string): Promise<MessageOutcome | undefined>;
}

/** The outbox callers use, on the store (which tells delivery itself when it queued a message). */
export function messageOutbox(store: MessageOutboxStore): MessageOutbox {
	return {
		enqueue: (message) => store.enqueueMessage(message),
		outcome: (key) => store.messageOutcome(key),
	};
}
