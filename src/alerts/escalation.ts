import type { AlertingOps } from "../config.ts";
import { oneLine, truncate } from "../render/limits.ts";
import { textToMarkdown } from "../render/report.ts";
import { formatDuration } from "../time.ts";
import { activeSilence, groupEnvironment, groupName, groupSeverity, severityIcon } from "./group-report.ts";
import type { WebhookPayload } from "./schema.ts";
import type { AckState, SilenceState } from "./store.ts";

// The clocks of a firing group (escalation, acknowledgement timeout), computed from stored timestamps
// only, so a restart neither skips nor repeats a step: every step has a key of its own, and the
// message outbox posts a key once (its claim), whichever replica or process gets there.

/** Who an escalation mentions, resolved from the config (never from alert text). */
export interface MentionTargets {
	readonly roles: readonly string[];
	readonly users: readonly string[];
}

/** What the config says about a group's clocks (its route's escalation and acknowledgement timeout). */
export interface GroupRules {
	readonly escalation?: {
		readonly afterMs: number;
		readonly repeatMs?: number;
		readonly mention: MentionTargets;
	};
	readonly ackTimeoutMs?: number;
}

/** What a group's clocks read. */
export interface ClockInput {
	readonly groupId: string;
	readonly episode: number;
	readonly status: string;
	readonly firstFiringAt: number;
	readonly ack: AckState | null;
	readonly silence: SilenceState | null;
}

const MINUTE = 60_000;

/** `role:<id>`, `user:<id>` or a role name under discord.roles, as ids (config checked them at load). */
export function mentionTargets(ops: Pick<AlertingOps, "discord">, names: readonly string[]): MentionTargets {
	const roles: string[] = [];
	const users: string[] = [];
	for (const name of names) {
		if (name.startsWith("user:")) users.push(name.slice(5));
		else if (name.startsWith("role:")) roles.push(name.slice(5));
		else if (Object.hasOwn(ops.discord.roles, name)) roles.push(ops.discord.roles[name]!);
	}
	return { roles: [...new Set(roles)], users: [...new Set(users)] };
}

/** The route a group in `channel` came by: the first that matches its labels and posts there (routing.ts's order). */
function routeOf(ops: AlertingOps, payload: WebhookPayload, channel: string) {
	const labels = { ...payload.groupLabels, ...payload.commonLabels };
	return ops.alerts.routes.find(
		(route) =>
			route.channel === channel &&
			Object.entries(route.match).every(([k, v]) => labels[k] === v) &&
			Object.entries(route.matchRe).every(([k, v]) => new RegExp(`^(?:${v})$`).test(labels[k] ?? "")),
	);
}

/** The clocks the config gives a group in `channel`. */
export function groupRules(ops: AlertingOps, payload: WebhookPayload, channel: string): GroupRules {
	const route = routeOf(ops, payload, channel);
	const ackTimeout = route?.ackTimeoutMinutes ?? ops.alerts.ackTimeoutMinutes;
	const escalation = route?.escalation;
	return {
		...(ackTimeout === undefined ? {} : { ackTimeoutMs: ackTimeout * MINUTE }),
		...(escalation
			? {
					escalation: {
						afterMs: escalation.afterMinutes * MINUTE,
						...(escalation.repeatMinutes === undefined ? {} : { repeatMs: escalation.repeatMinutes * MINUTE }),
						mention: mentionTargets(ops, escalation.mention),
					},
				}
			: {}),
	};
}

/** When the group's acknowledgement stops holding, or undefined when it holds for ever (or there is none). */
export function ackExpiresAt(ack: AckState | null, rules: GroupRules): number | undefined {
	return ack && rules.ackTimeoutMs !== undefined ? ack.at + rules.ackTimeoutMs : undefined;
}

/** An acknowledgement that still holds at `now`. */
export function ackHolds(ack: AckState | null, rules: GroupRules, now: number): boolean {
	if (!ack) return false;
	const expires = ackExpiresAt(ack, rules);
	return expires === undefined || now < expires;
}

/** One step of a group's escalation: which, when, and the key that posts it once. */
export interface EscalationStep {
	readonly key: string;
	readonly step: number;
	readonly dueAt: number;
	/** How long the group has gone unhandled at dueAt (since it fired, or since the acknowledgement ran out). */
	readonly unhandledMs: number;
}

/**
 * The latest escalation step due at `now`, or undefined. The clock runs from when the group started
 * firing, or, once an acknowledgement ran out, from then (a new clock, its own keys). An acknowledgement
 * that holds, an active silence or a resolution stops it. Steps missed while opsbot was down are not
 * sent one by one: the latest one is, once.
 */
export function escalationDue(group: ClockInput, rules: GroupRules, now: number): EscalationStep | undefined {
	const escalation = rules.escalation;
	if (!escalation || group.status !== "firing" || activeSilence(group.silence, now)) return undefined;
	if (ackHolds(group.ack, rules, now)) return undefined;
	const expired = group.ack ? ackExpiresAt(group.ack, rules) : undefined;
	const start = expired ?? group.firstFiringAt;
	const clock = expired === undefined ? "fired" : `ack${group.ack!.at}`;
	const first = start + escalation.afterMs;
	if (now < first) return undefined;
	const step = escalation.repeatMs ? Math.floor((now - first) / escalation.repeatMs) : 0;
	const dueAt = first + step * (escalation.repeatMs ?? 0);
	return {
		key: `escalation:${group.groupId}:${group.episode}:${clock}:${step}`,
		step,
		dueAt,
		unhandledMs: dueAt - start,
	};
}

/** The reminder to the acker whose acknowledgement ran out while the group still fires, or undefined. */
export function ackReminderDue(
	group: ClockInput,
	rules: GroupRules,
	now: number,
): { readonly key: string; readonly dueAt: number; readonly ack: AckState } | undefined {
	const expires = ackExpiresAt(group.ack, rules);
	if (!group.ack || expires === undefined || now < expires || group.status !== "firing") return undefined;
	if (activeSilence(group.silence, now)) return undefined;
	return { key: `ack-expired:${group.groupId}:${group.episode}:${group.ack.at}`, dueAt: expires, ack: group.ack };
}

/** A message the clocks post: its content, who it may ping, and the same words for a terminal. */
export interface ClockMessage {
	readonly content: string;
	readonly mentions: MentionTargets;
	readonly text: string;
}

function what(payload: WebhookPayload): { markdown: string; plain: string } {
	const name = truncate(oneLine(groupName(payload)), 100);
	const environment = groupEnvironment(payload);
	const plain = `${severityIcon(groupSeverity(payload))} ${name}${environment ? ` on ${environment}` : ""}`;
	return { markdown: textToMarkdown(plain), plain };
}

function mentionText(targets: MentionTargets): { markdown: string; plain: string } {
	const markdown = [...targets.roles.map((id) => `<@&${id}>`), ...targets.users.map((id) => `<@${id}>`)].join(" ");
	const plain = [...targets.roles.map((id) => `@role:${id}`), ...targets.users.map((id) => `@user:${id}`)].join(" ");
	return { markdown, plain };
}

/** "📣 @leads 🔴 PostgresDown on prod has fired for 12 min and nobody acknowledged it." */
export function escalationMessage(
	payload: WebhookPayload,
	step: EscalationStep,
	targets: MentionTargets,
): ClockMessage {
	const who = mentionText(targets);
	const group = what(payload);
	const since = formatDuration(step.unhandledMs, { seconds: true });
	const tail = `has fired for ${since} and nobody acknowledged it${step.step > 0 ? ` (reminder ${step.step})` : ""}.`;
	const line = (...parts: string[]) => parts.filter(Boolean).join(" ");
	return {
		content: line("📣", who.markdown, group.markdown, tail),
		mentions: targets,
		text: line("📣", who.plain, group.plain, tail),
	};
}

/** "⌛ @alice your acknowledgement of 🔴 PostgresDown on prod ran out after 30 min; it still fires." */
export function ackReminderMessage(payload: WebhookPayload, ack: AckState, timeoutMs: number): ClockMessage {
	const group = what(payload);
	const after = formatDuration(timeoutMs, { seconds: true });
	const tail = `ran out after ${after}; it still fires. Acknowledge it again, or hand it on.`;
	return {
		content: `⌛ <@${ack.userId}> your acknowledgement of ${group.markdown} ${tail}`,
		mentions: { roles: [], users: [ack.userId] },
		text: `⌛ @user:${ack.userId} your acknowledgement of ${group.plain} ${tail}`,
	};
}

/** What a card shows of its clocks at `now`: when the acknowledgement ran out, and the latest escalation. */
export interface CardClocks {
	readonly ackExpiredAt?: number;
	readonly escalated?: { readonly at: number; readonly to: MentionTargets };
}

export function cardClocks(group: ClockInput, rules: GroupRules, now: number): CardClocks {
	const expires = ackExpiresAt(group.ack, rules);
	const step = escalationDue(group, rules, now);
	return {
		...(expires !== undefined && now >= expires ? { ackExpiredAt: expires } : {}),
		...(step && rules.escalation ? { escalated: { at: step.dueAt, to: rules.escalation.mention } } : {}),
	};
}
