import type { Logger } from "../log.ts";
import { truncate } from "../render/limits.ts";
import { type AcceptJob, acceptJob, type GroupWrite } from "./group-machine.ts";
import { groupEnvironment, groupName, groupSeverity } from "./group-report.ts";
import type { RouteTarget } from "./routing.ts";
import type { WebhookPayload } from "./schema.ts";

// The history of alert group episodes: one row per episode (what history and /alerts read) and an
// append-only event log per episode (what a timeline lists). Written by the alert store in the same
// transaction as the notification that caused it, and by the buttons after the action they record.
// The model and the pure decisions live here; the two backends in episodes-sqlite.ts and episodes-pg.ts.

/** What happened in an episode. */
export type EpisodeEventKind =
	| "fired"
	| "joined"
	| "alerts_resolved"
	| "acknowledged"
	| "unacknowledged"
	| "silenced"
	| "unsilenced"
	| "restart"
	| "logs"
	| "resolved";

/** One alert as an event keeps it: its identity, state, times and labels (bounded). */
export interface AlertFact {
	readonly fingerprint: string;
	readonly status: "firing" | "resolved";
	readonly startsAt: string;
	readonly endsAt: string;
	readonly labels: Readonly<Record<string, string>>;
}

/** Who did something: a Discord user. */
export interface EventActor {
	readonly userId: string;
	readonly username: string;
}

/** An event as it is recorded; `details` depends on the kind (see EventDetails). */
export interface NewEpisodeEvent {
	readonly groupId: string;
	readonly episode: number;
	readonly at: number;
	readonly kind: EpisodeEventKind;
	readonly actor: EventActor | null;
	readonly details: EventDetails;
}

/** A stored event. */
export interface EpisodeEvent extends NewEpisodeEvent {
	readonly id: number;
}

/** What an event says beyond its kind, actor and time. Every field optional: events of older opsbots may lack any. */
export interface EventDetails {
	/** fired, joined, alerts_resolved, resolved: the alerts concerned (at most EVENT_ALERTS of them) … */
	readonly alerts?: readonly AlertFact[];
	/** … and how many there were in all. */
	readonly alertCount?: number;
	/** fired: the episode before this one of the same group, if any. */
	readonly previousEpisode?: number;
	/** resolved: how long the episode lasted (ms), from its first alert's start to its last alert's end. */
	readonly durationMs?: number;
	/** silenced, unsilenced. */
	readonly silenceId?: string;
	readonly until?: number;
	readonly matchers?: readonly { readonly name: string; readonly value: string }[];
	readonly comment?: string;
	/** restart. */
	readonly environment?: string;
	readonly host?: string;
	readonly container?: string;
	/** restart, unsilenced: "ok", "failed: exit 1", "already gone"… */
	readonly result?: string;
	readonly exitCode?: number | null;
	/** restart: its output (stdout then stderr), at most OUTPUT_KEPT characters. */
	readonly output?: string;
	/** logs: what was searched. */
	readonly service?: string;
	readonly from?: number;
	readonly to?: number;
	readonly lines?: number;
}

/** One episode of a group, as history and /alerts list it. */
export interface Episode {
	readonly groupId: string;
	readonly episode: number;
	readonly channel: string;
	readonly name: string;
	readonly environment: string | null;
	readonly severity: string | null;
	/** When its first alert started (the alerts' own startsAt, ms). */
	readonly startedAt: number;
	/** When its last alert ended (the alerts' own endsAt), or null while it fires. */
	readonly endedAt: number | null;
	/** The first acknowledgement (a later un-acknowledge does not undo when it was first taken). */
	readonly ackedAt: number | null;
	readonly ackedBy: string | null;
	/** How many of its alerts fire, of how many it has had (as far as opsbot tracks them: TRACKED_ALERTS). */
	readonly firingAlerts: number;
	readonly alertCount: number;
	readonly eventCount: number;
}

/** A firing episode with what people did about it (the group's current state), for /alerts. */
export interface FiringEpisode extends Episode {
	readonly ack: { readonly username: string; readonly at: number } | null;
	readonly silence: { readonly username: string; readonly until: number } | null;
	/** The group's message for this episode, once posted. */
	readonly messageId: string | null;
}

/** How many groups fire in one environment at one severity. */
export interface FiringCount {
	readonly environment: string | null;
	readonly severity: string | null;
	readonly groups: number;
}

/** One page of what fires now, and the counts of all that match. */
export interface FiringPage {
	readonly total: number;
	readonly counts: readonly FiringCount[];
	readonly episodes: readonly FiringEpisode[];
}

export interface FiringFilter {
	readonly environment?: string;
	/** Lower case. */
	readonly severity?: string;
	/** Part of the alert name, any case. */
	readonly name?: string;
}

export interface HistoryQuery {
	readonly since: number;
	readonly until: number;
	/** Part of the alert name, any case. */
	readonly name?: string;
	/** How many of the latest episodes to list (the figures cover all of them). */
	readonly limit: number;
}

/** A group that fired again and again in the range. */
export interface FlappingGroup {
	readonly groupId: string;
	readonly name: string;
	readonly environment: string | null;
	readonly episodes: number;
}

/** What `/alerts history` and `opsbot alerts --history` show. */
export interface HistorySummary {
	readonly since: number;
	readonly until: number;
	readonly total: number;
	readonly acknowledged: number;
	readonly resolved: number;
	/** Mean time from start to first acknowledgement over acknowledged episodes (ms), or null. */
	readonly meanTimeToAckMs: number | null;
	/** Mean duration of resolved episodes (ms), or null. */
	readonly meanTimeToResolveMs: number | null;
	readonly byName: readonly { readonly name: string; readonly episodes: number; readonly firing: number }[];
	readonly flapping: readonly FlappingGroup[];
	/** The latest episodes, newest first. */
	readonly episodes: readonly Episode[];
}

/** opsbot's durable incident history, in the alert store's database. */
export interface EpisodeHistory {
	/** Appends an event of a person's action; an acknowledgement also sets the episode's first ack. */
	record(event: NewEpisodeEvent): Promise<void>;
	/** The group's episode (its latest when `episode` is undefined), or undefined. */
	episode(groupId: string, episode?: number): Promise<Episode | undefined>;
	/** The episode's events in order, at most `limit`. */
	events(groupId: string, episode: number, limit: number): Promise<EpisodeEvent[]>;
	/** What fires now, worst severity first, then newest: one page, and how many match in all. */
	firing(filter: FiringFilter, offset: number, limit: number): Promise<FiringPage>;
	history(query: HistoryQuery): Promise<HistorySummary>;
	/** The group and episode whose card is message `messageId` (the current episode's card of a group), or undefined. */
	findCard(messageId: string): Promise<{ groupId: string; episode: number } | undefined>;
	/** Events recorded after event `afterId`, in order, at most `limit` (what thread posting follows). */
	eventsAfter(afterId: number, limit: number): Promise<EpisodeEvent[]>;
	/** The id of the newest event, or 0. */
	lastEventId(): Promise<number>;
	/** Deletes up to `batch` episodes that ended before `before`, with their events; returns how many. */
	prune(before: number, batch: number): Promise<number>;
}

/** Alerts an event lists; the rest are counted. */
export const EVENT_ALERTS = 20;
/** Alerts an episode keeps track of (joined, resolved) beyond which only the count is known. */
export const TRACKED_ALERTS = 200;
/** Events one episode keeps; later ones are not stored (a resolution always is). */
export const MAX_EPISODE_EVENTS = 2_000;
/** Restart output an event keeps. */
export const OUTPUT_KEPT = 16_000;
/** Labels per alert an event keeps, and characters per label value. */
const LABELS_KEPT = 24;
const LABEL_VALUE_KEPT = 200;
/** A group with at least this many episodes in a history's range is flapping. */
export const FLAPPING_EPISODES = 3;

/** What a storm summary lists of a firing group; its episode's row keeps the same (store.ts: FiringGroup). */
export interface ListedFacts {
	readonly name: string;
	readonly environment: string | null;
	readonly severity: string | null;
	/** Its alerts firing now: all of them, not only the tracked ones. */
	readonly firing: number;
}

/** What the store needs of a webhook for the history: computed once from the parsed payload, before the commit. */
export interface EpisodeFacts extends ListedFacts {
	readonly alertCount: number;
	/** The first TRACKED_ALERTS alerts. */
	readonly alerts: readonly AlertFact[];
}

function alertFact(alert: WebhookPayload["alerts"][number]): AlertFact {
	const labels: Record<string, string> = {};
	for (const [name, value] of Object.entries(alert.labels).slice(0, LABELS_KEPT))
		labels[truncate(name, 100)] = truncate(value, LABEL_VALUE_KEPT);
	return {
		fingerprint: alert.fingerprint,
		status: alert.status,
		startsAt: alert.startsAt,
		endsAt: alert.endsAt,
		labels,
	};
}

export function listedFacts(payload: WebhookPayload): ListedFacts {
	return {
		name: truncate(groupName(payload), 200),
		environment: groupEnvironment(payload) ?? null,
		severity: groupSeverity(payload) || null,
		firing: payload.alerts.filter((a) => a.status === "firing").length,
	};
}

/**
 * A firing group's ListedFacts as a store reads them: its current episode's columns, or its payload's when the
 * episode has no row (state written before the history existed).
 */
export function firingGroupFacts(
	row: { name: string | null; environment: string | null; severity: string | null; firing_alerts: number | null },
	payload: () => WebhookPayload,
): ListedFacts {
	if (row.name === null) return listedFacts(payload());
	return { name: row.name, environment: row.environment, severity: row.severity, firing: row.firing_alerts ?? 0 };
}

export function episodeFacts(payload: WebhookPayload): EpisodeFacts {
	return {
		...listedFacts(payload),
		alertCount: payload.alerts.length,
		alerts: payload.alerts.slice(0, TRACKED_ALERTS).map(alertFact),
	};
}

/** A webhook as a store's group commit takes it: what accept decides on, and what the history needs of it. */
export interface HistoryJob extends AcceptJob {
	readonly facts: EpisodeFacts;
}

/** Everything of a webhook that needs no database, worked out before it joins a group commit. */
export function historyJob(payload: WebhookPayload, targets: readonly RouteTarget[], now: number): HistoryJob {
	return { ...acceptJob(payload, targets, now), facts: episodeFacts(payload) };
}

/** A group's new state after a notification (or a resolution by hand), as the history hears it. */
export interface GroupChange {
	readonly groupId: string;
	readonly channel: string;
	readonly episode: number;
	readonly status: "firing" | "resolved";
	readonly firstFiringAt: number;
	readonly facts: EpisodeFacts;
	readonly at: number;
}

/** The changes a group commit's plan makes, with each group's facts from the webhook it now shows. */
export function acceptedChanges(
	groups: readonly GroupWrite[],
	jobs: readonly { readonly facts: EpisodeFacts; readonly now: number }[],
): GroupChange[] {
	return groups.map((g) => ({
		groupId: g.id,
		channel: g.channel,
		episode: g.episode,
		status: g.status,
		firstFiringAt: g.firstFiringAt,
		facts: jobs[g.job]!.facts,
		at: jobs[g.job]!.now,
	}));
}

/** What the history holds of a group's latest episode, that a change is compared with. */
export interface StoredEpisode {
	readonly episode: number;
	readonly endedAt: number | null;
	/** Fingerprint -> "f" (firing) or "r" (resolved). */
	readonly alerts: Readonly<Record<string, "f" | "r">>;
	readonly eventCount: number;
}

/** A row of the episodes table to insert or update. */
export interface EpisodeWrite {
	readonly groupId: string;
	readonly episode: number;
	readonly insert: boolean;
	readonly channel: string;
	readonly name: string;
	readonly environment: string | null;
	readonly severity: string | null;
	readonly startedAt: number;
	readonly endedAt: number | null;
	readonly alerts: Record<string, "f" | "r">;
	readonly firingAlerts: number;
	readonly alertCount: number;
	readonly eventCount: number;
}

/** What a batch of group changes writes to the history. */
export interface HistoryWrites {
	readonly episodes: readonly EpisodeWrite[];
	/** Earlier episodes a new one ended without a resolved notification (e.g. both in one group commit). */
	readonly closed: readonly { readonly groupId: string; readonly episode: number; readonly endedAt: number }[];
	readonly events: readonly NewEpisodeEvent[];
}

const ZERO_TIME = /^0001-/;

/** When the episode ended: the latest end of its alerts (their own endsAt), not when opsbot heard of it. */
function episodeEnd(facts: EpisodeFacts, startedAt: number, fallback: number): number {
	let end = Number.NEGATIVE_INFINITY;
	for (const alert of facts.alerts) {
		const at = ZERO_TIME.test(alert.endsAt) ? Number.NaN : Date.parse(alert.endsAt);
		if (Number.isFinite(at) && at > end) end = at;
	}
	return Number.isFinite(end) ? Math.max(end, startedAt) : Math.max(fallback, startedAt);
}

function listed(alerts: readonly AlertFact[]): Pick<EventDetails, "alerts" | "alertCount"> {
	return { alerts: alerts.slice(0, EVENT_ALERTS), alertCount: alerts.length };
}

/**
 * The history rows and events a batch of group changes writes, given each group's latest stored
 * episode. Pure: both stores call it inside the transaction that writes the changes.
 */
export function historyWrites(
	changes: readonly GroupChange[],
	stored: ReadonlyMap<string, StoredEpisode>,
): HistoryWrites {
	const episodes: EpisodeWrite[] = [];
	const closed: { groupId: string; episode: number; endedAt: number }[] = [];
	const events: NewEpisodeEvent[] = [];
	for (const c of changes) {
		const before = stored.get(c.groupId);
		const same = before?.episode === c.episode ? before : undefined;
		const alerts: Record<string, "f" | "r"> = { ...(same?.alerts ?? {}) };
		let eventCount = same?.eventCount ?? 0;
		const event = (kind: EpisodeEventKind, details: EventDetails) => {
			// A flapping alert must not grow an episode's log without end; the resolution is always kept.
			if (eventCount >= MAX_EPISODE_EVENTS && kind !== "resolved") return;
			eventCount++;
			events.push({ groupId: c.groupId, episode: c.episode, at: c.at, kind, actor: null, details });
		};
		if (before && before.episode < c.episode && before.endedAt === null)
			closed.push({ groupId: c.groupId, episode: before.episode, endedAt: Math.max(c.firstFiringAt, 0) });
		const firing = c.facts.alerts.filter((a) => a.status === "firing");
		if (!same) {
			event("fired", {
				...listed(firing.length > 0 ? firing : c.facts.alerts),
				...(before ? { previousEpisode: before.episode } : {}),
			});
		} else {
			const joined = firing.filter((a) => alerts[a.fingerprint] !== "f");
			const ended = c.facts.alerts.filter((a) => a.status === "resolved" && alerts[a.fingerprint] === "f");
			if (joined.length > 0) event("joined", listed(joined));
			if (ended.length > 0 && c.status === "firing") event("alerts_resolved", listed(ended));
		}
		for (const a of c.facts.alerts) {
			if (a.fingerprint in alerts || Object.keys(alerts).length < TRACKED_ALERTS)
				alerts[a.fingerprint] = a.status === "firing" ? "f" : "r";
		}
		let endedAt: number | null = null;
		if (c.status === "resolved") {
			endedAt = same?.endedAt ?? episodeEnd(c.facts, c.firstFiringAt, c.at);
			if (same?.endedAt == null)
				event("resolved", { ...listed(c.facts.alerts), durationMs: endedAt - c.firstFiringAt });
		}
		episodes.push({
			groupId: c.groupId,
			episode: c.episode,
			insert: !same,
			channel: c.channel,
			name: c.facts.name,
			environment: c.facts.environment,
			severity: c.facts.severity,
			startedAt: c.firstFiringAt,
			endedAt,
			alerts,
			firingAlerts: c.facts.firing,
			alertCount: Math.max(c.facts.alertCount, Object.keys(alerts).length),
			eventCount,
		});
	}
	return { episodes, closed, events };
}

/** Severity order for /alerts: critical (and error) first, then warning, then the rest. */
export function severityOrder(severity: string | null): number {
	return severity === "critical" || severity === "error" ? 0 : severity === "warning" ? 1 : 2;
}

/** How many episodes prune() deletes per batch, and how long the pruner waits between batches. */
export const PRUNE_BATCH = 200;

/**
 * Deletes what the retention no longer keeps, a bounded batch at a time (each its own short
 * transaction, so webhooks are written in between), at most `maxBatches` batches per call.
 */
export async function pruneHistory(
	history: EpisodeHistory,
	days: number,
	now = Date.now(),
	maxBatches = 50,
): Promise<number> {
	let total = 0;
	for (let i = 0; i < maxBatches; i++) {
		const n = await history.prune(now - days * 86_400_000, PRUNE_BATCH);
		total += n;
		if (n < PRUNE_BATCH) break;
		await new Promise((resolve) => setImmediate(resolve));
	}
	return total;
}

/** How often the relay prunes the history. */
const PRUNE_EVERY_MS = 3_600_000;

/** Prunes the history now and every hour; a failure is logged and tried again at the next round. */
export function startHistoryPruning(history: EpisodeHistory, days: number, log: Logger): { stop(): Promise<void> } {
	let running: Promise<void> = Promise.resolve();
	const round = () => {
		running = pruneHistory(history, days).then(
			(n) => void (n > 0 && log.info({ episodes: n, days }, "pruned alert history past its retention")),
			(err: unknown) => log.warn({ err }, "could not prune the alert history; trying again in an hour"),
		);
	};
	round();
	const timer = setInterval(round, PRUNE_EVERY_MS).unref();
	return {
		async stop() {
			clearInterval(timer);
			await running;
		},
	};
}
