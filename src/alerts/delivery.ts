import { DiscordAPIError, Routes, type REST } from "discord.js";
import { classifySendError, type SendFailure } from "../discord/send-failure.ts";
import type { Logger } from "../log.ts";
import { renderAlertGroup, type AlertActions, type AlertMessage } from "./render.ts";
import type { AlertStore, OutboxItem } from "./store.ts";

/** How alert messages reach Discord: as the bot, in channels (not webhooks: they must stay editable). */
export interface DiscordSender {
	/** Posts a new message; `nonce` with enforce_nonce makes a repeated post return the first message. */
	post(channel: string, message: AlertMessage, nonce: string): Promise<string>;
	edit(channel: string, messageId: string, message: AlertMessage): Promise<void>;
}

function body(message: AlertMessage) {
	return {
		content: message.content,
		embeds: [message.embed],
		allowed_mentions: message.allowedMentions,
		components: message.components,
		// Listing attachments replaces the old files on edit; an empty list removes them.
		attachments: message.files.map((f, id) => ({ id, filename: f.name })),
	};
}

/** A sender over discord.js's REST client, which queues per route and waits out 429s itself. */
export function restSender(rest: REST): DiscordSender {
	const files = (m: AlertMessage) => (m.files.length > 0 ? { files: m.files.map((f) => ({ name: f.name, data: f.data })) } : {});
	return {
		async post(channel, message, nonce) {
			const created = (await rest.post(Routes.channelMessages(channel), { body: { ...body(message), nonce, enforce_nonce: true }, ...files(message) })) as { id: string };
			return created.id;
		},
		async edit(channel, messageId, message) {
			await rest.patch(Routes.channelMessage(channel, messageId), { body: body(message), ...files(message) });
		},
	};
}

/** The running delivery workers. */
export interface Delivery {
	/** Wakes the workers now (after accept) instead of at the next poll. */
	kick(): void;
	/** Resolves when nothing is due and no channel is being worked on. */
	drained(): Promise<void>;
	stop(): Promise<void>;
}

/** A local error is retried this many times (it may be passing), then the item is dropped with an error log. */
export const MAX_LOCAL_ATTEMPTS = 5;

/** Retries of 5xx and network errors back off exponentially, capped. */
export function backoffMs(attempts: number): number {
	return Math.min(60_000, 1_000 * 2 ** Math.min(attempts, 6));
}

/**
 * Starts one worker per channel with work: each sends its channel's items in order, one at a
 * time, so Discord's per-channel rate limits are met by discord.js's queue rather than fought.
 */
export function startDelivery(deps: { store: AlertStore; sender: DiscordSender; log: Logger; pollMs?: number; chart?: (payload: OutboxItem["payload"]) => Promise<Buffer | undefined>; actions?: (item: OutboxItem) => AlertActions }): Delivery {
	const busy = new Map<string, Promise<void>>();
	let stopped = false;
	let waiters: (() => void)[] = [];

	/** Edits the group's message, or posts it (again, if someone deleted it); returns the message id. */
	async function send(item: OutboxItem, message: AlertMessage): Promise<string> {
		if (item.messageId) {
			try {
				await deps.sender.edit(item.channel, item.messageId, message);
				return item.messageId;
			} catch (err) {
				// Someone deleted the message: post it again rather than lose the update.
				if (!(err instanceof DiscordAPIError && err.code === 10008)) throw err;
			}
		}
		return deps.sender.post(item.channel, message, item.nonce);
	}

	async function deliver(item: OutboxItem): Promise<"done" | "retry"> {
		// A chart that cannot be drawn (Prometheus down, no expression) never holds the alert back.
		const chart = item.payload.status === "firing" ? await deps.chart?.(item.payload).catch((err: unknown) => void deps.log.info({ err }, "no chart for alert")) : undefined;
		const render = (withoutAttachments: boolean) =>
			renderAlertGroup(item.payload, { firstFiringAt: item.firstFiringAt, mentionRole: item.mentionRole, chart: chart ?? undefined, ack: item.ack, silence: item.silence, restart: item.restart, withoutAttachments, ...(deps.actions ? { actions: deps.actions(item) } : {}) });
		const log = deps.log.child({ groupId: item.groupId, channel: item.channel });
		let message: AlertMessage | undefined;
		try {
			message = render(false);
			await deps.store.delivered(item, await send(item, message));
			return "done";
		} catch (err) {
			const failure = classifySendError(err);
			if (failure === "transient" || !message || message.files.length === 0) return failed(item, failure, err);
			// A picture or list that cannot be attached never takes the alert's text with it.
			log.error({ err, files: message.files.map((f) => f.name), failure }, "alert attachments could not be sent; sending the message without them");
		}
		try {
			await deps.store.delivered(item, await send(item, render(true)));
			return "done";
		} catch (err) {
			return failed(item, classifySendError(err), err);
		}
	}

	async function failed(item: OutboxItem, failure: SendFailure, err: unknown): Promise<"done" | "retry"> {
		const log = deps.log.child({ groupId: item.groupId, channel: item.channel, attempts: item.attempts + 1 });
		if (failure === "refused") {
			log.error({ err }, "Discord refused an alert message; dropping it");
			await deps.store.abandon(item);
			return "done";
		}
		if (failure === "local" && item.attempts + 1 >= MAX_LOCAL_ATTEMPTS) {
			log.error({ err }, "alert delivery kept failing inside opsbot (a bug); dropping the message");
			await deps.store.abandon(item);
			return "done";
		}
		if (failure === "local") log.error({ err }, "alert delivery failed inside opsbot (a bug, not Discord); will retry");
		else log.warn({ err }, "alert delivery failed; will retry");
		await deps.store.retryLater(item, Date.now() + backoffMs(item.attempts));
		return "retry";
	}

	async function work(channel: string): Promise<void> {
		for (let item = await deps.store.next(channel); item && !stopped; item = await deps.store.next(channel)) {
			if ((await deliver(item)) === "retry") return;
		}
	}

	let ticking = false;
	async function tick(): Promise<void> {
		if (stopped || ticking) return;
		ticking = true;
		try {
			for (const channel of await deps.store.dueChannels()) {
				if (busy.has(channel)) continue;
				const job = work(channel)
					.catch((err: unknown) => deps.log.error({ err, channel }, "alert worker failed"))
					.finally(() => {
						busy.delete(channel);
						setImmediate(() => void tick());
					});
				busy.set(channel, job);
			}
			if (busy.size === 0 && (await deps.store.dueChannels()).length === 0) for (const w of waiters.splice(0)) w();
		} catch (err) {
			deps.log.error({ err }, "alert delivery could not read the outbox");
		} finally {
			ticking = false;
		}
	}

	const timer = setInterval(() => void tick(), deps.pollMs ?? 250);
	return {
		kick: () => setImmediate(() => void tick()),
		drained: () =>
			new Promise<void>((resolve) => {
				waiters.push(resolve);
				void tick();
			}),
		async stop() {
			stopped = true;
			clearInterval(timer);
			await Promise.allSettled([...busy.values()]);
			waiters.forEach((w) => w());
			waiters = [];
		},
	};
}
