import { DiscordAPIError, type REST, Routes } from "discord.js";
import { allowedMentions, type MessageFile, type QueuedPost } from "./message-outbox.ts";
import type { AlertMessage, SummaryMessage } from "./render.ts";
import type { ChannelLimitInfo } from "./storm.ts";

/**
 * How alert delivery reaches Discord: the sender contract (posts and edits of cards and storm
 * summaries, message outbox posts and thread starts) and its implementation over discord.js's REST
 * client, which also reports each channel's rate-limit headers for pacing.
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

type MessageAnswer = { id: string; attachments?: { id: string; filename: string }[] };
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
			const created = await rest.post(Routes.channelMessages(channel), {
				body: { ...body(message), nonce, enforce_nonce: true },
				...files(message),
			});
			return sentMessage(created as MessageAnswer);
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
