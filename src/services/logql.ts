import { UserFacingError } from "../errors.ts";
import type { Text } from "../render/report.ts";

/**
 * The one way user text enters LogQL. JSON string escapes are a subset of what Loki's lexer
 * accepts inside double quotes; toWellFormed() replaces lone surrogates, which Loki rejects
 * (PROTOCOLS.md §2.5).
 */
export function logqlString(text: string): string {
	return JSON.stringify(text.toWellFormed());
}

/** Escapes RE2 metacharacters so user text matches literally inside a regex, before logqlString. */
export function escapeRegex(text: string): string {
	return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Loki refuses a query longer than this many bytes (`parse error : input size too long`), a
 * constant in its parser, not a setting. The escaped form of a line filter can be several times
 * longer than what was typed (`\u0001` is six bytes), so the check runs on the query as sent.
 */
export const LOKI_MAX_QUERY_BYTES = 5_120;

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Levels /logs offers; matched case-insensitively against the JSON `level` field. */
export const LOG_LEVELS = ["debug", "info", "warning", "error", "critical"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The words a line may use for each level; one definition for LogQL (Loki) and for filtering `docker logs` in opsbot.
 */
export const LEVEL_WORDS: Record<LogLevel, string> = {
	debug: "debug",
	info: "info",
	warning: "warn|warning",
	error: "error",
	critical: "critical|fatal",
};

/** The JSON fields a level and a correlation id are read from, as the API writes its lines. */
export const LEVEL_FIELD = "level";
export const CORRELATION_FIELD = "correlation_id";

/**
 * What a correlation id may hold: enough for UUIDs and prefixed ids, nothing a boundary check could mistake for a
 * separator.
 */
export const CORRELATION_ID = /^[A-Za-z0-9_.:@/+=-]{1,100}$/;
/** CORRELATION_ID in words, for the error that refuses one. */
export const CORRELATION_ID_RULE: Text = [
	"A correlation id is 1–100 letters, digits and ",
	{ code: "_ . : @ / + = -" },
	".",
];

// Characters that continue an id: `c-42` must not match inside `c-420` or `xc-42`.
const ID_CHAR = "A-Za-z0-9_-";

/** What a /logs search asks for, before it becomes LogQL. */
export interface LogSearch {
	readonly serviceLabel: string;
	readonly service: string;
	readonly level?: LogLevel;
	readonly contains?: string;
	readonly correlation?: string;
}

/**
 * RE2 (and JS) pattern for a plain-text line that mentions the level as a word: `ERROR`, `[error]`, `level=error`, not
 * `errors`.
 */
export function plainLevelPattern(level: LogLevel): string {
	return `(?i)\\b(?:${LEVEL_WORDS[level]})\\b`;
}

/**
 * RE2 (and JS) pattern for a plain-text line that carries exactly this id, not one that merely starts or ends with it.
 */
export function plainIdPattern(id: string): string {
	return `(?:^|[^${ID_CHAR}])${escapeRegex(id)}(?:$|[^${ID_CHAR}])`;
}

/**
 * A label filter on a JSON field after `| json`. Loki renames an extracted field that clashes
 * with a stream label to `<name>_extracted`, so both spellings are checked; the JSON field wins.
 */
function fieldFilter(name: string, op: "=" | "=~", value: string): string {
	const v = logqlString(value);
	return `(${name}_extracted${op}${v} or (${name}_extracted="" and ${name}${op}${v}))`;
}

/**
 * Builds the LogQL for a search; label names come from config only, values and text through
 * logqlString. Level and correlation id mean the JSON fields on JSON lines (Loki's `json` stage;
 * a line it cannot parse gets `__error__`) and whole words on plain lines, so `level:error` does
 * not match `{"level":"info","msg":"no errors found"}` and `c-42` does not match `c-420`.
 */
export function buildLogQuery(search: LogSearch): string {
	if (!LABEL_NAME.test(search.serviceLabel)) throw new Error(`not a label name: ${search.serviceLabel}`);
	if (search.service.length === 0 && !search.correlation)
		throw new UserFacingError("Pick a service to search (or give a correlation id, which searches every service).");
	if (search.correlation !== undefined && !CORRELATION_ID.test(search.correlation))
		throw new UserFacingError(CORRELATION_ID_RULE);
	// A correlation id alone searches every service: it is what follows one request across them.
	const selector =
		search.service.length > 0
			? `${search.serviceLabel}=${logqlString(search.service)}`
			: `${search.serviceLabel}=~".+"`;
	const parts = [`{${selector}}`];
	if (search.contains) parts.push(`|= ${logqlString(search.contains)}`);
	// Line filters first: they are cheap and every matching line, JSON or plain, passes them.
	if (search.correlation)
		parts.push(`|= ${logqlString(search.correlation)}`, `|~ ${logqlString(plainIdPattern(search.correlation))}`);
	if (search.level) parts.push(`|~ ${logqlString(plainLevelPattern(search.level))}`);
	const fields = [
		...(search.level ? [fieldFilter(LEVEL_FIELD, "=~", `(?i)(?:${LEVEL_WORDS[search.level]})`)] : []),
		...(search.correlation ? [fieldFilter(CORRELATION_FIELD, "=", search.correlation)] : []),
	];
	if (fields.length > 0)
		parts.push("| json", `| __error__!="" or (${fields.join(" and ")})`, "| drop __error__, __error_details__");
	return parts.join(" ");
}

/**
 * The same filters as buildLogQuery, applied by opsbot to a line it read itself (`docker logs`):
 * JSON lines by their fields, other lines by words.
 */
export function lineMatches(search: Omit<LogSearch, "serviceLabel" | "service">, line: string): boolean {
	if (search.contains && !line.includes(search.contains)) return false;
	if (search.correlation && !new RegExp(plainIdPattern(search.correlation)).test(line)) return false;
	if (search.level && !new RegExp(plainLevelPattern(search.level).slice(4), "i").test(line)) return false;
	if (!search.level && !search.correlation) return true;
	const fields = jsonObject(line);
	if (!fields) return true;
	if (search.level && !new RegExp(`^(?:${LEVEL_WORDS[search.level]})$`, "i").test(String(fields[LEVEL_FIELD] ?? "")))
		return false;
	if (search.correlation && String(fields[CORRELATION_FIELD] ?? "") !== search.correlation) return false;
	return true;
}

function jsonObject(line: string): Record<string, unknown> | undefined {
	if (!/^\s*\{/.test(line)) return undefined;
	try {
		const value = JSON.parse(line) as unknown;
		return value !== null && typeof value === "object" && !Array.isArray(value)
			? (value as Record<string, unknown>)
			: undefined;
	} catch {
		return undefined;
	}
}

/**
 * Refuses a query Loki would refuse for its size, before it is sent, naming what to shorten: of
 * `options` (the user's text by option name, e.g. `{ service, contains }`), the longest once escaped.
 */
export function checkQuerySize(query: string, options: Readonly<Record<string, string | undefined>>): void {
	const bytes = Buffer.byteLength(query, "utf8");
	if (bytes <= LOKI_MAX_QUERY_BYTES) return;
	const escapedBytes = (text: string | undefined) => (text ? Buffer.byteLength(logqlString(text), "utf8") : 0);
	const longest = Object.entries(options).reduce<[string, number] | undefined>((best, [name, text]) => {
		const size = escapedBytes(text);
		return size > (best?.[1] ?? 0) ? [name, size] : best;
	}, undefined);
	throw new UserFacingError([
		`This search is ${bytes.toLocaleString("en")} bytes as LogQL once its text is escaped, `,
		`and Loki refuses queries over ${LOKI_MAX_QUERY_BYTES.toLocaleString("en")} bytes. Shorten `,
		longest ? { code: longest[0] } : "the search",
		".",
	]);
}
