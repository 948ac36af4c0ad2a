import { oneLine, truncate } from "../render/limits.ts";
import {
	type Inline,
	joinText,
	type Level,
	type Report,
	type ReportLine,
	type ReportLink,
	type Text,
	worstLevel,
} from "../render/report.ts";
import { flattenControls } from "../text.ts";
import { formatDuration } from "../time.ts";
import type { AlertFact, Episode, EpisodeEvent, FiringFilter, FiringPage, HistorySummary } from "./episodes.ts";
import { messageUrl } from "./storm.ts";

// What /alerts, /alerts history, `opsbot alerts --history` and a timeline export show. Every string
// from an alert or a person (names, labels, usernames, command output) is data: plain strings in a
// Report (each view escapes them), escaped or fenced in the Markdown file.

/** Groups /alerts shows per page. */
export const FIRING_PAGE = 10;

const severityLevel = (severity: string | null): Level => (severity === "critical" ? "critical" : "warn");
const plain = (text: string, max = 100) => truncate(oneLine(text), max);
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function filterWords(filter: FiringFilter): string | undefined {
	const words = [
		filter.environment && `environment ${plain(filter.environment, 40)}`,
		filter.severity && `severity ${plain(filter.severity, 20)}`,
		filter.name && `name containing "${plain(filter.name, 60)}"`,
	].filter(Boolean);
	return words.length > 0 ? `Only ${words.join(", ")}.` : undefined;
}

/** What fires now, one line per group, worst first: `/alerts firing`. */
export function firingReport(
	page: FiringPage & { readonly offset: number; readonly filter: FiringFilter },
	context: { readonly guildId: string; readonly now: number },
): Report {
	const filtered = filterWords(page.filter);
	if (page.total === 0)
		return {
			title: filtered ? "Nothing firing matches" : "Nothing is firing",
			level: "ok",
			summary: filtered ?? "opsbot holds no firing alert group.",
		};
	const byEnvironment = new Map<string, Map<string, number>>();
	for (const c of page.counts) {
		const env = c.environment ?? "no environment";
		const severities = byEnvironment.get(env) ?? new Map<string, number>();
		severities.set(c.severity ?? "no severity", (severities.get(c.severity ?? "no severity") ?? 0) + c.groups);
		byEnvironment.set(env, severities);
	}
	const countText = [...byEnvironment]
		.sort(([a], [b]) => a.localeCompare(b))
		.map(
			([env, severities]) =>
				`${plain(env, 40)}: ${[...severities]
					.sort(([a], [b]) => a.localeCompare(b))
					.map(([severity, n]) => `${n} ${plain(severity, 20)}`)
					.join(", ")}`,
		)
		.join(" · ");
	const critical = page.counts.filter((c) => c.severity === "critical").reduce((n, c) => n + c.groups, 0);
	const lines: ReportLine[] = page.episodes.map((e) => {
		const parts: Text[] = [];
		if (e.environment) parts.push(plain(e.environment, 40));
		parts.push(`${e.firingAlerts} of ${plural(e.alertCount, "alert")} firing`);
		parts.push(["since ", { time: new Date(e.startedAt), style: "clock" }]);
		if (e.ack)
			parts.push(["acknowledged by ", plain(e.ack.username, 40), " at ", { time: new Date(e.ack.at), style: "clock" }]);
		else parts.push("not acknowledged");
		if (e.silence && e.silence.until > context.now)
			parts.push([
				"silenced by ",
				plain(e.silence.username, 40),
				" until ",
				{ time: new Date(e.silence.until), style: "clock" },
			]);
		parts.push(
			e.messageId
				? { link: messageUrl(context.guildId, e.channel, e.messageId), label: "card" }
				: ["no card yet in ", { mention: "channel", id: e.channel }],
		);
		return {
			level: severityLevel(e.severity),
			label: plain(e.name, 60),
			text: joinText(parts, " · "),
		};
	});
	const last = page.offset + page.episodes.length;
	return {
		title: `Firing now: ${plural(page.total, "group")}${critical > 0 ? ` (${critical} critical)` : ""}`,
		level: worstLevel(page.counts.map((c) => severityLevel(c.severity))),
		summary: [countText, ...(filtered ? ["\n", filtered] : [])],
		lines,
		footer: `Groups ${page.offset + 1}-${last} of ${page.total}, worst severity first, then newest.`,
	};
}

/** How long from `from` to `to`, never negative (clocks differ). */
const since = (from: number, to: number) => formatDuration(Math.max(0, to - from), { seconds: true });

const ms = (value: number | null) => (value === null ? "none yet" : formatDuration(value, { seconds: true }));

function episodeText(e: Episode, now: number): Text {
	const parts: Text[] = [];
	if (e.environment) parts.push(plain(e.environment, 40));
	parts.push(["started ", { time: new Date(e.startedAt), style: "absolute" }]);
	parts.push(
		e.endedAt === null
			? `firing for ${formatDuration(now - e.startedAt)}`
			: `lasted ${formatDuration(e.endedAt - e.startedAt, { seconds: true })}`,
	);
	parts.push(
		e.ackedAt === null
			? "not acknowledged"
			: `acknowledged after ${since(e.startedAt, e.ackedAt)} by ${plain(e.ackedBy ?? "?", 40)}`,
	);
	return joinText(parts, " · ");
}

/** `/alerts history` and `opsbot alerts --history`: the episodes of a range and their figures. */
export function historyReport(
	summary: HistorySummary,
	context: { readonly now: number; readonly name?: string },
): Report {
	const range: Inline[] = [
		"From ",
		{ time: new Date(summary.since), style: "absolute" },
		" to ",
		{ time: new Date(summary.until), style: "absolute" },
		context.name ? `, names containing "${plain(context.name, 60)}"` : "",
		".",
	];
	if (summary.total === 0)
		return { title: "Alert history: no episodes", level: "info", summary: [...range, " Nothing fired."] };
	const fields = [
		{ label: "Episodes", value: String(summary.total) },
		{ label: "Acknowledged", value: `${summary.acknowledged} of ${summary.total}` },
		{ label: "Mean time to acknowledge", value: ms(summary.meanTimeToAckMs) },
		{ label: "Mean time to resolve", value: ms(summary.meanTimeToResolveMs) },
		{
			label: "By alert name",
			value: joinText(
				summary.byName.map((n) => `${plain(n.name, 60)}: ${n.episodes}${n.firing > 0 ? ` (${n.firing} firing)` : ""}`),
				"\n",
			),
			inline: false,
		},
		{
			label: "Flapping (3+ episodes)",
			value:
				summary.flapping.length === 0
					? "none"
					: joinText(
							summary.flapping.map(
								(f) =>
									`${plain(f.name, 60)}${f.environment ? ` (${plain(f.environment, 40)})` : ""}: ${f.episodes} episodes`,
							),
							"\n",
						),
			inline: false,
		},
	];
	return {
		title: `Alert history: ${plural(summary.total, "episode")}`,
		level: "info",
		summary: range,
		fields,
		lines: summary.episodes.map((e) => ({
			level: e.endedAt === null ? severityLevel(e.severity) : "ok",
			label: `${plain(e.name, 60)} #${e.episode}`,
			text: episodeText(e, context.now),
		})),
		footer:
			summary.episodes.length < summary.total
				? `The latest ${summary.episodes.length} of ${summary.total} episodes; the figures cover all of them.`
				: "Every episode of the range.",
	};
}

/** Labels in name order: the same in every store (PostgreSQL's JSONB keeps keys in its own order). */
function sortedLabels(labels: Readonly<Record<string, string>>): [string, string][] {
	return Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** An alert as a timeline names it: the labels its group does not share, else its fingerprint. */
function alertName(alert: AlertFact): string {
	const own = sortedLabels(alert.labels).filter(([k]) => !["alertname", "severity", "env", "environment"].includes(k));
	const text = own.length > 0 ? own.map(([k, v]) => `${k}=${v}`).join(", ") : alert.fingerprint;
	return plain(flattenControls(text), 120);
}

function alertsWords(alerts: readonly AlertFact[] | undefined, count: number | undefined): string {
	const list = alerts ?? [];
	const n = count ?? list.length;
	const named = list.slice(0, 3).map(alertName).join("; ");
	return `${plural(n, "alert")}${named ? ` (${named}${n > 3 ? "; …" : ""})` : ""}`;
}

const utc = (at: number) => `${new Date(at).toISOString().slice(0, 19).replace("T", " ")} UTC`;

/** One event as a sentence, plain text (the views escape it). */
export function eventSentence(event: EpisodeEvent): string {
	const d = event.details;
	switch (event.kind) {
		case "fired":
			return `Fired: ${alertsWords(d.alerts, d.alertCount)}${
				d.previousEpisode ? ` (again: episode ${d.previousEpisode} came before)` : ""
			}`;
		case "joined":
			return `Joined: ${alertsWords(d.alerts, d.alertCount)}`;
		case "alerts_resolved":
			return `Resolved: ${alertsWords(d.alerts, d.alertCount)}`;
		case "acknowledged":
			return "Acknowledged";
		case "unacknowledged":
			return "Took the acknowledgement back";
		case "silenced": {
			const matchers = [...(d.matchers ?? [])]
				.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
				.map((m) => `${m.name}=${m.value}`)
				.join(", ");
			const until = d.until ? utc(d.until) : "?";
			const why = d.comment ? `: ${d.comment}` : "";
			return plain(`Silenced until ${until} (silence ${d.silenceId ?? "?"}; ${matchers})${why}`, 400);
		}
		case "unsilenced":
			return `Expired silence ${plain(d.silenceId ?? "?", 60)} (${plain(d.result ?? "?", 40)})`;
		case "restart": {
			const where = `${plain(d.host ?? "?", 60)} (${plain(d.environment ?? "?", 40)})`;
			const what = `container ${plain(d.container ?? "?", 60)} on ${where}`;
			return d.result === "ok"
				? `Restarted ${what}`
				: `Restart of ${what} failed${d.exitCode != null ? ` (exit ${d.exitCode})` : ""}`;
		}
		case "logs":
			return `Opened the logs of ${plain(d.service ?? "?", 60)} (${plain(d.environment ?? "?", 40)}) from ${
				d.from ? utc(d.from) : "?"
			} to ${d.to ? utc(d.to) : "?"}`;
		case "resolved":
			return `Episode resolved after ${since(0, d.durationMs ?? 0)}: ${alertsWords(d.alerts, d.alertCount)}`;
		default:
			return plain(String(event.kind), 40);
	}
}

/** Where a timeline points: the card, the runbook, the dashboard, the logs around the start. */
export interface TimelineLinks {
	readonly card?: string;
	readonly thread?: string;
	readonly others: readonly ReportLink[];
}

/** An episode's timeline for the terminal (`opsbot incident`) and its summary beside the Markdown file. */
export function timelineReport(episode: Episode, events: readonly EpisodeEvent[], links: TimelineLinks): Report {
	const end = episode.endedAt;
	return {
		title: `Timeline: ${plain(episode.name, 80)}${
			episode.environment ? ` (${plain(episode.environment, 40)})` : ""
		}, episode ${episode.episode}`,
		level: end === null ? severityLevel(episode.severity) : "ok",
		summary: [
			"Started ",
			{ time: new Date(episode.startedAt), style: "full" },
			end === null
				? ", still firing."
				: [
						", ended ",
						{ time: new Date(end), style: "full" },
						` after ${formatDuration(end - episode.startedAt, { seconds: true })}.`,
					],
			episode.ackedAt === null
				? " Not acknowledged."
				: ` Acknowledged by ${plain(episode.ackedBy ?? "?", 40)} ${since(
						episode.startedAt,
						episode.ackedAt,
					)} after the start.`,
		].flat() as Inline[],
		lines: events.map((e) => ({
			level: e.kind === "resolved" ? "ok" : e.kind === "fired" ? severityLevel(episode.severity) : "info",
			label: utc(e.at).slice(11, 19),
			text: [
				`+${since(episode.startedAt, e.at)} · `,
				e.actor ? `${plain(e.actor.username, 40)}: ` : "",
				eventSentence(e),
			],
		})),
		links: [
			...(links.card ? [{ label: "Card", url: links.card }] : []),
			...(links.thread ? [{ label: "Thread", url: links.thread }] : []),
			...links.others,
		],
		footer: `Group ${episode.groupId} · ${plural(events.length, "event")}`,
	};
}

/**
 * Untrusted text on one line of the Markdown file, inert: emphasis, code, links, HTML and the table's
 * pipe escaped with CommonMark's backslash (renderers show the character, not the backslash).
 */
const md = (text: string) => flattenControls(text).replace(/([\\`*_[\]<>|~])/g, "\\$1");

/** A fenced block that no backtick run inside `text` can close. */
function fenced(text: string): string {
	const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
	const fence = "`".repeat(longest + 1);
	return `${fence}text\n${text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, "?")}\n${fence}`;
}

/**
 * The episode's timeline as a Markdown file a team pastes into its postmortem: every event with who
 * and when (UTC and since the start), the alerts with their labels, the actions with their results.
 */
export function timelineMarkdown(
	episode: Episode,
	events: readonly EpisodeEvent[],
	links: TimelineLinks,
	now: number,
): string {
	const out: string[] = [];
	const sinceStart = (at: number) => `+${since(episode.startedAt, at)}`;
	const who = (e: EpisodeEvent) => (e.actor ? md(e.actor.username) : "AlertManager");
	out.push(
		`# ${md(episode.name)}${episode.environment ? ` (${md(episode.environment)})` : ""}, episode ${episode.episode}`,
	);
	out.push("");
	out.push(`- Severity: ${md(episode.severity ?? "none")}`);
	out.push(`- Started: ${utc(episode.startedAt)}`);
	out.push(
		episode.endedAt === null
			? `- Still firing at ${utc(now)} (${formatDuration(now - episode.startedAt)})`
			: `- Ended: ${utc(episode.endedAt)}, after ${since(episode.startedAt, episode.endedAt)}`,
	);
	out.push(
		episode.ackedAt === null
			? "- Not acknowledged"
			: `- Acknowledged: ${utc(episode.ackedAt)} (${sinceStart(episode.ackedAt)}) by ${md(episode.ackedBy ?? "?")}`,
	);
	out.push(`- Alert group: \`${episode.groupId}\``);
	const linkLines = [
		...(links.card ? [`- Card: <${links.card}>`] : []),
		...(links.thread ? [`- Thread: <${links.thread}>`] : []),
		...links.others.map((l) => `- ${l.label}: <${l.url}>`),
	];
	out.push(...linkLines);
	out.push("", "## Timeline", "", "| When (UTC) | Since start | Who | What |", "|---|---|---|---|");
	for (const e of events)
		out.push(`| ${utc(e.at).slice(0, 19)} | ${sinceStart(e.at)} | ${who(e)} | ${md(eventSentence(e))} |`);
	const alerts = new Map<string, AlertFact>();
	for (const e of events) for (const a of e.details.alerts ?? []) alerts.set(a.fingerprint, a);
	if (alerts.size > 0) {
		out.push("", "## Alerts", "");
		for (const a of alerts.values()) {
			const labels = sortedLabels(a.labels)
				.map(([k, v]) => `${md(k)}=${md(v)}`)
				.join(", ");
			const ended = /^0001-/.test(a.endsAt) ? "" : `, ended ${md(a.endsAt)}`;
			out.push(`- \`${a.fingerprint.replace(/`/g, "")}\` started ${md(a.startsAt)}${ended}: ${labels}`);
		}
	}
	const outputs = events.filter((e) => e.kind === "restart" && e.details.output);
	if (outputs.length > 0) {
		out.push("", "## Command output", "");
		for (const e of outputs) out.push(`${utc(e.at)}: ${md(eventSentence(e))}`, "", fenced(e.details.output ?? ""));
	}
	out.push("", `_Exported by opsbot at ${utc(now)}._`, "");
	return out.join("\n");
}
