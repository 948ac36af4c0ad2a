import type { Logger } from "../log.ts";
import { CONTROL, controlEscape, cutWhole, DISCORD_LIMITS, escapeMarkdown, truncate } from "../render/limits.ts";
import type { EpisodeEvent } from "./episodes.ts";
import { eventSentence } from "./incident-reports.ts";
import { MAX_MESSAGE_FILE_BYTES, type MessageFile, type MessageOutbox } from "./message-outbox.ts";
import type { AlertStore, GroupState } from "./store.ts";

// A thread per alert group episode under its card, fed from the episode's history: every event
// recorded after this process started is posted there through the message outbox (once per event,
// whatever the replicas and restarts), in order. The thread is started on the episode's first action
// by a person, or at once for the severities in alerts.threads.openFor. When Discord refuses the
// thread (no permission, the card gone), the events go as replies on the card instead, said once in
// the log. A resolved episode's thread is archived once its last post is in.

export interface ThreadSettings {
	readonly openFor: readonly string[];
}

/** Archives a thread (Discord: PATCH /channels/{thread} archived). */
export type ArchiveThread = (threadId: string) => Promise<void>;

const threadKey = (groupId: string, episode: number) => `thread:${groupId}:${episode}`;
const postKey = (event: EpisodeEvent) => `thread-event:${event.id}`;

/** How long an event waits for its card to be posted before it is left out of threads. */
const CARD_WAIT_MS = 60_000;
/** While an event waits for its card or thread, a wake looks again at most this often (the timer still does). */
const RECHECK_MS = 250;
/** How many events one round looks at. */
const BATCH = 100;
/** Output lines a restart's post shows; when it shows less than all, the whole kept output is attached. */
const OUTPUT_LINES = 10;
const OUTPUT_CHARS = 1_500;
/** The file a restart's post carries when its excerpt is cut. */
export const RESTART_OUTPUT_FILE = "restart-output.txt";

const restartOutput = (event: EpisodeEvent) => (event.kind === "restart" ? (event.details.output ?? "").trim() : "");
const outputCut = (output: string) => output.split("\n").length > OUTPUT_LINES || output.length > OUTPUT_CHARS;

/** What an event says in its thread: who, what, when (a Discord timestamp), and a restart's first lines. */
export function threadPost(event: EpisodeEvent, previousThread?: string): string {
	const who = event.actor ? `**${escapeMarkdown(truncate(event.actor.username, 40))}** · ` : "";
	const lines = [`${who}${escapeMarkdown(eventSentence(event))} · <t:${Math.floor(event.at / 1000)}:T>`];
	if (previousThread) lines.push(`Previous episode's thread: <#${previousThread}>`);
	const output = restartOutput(event);
	if (output) {
		// Inert in a code block: no backtick can close it, no control character reaches the client.
		const shown = output
			.split("\n")
			.slice(0, OUTPUT_LINES)
			.join("\n")
			.replace(/`/g, "ˋ")
			.replace(CONTROL, controlEscape);
		lines.push(`\`\`\`\n${truncate(shown, OUTPUT_CHARS)}\n\`\`\``);
		if (outputCut(output)) lines.push(`(output cut: all of it is in ${RESTART_OUTPUT_FILE})`);
	}
	return truncate(lines.join("\n"), DISCORD_LIMITS.content);
}

/**
 * The files an event's thread post carries: a restart's whole kept output when the post shows only its
 * start. Control characters are escaped as in the post (a file opened in a terminal runs none of them).
 */
export function threadPostFiles(event: EpisodeEvent): MessageFile[] {
	const output = restartOutput(event);
	if (!output || !outputCut(output)) return [];
	const text = `${output.replace(CONTROL, controlEscape)}\n`;
	// The outbox bounds a message's files; only a far longer kept output could outgrow that (UTF-8 takes
	// at most 3 bytes per UTF-16 unit).
	const bounded =
		Buffer.byteLength(text, "utf8") > MAX_MESSAGE_FILE_BYTES
			? cutWhole(text, Math.floor(MAX_MESSAGE_FILE_BYTES / 3))
			: text;
	return [{ name: RESTART_OUTPUT_FILE, text: bounded }];
}

/**
 * Follows the history and posts to threads. Events recorded while no opsbot ran are in the timeline
 * export, not posted late into threads.
 */
export function startThreadFollower(deps: {
	readonly store: AlertStore;
	readonly messages: MessageOutbox;
	readonly settings: ThreadSettings;
	readonly archive: ArchiveThread;
	readonly log: Logger;
	readonly intervalMs?: number;
}): { wake(): void; stop(): Promise<void> } {
	const { store, messages, settings, log } = deps;
	/** The last event posted (or left out); the next round reads after it. */
	let cursor: number | undefined;
	/** Events read after the cursor and not posted yet, oldest first (at most BATCH). */
	let unposted: EpisodeEvent[] = [];
	/** Whether the page `unposted` came from was full: more events may follow it. */
	let morePages = false;
	/** When a round last stopped at an event waiting for its card or thread; undefined once events move on. */
	let lastStoppedAt: number | undefined;
	/** Episodes whose thread could not be started: said once in the log. */
	const degraded = new Set<string>();
	/** Resolved episodes' threads to archive once the post of their resolution is in. */
	const archiving = new Map<string, string>();
	let running: Promise<void> = Promise.resolve();
	let stopped = false;

	/** The thread of an episode: its id, "reply" when it could not be started, "wait" while queued, undefined: none. */
	async function threadOf(event: EpisodeEvent, group: GroupState): Promise<string | "reply" | "wait" | undefined> {
		const key = threadKey(event.groupId, event.episode);
		let outcome = await messages.outcome(key);
		if (!outcome) {
			const severity = (group.payload.commonLabels.severity ?? "").toLowerCase();
			const wanted = event.actor !== null || (event.kind === "fired" && settings.openFor.includes(severity));
			if (!wanted || !group.messageId) return undefined;
			const name = truncate(`${group.payload.commonLabels.alertname ?? "alert"} · episode ${event.episode}`, 100);
			await messages.enqueue({ kind: "thread", key, channel: group.channel, messageId: group.messageId, name });
			outcome = await messages.outcome(key);
		}
		if (!outcome || outcome.state === "queued") return "wait";
		if (outcome.state === "sent") return outcome.id;
		if (!degraded.has(key)) {
			degraded.add(key);
			log.warn(
				{ groupId: event.groupId, episode: event.episode, reason: outcome.reason },
				"could not start a thread on the alert's card; its events go as replies on the card",
			);
		}
		return "reply";
	}

	/** Posts one event; false when it must wait (its thread is still being started). */
	async function post(event: EpisodeEvent): Promise<boolean> {
		const group = await store.group(event.groupId);
		if (!group || group.episode !== event.episode) return true;
		// The card is not posted yet: wait for it a while (a thread opens under it), then go on without.
		if (!group.messageId) return Date.now() - event.at > CARD_WAIT_MS;
		const thread = await threadOf(event, group);
		if (thread === undefined) return true;
		if (thread === "wait") return false;
		const previous =
			event.kind === "fired" && event.details.previousEpisode
				? await messages.outcome(threadKey(event.groupId, event.details.previousEpisode))
				: undefined;
		const content = threadPost(event, previous?.state === "sent" ? previous.id : undefined);
		const files = threadPostFiles(event);
		await messages.enqueue({
			kind: "post",
			key: postKey(event),
			target: thread === "reply" ? { channel: group.channel, replyTo: group.messageId } : { thread },
			content,
			...(files.length > 0 ? { files } : {}),
		});
		if (event.kind === "resolved" && thread !== "reply") archiving.set(thread, postKey(event));
		return true;
	}

	async function round(): Promise<void> {
		cursor ??= await store.history.lastEventId();
		for (;;) {
			// Events already read wait here while the first one waits for its card: a storm wakes the follower at
			// every group commit, and reading the same page again each time cost more than the commit itself.
			if (unposted.length === 0) {
				unposted = await store.history.eventsAfter(cursor, BATCH);
				morePages = unposted.length === BATCH;
				if (unposted.length === 0) break;
			}
			while (unposted.length > 0) {
				if (!(await post(unposted[0]!))) {
					lastStoppedAt = Date.now();
					return;
				}
				lastStoppedAt = undefined;
				cursor = unposted.shift()!.id;
			}
			if (!morePages) break;
		}
		for (const [thread, key] of archiving) {
			const outcome = await messages.outcome(key);
			if (outcome?.state === "queued") continue;
			archiving.delete(thread);
			if (outcome?.state === "sent")
				await deps.archive(thread).catch((err: unknown) => log.warn({ err, thread }, "could not archive a thread"));
		}
	}

	let busy = false;
	const tick = () => {
		if (stopped || busy) return;
		busy = true;
		running = round()
			.catch((err: unknown) => log.warn({ err }, "could not post the alert history to threads; trying again"))
			.finally(() => (busy = false));
	};
	// The cursor is set at once: only what happens from now on is posted.
	tick();
	const timer = setInterval(tick, deps.intervalMs ?? 1_000).unref();
	return {
		wake() {
			// A storm wakes the follower at every group commit; while the first event waits, only its card can move it on.
			if (lastStoppedAt !== undefined && Date.now() - lastStoppedAt < RECHECK_MS) return;
			tick();
		},
		async stop() {
			stopped = true;
			clearInterval(timer);
			await running;
		},
	};
}
