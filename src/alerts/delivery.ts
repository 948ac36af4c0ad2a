import { createHash } from "node:crypto";
import { DiscordAPIError, Routes, type REST } from "discord.js";
import { classifySendError, type SendFailure } from "../discord/send-failure.ts";
import type { Logger } from "../log.ts";
import { renderAlertGroup, renderStormOver, renderStormSummary, type AlertActions, type AlertMessage, type StormView, type SummaryMessage } from "./render.ts";
import { CHANNEL_BUDGET, createChannelPacer, STORM_AFTER_MS, stormNonce, stormView, type ChannelBudget, type ChannelLimitInfo } from "./storm.ts";
import type { AlertStore, ChannelBacklog, OutboxItem, StormSummary } from "./store.ts";

/** What delivery sends: one group's message, or a channel's storm summary. */
export type OutgoingMessage = AlertMessage | SummaryMessage;

/** How alert messages reach Discord: as the bot, in channels (not webhooks: they must stay editable). */
export interface DiscordSender {
	/** Posts a new message; `nonce` with enforce_nonce makes a repeated post return the first message. */
	post(channel: string, message: OutgoingMessage, nonce: string): Promise<string>;
	edit(channel: string, messageId: string, message: OutgoingMessage): Promise<void>;
	/** Registers `listener` for what Discord's answers say about each channel's message bucket. */
	onChannelLimit?(listener: (channel: string, info: ChannelLimitInfo) => void): void;
}

function body(message: OutgoingMessage) {
	return {
		content: message.content,
		embeds: "embeds" in message ? message.embeds : [message.embed],
		allowed_mentions: message.allowedMentions,
		components: message.components,
		// Listing attachments replaces the old files on edit; an empty list removes them.
		attachments: message.files.map((f, id) => ({ id, filename: f.name })),
	};
}

const CHANNEL_MESSAGES = /\/channels\/(\d+)\/messages/;

/**
 * A sender over discord.js's REST client, which queues per route and waits out 429s itself. It also
 * reports what Discord's rate-limit headers say about each channel's message bucket, so delivery
 * paces itself rather than running into 429s.
 */
export function restSender(rest: REST): DiscordSender {
	const files = (m: OutgoingMessage) => (m.files.length > 0 ? { files: m.files.map((f) => ({ name: f.name, data: f.data })) } : {});
	return {
		async post(channel, message, nonce) {
			const created = (await rest.post(Routes.channelMessages(channel), { body: { ...body(message), nonce, enforce_nonce: true }, ...files(message) })) as { id: string };
			return created.id;
		},
		async edit(channel, messageId, message) {
			await rest.patch(Routes.channelMessage(channel, messageId), { body: body(message), ...files(message) });
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
				listener(channel, { limit: header(response.headers, "x-ratelimit-limit"), remaining: header(response.headers, "x-ratelimit-remaining"), resetAfterMs: resetAfter === undefined ? undefined : resetAfter * 1_000 });
			});
			// discord.js waiting on its own for a bucket it knows to be empty.
			rest.on("rateLimited", (info) => {
				const channel = CHANNEL_MESSAGES.exec(info.url)?.[1];
				if (channel && !info.global) listener(channel, { remaining: 0, resetAfterMs: info.retryAfter });
			});
		},
	};
}

/** The running delivery workers. */
export interface Delivery {
	/** Wakes the workers now (after accept) instead of at the next poll. */
	wake(): void;
	/** Resolves when nothing is due, no channel is being worked on and no storm is still open. */
	drained(): Promise<void>;
	stop(): Promise<void>;
}

/** A local error is retried this many times (it may be passing), then the item is dropped with an error log. */
export const MAX_LOCAL_ATTEMPTS = 5;

/** Retries of 5xx and network errors back off exponentially, capped. */
export function backoffMs(attempts: number): number {
	return Math.min(60_000, 1_000 * 2 ** Math.min(attempts, 6));
}

/** A summary showing nothing new (counts, links, resolutions) is edited at most this often while group messages wait. */
export const SUMMARY_REFRESH_MS = 10_000;

/** What startDelivery needs. */
export interface DeliveryDeps {
	readonly store: AlertStore;
	readonly sender: DiscordSender;
	readonly log: Logger;
	readonly pollMs?: number;
	readonly chart?: (payload: OutboxItem["payload"]) => Promise<Buffer | undefined>;
	readonly actions?: (item: OutboxItem) => AlertActions;
	/** The guild the channels are in, for links from the storm summary to each group's message. */
	readonly guildId?: string | undefined;
	/** Writes per channel and window until Discord's headers tell (default CHANNEL_BUDGET); tests use a fast one. */
	readonly budget?: ChannelBudget;
	/** A storm starts when a channel's unposted firing groups could not all be posted within this (default STORM_AFTER_MS). */
	readonly stormAfterMs?: number;
	/** Told of every failed send, by kind (for /metrics). */
	readonly onFailure?: (failure: SendFailure) => void;
}

/** A channel's storm as this process knows it: the stored summary, and what it last showed. */
interface ChannelStorm {
	summary: StormSummary | undefined;
	/** The summary as this process last sent it: a digest of it, the groups its embeds listed, when. */
	shown: { key: string; listed: ReadonlySet<string>; at: number } | undefined;
	/** Group messages sent since the summary was last sent. */
	sentSince: number;
	/** Failed attempts at sending the summary, and when to try again. */
	attempts: number;
	retryAt: number;
	/** Every group listed during this storm. */
	seen: Set<string>;
}

/** One thing a channel's worker does next: one Discord write (rarely two, e.g. resent without attachments). */
type Step = () => Promise<void>;

/** What a summary shows, to tell whether an edit would change anything. */
function summaryKey(message: SummaryMessage): string {
	const hash = createHash("sha256").update(JSON.stringify(message.embeds));
	for (const file of message.files) hash.update(file.name).update(file.data);
	return hash.digest("base64");
}

const live = (summary: StormSummary | undefined): summary is StormSummary => summary !== undefined && summary.state !== "over";
const isUnknownMessage = (err: unknown) => err instanceof DiscordAPIError && err.code === 10008;
// A worker of a storm with nothing to do looks again after this, unless woken earlier.
const IDLE_MS = 1_000;
const MIN_IDLE_MS = 50;

/**
 * Starts one worker per channel with work. Each paces its channel's writes to the channel's budget
 * (posts and edits together, and what Discord's headers say), so Discord never has to answer 429.
 * It sends firing groups without a message first (critical ones first), then updates and
 * resolutions. When the channel's backlog could not be posted within a few seconds, a storm starts:
 * one summary message lists every firing group and is edited at the channel's pace until the backlog
 * drains, then turns into a short "storm over" record. The summary's id and state are in the store,
 * so a restart edits the same message.
 */
export function startDelivery(deps: DeliveryDeps): Delivery {
	const pacer = createChannelPacer(deps.budget ?? CHANNEL_BUDGET);
	deps.sender.onChannelLimit?.((channel, info) => pacer.learn(channel, info));
	const stormAfterMs = deps.stormAfterMs ?? STORM_AFTER_MS;
	const busy = new Map<string, Promise<void>>();
	const storms = new Map<string, ChannelStorm>();
	let stormChannels: Set<string> | undefined;
	let stopped = false;
	let waiters: (() => void)[] = [];
	// Idle storm workers wake up on wake() and stop(); waits for the budget only on stop().
	const idlers = new Set<() => void>();
	const pauses = new Set<() => void>();

	function sleep(ms: number, sleepers: Set<() => void>): Promise<void> {
		return new Promise((resolve) => {
			const done = () => {
				clearTimeout(timer);
				sleepers.delete(done);
				resolve();
			};
			const timer = setTimeout(done, Math.max(0, ms));
			sleepers.add(done);
		});
	}

	async function paced(channel: string): Promise<void> {
		for (let wait = pacer.delay(channel); wait > 0 && !stopped; wait = pacer.delay(channel)) await sleep(wait, pauses);
	}

	/** The sender, each write paced and counted against its channel's budget. */
	const sender = {
		async post(channel: string, message: OutgoingMessage, nonce: string): Promise<string> {
			await paced(channel);
			const done = pacer.begin(channel);
			try {
				return await deps.sender.post(channel, message, nonce);
			} finally {
				done();
			}
		},
		async edit(channel: string, messageId: string, message: OutgoingMessage): Promise<void> {
			await paced(channel);
			const done = pacer.begin(channel);
			try {
				await deps.sender.edit(channel, messageId, message);
			} finally {
				done();
			}
		},
	};

	/** Edits the group's message, or posts it (again, if someone deleted it); returns the message id. */
	async function send(item: OutboxItem, message: AlertMessage): Promise<string> {
		if (item.messageId) {
			try {
				await sender.edit(item.channel, item.messageId, message);
				return item.messageId;
			} catch (err) {
				// Someone deleted the message: post it again rather than lose the update.
				if (!isUnknownMessage(err)) throw err;
			}
		}
		return sender.post(item.channel, message, item.nonce);
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
		deps.onFailure?.(failure);
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

	async function stormOf(channel: string): Promise<ChannelStorm> {
		let storm = storms.get(channel);
		if (!storm) {
			const summary = await deps.store.stormSummary(channel);
			// After a restart the summary is edited at the first chance: what it shows may be stale.
			storm = { summary, shown: undefined, sentSince: 1, attempts: 0, retryAt: 0, seen: new Set(live(summary) ? summary.groups : []) };
			storms.set(channel, storm);
		}
		return storm;
	}

	async function saveSummary(storm: ChannelStorm, summary: StormSummary): Promise<void> {
		await deps.store.saveStormSummary(summary);
		storm.summary = summary;
	}

	async function view(channel: string, summary: StormSummary, storm: ChannelStorm): Promise<StormView> {
		return stormView(await deps.store.firingGroups(channel), { guildId: deps.guildId, channel, startedAt: summary.startedAt, seen: storm.seen });
	}

	/** Posts the summary (with its nonce, so a post repeated after a crash returns the first one) or edits it; returns its id. */
	async function writeSummary(channel: string, storm: ChannelStorm, message: SummaryMessage): Promise<string> {
		const summary = storm.summary!;
		if (summary.messageId) {
			try {
				await sender.edit(channel, summary.messageId, message);
				return summary.messageId;
			} catch (err) {
				if (!isUnknownMessage(err)) throw err;
				// Someone deleted the summary: post a new one (a new nonce, or Discord could hand back the deleted one).
				deps.log.warn({ channel }, "the storm summary was deleted; posting it again");
				await saveSummary(storm, { ...summary, messageId: null, nonce: stormNonce(channel, Date.now()) });
			}
		}
		return sender.post(channel, message, storm.summary!.nonce);
	}

	async function summaryFailed(channel: string, storm: ChannelStorm, failure: SendFailure, err: unknown): Promise<void> {
		const log = deps.log.child({ channel, attempts: storm.attempts + 1 });
		if (failure === "refused" || (failure === "local" && storm.attempts + 1 >= MAX_LOCAL_ATTEMPTS)) {
			log.error({ err, failure }, "the storm summary could not be sent; the groups' own messages go on without it");
			await saveSummary(storm, { ...storm.summary!, state: "failed" });
			return;
		}
		if (failure === "local") log.error({ err }, "storm summary failed inside opsbot (a bug, not Discord); will retry");
		else log.warn({ err }, "storm summary not sent; will retry");
		storm.retryAt = Date.now() + backoffMs(storm.attempts);
		storm.attempts++;
	}

	/** Sends the summary as rendered from `current`; without its attachment if Discord refuses that. */
	async function sendSummary(channel: string, storm: ChannelStorm, current: StormView, rendered: ReturnType<typeof renderStormSummary>, key: string): Promise<void> {
		let messageId: string;
		try {
			messageId = await writeSummary(channel, storm, rendered.message);
		} catch (err) {
			const failure = classifySendError(err);
			if (failure === "transient" || rendered.message.files.length === 0) return summaryFailed(channel, storm, failure, err);
			deps.log.error({ err, channel, failure }, "the storm summary's full list could not be attached; sending the summary without it");
			rendered = renderStormSummary(current, { withoutAttachments: true });
			try {
				messageId = await writeSummary(channel, storm, rendered.message);
			} catch (err2) {
				return summaryFailed(channel, storm, classifySendError(err2), err2);
			}
		}
		for (const line of current.firing) storm.seen.add(line.groupId);
		await saveSummary(storm, { ...storm.summary!, messageId, groups: [...storm.seen] });
		Object.assign(storm, { shown: { key, listed: new Set(rendered.listed), at: Date.now() }, sentSince: 0, attempts: 0, retryAt: 0 });
	}

	/** The backlog drained: the summary becomes the "storm over" record. */
	async function finishStorm(channel: string, storm: ChannelStorm): Promise<void> {
		const summary = storm.summary!;
		const endedAt = Date.now();
		if (summary.state === "active") {
			const current = await view(channel, summary, storm);
			try {
				await writeSummary(channel, storm, renderStormOver(current, endedAt));
			} catch (err) {
				const failure = classifySendError(err);
				if (failure === "transient" || (failure === "local" && storm.attempts + 1 < MAX_LOCAL_ATTEMPTS)) return summaryFailed(channel, storm, failure, err);
				deps.log.error({ err, channel, failure }, "the storm summary could not be turned into its 'storm over' record");
			}
		}
		await saveSummary(storm, { ...storm.summary!, state: "over", endedAt, groups: [...storm.seen] });
		stormChannels?.delete(channel);
		deps.log.info({ channel, groups: storm.seen.size, seconds: Math.round((endedAt - summary.startedAt) / 1_000) }, "alert storm over");
	}

	/** Decides the channel's next write: start or finish a storm, the summary, or the next group message. */
	async function plan(channel: string, storm: ChannelStorm, backlog: ChannelBacklog, now: number): Promise<Step | undefined> {
		if (!live(storm.summary) && backlog.unposted > pacer.capacity(channel, stormAfterMs, now)) {
			const summary: StormSummary = { channel, state: "active", messageId: null, nonce: stormNonce(channel, now), startedAt: now, endedAt: null, groups: [] };
			await saveSummary(storm, summary);
			Object.assign(storm, { shown: undefined, sentSince: 1, attempts: 0, retryAt: 0, seen: new Set() });
			stormChannels?.add(channel);
			deps.log.info({ channel, unposted: backlog.unposted }, "alert storm: a summary lists every firing group until the backlog drains");
		}
		const summary = storm.summary;
		if (live(summary) && now >= storm.retryAt) {
			if (backlog.pending === 0) return () => finishStorm(channel, storm);
			if (summary.state === "active") {
				const current = await view(channel, summary, storm);
				const rendered = renderStormSummary(current);
				const key = summaryKey(rendered.message);
				const { shown } = storm;
				if (summary.messageId === null || key !== shown?.key) {
					// A firing group neither posted nor listed yet is seen nowhere: list it at the next write but one.
					const unseen = current.firing.some((l) => !l.posted && !shown?.listed.has(l.groupId));
					const due = summary.messageId === null || backlog.due === 0 || (unseen ? storm.sentSince >= 1 : now - (shown?.at ?? 0) >= SUMMARY_REFRESH_MS);
					if (due) return () => sendSummary(channel, storm, current, rendered, key);
				}
			}
		}
		if (backlog.due === 0) return undefined;
		const item = await deps.store.next(channel, now);
		if (!item) return undefined;
		return async () => {
			await deliver(item);
			storm.sentSince++;
		};
	}

	async function work(channel: string): Promise<void> {
		const storm = await stormOf(channel);
		while (!stopped) {
			await paced(channel);
			if (stopped) return;
			const now = Date.now();
			const backlog = await deps.store.backlog(channel, now);
			const step = await plan(channel, storm, backlog, now);
			if (step) {
				await step();
				continue;
			}
			if (!live(storm.summary)) return;
			// A storm with nothing to write now (items waiting for a retry): look again when one is due or a webhook arrives.
			const wake = Math.min(now + IDLE_MS, backlog.nextDueAt ?? Number.POSITIVE_INFINITY, storm.retryAt > now ? storm.retryAt : Number.POSITIVE_INFINITY);
			await sleep(wake - now, idlers);
			// Webhooks can wake it hundreds of times a second: look at most this often.
			await sleep(MIN_IDLE_MS, pauses);
		}
	}

	let ticking = false;
	async function tick(): Promise<void> {
		if (stopped || ticking) return;
		ticking = true;
		try {
			stormChannels ??= new Set(await deps.store.stormChannels());
			for (const channel of new Set([...(await deps.store.dueChannels()), ...stormChannels])) {
				if (busy.has(channel)) continue;
				const job = work(channel)
					.catch((err: unknown) => deps.log.error({ err, channel }, "alert worker failed"))
					.finally(() => {
						busy.delete(channel);
						setImmediate(() => void tick());
					});
				busy.set(channel, job);
			}
			if (busy.size === 0 && stormChannels.size === 0 && (await deps.store.dueChannels()).length === 0) for (const w of waiters.splice(0)) w();
		} catch (err) {
			deps.log.error({ err }, "alert delivery could not read the outbox");
		} finally {
			ticking = false;
		}
	}

	const timer = setInterval(() => void tick(), deps.pollMs ?? 250);
	return {
		wake() {
			for (const wake of [...idlers]) wake();
			setImmediate(() => void tick());
		},
		drained: () =>
			new Promise<void>((resolve) => {
				waiters.push(resolve);
				void tick();
			}),
		async stop() {
			stopped = true;
			clearInterval(timer);
			for (const wake of [...idlers, ...pauses]) wake();
			await Promise.allSettled([...busy.values()]);
			waiters.forEach((w) => w());
			waiters = [];
		},
	};
}
