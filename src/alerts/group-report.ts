import { truncate } from "../render/limits.ts";
import { joinText, type Level, type Report, type ReportField, type Text } from "../render/report.ts";
import type { WebhookAlert, WebhookPayload } from "./schema.ts";
import type { AckState, RestartState, SilenceState } from "./store.ts";
import { formatDuration } from "../time.ts";

/** A group's message lists at most this many of its alerts; the rest are counted (and attached in full). */
export const SHOWN_ALERTS = 10;

/**
 * Embed colours by status and severity. Critical and resolved are the level colours; warning is a
 * deeper orange than the level's, and info has no level of its own.
 */
export const ALERT_COLOURS = { resolved: 0x2ecc71, critical: 0xe74c3c, warning: 0xf39c12, info: 0x3498db } as const;

/** Label names whose values differ between the group's alerts: what tells one alert from another. */
export function differingLabels(alerts: readonly WebhookAlert[], common: Readonly<Record<string, string>>): string[] {
	const names = new Set(alerts.flatMap((a) => Object.keys(a.labels)));
	return [...names].filter((n) => !(n in common) && n !== "alertname").sort();
}

/** What a group is called in titles: its alertname, or how many kinds of alert it holds. */
export function groupName(payload: WebhookPayload): string {
	const names = new Set(payload.alerts.map((a) => a.labels.alertname));
	return payload.commonLabels.alertname ?? payload.groupLabels.alertname ?? (names.size === 1 ? [...names][0] : undefined) ?? `${names.size} kinds of alert`;
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

function silenceUrl(payload: WebhookPayload): string | undefined {
	if (!/^https?:\/\//.test(payload.externalURL)) return undefined;
	const matchers = Object.entries(payload.groupLabels).map(([k, v]) => `${k}="${v.replace(/"/g, '\\"')}"`);
	return `${payload.externalURL.replace(/\/$/, "")}/#/silences/new?filter=${encodeURIComponent(`{${matchers.join(",")}}`)}`;
}

// Only plain http(s) links, of a length a field can hold beside three others; anything else is left out.
function linkTo(label: string, url: string | undefined): Text | undefined {
	return url && /^https?:\/\/[^\s<>]+$/.test(url) && url.length <= 512 ? { link: url, label } : undefined;
}

function alertItem(alert: WebhookAlert, labels: readonly string[]): Text {
	const shown = labels.filter((l) => alert.labels[l] !== undefined).map((l) => `${l}=${alert.labels[l]}`);
	const since = Date.parse(alert.startsAt);
	return [
		`${alert.status === "firing" ? "🔥" : "✅"} ${truncate(shown.join(" ") || alert.fingerprint, 200)}`,
		...(Number.isFinite(since) ? [" · since ", { time: new Date(since) }] : []),
		truncate(alert.annotations.summary ? ` — ${alert.annotations.summary}` : "", 200),
	];
}

/** What a group's message shows besides the payload: when the group began, what people did, and what could not be attached. */
export interface AlertGroupContext {
	readonly firstFiringAt: number;
	readonly now: number;
	readonly mentionRole?: string | null | undefined;
	readonly ack?: AckState | null | undefined;
	readonly silence?: SilenceState | null | undefined;
	readonly restart?: RestartState | null | undefined;
	/** A chart of the expression was drawn for the message. */
	readonly chart?: boolean;
	/** Discord would not take the message's files: the text says what is missing. */
	readonly withoutAttachments?: boolean | undefined;
}

/** One group's message, view-neutral: the Report, and what only Discord's view uses. */
export interface AlertGroupReport {
	readonly report: Report;
	readonly name: string;
	readonly firing: boolean;
	/** Embed colour by status and severity (ALERT_COLOURS). */
	readonly colour: number;
	/** The role to ping beside the message: the group is critical, fires, and nobody acknowledged it yet. */
	readonly mention: string | undefined;
}

/**
 * A group's message as a Report: title with name and count, what people did (acknowledged, restarted,
 * silenced), summary and description, the alerts told apart by their differing labels (the first
 * SHOWN_ALERTS, firing first; the rest counted), severity, start, common labels and links.
 */
export function alertGroupReport(payload: WebhookPayload, context: AlertGroupContext): AlertGroupReport {
	const { now } = context;
	const firing = payload.alerts.filter((a) => a.status === "firing");
	const resolved = payload.status === "resolved";
	const name = groupName(payload);
	const severity = groupSeverity(payload);
	const silence = activeSilence(context.silence, now);
	const annotations = Object.keys(payload.commonAnnotations).length > 0 ? payload.commonAnnotations : (payload.alerts[0]?.annotations ?? {});
	const head: Text[] = [];
	if (resolved) head.push({ strong: `Resolved after ${formatDuration(now - context.firstFiringAt)}.` });
	if (context.ack) head.push(["✋ Acknowledged by ", { mention: "user", id: context.ack.userId }, " ", { time: new Date(context.ack.at) }]);
	const restart = context.restart;
	if (restart) head.push([`🔁 ${restart.ok ? "Restarted" : "Restart failed"}: `, { code: restart.container }, " by ", { mention: "user", id: restart.userId }, " at ", { time: new Date(restart.at), style: "time" }]);
	if (silence) head.push(["🔕 Silenced by ", silence.username, " until ", { time: new Date(silence.until), style: "full" }]);
	if (annotations.summary) head.push({ strong: truncate(annotations.summary, 300) });
	if (annotations.description) head.push(truncate(annotations.description, 1_000));
	const labels = differingLabels(payload.alerts, payload.commonLabels);
	const ordered = [...firing, ...payload.alerts.filter((a) => a.status !== "firing")];
	const notes: Text[] = [];
	if (payload.truncatedAlerts > 0) notes.push([`⚠️ AlertManager left out ${payload.truncatedAlerts} more alert${payload.truncatedAlerts === 1 ? "" : "s"} (`, { code: "max_alerts" }, ")."]);
	if (context.withoutAttachments && context.chart) notes.push("⚠️ The chart could not be attached.");
	const first = payload.alerts[0];
	const links = [
		linkTo("Runbook", annotations.runbook_url ?? first?.annotations.runbook_url),
		linkTo("Source", first?.generatorURL),
		linkTo("Silence", silenceUrl(payload)),
		linkTo("Dashboard", annotations.dashboard_url ?? annotations.grafana_url),
	].filter((l) => l !== undefined);
	const common = Object.entries(payload.commonLabels).filter(([k]) => k !== "alertname" && k !== "severity");
	const fields: ReportField[] = [
		{ label: "Severity", value: severity || "none" },
		{ label: "Started", value: { time: new Date(context.firstFiringAt), style: "full" } },
		...(common.length > 0 ? [{ label: "Labels", value: joinText(common.map(([k, v]) => [`${k}=`, { code: v }]), " "), inline: false }] : []),
		...(links.length > 0 ? [{ label: "Links", value: joinText(links, " · "), inline: false }] : []),
	];
	// Once someone has acknowledged the group, later updates stop pinging the on-call role.
	const mention = !resolved && severity === "critical" && context.mentionRole && !context.ack ? context.mentionRole : undefined;
	return {
		report: {
			title: resolved ? `✅ Resolved: ${name}` : `🔥 ${name} — ${firing.length} firing${payload.alerts.length > firing.length ? `, ${payload.alerts.length - firing.length} resolved` : ""}`,
			level: groupLevel(payload.status, severity),
			...(head.length > 0 ? { summary: joinText(head, "\n") } : {}),
			list: {
				items: ordered.slice(0, SHOWN_ALERTS).map((a) => alertItem(a, labels)),
				total: payload.alerts.length,
				more: context.withoutAttachments ? "the full list could not be attached" : "full list attached",
				notes,
			},
			fields,
			footer: `${payload.receiver} · group ${Object.entries(payload.groupLabels).map(([k, v]) => `${k}=${v}`).join(", ")}`,
			at: new Date(now),
		},
		name,
		firing: !resolved,
		colour: resolved ? ALERT_COLOURS.resolved : severity === "critical" ? ALERT_COLOURS.critical : severity === "warning" ? ALERT_COLOURS.warning : ALERT_COLOURS.info,
		mention,
	};
}
