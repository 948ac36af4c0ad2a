/** Discord's documented message limits (docs/PROTOCOLS.md §5.2). Renderers cut to these; services never do. */
export const DISCORD_LIMITS = {
	content: 2_000,
	embedsPerMessage: 10,
	title: 256,
	description: 4_096,
	fields: 25,
	fieldName: 256,
	fieldValue: 1_024,
	footer: 2_048,
	embedTotal: 6_000,
	customId: 100,
	buttonLabel: 80,
	autocompleteChoices: 25,
	choiceName: 100,
	choiceValue: 100,
} as const;

// Made on first use, not at import: building one loads ICU's break rules, about 15 ms that every process
// start (the bot, each CLI run) paid whether or not it cut any text.
let graphemes: Intl.Segmenter | undefined;

/**
 * The longest start of `text` of at most `max` UTF-16 units (Discord's limits count those) that ends
 * between grapheme clusters, so an emoji, a flag or a letter with its accents is never split (a lone
 * surrogate half makes Discord refuse the whole message). Only a single cluster longer than `max` is
 * cut, and then between code points.
 */
export function cutWhole(text: string, max: number): string {
	if (text.length <= max) return text;
	let cut = 0;
	for (const { segment } of (graphemes ??= new Intl.Segmenter(undefined, { granularity: "grapheme" })).segment(text)) {
		if (cut + segment.length > max) break;
		cut += segment.length;
	}
	if (cut === 0) {
		for (const point of text) {
			if (cut + point.length > max) break;
			cut += point.length;
		}
	}
	return text.slice(0, cut);
}

/** Cuts `text` to at most `max` UTF-16 units between whole characters (cutWhole), marking the cut with an ellipsis. */
export function truncate(text: string, max: number): string {
	if (text.length <= max) return text;
	return `${cutWhole(text, Math.max(0, max - 1))}…`;
}

/** Joins lines into at most `max` characters; lines that do not fit are summarised as "… and N more". */
export function joinLinesWithin(lines: readonly string[], max: number): string {
	const out: string[] = [];
	let used = 0;
	for (let i = 0; i < lines.length; i++) {
		const line = lines[i] ?? "";
		const remaining = lines.length - i - 1;
		const reserve = remaining > 0 ? `\n… and ${remaining} more`.length : 0;
		const cost = (out.length > 0 ? 1 : 0) + line.length;
		if (used + cost + reserve > max) {
			const more = `… and ${lines.length - i} more`;
			if (used + 1 + more.length <= max) out.push(more);
			return out.join("\n");
		}
		out.push(line);
		used += cost;
	}
	return out.join("\n");
}

/**
 * Characters people cannot see that change what they read: bidirectional overrides (U+202E shows what
 * follows backwards), zero-width characters that split words so readers and filters miss them, the
 * fillers used for "invisible names" (U+3164, U+115F, U+1160, U+FFA0), soft hyphen, U+180E, the
 * combining grapheme joiner and the tag block (invisible letters after any character).
 */
const INVISIBLE =
	// Each of these is stripped on its own, combining or not (so no misleading character class).
	new RegExp(
		String.raw`[\u00AD\u034F\u061C\u115F\u1160\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069` +
			String.raw`\u3164\uFEFF\uFFA0\u{E0000}-\u{E007F}]`,
		"gu",
	);
// A run of combining marks beyond a few stacks over the lines around it ("Zalgo" text).
const COMBINING_FLOOD = /(\p{M}{4})\p{M}+/gu;

/** Every character in ASCII: none of the invisible ones or combining marks (each webhook's labels go through here). */
const ASCII_ONLY = /^[\x00-\x7F]*$/;

/** Untrusted text without invisible characters, and with runs of combining marks cut to four. */
export function stripInvisible(text: string): string {
	if (ASCII_ONLY.test(text)) return text;
	return text.replace(INVISIBLE, "").replace(COMBINING_FLOOD, "$1");
}

/**
 * A value shown on one line (a name, a label, a title): line and paragraph breaks become one space, so a
 * name with "\n" cannot forge a line of its own in a list; invisible characters are stripped, ends trimmed.
 */
export function oneLine(text: string): string {
	return stripInvisible(text)
		.replace(/[ \t]*(?:\r\n|[\r\n\u2028\u2029])[ \t]*/g, " ")
		.trim();
}

/** C0 and C1 control characters other than newline and tab: an ESC from a log line could drive a terminal. */
export const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** A control character as both views show it: `\x1b`. */
export function controlEscape(c: string): string {
	return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
}

/**
 * Bare http(s) URLs as Discord's autolinker finds them (simple-markdown's url rule: no whitespace or
 * "<", and not ending in punctuation); ">" ends one too, so it can be wrapped in <…>.
 */
const BARE_URL = /https?:\/\/[^\s<>\u0000-\u001f\u007f-\u009f]*[^\s<>.,:;"')\]\u0000-\u001f\u007f-\u009f]/gi;

function escapeMarkup(text: string): string {
	return text.replace(/([\\`*_~|<>#[\]()-])/g, "\\$1").replace(/@(everyone|here)/g, "@\u200b$1");
}

/**
 * Escapes Discord markdown so untrusted text (service errors, log lines, labels) renders literally:
 * formatting, masked links, headings, @everyone, and "<" so "<@id>", "<#id>" or "<t:…>" do not render
 * as a mention, a channel or a time. Control characters are shown as `\x1b`, as in the terminal view.
 * Bare URLs are kept whole and wrapped in <…>: Discord's autolinker would keep a backslash inside a
 * URL (or one escaping the character after it) as part of the link, and <…> links without a preview.
 */
export function escapeMarkdown(text: string): string {
	let out = "";
	let from = 0;
	for (const match of text.matchAll(BARE_URL)) {
		out += `${escapeMarkup(text.slice(from, match.index))}<${match[0]}>`;
		from = match.index + match[0].length;
	}
	return (out + escapeMarkup(text.slice(from))).replace(CONTROL, (c) => `\\${controlEscape(c)}`);
}

/** Escapes the markdown Discord renders in embed titles and field names (bold, italics, code, strike, spoiler). */
export function escapeTitle(text: string): string {
	return text.replace(/([\\`*_~|])/g, "\\$1");
}

/** Wraps untrusted text in inline code; backticks inside are replaced so the span cannot be closed early. */
export function inlineCode(text: string): string {
	return `\`${text.replace(/`/g, "ˋ").replace(/\n/g, " ") || " "}\``;
}
