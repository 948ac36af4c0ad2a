import { ActionRowBuilder, ButtonBuilder, EmbedBuilder } from "@discordjs/builders";
import { type APIActionRowComponent, type APIComponentInMessageActionRow, ButtonStyle } from "discord-api-types/v10";
import {
	CONTROL,
	controlEscape,
	DISCORD_LIMITS,
	escapeMarkdown,
	escapeTitle,
	inlineCode,
	joinLinesWithin,
	oneLine,
	truncate,
} from "./limits.ts";

/**
 * How bad something is; drives colours, icons and CLI exit codes. "ok" means checked and fine (green);
 * "info" is neutral (grey): a lookup's answer, or nothing was checked.
 */
export type Level = "info" | "ok" | "warn" | "critical";

/**
 * One piece of report text. A plain string is literal text (the Discord view escapes it); the tagged
 * parts say what a value is, and each view decides how to show it: markup only in the Discord view,
 * exact values in the terminal view.
 */
export type Inline =
	| string
	| { readonly strong: Text }
	| { readonly code: string }
	/**
	 * "relative": "3 minutes ago"; "absolute": the date and time; "full": the date and time and, in Discord, how long ago;
	 * "time": the time of day ("13:00"; in the terminal "12:00 UTC"); "clock": in Discord the time of day and how long ago
	 * ("13:00 (34 minutes ago)", in the
	 * reader's zone), in the terminal the date and time in UTC.
	 */
	| { readonly time: Date; readonly style?: "relative" | "absolute" | "full" | "time" | "clock" }
	| { readonly link: string; readonly label: Text }
	| { readonly mention: "role" | "user" | "channel"; readonly id: string }
	/** One item per line, bulleted. */
	| { readonly list: readonly Text[] };

/** Report text: one part or several in a row. Line breaks are plain "\n" strings. */
export type Text = Inline | readonly Inline[];

/** One line of a report: a status icon, a label and text. */
export interface ReportLine {
	readonly level: Level;
	readonly label: string;
	readonly text: Text;
}

/** A labelled value shown as an embed field or an aligned terminal row. */
export interface ReportField {
	readonly label: string;
	readonly value: Text;
	readonly inline?: boolean;
}

/**
 * A list after the summary and lines, one item per line: the Discord view shows the items that fit and counts the rest.
 */
export interface ReportList {
	readonly items: readonly Text[];
	/** How many items there are in all, when `items` holds only the first of them (default: items.length). */
	readonly total?: number;
	/** Said in brackets after the Discord view's "… and N more", e.g. where the rest is ("full list attached"). */
	readonly more?: string;
	/** Lines after the list, always shown: what the list cannot say. */
	readonly notes?: readonly Text[];
}

/** A link offered beside a report: a link button in Discord, a labelled URL in the terminal. */
export interface ReportLink {
	readonly label: string;
	readonly url: string;
}

/** The neutral message model: built by pure functions from service data, rendered for Discord or a terminal. */
export interface Report {
	/** Plain text on one line (line breaks become spaces); Discord's view escapes the markdown it renders in titles. */
	readonly title: string;
	readonly level: Level;
	readonly summary?: Text;
	readonly lines?: readonly ReportLine[];
	readonly list?: ReportList;
	readonly fields?: readonly ReportField[];
	/** Links (runbook, dashboard): Discord's view shows them as link buttons (reportLinkButtons). */
	readonly links?: readonly ReportLink[];
	/** Plain text: Discord does not render markup in footers. */
	readonly footer?: string;
	readonly at?: Date;
}

export const LEVEL_COLOUR: Record<Level, number> = { info: 0x99aab5, ok: 0x2ecc71, warn: 0xf1c40f, critical: 0xe74c3c };
export const LEVEL_ICON: Record<Level, string> = { info: "⚪", ok: "🟢", warn: "🟠", critical: "🔴" };
const LEVEL_WORD: Record<Level, string> = { info: "INFO", ok: "OK", warn: "WARN", critical: "CRIT" };

/** The worst of several levels ("info" counts as fine: "ok" when nothing is worse). */
export function worstLevel(levels: Iterable<Level>): Level {
	let worst: Level = "ok";
	for (const level of levels) {
		if (level === "critical") return "critical";
		if (level === "warn") worst = "warn";
	}
	return worst;
}

function parts(text: Text): readonly Inline[] {
	return typeof text === "string" || !Array.isArray(text) ? [text as Inline] : (text as readonly Inline[]);
}

const MENTION_PREFIX = { role: "@&", user: "@", channel: "#" } as const;

/** Report text as Discord markdown: literal text escaped, values marked up. */
export function textToMarkdown(text: Text): string {
	return parts(text)
		.map((part): string => {
			if (typeof part === "string") return escapeMarkdown(part);
			if ("strong" in part) return `**${textToMarkdown(part.strong)}**`;
			if ("code" in part) return inlineCode(part.code);
			if ("time" in part) {
				const s = Math.floor(part.time.getTime() / 1000);
				const discordStyle = {
					relative: `<t:${s}:R>`,
					absolute: `<t:${s}:f>`,
					full: `<t:${s}:f> (<t:${s}:R>)`,
					time: `<t:${s}:t>`,
					clock: `<t:${s}:t> (<t:${s}:R>)`,
				} as const;
				return discordStyle[part.style ?? "relative"];
			}
			// Discord shows a masked link only for http(s); anything else stays plain text.
			if ("link" in part)
				return /^https?:\/\//i.test(part.link)
					? `[${textToMarkdown(part.label)}](${part.link.replace(/[()\s]/g, encodeURIComponent)})`
					: textToMarkdown(part.label);
			if ("mention" in part) return `<${MENTION_PREFIX[part.mention]}${part.id}>`;
			return part.list.map((item) => `• ${textToMarkdown(item)}`).join("\n");
		})
		.join("");
}

/**
 * Report text for a terminal or a file: exact values, no markup. Times are ISO 8601 in UTC.
 * `codeSpace` replaces the spaces of code standing on a line of its own (the terminal view keeps such code whole).
 */
export function textToPlain(text: Text, codeSpace = " "): string {
	return parts(text)
		.map((part, i, all): string => {
			if (typeof part === "string") return part;
			if ("strong" in part) return textToPlain(part.strong, codeSpace);
			if ("code" in part) {
				// `codeSpace` marks code on a line of its own (a config line, a snippet); code inside a sentence stays words.
				const before = all[i - 1];
				const ownLine =
					part.code.includes("\n") || before === undefined || (typeof before === "string" && before.endsWith("\n"));
				return ownLine ? part.code.replaceAll(" ", codeSpace) : part.code;
			}
			if ("time" in part) {
				const iso = part.time.toISOString();
				if (part.style === "clock") return `${iso.slice(0, 16).replace("T", " ")} UTC`;
				return part.style === "time" ? `${iso.slice(11, 16)} UTC` : iso;
			}
			if ("link" in part) return `${textToPlain(part.label, codeSpace)} (${part.link})`;
			if ("mention" in part) return `${MENTION_PREFIX[part.mention]}${part.id}`;
			return part.list.map((item) => `- ${textToPlain(item, codeSpace)}`).join("\n");
		})
		.join("");
}

/** Joins texts with a separator (", ", "\n"…) into one text. */
export function joinText(texts: readonly Text[], separator: string): Inline[] {
	return texts.flatMap((t, i) => (i === 0 ? [...parts(t)] : [separator, ...parts(t)]));
}

/** Renders a Report as one embed that always fits Discord's limits (titles, 25 fields, 6000 characters). */
export function reportToEmbed(report: Report): EmbedBuilder {
	return fitReportToEmbed(report).embed;
}

/**
 * Renders a Report as reportToEmbed does, and says how many of its list's items the embed shows (the rest are counted
 * in "… and N more").
 */
export function fitReportToEmbed(report: Report): { embed: EmbedBuilder; listShown: number } {
	// Discord trims whitespace and rejects empty titles, names and values.
	const title = truncate(escapeTitle(oneLine(report.title).trim()), DISCORD_LIMITS.title) || "(untitled)";
	const embed = new EmbedBuilder().setTitle(title).setColor(LEVEL_COLOUR[report.level]);
	let budget = DISCORD_LIMITS.embedTotal - title.length;
	const footer = report.footer?.trim() ? truncate(report.footer.trim(), 500) : undefined;
	if (footer) budget -= footer.length;
	const fields = (report.fields ?? []).slice(0, DISCORD_LIMITS.fields).map((f) => ({
		name: truncate(escapeTitle(oneLine(f.label).trim()), DISCORD_LIMITS.fieldName) || "-",
		value: truncate(textToMarkdown(f.value).trim(), DISCORD_LIMITS.fieldValue) || "-",
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
	// Line by line, so a long summary (a page of log lines) loses its last lines to the limit, not all of them.
	const summary = report.summary === undefined ? "" : textToMarkdown(report.summary);
	const body = [
		...(summary ? summary.split("\n") : []),
		...(report.lines ?? []).map(
			(l) => `${LEVEL_ICON[l.level]} **${escapeMarkdown(oneLine(l.label))}** ${textToMarkdown(l.text)}`,
		),
	];
	const { description, listShown } = descriptionOf(body, report.list, Math.min(DISCORD_LIMITS.description, budget));
	if (description) embed.setDescription(description);
	if (keptFields.length > 0) embed.addFields(keptFields);
	if (footer) embed.setFooter({ text: footer });
	if (report.at) embed.setTimestamp(report.at);
	return { embed, listShown };
}

/**
 * The embed description: the summary and lines, then a blank line and the list. Room is kept for the
 * list's closing lines first, so "… and N more" and the notes are never the part cut; the items get
 * what the summary and lines leave.
 */
function descriptionOf(
	body: readonly string[],
	list: ReportList | undefined,
	max: number,
): { description: string; listShown: number } {
	if (!list) return { description: joinLinesWithin(body, max), listShown: 0 };
	const total = Math.max(list.total ?? 0, list.items.length);
	const moreLine = (n: number) => `… and ${n} more${list.more ? ` (${escapeMarkdown(list.more)})` : ""}`;
	// The closing lines with their line breaks; the count in "… and N more" is at most `total`.
	const moreRoom = total > 0 ? moreLine(total).length + 1 : 0;
	const notes = joinLinesWithin((list.notes ?? []).map(textToMarkdown).filter(Boolean), max - moreRoom - 1);
	const closingRoom = moreRoom + (notes ? notes.length + 1 : 0);
	const head = joinLinesWithin(body, max - closingRoom - 2);
	const room = max - (head ? head.length + 2 : 0) - closingRoom;
	const shown: string[] = [];
	let used = 0;
	for (const item of list.items) {
		const line = textToMarkdown(item);
		if (used + line.length + 1 > room) break;
		shown.push(line);
		used += line.length + 1;
	}
	const hidden = total - shown.length;
	const block = [...shown, ...(hidden > 0 ? [moreLine(hidden)] : []), ...(notes ? [notes] : [])].join("\n");
	return { description: [head, block].filter(Boolean).join("\n\n"), listShown: shown.length };
}

/** Whether Discord takes `url` for a link button: an http(s) URI of at most 512 characters. */
function isLinkButtonUrl(url: string): boolean {
	return url.length <= 512 && /^https?:\/\/[^\s<>]+$/i.test(url) && URL.canParse(url);
}

/**
 * A report's links as one row of link buttons (http(s) only), after `leading` buttons of the message's
 * own (at most 5 in all); none when there is nothing to show.
 */
export function reportLinkButtons(
	report: Report,
	leading: readonly ButtonBuilder[] = [],
): APIActionRowComponent<APIComponentInMessageActionRow>[] {
	const buttons = (report.links ?? []).flatMap((link) => {
		const label = truncate(oneLine(link.label).trim(), DISCORD_LIMITS.buttonLabel);
		return isLinkButtonUrl(link.url) && label
			? [new ButtonBuilder().setStyle(ButtonStyle.Link).setURL(link.url).setLabel(label)]
			: [];
	});
	const row = [...leading, ...buttons].slice(0, 5);
	return row.length > 0 ? [new ActionRowBuilder<ButtonBuilder>().addComponents(row).toJSON()] : [];
}

/**
 * The narrowest cut of a label in the terminal view. A label wider than the gutter stands on its own
 * line, so it is cut only where that line ends (8 columns for the status word), never below this.
 */
export const TERMINAL_LABEL_WIDTH = 32;

/**
 * Renders a Report for a terminal: a status word, the title, aligned lines and fields, exact values (control characters
 * escaped), wrapped to `width` columns (default 80; Infinity: one line per item).
 */
export function reportToText(report: Report, options: { width?: number } = {}): string {
	const escapeControls = (text: string) => text.replace(CONTROL, controlEscape);
	return reportToRawText(report, options.width ?? TERMINAL_WIDTH, escapeControls);
}

/** What a terminal view fits by default: the classic 80 columns. */
export const TERMINAL_WIDTH = 80;
// Labels longer than this stand on their own line, so values keep most of the width.
const MAX_GUTTER = 14;

// A unit stays with its number ("12 d", "90 %", "88 ms") and a pid with its "pid": never split over two lines.
const UNIT = /^(%|d|h|s|ms|min|B|KB|MB|GB|TB|PB)\)?[,.;:)]*$/;

/** Words to fill, a unit joined to the number before it and a number to the "pid" before it. */
function unbreakable(words: readonly string[]): string[] {
	const out: string[] = [];
	for (const word of words) {
		const previous = out.at(-1);
		if (
			previous !== undefined &&
			(UNIT.test(word) || (/^pid$/.test(previous.split(" ").at(-1) ?? "") && /^\d/.test(word)))
		)
			out[out.length - 1] = `${previous} ${word}`;
		else out.push(word);
	}
	return out;
}

const columns = (text: string) => [...text].length;

// Stands for a space inside code in the terminal view: code is copied (a config line, a command), so
// wrapping never breaks or cuts it; a code line wider than the terminal runs past the edge instead.
const CODE_SPACE = "\u{E000}";

/**
 * `text` after `first` (and on further lines after `indent`), filled word by word into `width`
 * columns; a word longer than a line is cut across lines, except a URL (cut, it would not work when
 * copied). Each line break in `text` starts a line with `paragraph` (default: `indent`).
 */
export function wrapText(first: string, indent: string, text: string, width: number, paragraph = indent): string[] {
	const out: string[] = [];
	text.split("\n").forEach((words, i) => {
		let line = i === 0 ? first : paragraph;
		let empty = true;
		for (let word of unbreakable(words.split(" "))) {
			const gap = empty ? "" : " ";
			if (columns(line) + columns(gap) + columns(word) <= width || (empty && columns(line) + columns(word) <= width)) {
				line += gap + word;
				empty = false;
				continue;
			}
			if (!empty) {
				out.push(line);
				line = indent;
			}
			// A word wider than a whole line: cut it into pieces that fit.
			const room = Math.max(1, width - columns(indent));
			while (
				columns(line) + columns(word) > width &&
				columns(word) > room &&
				!word.includes("://") &&
				!word.includes(CODE_SPACE)
			) {
				const chars = [...word];
				out.push(line + chars.slice(0, width - columns(line)).join(""));
				word = chars.slice(width - columns(line)).join("");
				line = indent;
			}
			line += word;
			empty = false;
		}
		out.push(line);
	});
	return out;
}

function reportToRawText(report: Report, width: number, escapeControls: (text: string) => string): string {
	const labelWidth = Number.isFinite(width) ? Math.max(TERMINAL_LABEL_WIDTH, width - 8) : TERMINAL_LABEL_WIDTH;
	const label = (text: string) => truncate(oneLine(text), labelWidth);
	const lines = (report.lines ?? []).map((l) => ({ ...l, label: label(l.label) }));
	const fields = [...(report.fields ?? []), ...(report.links ?? []).map((l) => ({ label: l.label, value: l.url }))].map(
		(f) => ({ ...f, label: label(f.label) }),
	);
	const wrap = (first: string, indent: string, text: string, paragraph = indent) =>
		wrapText(first, indent, escapeControls(text), width, paragraph).map((l) => l.replaceAll(CODE_SPACE, " "));
	const plain = (text: Text) => textToPlain(text, CODE_SPACE);
	const pad = Math.min(
		MAX_GUTTER,
		Math.max(0, ...lines.map((l) => l.label.length), ...fields.map((f) => f.label.length)),
	);
	const valueIndent = " ".repeat(pad + 10);
	// "  WORD  label  text": a label wider than the gutter gets its own line, the text goes under the others'.
	const row = (head: string, label: string, gutter: number, text: string) => {
		const shown = escapeControls(label);
		return shown.length > gutter
			? [`${head}${shown}`, ...wrap(valueIndent, valueIndent, text)]
			: wrap(`${head}${shown.padEnd(gutter)}  `, valueIndent, text);
	};
	const out = wrap(`[${LEVEL_WORD[report.level]}] `, "    ", oneLine(report.title));
	if (report.summary !== undefined) out.push(...wrap("", "  ", plain(report.summary), ""));
	for (const line of lines)
		out.push(...row(`  ${LEVEL_WORD[line.level].padEnd(4)}  `, line.label, pad, plain(line.text)));
	if (report.list) {
		const { items } = report.list;
		for (const item of items) out.push(...wrap("  ", "    ", plain(item), "  "));
		const hidden = Math.max(report.list.total ?? 0, items.length) - items.length;
		if (hidden > 0) out.push(`  … and ${hidden} more`);
		for (const note of report.list.notes ?? []) out.push(...wrap("", "  ", plain(note), ""));
	}
	for (const field of fields) out.push(...row("  ", field.label, pad + 6, plain(field.value)));
	if (report.footer) out.push(...wrap("", "", report.footer));
	if (report.at) out.push(`at ${report.at.toISOString()}`);
	return out.join("\n");
}
