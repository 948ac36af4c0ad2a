import { UserFacingError } from "../errors.ts";
import type { Matcher } from "../services/alertmanager.ts";

/**
 * AlertManager's matcher syntax, as its classic parser reads it (the one 0.25 and amtool use; later
 * releases fall back to it): `{name="value", other!~"re.*"}` or `name=value, other!=x`. Braces and a
 * trailing comma are optional; commas inside double quotes do not split; inside a value `\"`, `\\`
 * and `\n` are escapes, any other backslash is literal. Silences are stricter than the parser: a
 * label name is `[a-zA-Z_][a-zA-Z0-9_]*` (no colon), and a regex must compile (RE2, anchored).
 */

const MATCHER = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*([\s\S]*?)\s*$/;
const SILENCE_LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// Bounds for text typed into a form or a command option.
const MAX_MATCHERS = 20;
const MAX_INPUT = 2_000;

/** Why a matcher set was refused: the message names the matcher and what to change. */
export class MatcherError extends UserFacingError {
	constructor(message: string) {
		super(message);
		this.name = "MatcherError";
	}
}

/** Splits at commas outside double quotes, as AlertManager does (an escaped quote does not open or close). */
function tokens(text: string): string[] {
	const out: string[] = [];
	let token = "";
	let quoted = false;
	let escaped = false;
	for (const ch of text) {
		if (ch === "," && !quoted) {
			out.push(token);
			token = "";
			continue;
		}
		if (ch === '"') {
			if (!escaped) quoted = !quoted;
			else escaped = false;
		} else if (ch === "\\") escaped = !escaped;
		else escaped = false;
		token += ch;
	}
	if (token.trim() !== "") out.push(token.trim());
	return out;
}

/** One value, unquoted and unescaped as AlertManager does. */
function unescapeValue(raw: string): string {
	let rest = raw;
	let expectClosingQuote = false;
	if (rest.startsWith('"')) {
		rest = rest.slice(1);
		expectClosingQuote = true;
	}
	const chars = [...rest];
	let value = "";
	let escaped = false;
	for (let i = 0; i < chars.length; i++) {
		const ch = chars[i]!;
		if (escaped) {
			escaped = false;
			value += ch === "n" ? "\n" : ch === '"' || ch === "\\" ? ch : `\\${ch}`;
			continue;
		}
		if (ch === "\\") {
			if (i < chars.length - 1) escaped = true;
			else value += "\\";
		} else if (ch === '"') {
			if (!expectClosingQuote || i < chars.length - 1)
				throw new MatcherError(`The value ${raw} has a double quote inside it; write it as \\".`);
			expectClosingQuote = false;
		} else value += ch;
	}
	if (expectClosingQuote) throw new MatcherError(`The value ${raw} opens a double quote and never closes it.`);
	return value;
}

/**
 * What AlertManager's regex engine (RE2) refuses but JavaScript accepts: lookaround and
 * backreferences. (The reverse, RE2 syntax JavaScript lacks such as `(?i)` or `\z`, is left for
 * AlertManager to judge: its answer is shown as it gives it.)
 */
const NOT_RE2 = [
	{ re: /\(\?<?[=!]/, what: "lookahead or lookbehind ((?= (?! (?<= (?<!)" },
	{ re: /\\[1-9]|\\k</, what: "backreferences (\\1, \\k<name>)" },
];

/** Whether `pattern`, anchored as AlertManager anchors it, matches `value`; undefined where JavaScript cannot compile it. */
export function regexMatches(pattern: string, value: string): boolean | undefined {
	let re: RegExp;
	try {
		re = new RegExp(`^(?:${pattern})$`, "s");
	} catch {
		return undefined;
	}
	return re.test(value);
}

function checkRegex(name: string, pattern: string): void {
	for (const { re, what } of NOT_RE2)
		if (re.test(pattern.replace(/\\\\/g, "")))
			throw new MatcherError(`The regex for ${name} uses ${what}, which AlertManager's regex engine (RE2) lacks.`);
	try {
		new RegExp(`^(?:${pattern})$`, "s");
	} catch (err) {
		// RE2-only syntax JavaScript cannot read: AlertManager checks it when the preview asks it.
		if (/^\(\?[imsU]+\)/.test(pattern) || /\\[zACQEpP]|\[\[:/.test(pattern)) return;
		throw new MatcherError(`The regex for ${name} does not compile: ${(err as Error).message.replace(/^.*: /, "")}.`);
	}
}

/** Parses matchers typed in AlertManager's syntax; refuses what AlertManager would refuse for a silence. */
export function parseMatchers(text: string): Matcher[] {
	if (text.length > MAX_INPUT) throw new MatcherError(`Matchers are limited to ${MAX_INPUT} characters.`);
	let inner = text.trim();
	if (inner.startsWith("{")) inner = inner.slice(1);
	if (inner.endsWith("}")) inner = inner.slice(0, -1);
	const parts = tokens(inner);
	if (parts.length > MAX_MATCHERS) throw new MatcherError(`A silence takes at most ${MAX_MATCHERS} matchers.`);
	return parts.map((part) => {
		const m = MATCHER.exec(part);
		if (!m)
			throw new MatcherError(
				`${JSON.stringify(part.trim().slice(0, 80))} is not a matcher: write name="value" with =, !=, =~ or !~.`,
			);
		const [, name = "", op = "", raw = ""] = m;
		if (!SILENCE_LABEL_NAME.test(name))
			throw new MatcherError(`${name} is not a label name AlertManager accepts in a silence (letters, digits, _).`);
		const value = unescapeValue(raw);
		const isRegex = op === "=~" || op === "!~";
		if (isRegex) checkRegex(name, value);
		return { name, value, isRegex, isEqual: op === "=" || op === "=~" };
	});
}

/** Whether one matcher accepts a label's value ("" for a missing label, as in AlertManager). */
export function matcherAccepts(matcher: Matcher, value: string): boolean | undefined {
	const hit = matcher.isRegex ? regexMatches(matcher.value, value) : matcher.value === value;
	return hit === undefined ? undefined : hit === matcher.isEqual;
}

/** Whether a set of matchers selects an alert with these labels (undefined: a regex JavaScript cannot judge). */
export function matchesLabels(
	matchers: readonly Matcher[],
	labels: Readonly<Record<string, string>>,
): boolean | undefined {
	let unsure = false;
	for (const m of matchers) {
		const hit = matcherAccepts(m, labels[m.name] ?? "");
		if (hit === false) return false;
		if (hit === undefined) unsure = true;
	}
	return unsure ? undefined : true;
}

// Unlike values (the empty one is AlertManager's own rule): a matcher that accepts all of them narrows nothing.
const PROBES = ["x", "opsbot-probe-Ω-1", "Z9 z9.:/-", "\n"];

/**
 * Refuses sets that would mute too much: none at all; every matcher matching the empty string
 * (AlertManager's own rule: such a set also matches alerts without those labels); or no matcher
 * that narrows (only `!=`/`!~`, or regexes like `.+` that accept any value).
 */
export function checkSilenceMatchers(matchers: readonly Matcher[]): void {
	if (matchers.length === 0) throw new MatcherError('A silence needs at least one matcher, e.g. alertname="ApiDown".');
	if (matchers.every((m) => matcherAccepts(m, "") === true))
		throw new MatcherError(
			"Every matcher also matches an empty or missing label, so this silence would mute every alert. " +
				"Add a matcher that names what to mute.",
		);
	const narrows = (m: Matcher) =>
		m.isEqual && (!m.isRegex || PROBES.some((probe) => regexMatches(m.value, probe) === false));
	if (!matchers.some(narrows))
		throw new MatcherError(
			"These matchers only exclude, or accept any value, so the silence would mute nearly every alert. " +
				'Add one that names what to mute (= or a narrow =~), e.g. alertname="ApiDown".',
		);
}

/** One matcher written back in AlertManager's syntax (`name="value"`), for forms, lists and previews. */
export function formatMatcher(m: Matcher): string {
	const op = m.isRegex ? (m.isEqual ? "=~" : "!~") : m.isEqual ? "=" : "!=";
	return `${m.name}${op}"${m.value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** A matcher set written back as one line, `{a="b", c=~"d"}`: parseMatchers reads it back unchanged. */
export function formatMatchers(matchers: readonly Matcher[]): string {
	return `{${matchers.map(formatMatcher).join(", ")}}`;
}
