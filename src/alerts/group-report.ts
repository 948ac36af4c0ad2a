import { oneLine, truncate } from "../render/limits.ts";
import {
	type Inline,
	joinText,
	type Level,
	type Report,
	type ReportField,
	type ReportLink,
	type Text,
} from "../render/report.ts";
import { formatDuration } from "../time.ts";
import type { CardClocks } from "./escalation.ts";
import { FLAP_HISTORY_MS } from "./group-machine.ts";
import type { WebhookAlert, WebhookPayload } from "./schema.ts";
import type { AckState, RestartState, SilenceState } from "./store.ts";

/** A group's message lists at most this many of its alerts; the rest are counted (and attached in full). */
export const SHOWN_ALERTS = 10;

/**
 * Embed colours by state: a firing group by its severity (critical and resolved are the level colours;
 * warning is a deeper orange than the level's, and info has no level of its own); an acknowledged
 * group yellow, a silenced one grey, so a handled card is told from one nobody touched at a glance.
 */
export const ALERT_COLOURS = {
	resolved: 0x2ecc71,
	critical: 0xe74c3c,
	warning: 0xf39c12,
	info: 0x3498db,
	acknowledged: 0xf1c40f,
	silenced: 0x95a5a6,
} as const;

/** One set of severity icons for alert cards, the storm summary and `opsbot alerts`. */
const SEVERITY_ICONS: Readonly<Record<string, string>> = {
	critical: "🔴",
	error: "🔴",
	warning: "🟠",
	info: "🔵",
};

/** The icon of a lower-case severity label ("" or unknown: a white circle). */
export function severityIcon(severity: string): string {
	return SEVERITY_ICONS[severity] ?? "⚪";
}

/** Where a group stands, as its card's title and colour say: what people did wins over how bad it is. */
export type CardState = "firing" | "acknowledged" | "silenced" | "resolved";

export function cardState(group: { resolved: boolean; acknowledged: boolean; silenced: boolean }): CardState {
	return group.resolved ? "resolved" : group.silenced ? "silenced" : group.acknowledged ? "acknowledged" : "firing";
}

/**
 * The state word a card's title and `opsbot alerts` lead with: CRITICAL, WARNING… while firing, else ACKED, SILENCED,
 * RESOLVED.
 */
export function stateWord(state: CardState, severity: string): string {
	if (state === "firing") return truncate(oneLine(severity || "firing").toUpperCase(), 20);
	return { acknowledged: "ACKED", silenced: "SILENCED", resolved: "RESOLVED" }[state];
}

function stateIcon(state: CardState, severity: string): string {
	return { firing: severityIcon(severity), acknowledged: "🟡", silenced: "🔕", resolved: "✅" }[state];
}

function stateColour(state: CardState, severity: string): number {
	if (state !== "firing") return ALERT_COLOURS[state];
	return severity === "critical" || severity === "error"
		? ALERT_COLOURS.critical
		: severity === "warning"
			? ALERT_COLOURS.warning
			: ALERT_COLOURS.info;
}

const ENVIRONMENT_LABELS = ["env", "environment"] as const;

/** The environment a group's alerts share (an `env` or `environment` label), if any. */
export function groupEnvironment(payload: WebhookPayload): string | undefined {
	for (const label of ENVIRONMENT_LABELS) {
		const value = payload.commonLabels[label] ?? payload.groupLabels[label];
		if (value) return truncate(oneLine(value), 40);
	}
	return undefined;
}

/** A card's title: `🔴 CRITICAL · PostgresDown · prod`. */
export function cardTitle(state: CardState, severity: string, name: string, environment: string | undefined): string {
	return [
		`${stateIcon(state, severity)} ${stateWord(state, severity)}`,
		truncate(oneLine(name), 150),
		...(environment ? [environment] : []),
	].join(" · ");
}

/** Label names whose values differ between the group's alerts: what tells one alert from another. */
export function differingLabels(alerts: readonly WebhookAlert[], common: Readonly<Record<string, string>>): string[] {
	const names = new Set(alerts.flatMap((a) => Object.keys(a.labels)));
	return [...names].filter((n) => !(n in common) && n !== "alertname").sort();
}

/** What a group is called in titles: its alertname, or how many kinds of alert it holds. */
export function groupName(payload: WebhookPayload): string {
	const names = new Set(payload.alerts.map((a) => a.labels.alertname));
	return (
		payload.commonLabels.alertname ??
		payload.groupLabels.alertname ??
		(names.size === 1 ? [...names][0] : undefined) ??
		`${names.size} kinds of alert`
	);
}

/** The group's severity label in lower case, or "" when its alerts have none in common. */
export function groupSeverity(payload: WebhookPayload): string {
	return (payload.commonLabels.severity ?? "").toLowerCase();
}

/** The silence while it lasts; null once it ended (opsbot keeps it until the episode ends). */
export function activeSilence(silence: SilenceState | null | undefined, now: number): SilenceState | null {
	return silence && silence.until > now ? silence : null;
}

/** What a group's message says of it: resolved, or how bad by its severity. */
export function groupLevel(status: string, severity: string): Level {
	return status === "resolved" ? "ok" : severity === "critical" ? "critical" : "warn";
}

// Only plain http(s) links a link button can hold; anything else is left out.
function linkTo(label: string, url: string | undefined): ReportLink | undefined {
	return url && /^https?:\/\/[^\s<>]+$/i.test(url) && url.length <= 512 && URL.canParse(url)
		? { label, url }
		: undefined;
}

/** The Runbook and Dashboard links a group's annotations give (runbook_url; dashboard_url or grafana_url). */
export function annotationLinks(
	annotations: Readonly<Record<string, string>>,
	first: WebhookAlert | undefined,
): ReportLink[] {
	return [
		linkTo("Runbook", annotations.runbook_url ?? first?.annotations.runbook_url),
		linkTo(
			"Dashboard",
			annotations.dashboard_url ??
				annotations.grafana_url ??
				first?.annotations.dashboard_url ??
				first?.annotations.grafana_url,
		),
	].filter((l) => l !== undefined);
}

function labelsOf(alert: WebhookAlert, labels: readonly string[]): string {
	return oneLine(
		labels
			.filter((l) => alert.labels[l] !== undefined)
			.map((l) => `${l}=${alert.labels[l]}`)
			.join(" "),
	);
}

function alertItem(alert: WebhookAlert, labels: readonly string[]): Text {
	const since = Date.parse(alert.startsAt);
	return [
		`${alert.status === "firing" ? "🔥" : "✅"} ${truncate(labelsOf(alert, labels) || alert.fingerprint, 200)}`,
		...(Number.isFinite(since) ? [" · since ", { time: new Date(since), style: "clock" as const }] : []),
		truncate(alert.annotations.summary ? ` — ${oneLine(alert.annotations.summary)}` : "", 200),
	];
}

/** When the group's alerts ended: the latest `endsAt` of its resolved alerts (not when the message is drawn). */
function endedAt(payload: WebhookPayload, startedAt: number): number | undefined {
	const ends = payload.alerts.map((a) => Date.parse(a.endsAt)).filter((t) => Number.isFinite(t) && t >= startedAt);
	return ends.length > 0 ? Math.max(...ends) : undefined;
}

/** Where a group's previous episode's message is, for a link to it. */
export interface PreviousMessage {
	readonly guildId: string;
	readonly channelId: string;
	readonly messageId: string;
}

/** "🔁 flapped 3× in the last hour", or undefined when it did not flap within the hour. */
export function flapLine(flaps: readonly number[] | undefined, now: number): string | undefined {
	const recent = (flaps ?? []).filter((at) => at <= now && now - at < FLAP_HISTORY_MS).length;
	return recent > 0 ? `🔁 flapped ${recent}× in the last hour` : undefined;
}

/**
 * What a group's message shows besides the payload: when the group began, what people did, and what could not be
 * attached.
 */
export interface AlertGroupContext {
	readonly firstFiringAt: number;
	readonly now: number;
	readonly mentionRole?: string | null | undefined;
	readonly ack?: AckState | null | undefined;
	readonly silence?: SilenceState | null | undefined;
	readonly restart?: RestartState | null | undefined;
	/** When the group flapped (re-opened within the regroup window); the card counts those of the last hour. */
	readonly flaps?: readonly number[] | undefined;
	/** The previous episode's message: the card links to it. */
	readonly previous?: PreviousMessage | undefined;
	/** When the acknowledgement ran out, and the latest escalation (escalation.ts cardClocks). */
	readonly clocks?: CardClocks | undefined;
	/** A chart of the expression was drawn for the message. */
	readonly chart?: boolean;
	/** Discord would not take the message's files: the text says what is missing. */
	readonly withoutAttachments?: boolean | undefined;
}

export interface Headline {
	readonly icon: string;
	readonly name: string;
	readonly environment: string | undefined;
	readonly summary: string | undefined;
	readonly firing: number;
	readonly alerts: number;
}

/** One group's message, view-neutral: the Report, and what only Discord's view uses. */
export interface AlertGroupReport {
	readonly report: Report;
	readonly name: string;
	readonly firing: boolean;
	readonly state: CardState;
	/** Embed colour by state and severity (ALERT_COLOURS). */
	readonly colour: number;
	/** The role to ping beside the message: the group is critical, fires, and nobody acknowledged or silenced it yet. */
	readonly mention: string | undefined;
	/**
	 * What the message content says, which is what a push notification shows: what, where and how many
	 * ("🔴 PostgresDown on prod: PostgreSQL is down (2 of 2)"). Only while the group fires and nobody
	 * handled it. Untrusted parts are plain one-line text for the view to escape.
	 */
	readonly headline: Headline | undefined;
}

function restartLine(restart: RestartState): Text {
	const who: Text = [
		" by ",
		{ mention: "user", id: restart.userId },
		" ",
		{ time: new Date(restart.at), style: "clock" },
	];
	const container: Text = { code: restart.container };
	if (restart.ok) return ["🔁 restarted ", container, ...who];
	const exit = restart.exitCode === undefined || restart.exitCode === null ? "" : `exit ${restart.exitCode}`;
	const why = [exit, restart.reason ?? ""].filter(Boolean).join(": ");
	return ["❌ restart of ", container, " ", { strong: "failed" }, ...(why ? [" (", { code: why }, ")"] : []), ...who];
}

/**
 * A group's message as a Report. Title: state, name and environment (`🔴 CRITICAL · PostgresDown · prod`).
 * Firing: summary and description, since when and who handles it (acknowledged, silenced, restarted),
 * the alerts told apart by their differing labels (the first SHOWN_ALERTS, firing first; the rest
 * counted), the other common labels. Resolved: collapsed to when it fired and ended (the alerts' own
 * endsAt), who acknowledged it and what recovered. Runbook, Dashboard and Prometheus as links.
 */
export function alertGroupReport(payload: WebhookPayload, context: AlertGroupContext): AlertGroupReport {
	const { now } = context;
	const firing = payload.alerts.filter((a) => a.status === "firing");
	const resolved = payload.status === "resolved";
	const name = groupName(payload);
	const severity = groupSeverity(payload);
	const environment = groupEnvironment(payload);
	const silence = activeSilence(context.silence, now);
	// An acknowledgement that ran out no longer handles the group: the card is firing again.
	const ackExpiredAt = context.clocks?.ackExpiredAt;
	const acknowledged = Boolean(context.ack) && (resolved || ackExpiredAt === undefined);
	const state = cardState({ resolved, acknowledged, silenced: silence !== null });
	const annotations =
		Object.keys(payload.commonAnnotations).length > 0
			? payload.commonAnnotations
			: (payload.alerts[0]?.annotations ?? {});
	const first = payload.alerts[0];
	const labels = differingLabels(payload.alerts, payload.commonLabels);
	const summary = annotations.summary ? truncate(oneLine(annotations.summary), 300) : undefined;
	const ackedAt: Inline[] = context.ack && !resolved ? [" ", { time: new Date(context.ack.at), style: "clock" }] : [];
	const ack: Text | undefined = !context.ack
		? undefined
		: acknowledged
			? ["✋ acknowledged by ", { mention: "user", id: context.ack.userId }, ...ackedAt]
			: [
					"⌛ acknowledgement by ",
					{ mention: "user", id: context.ack.userId },
					" ran out ",
					{ time: new Date(ackExpiredAt ?? now), style: "clock" },
				];
	const head: Text[] = [];
	const fields: ReportField[] = [];
	let list: Report["list"];
	if (resolved) {
		const end = endedAt(payload, context.firstFiringAt) ?? now;
		const started = new Date(context.firstFiringAt);
		const duration = formatDuration(end - context.firstFiringAt);
		head.push([
			"Fired ",
			{ time: started, style: "clock" },
			" · ended ",
			{ time: new Date(end), style: "time" },
			" after ",
			{ strong: duration },
		]);
		// Not a notification from AlertManager: opsbot saw the group gone from it (reconcile.ts).
		if (payload.opsbotReconciled === "gone")
			head.push("❔ resolved (AlertManager no longer holds it): no resolved notification arrived");
		const flapped = flapLine(context.flaps, now);
		if (flapped) head.push(flapped);
		if (ack) head.push(ack);
		if (context.restart) head.push(restartLine(context.restart));
		const recovered = payload.alerts.map((a) => labelsOf(a, labels)).filter(Boolean);
		const shown = recovered
			.slice(0, SHOWN_ALERTS)
			.map((l) => truncate(l, 80))
			.join(", ");
		const more = recovered.length > SHOWN_ALERTS ? ` and ${recovered.length - SHOWN_ALERTS} more` : "";
		head.push(`${payload.alerts.length} of ${payload.alerts.length} recovered${shown ? `: ${shown}` : ""}${more}`);
	} else {
		if (summary) head.push({ strong: summary });
		if (annotations.description) head.push(truncate(annotations.description, 1_000));
		const count = `${firing.length} of ${payload.alerts.length} firing`;
		const since: Text = ["Firing since ", { time: new Date(context.firstFiringAt), style: "clock" }];
		head.push(joinText([since, count, ...(ack ? [ack] : silence ? [] : ["not acknowledged"])], " · "));
		const escalated = context.clocks?.escalated;
		if (escalated)
			head.push([
				"📣 escalated to ",
				...joinText(
					[
						...escalated.to.roles.map((id): Text => ({ mention: "role", id })),
						...escalated.to.users.map((id): Text => ({ mention: "user", id })),
					],
					" ",
				),
				" at ",
				{ time: new Date(escalated.at), style: "clock" },
			]);
		if (payload.opsbotReconciled === "found")
			head.push("🔎 found by reconciliation: AlertManager holds it, its webhook never came");
		const flapped = flapLine(context.flaps, now);
		if (flapped) head.push(flapped);
		if (silence)
			head.push(["🔕 silenced by ", silence.username, " until ", { time: new Date(silence.until), style: "clock" }]);
		if (context.restart) head.push(restartLine(context.restart));
		const ordered = [...firing, ...payload.alerts.filter((a) => a.status !== "firing")];
		const notes: Text[] = [];
		if (payload.truncatedAlerts > 0)
			notes.push([
				`⚠️ AlertManager left out ${payload.truncatedAlerts} more alert${payload.truncatedAlerts === 1 ? "" : "s"} (`,
				{ code: "max_alerts" },
				").",
			]);
		if (context.withoutAttachments && context.chart) notes.push("⚠️ The chart could not be attached.");
		list = {
			items: ordered.slice(0, SHOWN_ALERTS).map((a) => alertItem(a, labels)),
			total: payload.alerts.length,
			more: context.withoutAttachments ? "the full list could not be attached" : "full list attached",
			notes,
		};
		const common = Object.entries(payload.commonLabels).filter(
			([k]) => !["alertname", "severity", ...ENVIRONMENT_LABELS].includes(k),
		);
		if (common.length > 0)
			fields.push({
				label: "Labels",
				value: joinText(
					common.map(([k, v]) => [`${k}=`, { code: v }]),
					" ",
				),
				inline: false,
			});
	}
	const { previous } = context;
	const links = [
		...annotationLinks(annotations, first),
		...(resolved ? [] : [linkTo("Prometheus", first?.generatorURL)].filter((l) => l !== undefined)),
		...(previous
			? [
					{
						label: "Previous episode",
						url: `https://discord.com/channels/${previous.guildId}/${previous.channelId}/${previous.messageId}`,
					},
				]
			: []),
	];
	// The footer names only the grouping the title does not already say.
	const grouping = Object.entries(payload.groupLabels).filter(
		([k]) => k !== "alertname" && !(ENVIRONMENT_LABELS as readonly string[]).includes(k),
	);
	// Once someone has acknowledged or silenced the group, later updates stop pinging the on-call role.
	const handled = state !== "firing";
	const mention = !handled && severity === "critical" && context.mentionRole ? context.mentionRole : undefined;
	return {
		report: {
			title: cardTitle(state, severity, name, environment),
			level: groupLevel(payload.status, severity),
			...(head.length > 0 ? { summary: joinText(head, "\n") } : {}),
			...(list ? { list } : {}),
			...(fields.length > 0 ? { fields } : {}),
			...(links.length > 0 ? { links } : {}),
			...(grouping.length > 0 ? { footer: `group ${oneLine(grouping.map(([k, v]) => `${k}=${v}`).join(", "))}` } : {}),
			at: new Date(now),
		},
		name,
		firing: !resolved,
		state,
		colour: stateColour(state, severity),
		mention,
		headline: handled
			? undefined
			: {
					icon: severityIcon(severity),
					name: truncate(oneLine(name), 100),
					environment,
					summary: summary && truncate(summary, 200),
					firing: firing.length,
					alerts: payload.alerts.length,
				},
	};
}
