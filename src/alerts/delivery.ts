import type { SendFailure } from "../discord/send-failure.ts";
import type { Logger } from "../log.ts";
import type { CardClocks } from "./escalation.ts";
import { type MessageFile, type MessageItem, messageNonce } from "./message-outbox.ts";
import { type AlertActions, type AlertMessage, renderAlertGroup } from "./render.ts";
import {
	backoffMs,
	type DiscordSender,
	type Edited,
	failureKind,
	isFailure,
	MAX_LOCAL_ATTEMPTS,
	messageBody,
	type OutgoingMessage,
	type Posted,
	retryAt,
	type SendFailed,
	type SentAttachment,
	withOutcomes,
} from "./rest-sender.ts";
import type { AlertStore, ChannelBacklog, OutboxItem } from "./store.ts";
import { CHANNEL_BUDGET, type ChannelBudget, createChannelPacer, STORM_AFTER_MS } from "./storm.ts";
import { type ChannelStorm, live, stormSummaries } from "./storm-summary.ts";

type AlertWithKept = AlertMessage & { readonly kept?: readonly SentAttachment[] };

/** Shortest time between two wake-ups by the store under a stream of webhooks (the first is immediate). */
const WAKE_MS = 250;

/** The running delivery workers. */
export interface Delivery {
	/** Wakes the workers now instead of at the next poll (the store's onQueued does this for new work). */
	wake(): void;
	/** Resolves when nothing is due, no channel is being worked on and no storm is still open. */
	drained(): Promise<void>;
	stop(): Promise<void>;
}

export { backoffMs, MAX_LOCAL_ATTEMPTS } from "./rest-sender.ts";
export { SUMMARY_REFRESH_MS } from "./storm-summary.ts";

/**
 * A lone new alert waits this long for its chart, so a quick Prometheus gives one message with the
 * chart; past it (or when other groups wait behind it) the message goes without, and an edit adds the
 * chart when it is drawn. Edits never wait.
 */
export const CHART_WAIT_MS = 1_000;

/** Charts kept in memory for their episode's later edits, until a message carries the chart; at most this many. */
const CHART_CACHE = 64;
const CHART_FILE = "chart.png";

/** What startDelivery needs. */
export interface DeliveryDeps {
	readonly store: AlertStore;
	readonly sender: DiscordSender;
	readonly log: Logger;
	readonly pollMs?: number;
	readonly chart?: (payload: OutboxItem["payload"]) => Promise<Buffer | undefined>;
	readonly actions?: (item: OutboxItem) => AlertActions;
	/** What the card shows of its clocks (escalation.ts cardClocks): an expired acknowledgement, an escalation. */
	readonly clocks?: (item: OutboxItem) => CardClocks;
	/** The guild the channels are in, for links from the storm summary to each group's message. */
	readonly guildId?: string | undefined;
	/** Writes per channel and window until Discord's headers tell (default CHANNEL_BUDGET); tests use a fast one. */
	readonly budget?: ChannelBudget;
	/**
	 * A storm starts when a channel's unposted firing groups could not all be posted within this (default STORM_AFTER_MS).
	 */
	readonly stormAfterMs?: number;
	/** Told of every failed send, by kind (for /metrics). */
	readonly onFailure?: (failure: SendFailure) => void;
	/** Told when a channel's delivery stops because the store failed (true), and when it goes on again (false). */
	readonly onPause?: (channel: string, paused: boolean) => void;
	/** How long a lone new alert waits for its chart (default CHART_WAIT_MS). */
	readonly chartWaitMs?: number;
}

/** A chart of one group episode: being drawn, drawn, or none to be had (no expression, Prometheus failed). */
interface EpisodeChart {
	png: Buffer | undefined;
	settled: boolean;
	readonly drawn: Promise<void>;
	/** A message of the episode went out without the chart while it was being drawn: edit it in when drawn. */
	missed: boolean;
}

/** A message Discord accepted whose bookkeeping the store could not write (yet). */
interface Unrecorded {
	readonly itemId: number;
	readonly messageId: string;
	readonly chartAttachment: string | null;
}

/** A channel whose worker stopped on a failure, and when to look again. */
interface Pause {
	attempts: number;
	until: number;
	/** The store could not be written when the worker stopped. */
	storeDown: boolean;
}

/** One thing a channel's worker does next: one Discord write (rarely two, e.g. resent without attachments). */
type Step = () => Promise<void>;

/** The store failed after Discord took a message: not a failed send, so it is never sent again. */
class StoreFailure extends Error {
	override readonly name = "StoreFailure";
}

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
	const chartWaitMs = deps.chartWaitMs ?? CHART_WAIT_MS;
	const busy = new Map<string, Promise<void>>();
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

	/** One Discord write, paced and counted against its channel's budget. */
	async function write<T>(channel: string, send: () => Promise<T>): Promise<T> {
		await paced(channel);
		const done = pacer.begin(channel);
		try {
			return await send();
		} finally {
			done();
		}
	}

	/** The sender's outcomes, each write paced and counted against its channel's budget. */
	const outcomes = withOutcomes(deps.sender);
	const sender = {
		async post(channel: string, message: OutgoingMessage, nonce: string): Promise<Posted | SendFailed> {
			const posted = await write(channel, () => outcomes.post(channel, message, nonce));
			if (posted.kind !== "posted" || !posted.message.stale) return posted;
			// Discord handed back what this nonce posted before (a holder that died before recording it, a
			// timed-out post) and it shows an older version: edit it, rather than record the old one as sent.
			const edited = await write(channel, () => outcomes.edit(channel, posted.message.id, message));
			return edited.kind === "edited"
				? { kind: "posted", message: edited.message }
				: edited.kind === "gone"
					? posted
					: edited;
		},
		edit: (channel: string, messageId: string, message: OutgoingMessage) =>
			write(channel, () => outcomes.edit(channel, messageId, message)),
	};
	const storms = stormSummaries({ store: deps.store, sender, log: deps.log, guildId: deps.guildId });

	/** Sends a message of the message outbox, and records what became of it. */
	async function deliverMessage(item: MessageItem): Promise<void> {
		const { message } = item;
		const post = (files: readonly MessageFile[]) => () =>
			message.kind === "thread"
				? outcomes.startThread(item.channel, message.messageId, message.name, message.autoArchiveMinutes ?? 1440)
				: outcomes.postMessage(item.channel, messageBody({ ...message, files }), messageNonce(item.key), files);
		const files = message.kind === "post" ? (message.files ?? []) : [];
		let sent = await write(item.channel, post(files));
		if (sent.kind === "refused" && files.length > 0) {
			// A file that cannot be attached (no Attach Files permission, too large) never takes the text with it.
			deps.log.error(
				// Not the error itself: it holds the request, files and all.
				{ key: item.key, files: files.map((f) => f.name), failure: failureKind(sent), reason: sent.reason },
				"a queued message's files could not be sent; sending it without them",
			);
			sent = await write(item.channel, post([]));
		}
		if (sent.kind !== "posted") return messageFailed(item, sent);
		try {
			await deps.store.messageSent(item, sent.message.id);
		} catch (err) {
			// Sent again when the store is back: its nonce (or the thread's id) makes Discord hand back the first.
			throw new StoreFailure("the store could not record a sent message", { cause: err });
		}
	}

	async function messageFailed(item: MessageItem, failed: SendFailed): Promise<void> {
		const log = deps.log.child({ key: item.key, channel: item.channel, attempts: item.attempts + 1 });
		const failure = failureKind(failed);
		const err = failed.error;
		deps.onFailure?.(failure);
		if (failed.kind === "refused" || (failed.kind === "failed inside" && item.attempts + 1 >= MAX_LOCAL_ATTEMPTS)) {
			log.error({ err, failure, reason: failed.reason }, "a queued message could not be sent; giving it up");
			await deps.store.messageFailed(item, failed.reason);
			return;
		}
		if (failed.kind === "failed inside")
			log.error({ err }, "a queued message failed inside opsbot (a bug, not Discord); will retry");
		else log.warn({ err }, "a queued message was not sent; will retry");
		await deps.store.retryMessageLater(item, retryAt(failed, item.attempts));
	}

	/**
	 * Edits the group's message, or posts it (again, if someone deleted it). `reposted` renders the
	 * message for a new post: an attachment the deleted message had cannot be kept.
	 */
	async function send(
		item: OutboxItem,
		messageId: string | null,
		message: AlertWithKept,
		reposted: () => AlertMessage,
	): Promise<Posted | Edited | SendFailed> {
		if (messageId) {
			const edited = await sender.edit(item.channel, messageId, message);
			if (edited.kind !== "gone") return edited;
			// Someone deleted the message: post it again rather than lose the update.
			return sender.post(item.channel, reposted(), item.nonce);
		}
		return sender.post(item.channel, message, item.nonce);
	}

	const charts = new Map<string, EpisodeChart>();
	const episodeKey = (item: Pick<OutboxItem, "groupId" | "episode">) => `${item.groupId}:${item.episode}`;

	/**
	 * The episode's chart: drawn once per episode, whatever edits follow; undefined when there is none
	 * (yet). A new one is started only when `start`; its first message waits for it up to `waitMs`.
	 */
	async function chartOf(item: OutboxItem, waitMs: number, start: boolean): Promise<EpisodeChart | undefined> {
		const key = episodeKey(item);
		let chart = charts.get(key);
		if (!chart && deps.chart && start) {
			const entry: EpisodeChart = { png: undefined, settled: false, missed: false, drawn: Promise.resolve() };
			const drawn = deps
				.chart(item.payload)
				.then((png) => void (entry.png = png))
				// A chart that cannot be drawn (Prometheus down, no expression) never holds the alert back.
				.catch((err: unknown) => deps.log.info({ err, groupId: item.groupId }, "no chart for alert"))
				.finally(() => {
					entry.settled = true;
					if (entry.png && entry.missed) void chartReady(item);
				});
			chart = Object.assign(entry, { drawn });
			charts.set(key, chart);
			for (const old of charts.keys()) {
				if (charts.size <= CHART_CACHE) break;
				charts.delete(old);
			}
		}
		if (chart && !chart.settled && waitMs > 0) {
			let timer: NodeJS.Timeout | undefined;
			await Promise.race([chart.drawn, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
			clearTimeout(timer);
		}
		return chart;
	}

	/** A chart drawn after its message went out: an edit through the outbox adds it. */
	async function chartReady(item: OutboxItem): Promise<void> {
		try {
			await deps.store.refresh(item.groupId, item.episode);
			wakeUp();
		} catch (err) {
			deps.log.warn(
				{ err, groupId: item.groupId },
				"the alert's chart is drawn but its edit could not be queued; the next update of the message adds it",
			);
		}
	}

	/** Messages Discord accepted but the store has not recorded, by group episode: never posted again. */
	const unrecorded = new Map<string, Unrecorded>();

	/** Records a sent message; when the store cannot, remembers it so it is recorded later and never sent again. */
	async function record(item: OutboxItem, sent: Unrecorded): Promise<void> {
		const key = episodeKey(item);
		try {
			await deps.store.delivered(item, sent.messageId, sent.chartAttachment);
		} catch (err) {
			unrecorded.set(key, sent);
			throw new StoreFailure("the store could not record a delivered alert message", { cause: err });
		}
		unrecorded.delete(key);
	}

	async function deliver(item: OutboxItem, chartWaitMs: number, chartsAllowed: boolean): Promise<"done" | "retry"> {
		const log = deps.log.child({ groupId: item.groupId, channel: item.channel });
		const earlier = unrecorded.get(episodeKey(item));
		// Sent already, only the store did not say so: record it, never send it again.
		if (earlier && earlier.itemId >= item.id) {
			await record(item, earlier);
			return "done";
		}
		const messageId = item.messageId ?? earlier?.messageId ?? null;
		const firing = item.payload.status === "firing";
		// The chart of the message, once attached, is kept on every edit: not drawn nor uploaded again.
		const attachedId = firing && messageId ? (item.chartAttachment ?? earlier?.chartAttachment ?? null) : null;
		const chart = firing && !attachedId ? await chartOf(item, messageId ? 0 : chartWaitMs, chartsAllowed) : undefined;
		const png = chart?.png;
		const render = (options: { withoutAttachments: boolean; keep: boolean }): AlertWithKept => {
			const keep = options.keep && attachedId !== null && !options.withoutAttachments;
			// The kept chart is drawn already: any bytes make the view show it; the file is not sent again.
			const message = renderAlertGroup(item.payload, {
				firstFiringAt: item.firstFiringAt,
				mentionRole: item.mentionRole,
				chart: keep ? Buffer.alloc(0) : png,
				ack: item.ack,
				silence: item.silence,
				restart: item.restart,
				flaps: item.flaps,
				...(deps.clocks ? { clocks: deps.clocks(item) } : {}),
				...(item.previousMessageId && deps.guildId
					? { previous: { guildId: deps.guildId, channelId: item.channel, messageId: item.previousMessageId } }
					: {}),
				withoutAttachments: options.withoutAttachments,
				...(deps.actions ? { actions: deps.actions(item) } : {}),
			});
			return keep
				? {
						...message,
						files: message.files.filter((f) => f.name !== CHART_FILE),
						kept: [{ id: attachedId, filename: CHART_FILE }],
					}
				: message;
		};
		const message = render({ withoutAttachments: false, keep: true });
		let outcome = await send(item, messageId, message, () => render({ withoutAttachments: false, keep: false }));
		if (isFailure(outcome)) {
			if (outcome.kind === "retry after" || message.files.length === 0) return failed(item, outcome);
			// A picture or list that cannot be attached never takes the alert's text with it.
			log.error(
				{ err: outcome.error, files: message.files.map((f) => f.name), failure: failureKind(outcome) },
				"alert attachments could not be sent; sending the message without them",
			);
			outcome = await send(item, messageId, render({ withoutAttachments: true, keep: false }), () =>
				render({ withoutAttachments: true, keep: false }),
			);
			if (isFailure(outcome)) return failed(item, outcome);
		}
		const sent = outcome.message;
		const chartAttachment = firing ? (sent.attachments.find((a) => a.filename === CHART_FILE)?.id ?? null) : null;
		// Discord has the picture: later edits keep its attachment, so the PNG (~100 KiB) is let go now
		// rather than when 64 newer charts push it out.
		if (chartAttachment) charts.delete(episodeKey(item));
		if (chart && !png && !chartAttachment) {
			if (!chart.settled) chart.missed = true;
			else if (chart.png) void chartReady(item);
		}
		await record(item, { itemId: item.id, messageId: sent.id, chartAttachment });
		return "done";
	}

	async function failed(item: OutboxItem, outcome: SendFailed): Promise<"done" | "retry"> {
		const log = deps.log.child({ groupId: item.groupId, channel: item.channel, attempts: item.attempts + 1 });
		const failure = failureKind(outcome);
		const err = outcome.error;
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
		await deps.store.retryLater(item, retryAt(outcome, item.attempts));
		return "retry";
	}

	/** Decides the channel's next write: start or finish a storm, the summary, or the next group message. */
	async function plan(
		channel: string,
		storm: ChannelStorm,
		backlog: ChannelBacklog,
		now: number,
	): Promise<Step | undefined> {
		if (!live(storm.summary) && backlog.unposted > pacer.capacity(channel, stormAfterMs, now))
			await storms.start(channel, storm, backlog, now);
		const summaryStep = await storms.next(channel, storm, backlog, now);
		if (summaryStep) return summaryStep;
		if (backlog.due === 0) return undefined;
		// Queued messages before cards: they are few, and each is a ping someone waits for or a thread others need.
		const message = backlog.messagesDue > 0 ? await deps.store.nextMessage(channel, now) : undefined;
		if (message) return () => deliverMessage(message);
		const item = await deps.store.next(channel, now);
		if (!item) return undefined;
		// Charts neither hold back a burst (a lone new alert waits a moment for its chart; others go at
		// once and get it by an edit) nor are drawn during a storm, when Prometheus is likely busy too.
		const calm = !live(storm.summary);
		return async () => {
			await deliver(item, calm && backlog.unposted <= 1 ? chartWaitMs : 0, calm);
			storm.sentSince++;
		};
	}

	async function work(channel: string): Promise<void> {
		const storm = await storms.of(channel);
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
			const wake = Math.min(
				now + IDLE_MS,
				backlog.nextDueAt ?? Number.POSITIVE_INFINITY,
				storm.retryAt > now ? storm.retryAt : Number.POSITIVE_INFINITY,
			);
			await sleep(wake - now, idlers);
			// Webhooks can wake it hundreds of times a second: look at most this often.
			await sleep(MIN_IDLE_MS, pauses);
		}
	}

	const paused = new Map<string, Pause>();

	/** A channel's worker failed (the store, mostly): the channel stops, and is looked at again after a backoff. */
	async function workerFailed(channel: string, err: unknown): Promise<void> {
		const storeUp = await deps.store.writable().catch(() => false);
		const pause = paused.get(channel) ?? { attempts: 0, until: 0, storeDown: false };
		const first = pause.attempts === 0 || pause.storeDown !== !storeUp;
		Object.assign(pause, {
			attempts: pause.attempts + 1,
			until: Date.now() + backoffMs(pause.attempts),
			storeDown: !storeUp,
		});
		paused.set(channel, pause);
		deps.onPause?.(channel, true);
		const log = deps.log.child({ channel, attempts: pause.attempts, retryInMs: pause.until - Date.now() });
		if (!first) log.debug({ err }, "alert delivery still stopped in this channel");
		else if (!storeUp) {
			log.error(
				{ err },
				"alert delivery stopped in this channel: the alert store cannot be written (disk full or read-only?); " +
					"nothing is posted until it can, then delivery goes on",
			);
		} else log.error({ err }, "alert delivery failed in this channel; trying again later");
	}

	/** Whether a stopped channel may go on: its backoff is over and, if the store was down, it is writable again. */
	async function mayResume(channel: string, pause: Pause): Promise<boolean> {
		if (Date.now() < pause.until) return false;
		if (pause.storeDown && !(await deps.store.writable().catch(() => false))) {
			Object.assign(pause, { attempts: pause.attempts + 1, until: Date.now() + backoffMs(pause.attempts) });
			deps.log.debug(
				{ channel, attempts: pause.attempts },
				"the alert store still cannot be written; delivery in this channel stays stopped",
			);
			return false;
		}
		return true;
	}

	async function run(channel: string): Promise<void> {
		const pause = paused.get(channel);
		if (pause && !(await mayResume(channel, pause))) return;
		try {
			await work(channel);
		} catch (err) {
			if (!stopped) await workerFailed(channel, err);
			return;
		}
		if (pause) {
			paused.delete(channel);
			deps.onPause?.(channel, false);
			deps.log.info({ channel }, "alert delivery goes on in this channel");
		}
	}

	let ticking = false;
	async function tick(): Promise<void> {
		if (stopped || ticking) return;
		ticking = true;
		try {
			const stormChannels = await storms.channels();
			for (const channel of new Set([...(await deps.store.dueChannels()), ...stormChannels, ...paused.keys()])) {
				if (busy.has(channel) || (paused.get(channel)?.until ?? 0) > Date.now()) continue;
				const job = run(channel)
					.catch((err: unknown) => deps.log.error({ err, channel }, "alert worker failed"))
					.finally(() => {
						busy.delete(channel);
						if (!paused.has(channel)) setImmediate(() => void tick());
					});
				busy.set(channel, job);
			}
			if (busy.size === 0 && stormChannels.size === 0 && (await deps.store.dueChannels()).length === 0)
				for (const w of waiters.splice(0)) w();
		} catch (err) {
			deps.log.error({ err }, "alert delivery could not read the outbox");
		} finally {
			ticking = false;
		}
	}

	function wakeUp(): void {
		for (const wake of [...idlers]) wake();
		setImmediate(() => void tick());
	}

	// The store says when it queued something: delivery looks at once, then at most every WAKE_MS while more
	// comes (each look re-reads the outbox; one per webhook would be a thousand a second).
	let wakeTimer: NodeJS.Timeout | undefined;
	let wakeAgain = false;
	const wakeLater = () => {
		wakeTimer = setTimeout(() => {
			wakeTimer = undefined;
			if (!wakeAgain) return;
			wakeAgain = false;
			wakeUp();
			wakeLater();
		}, WAKE_MS);
	};
	const unsubscribe = deps.store.onQueued(() => {
		if (wakeTimer) {
			wakeAgain = true;
			return;
		}
		wakeUp();
		wakeLater();
	});

	const timer = setInterval(() => void tick(), deps.pollMs ?? 250);
	return {
		wake: wakeUp,
		drained: () =>
			new Promise<void>((resolve) => {
				waiters.push(resolve);
				void tick();
			}),
		async stop() {
			stopped = true;
			unsubscribe();
			clearTimeout(wakeTimer);
			clearInterval(timer);
			for (const wake of [...idlers, ...pauses]) wake();
			await Promise.allSettled([...busy.values()]);
			for (const w of waiters) w();
			waiters = [];
		},
	};
}
