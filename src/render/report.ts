import { EmbedBuilder } from "discord.js";
import { DISCORD_LIMITS, escapeMarkdown, joinLinesWithin, truncate } from "./limits.ts";

/** How bad something is; drives colours, icons and CLI exit codes. */
export type Level = "ok" | "warn" | "critical";

/** One line of a report: a status icon, a label and plain text. */
export interface ReportLine {
	readonly level: Level;
	readonly label: string;
	readonly text: string;
}

/** A labelled value shown as an embed field or an aligned terminal row. */
export interface ReportField {
	readonly label: string;
	readonly value: string;
	readonly inline?: boolean;
}

/** The neutral message model: built by pure functions from service data, rendered for Discord or a terminal. */
export interface Report {
	readonly title: string;
	readonly level: Level;
	readonly summary?: string;
	readonly lines?: readonly ReportLine[];
	readonly fields?: readonly ReportField[];
	readonly footer?: string;
	readonly at?: Date;
}

export const LEVEL_COLOUR: Record<Level, number> = { ok: 0x2ecc71, warn: 0xf1c40f, critical: 0xe74c3c };
export const LEVEL_ICON: Record<Level, string> = { ok: "🟢", warn: "🟠", critical: "🔴" };
const LEVEL_WORD: Record<Level, string> = { ok: "OK", warn: "WARN", critical: "CRIT" };

/** The worst of several levels. */
export function worstLevel(levels: Iterable<Level>): Level {
	let worst: Level = "ok";
	for (const level of levels) {
		if (level === "critical") return "critical";
		if (level === "warn") worst = "warn";
	}
	return worst;
}

/** Renders a Report as one embed that always fits Discord's limits (titles, 25 fields, 6000 characters). */
export function reportToEmbed(report: Report): EmbedBuilder {
	// Discord trims whitespace and rejects empty titles, names and values.
	const title = truncate(report.title.trim(), DISCORD_LIMITS.title) || "(untitled)";
	const embed = new EmbedBuilder().setTitle(title).setColor(LEVEL_COLOUR[report.level]);
	let budget = DISCORD_LIMITS.embedTotal - title.length;
	const footer = report.footer?.trim() ? truncate(report.footer.trim(), 500) : undefined;
	if (footer) budget -= footer.length;
	const fields = (report.fields ?? []).slice(0, DISCORD_LIMITS.fields).map((f) => ({
		name: truncate(f.label.trim(), DISCORD_LIMITS.fieldName) || "-",
		value: truncate(f.value.trim(), DISCORD_LIMITS.fieldValue) || "-",
		inline: f.inline ?? true,
	}));
	const fieldCost = (f: { name: string; value: string }) => f.name.length + f.value.length;
	// Fields are kept only while they fit the total; the description gets what is left.
	const keptFields: typeof fields = [];
	const fieldBudget = Math.floor(budget / 2);
	let fieldUsed = 0;
	for (const field of fields) {
		if (fieldUsed + fieldCost(field) > fieldBudget) break;
		keptFields.push(field);
		fieldUsed += fieldCost(field);
	}
	budget -= fieldUsed;
	const body = [
		report.summary ?? "",
		...(report.lines ?? []).map((l) => `${LEVEL_ICON[l.level]} **${escapeMarkdown(l.label)}** ${l.text}`),
	].filter(Boolean);
	const description = joinLinesWithin(body, Math.min(DISCORD_LIMITS.description, budget));
	if (description) embed.setDescription(description);
	if (keptFields.length > 0) embed.addFields(keptFields);
	if (footer) embed.setFooter({ text: footer });
	if (report.at) embed.setTimestamp(report.at);
	return embed;
}

/** Renders a Report for a terminal: a status word, the title, aligned lines and fields. */
export function reportToText(report: Report): string {
	const lines = report.lines ?? [];
	const fields = report.fields ?? [];
	const pad = Math.max(0, ...lines.map((l) => l.label.length), ...fields.map((f) => f.label.length));
	const out = [`[${LEVEL_WORD[report.level]}] ${report.title}`];
	if (report.summary) out.push(stripMarkdown(report.summary));
	for (const line of lines) out.push(`  ${LEVEL_WORD[line.level].padEnd(4)}  ${line.label.padEnd(pad)}  ${stripMarkdown(line.text)}`);
	for (const field of fields) out.push(`  ${field.label.padEnd(pad + 6)}  ${stripMarkdown(field.value).replace(/\n/g, `\n  ${" ".repeat(pad + 8)}`)}`);
	if (report.footer) out.push(stripMarkdown(report.footer));
	if (report.at) out.push(`at ${report.at.toISOString()}`);
	return out.join("\n");
}

// Discord timestamps (<t:123:R>) and markdown read poorly in a terminal.
function stripMarkdown(text: string): string {
	return text
		.replace(/<t:(\d+)(?::[a-zA-Z])?>/g, (_, s: string) => new Date(Number(s) * 1000).toISOString())
		.replace(/\*\*([^*]*)\*\*/g, "$1")
		.replace(/`([^`]*)`/g, "$1")
		.replace(/\\([\\`*_~|>#[\]()-])/g, "$1");
}
