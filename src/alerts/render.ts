import { ActionRowBuilder, ButtonBuilder, ButtonStyle, StringSelectMenuBuilder, type APIActionRowComponent, type APIComponentInMessageActionRow, type APIEmbed } from "discord.js";
import { encodeCustomId } from "../discord/custom-id.ts";
import { DISCORD_LIMITS, escapeMarkdown, joinLinesWithin, truncate } from "../render/limits.ts";
import { fitReportToEmbed, textToMarkdown, type Text } from "../render/report.ts";
import { formatDuration } from "../time.ts";
import { activeSilence, ALERT_COLOURS, alertGroupReport } from "./group-report.ts";
import type { WebhookPayload } from "./schema.ts";
import type { AckState, RestartState, SilenceState } from "./store.ts";

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

// The ids are the ones src/alerts/buttons.ts handles (area "alert", the group id as the argument).
function actionRows(actions: AlertActions, acknowledged: boolean, silenced: boolean): APIActionRowComponent<APIComponentInMessageActionRow>[] {
	const id = (action: string) => encodeCustomId("alert", action, actions.groupId);
	const button = (action: string, label: string, style: ButtonStyle, emoji?: string) => {
		const built = new ButtonBuilder().setCustomId(id(action)).setLabel(truncate(label, DISCORD_LIMITS.buttonLabel)).setStyle(style);
		return emoji ? built.setEmoji({ name: emoji }) : built;
	};
	const buttons = [
		acknowledged ? button("unack", "Un-acknowledge", ButtonStyle.Secondary) : button("ack", "Acknowledge", ButtonStyle.Primary, "✋"),
		...(actions.restartContainer ? [button("restart", `Restart ${actions.restartContainer}`, ButtonStyle.Danger, "🔁")] : []),
		...(actions.logs ? [button("logs", "Logs", ButtonStyle.Secondary, "🔎")] : []),
		...(silenced ? [button("unsilence", "Unsilence", ButtonStyle.Secondary, "🔔")] : []),
	];
	const rows: APIActionRowComponent<APIComponentInMessageActionRow>[] = [new ActionRowBuilder<ButtonBuilder>().addComponents(buttons).toJSON()];
	if (!silenced) {
		const menu = new StringSelectMenuBuilder()
			.setCustomId(id("silence"))
			.setPlaceholder("🔕 Silence…")
			.addOptions(...SILENCE_CHOICES.map((h) => ({ label: `Silence for ${h} h`, value: String(h) })), { label: "Custom duration and comment…", value: "custom" });
		rows.push(new ActionRowBuilder<StringSelectMenuBuilder>().addComponents(menu).toJSON());
	}
	return rows;
}

/** The Prometheus expression behind an alert, decoded from its generatorURL (Go encodes spaces as '+'). */
export function expressionOf(generatorURL: string): string | undefined {
	try {
		return new URL(generatorURL).searchParams.get("g0.expr") ?? undefined;
	} catch {
		return undefined;
	}
}

/** Alert text placed beside the on-call ping: one line, markdown escaped (escapeMarkdown keeps mentions and times literal too). */
export function contentText(text: string): string {
	return escapeMarkdown(text.replace(/\s+/g, " "));
}

/** The full list as text, for the attachment. */
export function alertsFile(payload: WebhookPayload): string {
	return payload.alerts
		.map((a) => [`[${a.status.toUpperCase()}] ${a.fingerprint} since ${a.startsAt}`, `  labels: ${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(" ")}`, ...Object.entries(a.annotations).map(([k, v]) => `  ${k}: ${v}`), a.generatorURL ? `  source: ${a.generatorURL}` : ""].filter(Boolean).join("\n"))
		.join("\n\n") + "\n";
}

/**
 * Renders one alert group for Discord: alertGroupReport's Report as an embed coloured by severity,
 * within Discord's limits for 1 to 10,000 alerts (alerts that do not fit are in the attached full
 * list), the chart, the on-call ping and the action buttons.
 */
export function renderAlertGroup(payload: WebhookPayload, context: { firstFiringAt: number; now?: number; mentionRole?: string | null; chart?: Buffer | undefined; ack?: AckState | null; silence?: SilenceState | null; restart?: RestartState | null; actions?: AlertActions; withoutAttachments?: boolean }): AlertMessage {
	const now = context.now ?? Date.now();
	// When Discord would not take the files, the text still goes out, saying what is missing.
	const chart = context.withoutAttachments ? undefined : context.chart;
	const group = alertGroupReport(payload, { ...context, now, chart: context.chart !== undefined });
	const { embed, listShown } = fitReportToEmbed(group.report);
	embed.setColor(group.colour);
	if (chart) embed.setImage("attachment://chart.png");
	const attachList = listShown < payload.alerts.length && !context.withoutAttachments;
	return {
		content: group.mention ? `${textToMarkdown({ mention: "role", id: group.mention })} ${contentText(truncate(group.name, 100))} is firing` : "",
		embed: embed.toJSON(),
		files: [...(attachList ? [{ name: "alerts.txt", data: Buffer.from(alertsFile(payload)) }] : []), ...(chart ? [{ name: "chart.png", data: chart }] : [])],
		allowedMentions: { parse: [], roles: group.mention ? [group.mention] : [] },
		components: group.firing && context.actions ? actionRows(context.actions, Boolean(context.ack), activeSilence(context.silence, now) !== null) : [],
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
	const name: Text = { strong: truncate(line.name, 80) };
	return textToMarkdown([`${SEVERITY_ICONS[line.severity] ?? "⚪"} `, withLink && line.url ? { link: line.url, label: name } : name, ` · ${line.firing} firing`]);
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
	const color = critical > 0 ? ALERT_COLOURS.critical : ALERT_COLOURS.warning;
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
	const head = `${view.total} alert group${view.total === 1 ? "" : "s"} fired here from <t:${from}:t> to <t:${Math.floor(endedAt / 1000)}:t> (${formatDuration(endedAt - view.startedAt)}). Each has its own message above, now up to date.`;
	const still = joinLinesWithin(view.firing.map((l) => stormLine(l, true)), 3_000);
	return {
		content: "",
		embeds: [{ title, description: [head, still].filter(Boolean).join("\n\n"), color: n === 0 ? ALERT_COLOURS.resolved : ALERT_COLOURS.warning }],
		files: [],
		allowedMentions: { parse: [], roles: [] },
		components: [],
	};
}
