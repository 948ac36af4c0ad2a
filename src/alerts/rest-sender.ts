import { DiscordAPIError, HTTPError, RateLimitError, type REST } from "discord.js";
import { Routes } from "discord-api-types/v10";
import { classifySendError, type SendFailure } from "../discord/send-failure.ts";
import { flattenControls } from "../text.ts";
import { allowedMentions, type MessageFile, type QueuedPost } from "./message-outbox.ts";
import type { AlertMessage, SummaryMessage } from "./render.ts";
import type { ChannelLimitInfo } from "./storm.ts";

/**
 * How alert delivery reaches Discord: the sender contract (posts and edits of cards and storm
 * summaries, message outbox posts and thread starts) and its implementation over discord.js's REST
 * client, which also reports each channel's rate-limit headers for pacing; and the outcomes delivery
 * acts on (posted, edited, gone, refused, retry after), so it never reads Discord's errors itself.
 */

/** An attachment of a message Discord holds: its id and file name. */
export interface SentAttachment {
	readonly id: string;
	readonly filename: string;
}

/** What delivery sends: one group's message, or a channel's storm summary; on an edit, attachments to keep. */
export type OutgoingMessage = (AlertMessage | SummaryMessage) & { readonly kept?: readonly SentAttachment[] };

/** A message as Discord's answer to a post or an edit describes it. */
export interface SentMessage {
	readonly id: string;
	readonly attachments: readonly SentAttachment[];
	/**
	 * On a post: Discord handed back a message an earlier post with the same nonce made (a process that
	 * died before recording it, or a post that timed out), and it shows an older version than this one.
	 */
	readonly stale?: boolean;
}

/** How alert messages reach Discord: as the bot, in channels (not webhooks: they must stay editable). */
export interface DiscordSender {
	/** Posts a new message; `nonce` with enforce_nonce makes a repeated post return the first message. */
	post(channel: string, message: OutgoingMessage, nonce: string): Promise<SentMessage>;
	/** Edits a message; "gone" when it is not there any more (someone deleted it: Discord's 10008). */
	edit(channel: string, messageId: string, message: OutgoingMessage): Promise<SentMessage | "gone">;
	/**
	 * Posts a message of the message outbox, with enforce_nonce as post() does; `files` are uploaded as
	 * files[n], which the body's `attachments` name by index (messageBody writes both from one post).
	 */
	postMessage(channel: string, body: MessageBody, nonce: string, files?: readonly MessageFile[]): Promise<SentMessage>;
	/**
	 * Starts a thread on a message; resolves to the thread's id, also when the thread exists already
	 * (a start repeated after a crash): a thread started from a message has that message's id.
	 */
	startThread(channel: string, messageId: string, name: string, autoArchiveMinutes: number): Promise<string>;
	/** Registers `listener` for what Discord's answers say about each channel's message bucket. */
	onChannelLimit?(listener: (channel: string, info: ChannelLimitInfo) => void): void;
}

function body(message: OutgoingMessage) {
	return {
		content: message.content,
		embeds: "embeds" in message ? message.embeds : [message.embed],
		allowed_mentions: message.allowedMentions,
		components: message.components,
		// On edit the list is what the message keeps: attachments it has (by their id, not uploaded again)
		// and the new files (by their index); one it does not list is removed, so an empty list removes all.
		attachments: [
			...(message.kept ?? []).map((a) => ({ id: a.id })),
			...message.files.map((f, id) => ({ id, filename: f.name })),
		],
	};
}

/** A message outbox post as Discord's Create Message takes it. */
export interface MessageBody {
	readonly content?: string;
	readonly embeds: QueuedPost["embeds"];
	readonly components: QueuedPost["components"];
	readonly allowed_mentions: ReturnType<typeof allowedMentions>;
	readonly message_reference?: { message_id: string; channel_id: string };
	/** The uploaded files, files[id], by their index. */
	readonly attachments?: readonly { id: number; filename: string }[];
}

/** The Create Message body of a queued post: exact mentions only, and the message it replies to. */
export function messageBody(message: QueuedPost): MessageBody {
	const { target } = message;
	return {
		...(message.content ? { content: message.content } : {}),
		embeds: message.embeds ?? [],
		components: message.components ?? [],
		allowed_mentions: allowedMentions(message.mentions),
		...("channel" in target && target.replyTo
			? { message_reference: { message_id: target.replyTo, channel_id: target.channel } }
			: {}),
		...(message.files?.length ? { attachments: message.files.map((f, id) => ({ id, filename: f.name })) } : {}),
	};
}

/** Discord's code for "Unknown Message": the message to edit was deleted. */
const UNKNOWN_MESSAGE = 10_008;

/** Discord's code for "A thread has already been created for this message". */
const THREAD_ALREADY_CREATED = 160_004;

type MessageAnswer = {
	id: string;
	attachments?: { id: string; filename: string }[];
	content?: string;
	embeds?: readonly ShownEmbed[];
};
type ShownEmbed = {
	title?: string;
	description?: string;
	fields?: readonly { name: string; value: string }[];
	footer?: { text?: string };
};

/**
 * The text a message shows (content, and its embeds' titles, descriptions, fields and footers), to
 * tell whether the message Discord answered a post with is the one posted or an earlier one.
 */
function shownText(message: { content?: string | undefined; embeds?: readonly ShownEmbed[] | undefined }): string {
	const t = (s: string | undefined) => (s ?? "").trim();
	return JSON.stringify([
		t(message.content),
		(message.embeds ?? []).map((e) => [
			t(e.title),
			t(e.description),
			(e.fields ?? []).map((f) => [t(f.name), t(f.value)]),
			t(e.footer?.text),
		]),
	]);
}
const sentMessage = (answer: MessageAnswer): SentMessage => ({
	id: answer.id,
	attachments: (answer.attachments ?? []).map((a) => ({ id: a.id, filename: a.filename })),
});

// Posts and edits: the channel's message bucket (thread starts, under .../threads, have buckets of their own).
const CHANNEL_MESSAGES = /\/channels\/(\d+)\/messages(?:\/\d+)?(?:\?|$)/;

/**
 * A sender over discord.js's REST client, which queues per route and waits out 429s itself. It also
 * reports what Discord's rate-limit headers say about each channel's message bucket, so delivery
 * paces itself rather than running into 429s.
 */
export function restSender(rest: REST): DiscordSender {
	const files = (m: OutgoingMessage) =>
		m.files.length > 0 ? { files: m.files.map((f) => ({ name: f.name, data: f.data })) } : {};
	return {
		async post(channel, message, nonce) {
			const sent = body(message);
			const created = (await rest.post(Routes.channelMessages(channel), {
				body: { ...sent, nonce, enforce_nonce: true },
				...files(message),
			})) as MessageAnswer;
			// With enforce_nonce Discord answers a repeated post with the first message as it was.
			const stale = shownText(created) !== shownText(sent);
			return { ...sentMessage(created), ...(stale ? { stale } : {}) };
		},
		async edit(channel, messageId, message) {
			try {
				return sentMessage(
					(await rest.patch(Routes.channelMessage(channel, messageId), {
						body: body(message),
						...files(message),
					})) as MessageAnswer,
				);
			} catch (err) {
				if (err instanceof DiscordAPIError && err.code === UNKNOWN_MESSAGE) return "gone";
				throw err;
			}
		},
		async postMessage(channel, message, nonce, files = []) {
			const created = await rest.post(Routes.channelMessages(channel), {
				body: { ...message, nonce, enforce_nonce: true },
				...(files.length > 0
					? {
							files: files.map((f) => ({
								name: f.name,
								data: Buffer.from(f.text, "utf8"),
								contentType: "text/plain; charset=utf-8",
							})),
						}
					: {}),
			});
			return sentMessage(created as MessageAnswer);
		},
		async startThread(channel, messageId, name, autoArchiveMinutes) {
			try {
				const thread = await rest.post(Routes.threads(channel, messageId), {
					body: { name, auto_archive_duration: autoArchiveMinutes },
				});
				return (thread as { id: string }).id;
			} catch (err) {
				if (err instanceof DiscordAPIError && err.code === THREAD_ALREADY_CREATED) return messageId;
				throw err;
			}
		},
		onChannelLimit(listener) {
			const header = (headers: { get(name: string): string | null }, name: string) => {
				const value = headers.get(name);
				return value === null || value === "" ? undefined : Number(value);
			};
			rest.on("response", (request, response) => {
				const channel = CHANNEL_MESSAGES.exec(request.path)?.[1];
				if (!channel) return;
				const resetAfter = header(response.headers, "x-ratelimit-reset-after");
				listener(channel, {
					limit: header(response.headers, "x-ratelimit-limit"),
					remaining: header(response.headers, "x-ratelimit-remaining"),
					resetAfterMs: resetAfter === undefined ? undefined : resetAfter * 1_000,
				});
			});
			// discord.js waiting on its own for a bucket it knows to be empty.
			rest.on("rateLimited", (info) => {
				const channel = CHANNEL_MESSAGES.exec(info.url)?.[1];
				if (channel && !info.global) listener(channel, { remaining: 0, resetAfterMs: info.retryAfter });
			});
		},
	};
}

/** Discord took a post (or started a thread: `message.id` is the thread's). */
export interface Posted {
	readonly kind: "posted";
	readonly message: SentMessage;
}
/** Discord took an edit. */
export interface Edited {
	readonly kind: "edited";
	readonly message: SentMessage;
}
/** The message to edit is not there any more: someone deleted it (Discord's 10008). */
export interface Gone {
	readonly kind: "gone";
}
/** Discord refused the write for good (a 4xx other than 429): sending it again cannot help. */
export interface Refused {
	readonly kind: "refused";
	readonly status: number;
	/** Discord's error code and message, when its answer had them. */
	readonly code: number | undefined;
	readonly discordMessage: string | undefined;
	/** What to show or log: status, Discord's message and code, on one line. */
	readonly reason: string;
	readonly error: unknown;
}
/** Discord or the network failed (429, 5xx, a socket or a timeout): the same write may pass later. */
export interface RetryAfter {
	readonly kind: "retry after";
	/** Discord's Retry-After on a 429; otherwise undefined: back off (5xx, network). */
	readonly afterMs: number | undefined;
	readonly reason: string;
	readonly error: unknown;
}
/** opsbot itself failed around the write (a bug, not Discord's answer): retried a bounded number of times. */
export interface FailedInside {
	readonly kind: "failed inside";
	readonly reason: string;
	readonly error: unknown;
}
/** A write that did not happen, and what to do about it. */
export type SendFailed = Refused | RetryAfter | FailedInside;

/** What became of each write: delivery acts on these instead of Discord's errors. */
export interface OutcomeSender {
	post(channel: string, message: OutgoingMessage, nonce: string): Promise<Posted | SendFailed>;
	edit(channel: string, messageId: string, message: OutgoingMessage): Promise<Edited | Gone | SendFailed>;
	postMessage(
		channel: string,
		body: MessageBody,
		nonce: string,
		files?: readonly MessageFile[],
	): Promise<Posted | SendFailed>;
	startThread(
		channel: string,
		messageId: string,
		name: string,
		autoArchiveMinutes: number,
	): Promise<Posted | SendFailed>;
}

const errorText = (err: unknown) => flattenControls(err instanceof Error ? err.message : String(err));

/** What a failed write's error means: refused for good, worth a retry, or a failure inside opsbot. */
export function failureOf(err: unknown): SendFailed {
	if (err instanceof RateLimitError)
		return { kind: "retry after", afterMs: err.retryAfter, reason: `Discord answered 429`, error: err };
	const kind = classifySendError(err);
	if (kind === "local") return failedInside(err);
	const status = err instanceof DiscordAPIError || err instanceof HTTPError ? err.status : undefined;
	const reason =
		err instanceof DiscordAPIError
			? flattenControls(`Discord answered ${err.status}: ${err.message} (code ${err.code})`)
			: status !== undefined
				? `Discord answered ${status}`
				: errorText(err);
	if (kind === "transient") return { kind: "retry after", afterMs: undefined, reason, error: err };
	const discordError = err instanceof DiscordAPIError ? err : undefined;
	return {
		kind: "refused",
		status: status ?? 0,
		code: typeof discordError?.code === "number" ? discordError.code : undefined,
		discordMessage: discordError?.message,
		reason,
		error: err,
	};
}

/** A failure inside opsbot around a write (e.g. the store could not keep what Discord answered). */
export function failedInside(err: unknown): FailedInside {
	return { kind: "failed inside", reason: errorText(err), error: err };
}

/** The outcome of each of `sender`'s writes: what Discord answered, or what its error means. */
export function withOutcomes(sender: DiscordSender): OutcomeSender {
	const outcome = async <T, R>(write: () => Promise<T>, done: (answer: T) => R): Promise<R | SendFailed> => {
		try {
			return done(await write());
		} catch (err) {
			return failureOf(err);
		}
	};
	const posted = (message: SentMessage): Posted => ({ kind: "posted", message });
	return {
		post: (channel, message, nonce) => outcome(() => sender.post(channel, message, nonce), posted),
		edit: (channel, messageId, message) =>
			outcome(
				() => sender.edit(channel, messageId, message),
				(answer): Edited | Gone => (answer === "gone" ? { kind: "gone" } : { kind: "edited", message: answer }),
			),
		postMessage: (channel, body, nonce, files) =>
			outcome(() => sender.postMessage(channel, body, nonce, files), posted),
		startThread: (channel, messageId, name, minutes) =>
			outcome(
				() => sender.startThread(channel, messageId, name, minutes),
				(id) => posted({ id, attachments: [] }),
			),
	};
}

/** Whether a write failed (rather than posted, edited or found its message gone). */
export const isFailure = (outcome: Posted | Edited | Gone | SendFailed): outcome is SendFailed =>
	outcome.kind === "refused" || outcome.kind === "retry after" || outcome.kind === "failed inside";

const FAILURE_KINDS: Record<SendFailed["kind"], SendFailure> = {
	refused: "refused",
	"retry after": "transient",
	"failed inside": "local",
};
/** A failed write as /metrics counts it. */
export const failureKind = (failed: SendFailed): SendFailure => FAILURE_KINDS[failed.kind];

/** A failure inside opsbot is retried this many times (it may be passing), then given up with an error log. */
export const MAX_LOCAL_ATTEMPTS = 5;

/** Retries of 5xx and network errors back off exponentially, capped. */
export function backoffMs(attempts: number): number {
	return Math.min(60_000, 1_000 * 2 ** Math.min(attempts, 6));
}

/** When to try a failed write again: after its backoff, and never before Discord's Retry-After. */
export function retryAt(failed: SendFailed, attempts: number): number {
	const after = failed.kind === "retry after" ? (failed.afterMs ?? 0) : 0;
	return Date.now() + Math.max(backoffMs(attempts), after);
}
