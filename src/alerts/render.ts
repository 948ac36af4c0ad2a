import { ActionRowBuilder, ButtonBuilder, StringSelectMenuBuilder } from "@discordjs/builders";
import {
	type APIActionRowComponent,
	type APIComponentInMessageActionRow,
	type APIEmbed,
	ButtonStyle,
} from "discord-api-types/v10";
import { DISCORD_LIMITS, escapeMarkdown, joinLinesWithin, oneLine, truncate } from "../render/limits.ts";
import {
	fitReportToEmbed,
	joinText,
	type Report,
	reportLinkButtons,
	type Text,
	textToMarkdown,
} from "../render/report.ts";
import { formatDuration } from "../time.ts";
import {
	alertAck,
	alertLogs,
	alertRestart,
	alertSilence,
	alertTimeline,
	alertUnack,
	alertUnsilence,
	SILENCE_CHOICES,
} from "./buttons.ts";
import {
	ALERT_COLOURS,
	activeSilence,
	alertGroupReport,
	type Headline,
	type PreviousMessage,
	severityIcon,
} from "./group-report.ts";
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
	/** The episode the message is about: its Timeline button (once resolved) exports that episode. */
	readonly episode?: number;
}

/** The Timeline button of a resolved card (handled in src/alerts/buttons.ts), first in its row of links. */
function timelineButton(actions: AlertActions): ButtonBuilder {
	return new ButtonBuilder()
		.setCustomId(alertTimeline.id(actions.groupId, actions.episode))
		.setLabel("Timeline")
		.setEmoji({ name: "🧾" })
		.setStyle(ButtonStyle.Secondary);
}

// Each id is built by the handler in src/alerts/buttons.ts that receives it (the group id as the argument).
function actionRows(
	actions: AlertActions,
	acknowledged: boolean,
	silenced: boolean,
): APIActionRowComponent<APIComponentInMessageActionRow>[] {
	const button = (handler: { id(groupId: string): string }, label: string, style: ButtonStyle, emoji?: string) => {
		const built = new ButtonBuilder()
			.setCustomId(handler.id(actions.groupId))
			.setLabel(truncate(label, DISCORD_LIMITS.buttonLabel))
			.setStyle(style);
		return emoji ? built.setEmoji({ name: emoji }) : built;
	};
	const buttons = [
		acknowledged
			? button(alertUnack, "Un-acknowledge", ButtonStyle.Secondary, "↩️")
			: button(alertAck, "Acknowledge", ButtonStyle.Primary, "✋"),
		// "…": the press asks first (an ephemeral confirmation naming host and container).
		...(actions.restartContainer
			? [button(alertRestart, `Restart ${actions.restartContainer}…`, ButtonStyle.Danger, "🔁")]
			: []),
		...(actions.logs ? [button(alertLogs, "Logs", ButtonStyle.Secondary, "🔎")] : []),
		...(silenced ? [button(alertUnsilence, "Unsilence", ButtonStyle.Secondary, "🔔")] : []),
	];
	const rows: APIActionRowComponent<APIComponentInMessageActionRow>[] = [
		new ActionRowBuilder<ButtonBuilder>().addComponents(buttons).toJSON(),
	];
	if (!silenced) {
		const menu = new StringSelectMenuBuilder()
			.setCustomId(alertSilence.id(actions.groupId))
			.setPlaceholder("🔕 Silence…")
			.addOptions(...SILENCE_CHOICES.map((h) => ({ label: `Silence for ${h} h`, value: String(h) })), {
				label: "Custom duration and comment…",
				value: "custom",
			});
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

/**
 * Alert text placed beside the on-call ping: one line, markdown escaped (escapeMarkdown keeps mentions and times
 * literal too).
 */
export function contentText(text: string): string {
	return escapeMarkdown(text.replace(/\s+/g, " "));
}

/**
 * The message content of a firing group: "🔴 PostgresDown on prod: PostgreSQL is down (2 of 2)", its untrusted parts
 * escaped.
 */
function headlineText(h: Headline): string {
	return (
		`${h.icon} ` +
		`${contentText(h.name)}${h.environment ? ` on ${contentText(h.environment)}` : ""}` +
		`${h.summary ? `: ${contentText(h.summary)}` : ""} (${h.firing} of ${h.alerts})`
	);
}

/** The full list as text, for the attachment. */
export function alertsFile(payload: WebhookPayload): string {
	return `${payload.alerts
		.map((a) =>
			[
				`[${a.status.toUpperCase()}] ${a.fingerprint} since ${a.startsAt}`,
				`  labels: ${Object.entries(a.labels)
					.map(([k, v]) => `${k}=${v}`)
					.join(" ")}`,
				...Object.entries(a.annotations).map(([k, v]) => `  ${k}: ${v}`),
				a.generatorURL ? `  source: ${a.generatorURL}` : "",
			]
				.filter(Boolean)
				.join("\n"),
		)
		.join("\n\n")}\n`;
}

/**
 * Renders one alert group for Discord: alertGroupReport's Report as an embed coloured by severity,
 * within Discord's limits for 1 to 10,000 alerts (alerts that do not fit are in the attached full
 * list), the chart, the on-call ping and the action buttons.
 */
export function renderAlertGroup(
	payload: WebhookPayload,
	context: {
		firstFiringAt: number;
		now?: number;
		mentionRole?: string | null;
		chart?: Buffer | undefined;
		ack?: AckState | null;
		silence?: SilenceState | null;
		restart?: RestartState | null;
		flaps?: readonly number[];
		previous?: PreviousMessage;
		actions?: AlertActions;
		withoutAttachments?: boolean;
	},
): AlertMessage {
	const now = context.now ?? Date.now();
	// When Discord would not take the files, the text still goes out, saying what is missing.
	const chart = context.withoutAttachments ? undefined : context.chart;
	const group = alertGroupReport(payload, { ...context, now, chart: context.chart !== undefined });
	const { embed, listShown } = fitReportToEmbed(group.report);
	embed.setColor(group.colour);
	if (chart) embed.setImage("attachment://chart.png");
	const attachList = group.firing && listShown < payload.alerts.length && !context.withoutAttachments;
	const ping = group.mention ? `${textToMarkdown({ mention: "role", id: group.mention })} ` : "";
	const actionButtons =
		context.actions && group.firing
			? actionRows(context.actions, Boolean(context.ack), activeSilence(context.silence, now) !== null)
			: [];
	// A resolved card keeps one row: Timeline, then its links (Runbook, Dashboard).
	const leading = context.actions && !group.firing ? [timelineButton(context.actions)] : [];
	return {
		content: group.headline ? `${ping}${headlineText(group.headline)}` : "",
		embed: embed.toJSON(),
		files: [
			...(attachList ? [{ name: "alerts.txt", data: Buffer.from(alertsFile(payload)) }] : []),
			...(chart ? [{ name: "chart.png", data: chart }] : []),
		],
		allowedMentions: { parse: [], roles: group.mention ? [group.mention] : [] },
		components: [...actionButtons, ...reportLinkButtons(group.report, leading)],
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
	/** The environment the group's alerts share, or "". */
	readonly environment: string;
	readonly firing: number;
	readonly since: number;
	/** Whether the group's own message is posted yet. */
	readonly posted: boolean;
	/** Link to the group's own message, once posted (and the guild is known). */
	readonly url: string | undefined;
}

/**
 * What a storm summary shows: the firing groups in display order (severity first, then newest), and the storm so far.
 */
export interface StormView {
	readonly startedAt: number;
	readonly firing: readonly StormLine[];
	/** Groups listed during this storm that no longer fire. */
	readonly resolved: number;
	/** Groups listed during this storm in all, firing or not. */
	readonly total: number;
}

const STORM_FILE = "storm.txt";
/** The storm summary lists this many groups (critical first, with links); the rest are counted and attached. */
export const STORM_LISTED = 15;
// How many alertnames and environments the counts name before "N other".
const STORM_COUNTED = 5;

function stormName(line: StormLine): string {
	return truncate(oneLine(line.name), 80);
}

function stormItem(line: StormLine, withLink: boolean): Text {
	const name: Text = { strong: stormName(line) };
	const linked = withLink && line.url;
	const pending = line.posted || !withLink ? [] : [" · message to follow"];
	return [
		`${severityIcon(line.severity)} `,
		linked ? { link: line.url!, label: name } : name,
		` · ${line.firing} firing`,
		...pending,
	];
}

function stormLine(line: StormLine, withLink: boolean): string {
	return textToMarkdown(stormItem(line, withLink));
}

/** "PostgresDown 12 · DiskFull 8 · 3 other": how many lines share each value, most first. */
function countsOf(values: readonly string[]): string {
	const counts = new Map<string, number>();
	for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
	const sorted = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
	const other = sorted.slice(STORM_COUNTED).reduce((sum, [, n]) => sum + n, 0);
	return [
		...sorted.slice(0, STORM_COUNTED).map(([value, n]) => `${truncate(value, 40)} ${n}`),
		...(other > 0 ? [`${other} other`] : []),
	].join(" · ");
}

/** The storm summary's full list as text, for the attachment: every firing group, with its start and link. */
export function stormFile(view: StormView): string {
	const lines = view.firing.map(
		(l) =>
			`[${(l.severity || "none").toUpperCase()}] ${oneLine(l.name)} · ${l.firing} firing since ` +
			`${new Date(l.since).toISOString()} · ${l.url ?? (l.posted ? "posted" : "message to follow")}`,
	);
	return `${[
		`Alert storm since ${new Date(view.startedAt).toISOString()}: ` +
			`${view.firing.length} groups firing, ${view.resolved} resolved`,
		"",
		...lines,
	].join("\n")}\n`;
}

const SEVERITY_WORDS = ["critical", "error", "warning", "info"] as const;

/**
 * The storm summary as a Report: counts by severity, alertname and environment first, then the first
 * STORM_LISTED groups in display order (critical first) with links to their messages; the rest are
 * counted and in the attached full list. Once every group resolved: green, and says their messages
 * are being updated.
 */
export function stormReport(view: StormView, options: { withoutAttachments?: boolean } = {}): Report {
	const n = view.firing.length;
	const plural = (k: number, word: string) => `${k} ${word}${k === 1 ? "" : "s"}`;
	if (n === 0) {
		const groups = plural(view.resolved, "group");
		return {
			title: `✅ Alert storm: ${groups} resolved`,
			level: "ok",
			summary: `${groups} resolved; updating their messages…`,
		};
	}
	const critical = view.firing.filter((l) => l.severity === "critical").length;
	const posted = view.firing.filter((l) => l.posted).length;
	const severities = view.firing.map((l) => l.severity);
	const bySeverity = [...SEVERITY_WORDS, ""]
		.map((s) => [s, severities.filter((v) => v === s).length] as const)
		.filter(([, k]) => k > 0);
	const known = new Set<string>(SEVERITY_WORDS);
	const otherSeverity = severities.filter((s) => s !== "" && !known.has(s)).length;
	const environments = view.firing.map((l) => l.environment).filter((e) => e !== "");
	const severityCounts = [
		...bySeverity.map(([s, k]) => `${severityIcon(s)} ${k} ${s || "no severity"}`),
		...(otherSeverity > 0 ? [`⚪ ${otherSeverity} other`] : []),
	];
	const summary: Text[] = [
		[
			"Posting ",
			plural(n, "group"),
			" at Discord's pace, critical first, since ",
			{ time: new Date(view.startedAt), style: "time" },
			"; this list stays current.",
		],
		"",
		[{ strong: "Severity:" }, ` ${severityCounts.join(" · ")}`],
		// Counts by name and environment say what the list below cannot once it is cut.
		...(n > STORM_LISTED
			? [[{ strong: "Alerts:" }, ` ${countsOf(view.firing.map((l) => oneLine(l.name)))}`] satisfies Text]
			: []),
		...(n > STORM_LISTED && environments.length > 0
			? [[{ strong: "Environments:" }, ` ${countsOf(environments)}`] satisfies Text]
			: []),
		[
			{ strong: "Posted:" },
			` ${posted} of ${n}${view.resolved > 0 ? ` · ${view.resolved} resolved since the storm began` : ""}`,
		],
	];
	return {
		title: `🌩️ Alert storm: ${plural(n, "group")} firing${critical > 0 ? ` (${critical} critical)` : ""}`,
		level: critical > 0 ? "critical" : "warn",
		summary: joinText(summary, "\n"),
		list: {
			items: view.firing.slice(0, STORM_LISTED).map((l) => stormItem(l, true)),
			total: n,
			more: options.withoutAttachments ? "the full list could not be attached" : `full list attached: ${STORM_FILE}`,
		},
	};
}

/**
 * Renders the storm summary (stormReport) as one embed within Discord's limits at any size, with the
 * full list attached when not every group is listed. Returns which groups the message shows: those
 * the embed lists, and with the attachment every firing group (delivery rewrites the summary soon
 * for a group shown nowhere, which would spend the channel's budget on every other write).
 */
export function renderStormSummary(
	view: StormView,
	options: { withoutAttachments?: boolean } = {},
): { message: SummaryMessage; listed: string[] } {
	const report = stormReport(view, options);
	const { embed, listShown } = fitReportToEmbed(report);
	embed.setColor(
		report.level === "ok"
			? ALERT_COLOURS.resolved
			: report.level === "critical"
				? ALERT_COLOURS.critical
				: ALERT_COLOURS.warning,
	);
	const attach = listShown < view.firing.length && !options.withoutAttachments;
	return {
		message: {
			content: "",
			embeds: [embed.toJSON()],
			files: attach ? [{ name: STORM_FILE, data: Buffer.from(stormFile(view)) }] : [],
			allowedMentions: { parse: [], roles: [] },
			components: [],
		},
		listed: (attach ? view.firing : view.firing.slice(0, listShown)).map((l) => l.groupId),
	};
}

/**
 * The short record a storm summary turns into once the channel's backlog drained: how many groups, how long, and what
 * still fires.
 */
export function renderStormOver(view: StormView, endedAt: number): SummaryMessage {
	const n = view.firing.length;
	const stillFiring = `🌤️ Alert storm over: ${n} group${n === 1 ? "" : "s"} still firing`;
	const title = n === 0 ? "✅ Alert storm over" : stillFiring;
	const from = Math.floor(view.startedAt / 1000);
	const head =
		`${view.total} alert group${view.total === 1 ? "" : "s"} fired here from <t:${from}:t> to ` +
		`<t:${Math.floor(endedAt / 1000)}:t> (${formatDuration(endedAt - view.startedAt)}). Each has its own message ` +
		`above, now up to date.`;
	const still = joinLinesWithin(
		view.firing.map((l) => stormLine(l, true)),
		3_000,
	);
	return {
		content: "",
		embeds: [
			{
				title,
				description: [head, still].filter(Boolean).join("\n\n"),
				color: n === 0 ? ALERT_COLOURS.resolved : ALERT_COLOURS.warning,
			},
		],
		files: [],
		allowedMentions: { parse: [], roles: [] },
		components: [],
	};
}
