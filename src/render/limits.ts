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

/** Cuts `text` to `max` characters, marking the cut with an ellipsis. */
export function truncate(text: string, max: number): string {
	if (text.length <= max) return text;
	return `${text.slice(0, Math.max(0, max - 1))}…`;
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
 * Escapes Discord markdown so untrusted text (service errors, log lines, labels) renders literally:
 * formatting, masked links, headings, @everyone, and "<" so "<@id>", "<#id>" or "<t:…>" do not render
 * as a mention, a channel or a time.
 */
export function escapeMarkdown(text: string): string {
	return text.replace(/([\\`*_~|<>#[\]()-])/g, "\\$1").replace(/@(everyone|here)/g, "@\u200b$1");
}

/** Wraps untrusted text in inline code; backticks inside are replaced so the span cannot be closed early. */
export function inlineCode(text: string): string {
	return `\`${text.replace(/`/g, "ˋ").replace(/\n/g, " ") || " "}\``;
}
