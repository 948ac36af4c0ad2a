import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { AlertingOps } from "../config.ts";
import type { Logger } from "../log.ts";
import type {
	AlertManagerClient,
	AlertManagerCluster,
	AlertManagerGroup,
	AlertManagerService,
} from "../services/alertmanager.ts";
import { alertEnvironment } from "./actions.ts";
import type { AcceptResult } from "./group-machine.ts";
import { startPeriodicPass } from "./periodic-pass.ts";
import { WebhookPayload } from "./schema.ts";
import type { AlertStore, GroupState } from "./store.ts";

/**
 * AlertManager keeps alerts in memory only: just after it restarts it lists none until Prometheus
 * re-sends them (every minute by default, `--rules.alert.resend-delay`). An empty list from an
 * AlertManager younger than this proves nothing.
 */
export const ALERTMANAGER_SETTLE_MS = 3 * 60_000;
/** Open groups read from the store per query; the pass yields to the event loop between pages. */
export const RECONCILE_PAGE = 500;
/** Found groups accepted at once (they share the store's group commits). */
const ACCEPT_CHUNK = 64;
/** Go's zero time: what AlertManager sends as the end of a firing alert. */
const ZERO_TIME = "0001-01-01T00:00:00Z";

/** Dependencies and tunables of reconciliation (tests shorten the times). */
export interface ReconcileDeps {
	readonly store: Pick<AlertStore, "openGroups" | "resolveGroup">;
	readonly ops: AlertingOps;
	readonly alertmanager: Pick<AlertManagerService, "clusters">;
	readonly log: Logger;
	/** The webhook's way in (receiver.ts acceptPayload): routing, deduplication and storms apply alike. */
	readonly accept: (payload: WebhookPayload) => Promise<AcceptResult>;
	/** False on a standby replica: only the replica that delivers reconciles. */
	readonly active?: () => boolean;
	readonly intervalMs: number;
	/** How long AlertManager may take to notify on its own: a difference younger than this is left to it. */
	readonly graceMs: number;
	readonly settleMs?: number;
	/** Receivers posting to opsbot besides those its stored groups name (plain names, not regex-quoted). */
	readonly receivers?: readonly string[];
	readonly pageSize?: number;
	readonly now?: () => number;
}

/** What one pass did. */
export interface ReconcileOutcome {
	/** Groups marked resolved because AlertManager no longer holds them. */
	readonly resolved: number;
	/** Groups posted or updated with alerts whose webhook never arrived. */
	readonly found: number;
	/** Environments whose AlertManager (every member) gave no answer: nothing was decided there. */
	readonly unanswered: readonly string[];
}

/** The running reconciliation. */
export interface Reconciler {
	/** Runs one pass now (or waits for the one running). */
	pass(): Promise<ReconcileOutcome>;
	stop(): Promise<void>;
}

/** Go's regexp.QuoteMeta: how AlertManager quotes the receiver name it puts in webhooks. */
export function quoteMeta(name: string): string {
	return name.replace(/[\\.+*?()|[\]{}^$]/g, "\\$&");
}

/** The receiver's name as configured, from a webhook's regex-quoted one. */
export function unquoteMeta(quoted: string): string {
	return quoted.replace(/\\(.)/g, "$1");
}

/** A label set as Go's model.LabelSet.String() writes it, which is how a groupKey ends: `{a="1", b="2"}`. */
export function labelSetString(labels: Readonly<Record<string, string>>): string {
	const pairs = Object.entries(labels).map(([name, value]) => `${name}=${JSON.stringify(value)}`);
	return `{${pairs.sort().join(", ")}}`;
}

/** What identifies a group on both sides: its receiver and its group labels. */
export function groupIdentity(receiver: string, labels: Readonly<Record<string, string>>): string {
	return `${receiver}\u0000${labelSetString(labels)}`;
}

/** An open group as a pass compares it. */
export interface OpenGroup {
	readonly group: GroupState;
	readonly identity: string;
	readonly environment: string;
	/** Fingerprints of its firing alerts. */
	readonly firing: ReadonlySet<string>;
}

export function openGroup(ops: AlertingOps, group: GroupState): OpenGroup {
	const { payload } = group;
	return {
		group,
		identity: groupIdentity(unquoteMeta(payload.receiver), payload.groupLabels),
		environment: alertEnvironment(ops, payload).name,
		firing: new Set(payload.alerts.filter((a) => a.status === "firing").map((a) => a.fingerprint)),
	};
}

/** What a pass decides for one AlertManager cluster's answer. */
export interface ReconcilePlan {
	/** Groups AlertManager holds none of, still within the grace or past it. */
	readonly missing: readonly OpenGroup[];
	/** Payloads to accept: groups (new, or open with more alerts) whose webhook never arrived. */
	readonly found: readonly WebhookPayload[];
}

/**
 * Compares the open groups of a cluster's environments with the groups it holds (pure, no I/O). An
 * AlertManager group counts as held whatever its alerts' state; only active alerts (not silenced, not
 * inhibited, which AlertManager would not notify) older than `graceMs` count as lost webhooks.
 */
export function planReconcile(
	open: readonly OpenGroup[],
	held: readonly AlertManagerGroup[],
	options: { readonly graceMs: number; readonly now: number; readonly externalURL: string },
): ReconcilePlan {
	const byIdentity = new Map<string, AlertManagerGroup>();
	for (const group of held) byIdentity.set(groupIdentity(group.receiver, group.labels), group);
	const openByIdentity = new Map<string, OpenGroup>();
	const routeKeys = new Map<string, string>();
	for (const g of open) {
		openByIdentity.set(g.identity, g);
		// A groupKey is "<route key>:<group labels>": learn the route key of each receiver for groups found anew.
		const suffix = `:${labelSetString(g.group.payload.groupLabels)}`;
		const key = g.group.payload.groupKey;
		if (key.endsWith(suffix)) routeKeys.set(unquoteMeta(g.group.payload.receiver), key.slice(0, -suffix.length));
	}
	const missing = open.filter((g) => !byIdentity.has(g.identity));
	const found: WebhookPayload[] = [];
	for (const [identity, group] of byIdentity) {
		const stored = openByIdentity.get(identity);
		const lost = group.alerts.filter(
			(a) =>
				a.state === "active" &&
				!stored?.firing.has(a.fingerprint) &&
				options.now - Date.parse(a.startsAt) >= options.graceMs,
		);
		if (lost.length === 0) continue;
		const payload = foundPayload(group, stored?.group, routeKeys.get(group.receiver) ?? "{}", options);
		if (payload) found.push(payload);
	}
	return { missing, found };
}

function common(maps: readonly Readonly<Record<string, string>>[]): Record<string, string> {
	const [first, ...rest] = maps;
	if (!first) return {};
	return Object.fromEntries(Object.entries(first).filter(([k, v]) => rest.every((m) => m[k] === v)));
}

/**
 * The notification AlertManager would have sent for `group`: every alert it holds as firing, and the
 * stored group's firing alerts it no longer holds as resolved (as with send_resolved). The stored
 * group's groupKey when there is one, else the receiver's route key and the group labels. Parsed
 * through the webhook schema, so its text is cleaned as a webhook's is; undefined if it does not parse.
 */
export function foundPayload(
	group: AlertManagerGroup,
	stored: GroupState | undefined,
	routeKey: string,
	options: { readonly now: number; readonly externalURL: string },
): WebhookPayload | undefined {
	const held = new Set(group.alerts.map((a) => a.fingerprint));
	const alerts = [
		...group.alerts.map((a) => ({
			status: "firing" as const,
			labels: a.labels,
			annotations: a.annotations,
			startsAt: a.startsAt,
			endsAt: ZERO_TIME,
			generatorURL: a.generatorURL,
			fingerprint: a.fingerprint,
		})),
		...(stored?.payload.alerts ?? [])
			.filter((a) => a.status === "firing" && !held.has(a.fingerprint))
			.map((a) => ({ ...a, status: "resolved" as const, endsAt: new Date(options.now).toISOString() })),
	];
	const parsed = WebhookPayload.safeParse({
		version: "4",
		groupKey: stored?.payload.groupKey ?? `${routeKey}:${labelSetString(group.labels)}`,
		truncatedAlerts: 0,
		status: "firing",
		receiver: stored?.payload.receiver ?? quoteMeta(group.receiver),
		groupLabels: group.labels,
		commonLabels: common(alerts.map((a) => a.labels)),
		commonAnnotations: common(alerts.map((a) => a.annotations)),
		externalURL: stored?.payload.externalURL || options.externalURL,
		alerts,
		opsbotReconciled: "found",
	});
	return parsed.success ? parsed.data : undefined;
}

/**
 * Every `intervalMs`, compares opsbot's open groups with what each environment's AlertManager holds for
 * opsbot's receivers (API v2 alert groups), for every group, not only silenced ones:
 * - a group AlertManager no longer holds, for longer than the grace, turns resolved ("AlertManager no
 *   longer holds it"), unless that AlertManager started too recently to know;
 * - alerts it holds that opsbot never received are posted through the webhook's way in, marked found.
 * An HA cluster's members are asked in order; the first answer counts, and a cluster where none answers
 * decides nothing (it is logged, and /readyz, /metrics and /health show when each last answered).
 */
export function startReconciler(deps: ReconcileDeps): Reconciler {
	const settleMs = deps.settleMs ?? ALERTMANAGER_SETTLE_MS;
	const pageSize = deps.pageSize ?? RECONCILE_PAGE;
	const now = deps.now ?? Date.now;
	const active = deps.active ?? (() => true);
	/** Since when a pass first saw each group (by id and signature) missing from AlertManager. */
	let missingSince = new Map<string, number>();
	/** Clusters (by first URL) whose last pass had no answer: logged once per outage. */
	const silent = new Set<string>();

	async function openGroups(): Promise<OpenGroup[]> {
		const open: OpenGroup[] = [];
		let after = "";
		for (;;) {
			const page = await deps.store.openGroups(after, pageSize);
			for (const group of page) open.push(openGroup(deps.ops, group));
			if (page.length < pageSize || loop.stopped()) return open;
			after = page[page.length - 1]!.groupId;
			await yieldToLoop();
		}
	}

	/** The first member's answer (and which member gave it), or undefined when none answered. */
	async function ask(
		cluster: AlertManagerCluster,
		receivers: string,
	): Promise<{ member: AlertManagerClient; groups: AlertManagerGroup[] } | undefined> {
		for (const member of cluster.members) {
			try {
				return { member, groups: await member.listGroups(receivers) };
			} catch (err) {
				deps.log.debug({ err, environments: cluster.environments }, "an AlertManager did not answer; asking the next");
			}
		}
		return undefined;
	}

	async function runPass(): Promise<ReconcileOutcome> {
		// Open groups first, then AlertManager: every group read was accepted before AlertManager was asked,
		// so one AlertManager sent is one it held then (unless it resolved since).
		const open = await openGroups();
		const names = new Set(deps.receivers ?? []);
		for (const g of open) names.add(unquoteMeta(g.group.payload.receiver));
		const receivers = `(?:${[...names].map(quoteMeta).join("|")})`;
		const seenMissing = new Map<string, number>();
		const unanswered: string[] = [];
		let resolved = 0;
		let found = 0;
		for (const cluster of deps.alertmanager.clusters()) {
			if (loop.stopped()) break;
			const environments = new Set(cluster.environments);
			const mine = open.filter((g) => environments.has(g.environment));
			if (names.size === 0) {
				// Nothing to compare yet; still ask whether it answers (/readyz, /metrics, the dead man's notice).
				for (const member of cluster.members) {
					if (
						await member.startedAt().then(
							() => true,
							() => false,
						)
					)
						break;
				}
				continue;
			}
			const answer = await ask(cluster, receivers);
			const clusterKey = cluster.members[0]?.url ?? "";
			if (!answer) {
				unanswered.push(...cluster.environments);
				// Never read as "nothing fires": the groups keep their state, and their grace starts again later.
				if (!silent.has(clusterKey))
					deps.log.warn(
						{ environments: cluster.environments, members: cluster.members.length },
						"no AlertManager of this cluster answered; nothing is resolved or found there until one does",
					);
				silent.add(clusterKey);
				for (const g of mine) {
					const key = `${g.group.groupId}:${g.group.signature}`;
					const since = missingSince.get(key);
					if (since !== undefined) seenMissing.set(key, since);
				}
				continue;
			}
			if (silent.delete(clusterKey))
				deps.log.info({ environments: cluster.environments }, "AlertManager answers reconciliation again");
			const t = now();
			const plan = planReconcile(mine, answer.groups, {
				graceMs: deps.graceMs,
				now: t,
				externalURL: answer.member.url,
			});
			let startedAt: number | undefined;
			for (const g of plan.missing) {
				const key = `${g.group.groupId}:${g.group.signature}`;
				const since = missingSince.get(key) ?? t;
				seenMissing.set(key, since);
				if (t - since < deps.graceMs || loop.stopped()) continue;
				startedAt ??= await answer.member.startedAt().catch(() => Number.POSITIVE_INFINITY);
				if (t - startedAt < settleMs) {
					deps.log.debug(
						{ groupId: g.group.groupId },
						"AlertManager lists no alert of a group but started too recently to be sure",
					);
					continue;
				}
				if (await deps.store.resolveGroup(g.group.groupId, g.group.signature, t, true)) {
					resolved++;
					seenMissing.delete(key);
					deps.log.info(
						{ groupId: g.group.groupId, missingForMs: t - since },
						"AlertManager no longer holds an alert group and sent no resolution; marked resolved",
					);
				}
			}
			// A few at a time: each accept waits for a group commit, and they share it.
			for (let i = 0; i < plan.found.length && !loop.stopped(); i += ACCEPT_CHUNK) {
				const chunk = plan.found.slice(i, i + ACCEPT_CHUNK);
				const results = await Promise.all(chunk.map((payload) => deps.accept(payload)));
				results.forEach((result, j) => {
					if (result.queued === 0) return;
					found++;
					deps.log.info(
						{ groupKey: chunk[j]!.groupKey.slice(0, 200), alerts: chunk[j]!.alerts.length },
						"found an alert group by reconciliation: AlertManager holds it but its webhook never arrived",
					);
				});
			}
		}
		missingSince = seenMissing;
		return { resolved, found, unanswered };
	}

	const loop = startPeriodicPass<ReconcileOutcome>({
		run: runPass,
		intervalMs: deps.intervalMs,
		active,
		log: deps.log,
		failed: { msg: "reconciliation pass failed; will retry", value: { resolved: 0, found: 0, unanswered: [] } },
	});
	return { pass: loop.pass, stop: loop.stop };
}
