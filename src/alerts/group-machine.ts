import { createHash } from "node:crypto";
import type { RouteTarget } from "./routing.ts";
import type { WebhookPayload } from "./schema.ts";

// What a webhook does to an alert group, decided once for every store: a store reads the heads of the
// groups a batch of webhooks touches, asks planAccepts() what to write, and writes it. No I/O here.

/** A group's status: that of the last notification it got. */
export type GroupStatus = WebhookPayload["status"];

/** What accept() did with a webhook. */
export interface AcceptResult {
	readonly queued: number;
	/** Retries and HA duplicates: same group, same alerts and statuses. */
	readonly duplicates: number;
}

/** The alerts and their statuses that make a notification what it is (AlertManager retries repeat it exactly). */
export function payloadSignature(payload: WebhookPayload): string {
	const alerts = payload.alerts.map((a) => `${a.fingerprint}:${a.status}`).sort();
	return createHash("sha256")
		.update(JSON.stringify([payload.status, payload.truncatedAlerts, alerts]))
		.digest("hex");
}

/** The store's key for one group in one channel. */
export function groupId(receiver: string, groupKey: string, channel: string): string {
	return createHash("sha256").update(`${receiver}\u0000${groupKey}\u0000${channel}`).digest("hex").slice(0, 32);
}

/**
 * The notification AlertManager would send once every alert of the group ended at `now` (alerts already resolved keep
 * their end).
 */
export function resolvedPayload(payload: WebhookPayload, now: number): WebhookPayload {
	const endsAt = new Date(now).toISOString();
	return {
		...payload,
		status: "resolved",
		alerts: payload.alerts.map((a) => (a.status === "resolved" ? a : { ...a, status: "resolved" as const, endsAt })),
	};
}

/**
 * Where a group's first post stands in its channel's queue: 0 for critical, 1 for anything else
 * (case-insensitive, as the SQL it replaced). Kept in a column so next() orders without reading payloads.
 */
export function severityRank(payload: WebhookPayload): number {
	return payload.commonLabels.severity?.toLowerCase() === "critical" ? 0 : 1;
}

/** When the group's first firing alert started (ms), or `now` when none fires or none has a readable start. */
function firstStart(payload: WebhookPayload, now: number): number {
	let first = Number.POSITIVE_INFINITY;
	for (const alert of payload.alerts) {
		if (alert.status !== "firing") continue;
		const at = Date.parse(alert.startsAt);
		if (at < first) first = at;
	}
	return Number.isFinite(first) ? first : now;
}

/** One notification of a group, as accept decides on it. */
export interface Notification {
	readonly status: GroupStatus;
	readonly signature: string;
	/** When the group's first firing alert started (ms). */
	readonly startedAt: number;
}

/**
 * What a store needs of a webhook to accept it. Not the parsed payload: a 100-alert group is a few
 * hundred KB of objects, and a batch waiting for its commit would hold every one of them.
 */
export interface AcceptJob extends Notification {
	readonly receiver: string;
	readonly groupKey: string;
	readonly targets: readonly RouteTarget[];
	readonly now: number;
	readonly severityRank: number;
	/** The payload as stored and delivered. */
	readonly json: string;
}

/** The part of accept() that needs no database, the same for every store. */
export function acceptJob(payload: WebhookPayload, targets: readonly RouteTarget[], now: number): AcceptJob {
	return {
		receiver: payload.receiver,
		groupKey: payload.groupKey,
		status: payload.status,
		targets,
		now,
		signature: payloadSignature(payload),
		startedAt: firstStart(payload, now),
		severityRank: severityRank(payload),
		json: JSON.stringify(payload),
	};
}

/** How far back a card counts its flaps ("flapped 3× in the last hour"); older ones are forgotten. */
export const FLAP_HISTORY_MS = 3_600_000;

/** How a store decides on episodes. */
export interface AcceptPolicy {
	/**
	 * A group that fires again within this long of resolving re-opens its card (a flap) instead of
	 * starting a new episode (alerts.regroupMinutes). 0: every re-fire is a new episode.
	 */
	readonly regroupMs: number;
}

export const NO_REGROUP: AcceptPolicy = { regroupMs: 0 };

/** A group's current episode as the store holds it: all accept decides on. `Row` names an outbox row. */
export interface GroupHead<Row = number> {
	readonly episode: number;
	readonly status: GroupStatus;
	readonly firstFiringAt: number;
	/** When the episode last resolved (ms), while it is resolved; null (or absent) while it fires. */
	readonly resolvedAt?: number | null;
	/** When it flapped (re-opened within the regroup window), within FLAP_HISTORY_MS. */
	readonly flaps?: readonly number[];
	/** payloadSignature() of the last notification. */
	readonly signature: string;
	/**
	 * The episode's outbox rows not delivered yet, oldest first. The oldest holds the episode's place in
	 * its channel's order; next() sends the newest.
	 */
	readonly undelivered: readonly Row[];
}

/** What one notification does to a group. */
export type Transition<Row = number> =
	/** A retry, or the same notification from another AlertManager of an HA pair: nothing to write. */
	| { readonly kind: "duplicate" }
	| {
			/**
			 * open: a group not seen before; update: the current episode changed; reopen: it fires again after
			 * resolving (a new episode); flap: it fires again within the regroup window (the same episode re-opens).
			 */
			readonly kind: "open" | "update" | "reopen" | "flap";
			readonly episode: number;
			readonly status: GroupStatus;
			readonly firstFiringAt: number;
			readonly signature: string;
			readonly resolvedAt: number | null;
			readonly flaps: readonly number[];
			/** Clear acknowledgement, silence and restart: they were about the previous episode. */
			readonly resetActions: boolean;
			/** Undelivered rows of the episode that stay: the oldest, which keeps the episode's place. */
			readonly keep: readonly Row[];
			/**
			 * Undelivered rows the new one makes pointless (mark them done): neither the episode's place nor
			 * its newest payload, they would never be sent. So an episode keeps at most two undelivered rows
			 * however many webhooks arrive. Safe while one is being sent: delivered() marks done up to the
			 * row it sent, and the newest stays.
			 */
			readonly supersede: readonly Row[];
	  };

/**
 * What a notification received at `now` does to a group (undefined: not stored yet). Every transition
 * but a duplicate queues one outbox row for its episode.
 */
export function transition<Row>(
	head: GroupHead<Row> | undefined,
	n: Notification,
	now: number,
	policy: AcceptPolicy = NO_REGROUP,
): Transition<Row> {
	const resolvedAt = n.status === "resolved" ? now : null;
	if (!head)
		return {
			kind: "open",
			episode: 1,
			status: n.status,
			firstFiringAt: n.startedAt,
			signature: n.signature,
			resolvedAt,
			flaps: [],
			resetActions: false,
			keep: [],
			supersede: [],
		};
	if (head.signature === n.signature) return { kind: "duplicate" };
	const flaps = (head.flaps ?? []).filter((at) => now - at < FLAP_HISTORY_MS);
	if (head.status === "resolved" && n.status === "firing") {
		const resolved = head.resolvedAt ?? Number.NEGATIVE_INFINITY;
		// Fired again soon after resolving: the same card re-opens, counted, with what people did on it.
		if (now - resolved < policy.regroupMs)
			return {
				kind: "flap",
				episode: head.episode,
				status: n.status,
				firstFiringAt: head.firstFiringAt,
				signature: n.signature,
				resolvedAt: null,
				flaps: [...flaps, now],
				resetActions: false,
				keep: head.undelivered.slice(0, 1),
				supersede: head.undelivered.slice(1),
			};
		// Later, a new episode: a new message, unacknowledged and unsilenced. The previous episode's
		// undelivered rows (its resolution) are another episode's: they stay.
		return {
			kind: "reopen",
			episode: head.episode + 1,
			status: n.status,
			firstFiringAt: n.startedAt,
			signature: n.signature,
			resolvedAt: null,
			flaps: [],
			resetActions: true,
			keep: [],
			supersede: [],
		};
	}
	return {
		kind: "update",
		episode: head.episode,
		status: n.status,
		firstFiringAt: Math.min(head.firstFiringAt, n.startedAt),
		signature: n.signature,
		// A resolved episode's second resolved notification keeps the first one's time.
		resolvedAt: head.status === "resolved" && n.status === "resolved" ? (head.resolvedAt ?? now) : resolvedAt,
		flaps,
		resetActions: false,
		keep: head.undelivered.slice(0, 1),
		supersede: head.undelivered.slice(1),
	};
}

/** The new state of one group a batch of webhooks changed. */
export interface GroupWrite {
	readonly id: string;
	readonly channel: string;
	/** Not stored before the batch: inserted, not updated. */
	readonly created: boolean;
	readonly mentionRole: string | null;
	readonly episode: number;
	readonly status: GroupStatus;
	readonly firstFiringAt: number;
	readonly signature: string;
	readonly severityRank: number;
	/** When the episode resolved (ms), null while it fires. */
	readonly resolvedAt: number | null;
	/** Its flaps within FLAP_HISTORY_MS. */
	readonly flaps: readonly number[];
	/** Clear acknowledgement, silence and restart: a new episode started during the batch. */
	readonly resetActions: boolean;
	/** The webhook (its index in the batch) whose payload the group now shows. */
	readonly job: number;
}

/** An outbox row to insert: the payload of webhook `job` for one episode of a group. */
export interface OutboxWrite {
	readonly groupId: string;
	readonly episode: number;
	readonly job: number;
	readonly at: number;
}

/** What a batch of webhooks writes, as if each were accepted alone, in arrival order. */
export interface AcceptPlan {
	/** Per webhook, what accept() answers. */
	readonly results: readonly AcceptResult[];
	/** The groups the batch changed, in the order it first touched them. */
	readonly groups: readonly GroupWrite[];
	/** Stored outbox rows to mark done (superseded). */
	readonly supersede: readonly number[];
	/** Outbox rows to insert, in this order (a row's id is its place in its channel's order). */
	readonly enqueue: readonly OutboxWrite[];
}

/** A group a batch touches, with the first webhook and route target that touch it. */
export interface TouchedGroup {
	readonly id: string;
	readonly job: AcceptJob;
	readonly target: RouteTarget;
}

/** The groups a batch touches (one per webhook and target channel), in the order it first touches them. */
export function touchedGroups(jobs: readonly AcceptJob[]): TouchedGroup[] {
	const touched = new Map<string, TouchedGroup>();
	for (const job of jobs) {
		for (const target of job.targets) {
			const id = groupId(job.receiver, job.groupKey, target.channel);
			if (!touched.has(id)) touched.set(id, { id, job, target });
		}
	}
	return [...touched.values()];
}

/** An outbox row this batch would insert, until a later webhook of the batch supersedes it. */
interface Pending {
	readonly write: OutboxWrite;
}

/**
 * What a batch of webhooks writes, given the heads of the groups it touches (a missing head: a group not
 * stored yet). Each webhook is decided against the state the ones before it left, so a group commit
 * writes what accepting them one at a time would, less the rows a later webhook of the batch supersedes.
 */
export function planAccepts(
	jobs: readonly AcceptJob[],
	heads: ReadonlyMap<string, GroupHead>,
	policy: AcceptPolicy = NO_REGROUP,
): AcceptPlan {
	const state = new Map<string, GroupHead<number | Pending>>(heads);
	const groups = new Map<string, GroupWrite>();
	const supersede: number[] = [];
	const pending: Pending[] = [];
	const dropped = new Set<Pending>();
	const results = jobs.map((job, j) => {
		let queued = 0;
		let duplicates = 0;
		for (const target of job.targets) {
			const id = groupId(job.receiver, job.groupKey, target.channel);
			const head = state.get(id);
			const t = transition(head, job, job.now, policy);
			if (t.kind === "duplicate") {
				duplicates++;
				continue;
			}
			for (const row of t.supersede) {
				if (typeof row === "number") supersede.push(row);
				else dropped.add(row);
			}
			const row: Pending = { write: { groupId: id, episode: t.episode, job: j, at: job.now } };
			pending.push(row);
			state.set(id, {
				episode: t.episode,
				status: t.status,
				firstFiringAt: t.firstFiringAt,
				signature: t.signature,
				resolvedAt: t.resolvedAt,
				flaps: t.flaps,
				undelivered: [...t.keep, row],
			});
			groups.set(id, {
				id,
				channel: target.channel,
				created: !heads.has(id),
				mentionRole: target.mentionRole ?? null,
				episode: t.episode,
				status: t.status,
				firstFiringAt: t.firstFiringAt,
				signature: t.signature,
				severityRank: job.severityRank,
				resolvedAt: t.resolvedAt,
				flaps: t.flaps,
				resetActions: t.resetActions || (groups.get(id)?.resetActions ?? false),
				job: j,
			});
			queued++;
		}
		return { queued, duplicates };
	});
	return {
		results,
		groups: [...groups.values()],
		supersede,
		enqueue: pending.filter((p) => !dropped.has(p)).map((p) => p.write),
	};
}

/** What the store holds of a group that resolveGroup() decides on. */
export interface ResolvableGroup {
	readonly status: string;
	readonly signature: string;
	readonly payload: WebhookPayload;
}

/**
 * The resolved notification resolveGroup() writes for a group (every alert ended at `now`), with its
 * signature; undefined when the group is gone, already resolved, or changed since the caller saw it
 * with `expectedSignature`. The store queues it for the current episode and marks no earlier row done.
 */
export function resolveByHand(
	group: ResolvableGroup | undefined,
	expectedSignature: string,
	now: number,
	reconciled = false,
): { readonly payload: WebhookPayload; readonly signature: string } | undefined {
	if (!group || group.status === "resolved" || group.signature !== expectedSignature) return undefined;
	const { opsbotReconciled: _, ...rest } = resolvedPayload(group.payload, now);
	// "gone": the card says AlertManager no longer holds it instead of pretending a notification came.
	const payload: WebhookPayload = reconciled ? { ...rest, opsbotReconciled: "gone" } : rest;
	return { payload, signature: payloadSignature(payload) };
}
