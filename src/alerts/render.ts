import type { APIActionRowComponent, APIComponentInMessageActionRow, APIEmbed } from "discord.js";
import type { AckState, RestartState, SilenceState } from "./store.ts";
import { DISCORD_LIMITS, escapeMarkdown, inlineCode, joinLinesWithin, truncate } from "../render/limits.ts";
import type { WebhookAlert, WebhookPayload } from "./schema.ts";

/** A Discord message for one alert group, ready for the REST API. */
export interface AlertMessage {
	readonly content: string;
	readonly embed: APIEmbed;
	/** Attachments: the full alert list when not every alert fits, and the expression's chart. */
	readonly files: readonly { readonly name: string; readonly data: Buffer }[];
	readonly allowedMentions: { parse: []; roles: string[] };
	/** Action buttons while the group fires; none once it resolved. */
	readonly components: APIActionRowComponent<APIComponentInMessageActionRow>[];
}

/** What buttons a group's message offers; decided from config by the caller, rendered here. */
export interface AlertActions {
	readonly groupId: string;
	/** The allow-listed container the alert names, if any: offers Restart. */
	readonly restartContainer?: string | undefined;
	/** Whether log search exists for the alert's environment: offers Logs. */
	readonly logs: boolean;
}

/** The durations the Silence select offers, in hours; "custom" opens a form. */
export const SILENCE_CHOICES = [1, 4, 24] as const;

function actionRows(actions: AlertActions, ack: AckState | null, silence: SilenceState | null): APIActionRowComponent<APIComponentInMessageActionRow>[] {
	const id = actions.groupId;
	const buttons: APIComponentInMessageActionRow[] = [
		ack ? { type: 2, style: 2, custom_id: `alert:unack:${id}`, label: "Un-acknowledge" } : { type: 2, style: 1, custom_id: `alert:ack:${id}`, label: "Acknowledge", emoji: { name: "✋" } },
		...(actions.restartContainer ? [{ type: 2 as const, style: 4 as const, custom_id: `alert:restart:${id}`, label: truncate(`Restart ${actions.restartContainer}`, 80), emoji: { name: "🔁" } }] : []),
		...(actions.logs ? [{ type: 2 as const, style: 2 as const, custom_id: `alert:logs:${id}`, label: "Logs", emoji: { name: "🔎" } }] : []),
		...(silence ? [{ type: 2 as const, style: 2 as const, custom_id: `alert:unsilence:${id}`, label: "Unsilence", emoji: { name: "🔔" } }] : []),
	];
	const rows: APIActionRowComponent<APIComponentInMessageActionRow>[] = [{ type: 1, components: buttons }];
	if (!silence) {
		rows.push({
			type: 1,
			components: [
				{
					type: 3,
					custom_id: `alert:silence:${id}`,
					placeholder: "🔕 Silence…",
					options: [...SILENCE_CHOICES.map((h) => ({ label: `Silence for ${h} h`, value: String(h) })), { label: "Custom duration and comment…", value: "custom" }],
				},
			],
		});
	}
	return rows;
}

const COLOURS = { resolved: 0x2ecc71, critical: 0xe74c3c, warning: 0xf39c12, info: 0x3498db } as const;
const SHOWN_ALERTS = 10;

/** "12 min", "3 h 5 min", "2 d 4 h". */
export function humanDuration(ms: number): string {
	const minutes = Math.max(0, Math.round(ms / 60_000));
	if (minutes < 60) return `${minutes} min`;
	const hours = Math.floor(minutes / 60);
	if (hours < 48) return `${hours} h${minutes % 60 ? ` ${minutes % 60} min` : ""}`;
	return `${Math.floor(hours / 24)} d${hours % 24 ? ` ${hours % 24} h` : ""}`;
}

/** Label names whose values differ between the group's alerts: what tells one alert from another. */
export function differingLabels(alerts: readonly WebhookAlert[], common: Readonly<Record<string, string>>): string[] {
	const names = new Set(alerts.flatMap((a) => Object.keys(a.labels)));
	return [...names].filter((n) => !(n in common) && n !== "alertname").sort();
}

/** The Prometheus expression behind an alert, decoded from its generatorURL (Go encodes spaces as '+'). */
export function expressionOf(generatorURL: string): string | undefined {
	try {
		return new URL(generatorURL).searchParams.get("g0.expr") ?? undefined;
	} catch {
		return undefined;
	}
}

function silenceUrl(payload: WebhookPayload): string | undefined {
	if (!/^https?:\/\//.test(payload.externalURL)) return undefined;
	const matchers = Object.entries(payload.groupLabels).map(([k, v]) => `${k}="${v.replace(/"/g, '\\"')}"`);
	return `${payload.externalURL.replace(/\/$/, "")}/#/silences/new?filter=${encodeURIComponent(`{${matchers.join(",")}}`)}`;
}

function link(label: string, url: string | undefined): string | undefined {
	// Only http(s) links, and never ones that would break out of markdown's link syntax.
	if (!url || !/^https?:\/\/[^\s)<>]+$/.test(url) || url.length > 512) return undefined;
	return `[${label}](${url})`;
}

/**
 * Alert text placed beside the on-call ping: one line, markdown escaped (masked links, headings,
 * @everyone) and "<" escaped so "<@id>", "<#id>" or "<t:…>" stay literal instead of rendering.
 */
export function contentText(text: string): string {
	return escapeMarkdown(text.replace(/\s+/g, " ")).replace(/</g, "\\<");
}

function alertLine(alert: WebhookAlert, labels: readonly string[]): string {
	const icon = alert.status === "firing" ? "🔥" : "✅";
	const shown = labels.filter((l) => alert.labels[l] !== undefined).map((l) => `${l}=${alert.labels[l]}`);
	const since = Date.parse(alert.startsAt);
	const summary = alert.annotations.summary ? ` — ${alert.annotations.summary}` : "";
	return `${icon} ${escapeMarkdown(truncate(shown.join(" ") || alert.fingerprint, 200))}${Number.isFinite(since) ? ` · since <t:${Math.floor(since / 1000)}:R>` : ""}${escapeMarkdown(truncate(summary, 200))}`;
}

/** The full list as text, for the attachment. */
export function alertsFile(payload: WebhookPayload): string {
	return payload.alerts
		.map((a) => [`[${a.status.toUpperCase()}] ${a.fingerprint} since ${a.startsAt}`, `  labels: ${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(" ")}`, ...Object.entries(a.annotations).map(([k, v]) => `  ${k}: ${v}`), a.generatorURL ? `  source: ${a.generatorURL}` : ""].filter(Boolean).join("\n"))
		.join("\n\n") + "\n";
}

/** What a group is called in titles: its alertname, or how many kinds of alert it holds. */
export function groupName(payload: WebhookPayload): string {
	const names = new Set(payload.alerts.map((a) => a.labels.alertname));
	return payload.commonLabels.alertname ?? payload.groupLabels.alertname ?? (names.size === 1 ? [...names][0] : undefined) ?? `${names.size} kinds of alert`;
}

/** Renders one alert group: title with name and count, colour by severity and status, differing labels, links; within Discord's limits for 1 to 10,000 alerts. */
export function renderAlertGroup(payload: WebhookPayload, context: { firstFiringAt: number; now?: number; mentionRole?: string | null; chart?: Buffer | undefined; ack?: AckState | null; silence?: SilenceState | null; restart?: RestartState | null; actions?: AlertActions; withoutAttachments?: boolean }): AlertMessage {
	const now = context.now ?? Date.now();
	// When Discord would not take the files, the text still goes out, saying what is missing.
	const chart = context.withoutAttachments ? undefined : context.chart;
	const listNote = context.withoutAttachments ? "the full list could not be attached" : "full list attached";
	const firing = payload.alerts.filter((a) => a.status === "firing");
	const resolved = payload.status === "resolved";
	const name = groupName(payload);
	const severity = (payload.commonLabels.severity ?? "").toLowerCase();
	const colour = resolved ? COLOURS.resolved : severity === "critical" ? COLOURS.critical : severity === "warning" ? COLOURS.warning : COLOURS.info;
	const title = resolved ? `✅ Resolved: ${name}` : `🔥 ${name} — ${firing.length} firing${payload.alerts.length > firing.length ? `, ${payload.alerts.length - firing.length} resolved` : ""}`;
	const labels = differingLabels(payload.alerts, payload.commonLabels);
	const annotations = Object.keys(payload.commonAnnotations).length > 0 ? payload.commonAnnotations : (payload.alerts[0]?.annotations ?? {});
	const head = [
		resolved ? `**Resolved after ${humanDuration(now - context.firstFiringAt)}.**` : "",
		context.ack ? `✋ Acknowledged by <@${context.ack.userId}> <t:${Math.floor(context.ack.at / 1000)}:R>` : "",
		context.restart ? `🔁 ${context.restart.ok ? "Restarted" : "Restart failed"}: \`${context.restart.container}\` by <@${context.restart.userId}> at <t:${Math.floor(context.restart.at / 1000)}:T>` : "",
		context.silence && context.silence.until > now ? `🔕 Silenced by ${escapeMarkdown(context.silence.username)} until <t:${Math.floor(context.silence.until / 1000)}:f>` : "",
		annotations.summary ? `**${escapeMarkdown(truncate(annotations.summary, 300))}**` : "",
		annotations.description ? escapeMarkdown(truncate(annotations.description, 1_000)) : "",
	].filter(Boolean);
	const ordered = [...firing, ...payload.alerts.filter((a) => a.status !== "firing")];
	const truncatedNote = payload.truncatedAlerts > 0 ? `⚠️ AlertManager left out ${payload.truncatedAlerts} more alert${payload.truncatedAlerts === 1 ? "" : "s"} (max_alerts).` : "";
	// Room is kept for the closing lines first, so "and N more" and the max_alerts note are never the part cut.
	const attachmentNote = context.withoutAttachments && context.chart ? "⚠️ The chart could not be attached." : "";
	const tailRoom = `… and ${payload.alerts.length} more (${listNote})`.length + truncatedNote.length + attachmentNote.length + 3;
	const headText = joinLinesWithin(head, 1_200);
	const lines: string[] = [];
	let used = headText.length + 2;
	for (const alert of ordered.slice(0, SHOWN_ALERTS)) {
		const line = alertLine(alert, labels);
		if (used + line.length + 1 > 3_500 - tailRoom) break;
		lines.push(line);
		used += line.length + 1;
	}
	const hidden = payload.alerts.length - lines.length;
	const tail = [hidden > 0 ? `… and ${hidden} more (${listNote})` : "", truncatedNote, attachmentNote].filter(Boolean);
	const description = [headText, "", ...lines, ...tail].join("\n").trim();
	const started = Math.floor(context.firstFiringAt / 1000);
	const first = payload.alerts[0];
	const links = [
		link("Runbook", annotations.runbook_url ?? first?.annotations.runbook_url),
		link("Source", first?.generatorURL),
		link("Silence", silenceUrl(payload)),
		link("Dashboard", annotations.dashboard_url ?? annotations.grafana_url),
	].filter(Boolean);
	const common = Object.entries(payload.commonLabels).filter(([k]) => k !== "alertname" && k !== "severity");
	const fields = [
		{ name: "Severity", value: severity || "none", inline: true },
		{ name: "Started", value: `<t:${started}:f> (<t:${started}:R>)`, inline: true },
		...(common.length > 0 ? [{ name: "Labels", value: truncate(common.map(([k, v]) => `${k}=${inlineCode(v)}`).join(" "), DISCORD_LIMITS.fieldValue), inline: false }] : []),
		...(links.length > 0 ? [{ name: "Links", value: truncate(links.join(" · "), DISCORD_LIMITS.fieldValue), inline: false }] : []),
	];
	// Once someone has acknowledged the group, later updates stop pinging the on-call role.
	const mention = !resolved && severity === "critical" && context.mentionRole && !context.ack ? context.mentionRole : undefined;
	return {
		content: mention ? `<@&${mention}> ${contentText(truncate(name, 100))} is firing` : "",
		embed: { title: truncate(title, DISCORD_LIMITS.title), description, color: colour, fields, ...(chart ? { image: { url: "attachment://chart.png" } } : {}), footer: { text: truncate(`${payload.receiver} · group ${Object.entries(payload.groupLabels).map(([k, v]) => `${k}=${v}`).join(", ")}`, 300) }, timestamp: new Date(now).toISOString() },
		files: [...(hidden > 0 && !context.withoutAttachments ? [{ name: "alerts.txt", data: Buffer.from(alertsFile(payload)) }] : []), ...(chart ? [{ name: "chart.png", data: chart }] : [])],
		allowedMentions: { parse: [], roles: mention ? [mention] : [] },
		components: !resolved && context.actions ? actionRows(context.actions, context.ack ?? null, context.silence && context.silence.until > now ? context.silence : null) : [],
	};
}

/** A message that is not one group's: the storm summary, whose list may page over several embeds. */
export interface SummaryMessage {
	readonly content: string;
	readonly embeds: readonly APIEmbed[];
	readonly files: readonly { readonly name: string; readonly data: Buffer }[];
	readonly allowedMentions: { parse: []; roles: string[] };
	readonly components: APIActionRowComponent<APIComponentInMessageActionRow>[];
}

/** One firing group as the storm summary lists it. */
export interface StormLine {
	readonly groupId: string;
	readonly name: string;
	/** Lower-case severity label, or "" when the group has none in common. */
	readonly severity: string;
	readonly firing: number;
	readonly since: number;
	/** Whether the group's own message is posted yet. */
	readonly posted: boolean;
	/** Link to the group's own message, once posted (and the guild is known). */
	readonly url: string | undefined;
}

/** What a storm summary shows: the firing groups in display order (severity first, then newest), and the storm so far. */
export interface StormView {
	readonly startedAt: number;
	readonly firing: readonly StormLine[];
	/** Groups listed during this storm that no longer fire. */
	readonly resolved: number;
	/** Groups listed during this storm in all, firing or not. */
	readonly total: number;
}

const SEVERITY_ICONS: Readonly<Record<string, string>> = { critical: "🔴", error: "🔴", warning: "🟠", info: "🔵" };
const STORM_FILE = "storm.txt";
// Room kept for the closing "… and N more" line, whatever is listed before it.
const STORM_TAIL_ROOM = 90;

function stormLine(line: StormLine, withLink: boolean): string {
	const name = `**${escapeMarkdown(truncate(line.name, 80))}**`;
	return `${SEVERITY_ICONS[line.severity] ?? "⚪"} ${withLink && line.url ? `[${name}](${line.url})` : name} · ${line.firing} firing`;
}

/** The storm summary's full list as text, for the attachment: every firing group, with its start and link. */
export function stormFile(view: StormView): string {
	const lines = view.firing.map((l) => `[${(l.severity || "none").toUpperCase()}] ${l.name} · ${l.firing} firing since ${new Date(l.since).toISOString()} · ${l.url ?? (l.posted ? "posted" : "message to follow")}`);
	return [`Alert storm since ${new Date(view.startedAt).toISOString()}: ${view.firing.length} groups firing, ${view.resolved} resolved`, "", ...lines].join("\n") + "\n";
}

/**
 * Renders the storm summary: every firing group (severity first, then newest) with its count and,
 * once posted, a link to its own message. Within Discord's limits at any size: the list pages over
 * embeds up to the 6,000-character total; groups or links that do not fit are in the attached full list.
 * Returns which groups the embeds list (the rest are only in the attachment).
 */
export function renderStormSummary(view: StormView, options: { withoutAttachments?: boolean } = {}): { message: SummaryMessage; listed: string[] } {
	const n = view.firing.length;
	const critical = view.firing.filter((l) => l.severity === "critical").length;
	const posted = view.firing.filter((l) => l.posted).length;
	const title = n === 0 && view.resolved > 0 ? `🌩️ Alert storm: all ${view.resolved} groups resolved, their messages catching up` : `🌩️ Alert storm: ${n} group${n === 1 ? "" : "s"} firing${critical > 0 ? ` (${critical} critical)` : ""}`;
	const since = Math.floor(view.startedAt / 1000);
	const head = [
		`Since <t:${since}:t> more alert groups fire here than Discord lets opsbot post at once. Each still gets its own message, critical and new ones first; meanwhile this list stays current.`,
		`**${posted} of ${n}** posted${view.resolved > 0 ? ` · ${view.resolved} resolved since the storm began` : ""}`,
		"",
	].join("\n");
	const budget = DISCORD_LIMITS.embedTotal - title.length - head.length - STORM_TAIL_ROOM;
	// Every group by name first, as many as fit; then links, in display order, while room is left.
	const lines: string[] = [];
	let used = 0;
	for (const line of view.firing) {
		const text = stormLine(line, false);
		if (used + text.length + 1 > budget) break;
		lines.push(text);
		used += text.length + 1;
	}
	let unlinked = 0;
	lines.forEach((text, i) => {
		const line = view.firing[i]!;
		if (!line.url) return;
		const linked = stormLine(line, true);
		if (used + linked.length - text.length > budget) {
			unlinked++;
			return;
		}
		used += linked.length - text.length;
		lines[i] = linked;
	});
	const hidden = n - lines.length;
	const attached = options.withoutAttachments ? "it could not be attached" : `attached: ${STORM_FILE}`;
	const tail = hidden > 0 ? `… and ${hidden} more (full list ${attached})` : unlinked > 0 ? `Links to ${unlinked} more are in the full list (${attached}).` : "";
	// Pages: each embed's description holds up to 4,096 characters; lines are never split.
	const pages: string[] = [];
	let page = head;
	for (const text of tail ? [...lines, tail] : lines) {
		if (page.length + text.length + 1 > DISCORD_LIMITS.description) {
			pages.push(page);
			page = "";
		}
		page += page && !page.endsWith("\n") ? `\n${text}` : text;
	}
	pages.push(page);
	const color = critical > 0 ? COLOURS.critical : COLOURS.warning;
	const attach = (hidden > 0 || unlinked > 0) && !options.withoutAttachments;
	return {
		message: {
			content: "",
			embeds: pages.slice(0, DISCORD_LIMITS.embedsPerMessage).map((description, i) => (i === 0 ? { title, description, color } : { description, color })),
			files: attach ? [{ name: STORM_FILE, data: Buffer.from(stormFile(view)) }] : [],
			allowedMentions: { parse: [], roles: [] },
			components: [],
		},
		listed: view.firing.slice(0, lines.length).map((l) => l.groupId),
	};
}

/** The short record a storm summary turns into once the channel's backlog drained: how many groups, how long, and what still fires. */
export function renderStormOver(view: StormView, endedAt: number): SummaryMessage {
	const n = view.firing.length;
	const title = n === 0 ? "✅ Alert storm over" : `🌤️ Alert storm over: ${n} group${n === 1 ? "" : "s"} still firing`;
	const from = Math.floor(view.startedAt / 1000);
	const head = `${view.total} alert group${view.total === 1 ? "" : "s"} fired here from <t:${from}:t> to <t:${Math.floor(endedAt / 1000)}:t> (${humanDuration(endedAt - view.startedAt)}). Each has its own message above, now up to date.`;
	const still = joinLinesWithin(view.firing.map((l) => stormLine(l, true)), 3_000);
	return {
		content: "",
		embeds: [{ title, description: [head, still].filter(Boolean).join("\n\n"), color: n === 0 ? COLOURS.resolved : COLOURS.warning }],
		files: [],
		allowedMentions: { parse: [], roles: [] },
		components: [],
	};
}
