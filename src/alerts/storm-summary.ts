import { createHash } from "node:crypto";
import type { Logger } from "../log.ts";
import { renderStormOver, renderStormSummary, type StormView, type SummaryMessage } from "./render.ts";
import {
	failureKind,
	failureOf,
	isFailure,
	MAX_LOCAL_ATTEMPTS,
	type OutcomeSender,
	retryAt,
	type SendFailed,
} from "./rest-sender.ts";
import type { AlertStore, ChannelBacklog, StormSummary } from "./store.ts";
import { stormNonce, stormView } from "./storm.ts";

/**
 * The storm summary's lifecycle in each channel: it starts when a channel's backlog cannot be posted
 * within a few seconds, is posted and then edited at the channel's pace while groups wait (showing
 * what changed), and ends as a short "storm over" record when the backlog drains. Its id and state
 * are in the store, so a restart edits the same message. The worker (delivery.ts) decides when a
 * storm starts and runs the summary's writes between the groups' own.
 */

/** A summary showing nothing new (counts, links, resolutions) is edited at most this often while groups wait. */
export const SUMMARY_REFRESH_MS = 10_000;

/** A channel's storm as this process knows it: the stored summary, and what it last showed. */
export interface ChannelStorm {
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

/** A summary the channel's worker still writes: posted or to be posted, not over. */
export const live = (summary: StormSummary | undefined): summary is StormSummary =>
	summary !== undefined && summary.state !== "over";

/** What a summary shows, to tell whether an edit would change anything. */
function summaryKey(message: SummaryMessage): string {
	const hash = createHash("sha256").update(JSON.stringify(message.embeds));
	for (const file of message.files) hash.update(file.name).update(file.data);
	return hash.digest("base64");
}

/** What the storm summaries need: the store, the worker's paced sender, a log, and the guild for links. */
export interface StormSummaryDeps {
	readonly store: Pick<AlertStore, "stormSummary" | "saveStormSummary" | "firingGroups" | "stormChannels">;
	/** Posts and edits, each paced and counted against its channel's budget by the worker. */
	readonly sender: Pick<OutcomeSender, "post" | "edit">;
	readonly log: Logger;
	readonly guildId?: string | undefined;
}

/** The storm summaries of every channel, as one process knows them. */
export interface StormSummaries {
	/** The channel's storm (read from the store the first time: after a restart, the same summary). */
	of(channel: string): Promise<ChannelStorm>;
	/** Channels with an open storm: their workers run even when nothing is due. */
	channels(): Promise<ReadonlySet<string>>;
	/** Opens a storm in the channel: a summary (not posted yet) that lists every firing group. */
	start(channel: string, storm: ChannelStorm, backlog: ChannelBacklog, now: number): Promise<void>;
	/** The summary's next write (its first post, what changed, or its end), or undefined when none is due. */
	next(
		channel: string,
		storm: ChannelStorm,
		backlog: ChannelBacklog,
		now: number,
	): Promise<(() => Promise<void>) | undefined>;
}

export function stormSummaries(deps: StormSummaryDeps): StormSummaries {
	const { sender } = deps;
	const storms = new Map<string, ChannelStorm>();
	let open: Set<string> | undefined;

	async function stormOf(channel: string): Promise<ChannelStorm> {
		let storm = storms.get(channel);
		if (!storm) {
			const summary = await deps.store.stormSummary(channel);
			// After a restart the summary is edited at the first chance: what it shows may be stale.
			storm = {
				summary,
				shown: undefined,
				sentSince: 1,
				attempts: 0,
				retryAt: 0,
				seen: new Set(live(summary) ? summary.groups : []),
			};
			storms.set(channel, storm);
		}
		return storm;
	}

	async function saveSummary(storm: ChannelStorm, summary: StormSummary): Promise<void> {
		// Kept in memory first: a summary posted while the store cannot be written is edited later, not posted again.
		storm.summary = summary;
		await deps.store.saveStormSummary(summary);
	}

	async function view(channel: string, summary: StormSummary, storm: ChannelStorm): Promise<StormView> {
		return stormView(await deps.store.firingGroups(channel), {
			guildId: deps.guildId,
			channel,
			startedAt: summary.startedAt,
			seen: storm.seen,
		});
	}

	/** Posts the summary (with its nonce, so a post repeated after a crash returns the first one) or edits it. */
	async function writeSummary(
		channel: string,
		storm: ChannelStorm,
		message: SummaryMessage,
	): Promise<{ id: string } | SendFailed> {
		const summary = storm.summary!;
		if (summary.messageId) {
			const edited = await sender.edit(channel, summary.messageId, message);
			if (edited.kind !== "gone") return isFailure(edited) ? edited : { id: summary.messageId };
			// Someone deleted the summary: post a new one (a new nonce, or Discord could hand back the deleted one).
			deps.log.warn({ channel }, "the storm summary was deleted; posting it again");
			try {
				await saveSummary(storm, { ...summary, messageId: null, nonce: stormNonce(channel, Date.now()) });
			} catch (err) {
				// The store failed, not Discord: retried as a failed write (a dropped connection as a transient one).
				return failureOf(err);
			}
		}
		const posted = await sender.post(channel, message, storm.summary!.nonce);
		return isFailure(posted) ? posted : { id: posted.message.id };
	}

	async function summaryFailed(channel: string, storm: ChannelStorm, failed: SendFailed): Promise<void> {
		const log = deps.log.child({ channel, attempts: storm.attempts + 1 });
		const failure = failureKind(failed);
		const err = failed.error;
		if (failure === "refused" || (failure === "local" && storm.attempts + 1 >= MAX_LOCAL_ATTEMPTS)) {
			log.error({ err, failure }, "the storm summary could not be sent; the groups' own messages go on without it");
			await saveSummary(storm, { ...storm.summary!, state: "failed" });
			return;
		}
		if (failure === "local") log.error({ err }, "storm summary failed inside opsbot (a bug, not Discord); will retry");
		else log.warn({ err }, "storm summary not sent; will retry");
		storm.retryAt = retryAt(failed, storm.attempts);
		storm.attempts++;
	}

	/** Sends the summary as rendered from `current`; without its attachment if Discord refuses that. */
	async function sendSummary(
		channel: string,
		storm: ChannelStorm,
		current: StormView,
		rendered: ReturnType<typeof renderStormSummary>,
		key: string,
	): Promise<void> {
		let written = await writeSummary(channel, storm, rendered.message);
		if ("kind" in written) {
			if (written.kind === "retry after" || rendered.message.files.length === 0)
				return summaryFailed(channel, storm, written);
			deps.log.error(
				{ err: written.error, channel, failure: failureKind(written) },
				"the storm summary's full list could not be attached; sending the summary without it",
			);
			rendered = renderStormSummary(current, { withoutAttachments: true });
			written = await writeSummary(channel, storm, rendered.message);
			if ("kind" in written) return summaryFailed(channel, storm, written);
		}
		const messageId = written.id;
		for (const line of current.firing) storm.seen.add(line.groupId);
		await saveSummary(storm, { ...storm.summary!, messageId, groups: [...storm.seen] });
		Object.assign(storm, {
			shown: { key, listed: new Set(rendered.listed), at: Date.now() },
			sentSince: 0,
			attempts: 0,
			retryAt: 0,
		});
	}

	/** The backlog drained: the summary becomes the "storm over" record. */
	async function finishStorm(channel: string, storm: ChannelStorm): Promise<void> {
		const summary = storm.summary!;
		const endedAt = Date.now();
		if (summary.state === "active") {
			const current = await view(channel, summary, storm);
			const written = await writeSummary(channel, storm, renderStormOver(current, endedAt));
			if ("kind" in written) {
				const failure = failureKind(written);
				if (failure === "transient" || (failure === "local" && storm.attempts + 1 < MAX_LOCAL_ATTEMPTS))
					return summaryFailed(channel, storm, written);
				deps.log.error(
					{ err: written.error, channel, failure },
					"the storm summary could not be turned into its 'storm over' record",
				);
			}
		}
		await saveSummary(storm, { ...storm.summary!, state: "over", endedAt, groups: [...storm.seen] });
		open?.delete(channel);
		deps.log.info(
			{ channel, groups: storm.seen.size, seconds: Math.round((endedAt - summary.startedAt) / 1_000) },
			"alert storm over",
		);
	}

	async function start(channel: string, storm: ChannelStorm, backlog: ChannelBacklog, now: number): Promise<void> {
		const summary: StormSummary = {
			channel,
			state: "active",
			messageId: null,
			nonce: stormNonce(channel, now),
			startedAt: now,
			endedAt: null,
			groups: [],
		};
		await saveSummary(storm, summary);
		Object.assign(storm, { shown: undefined, sentSince: 1, attempts: 0, retryAt: 0, seen: new Set() });
		open?.add(channel);
		deps.log.info(
			{ channel, unposted: backlog.unposted },
			"alert storm: a summary lists every firing group until the backlog drains",
		);
	}

	async function next(
		channel: string,
		storm: ChannelStorm,
		backlog: ChannelBacklog,
		now: number,
	): Promise<(() => Promise<void>) | undefined> {
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
					const due =
						summary.messageId === null ||
						backlog.due === 0 ||
						(unseen ? storm.sentSince >= 1 : now - (shown?.at ?? 0) >= SUMMARY_REFRESH_MS);
					if (due) return () => sendSummary(channel, storm, current, rendered, key);
				}
			}
		}
		return undefined;
	}

	return {
		of: stormOf,
		async channels() {
			open ??= new Set(await deps.store.stormChannels());
			return open;
		},
		start,
		next,
	};
}
