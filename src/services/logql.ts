import { UserFacingError } from "../errors.ts";

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

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Levels /logs offers; matched case-insensitively against the JSON `level` field. */
export const LOG_LEVELS = ["debug", "info", "warning", "error", "critical"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The words a line may use for each level; one definition for LogQL (Loki) and for filtering `docker logs` in opsbot. */
export const LEVEL_WORDS: Record<LogLevel, string> = { debug: "debug", info: "info", warning: "warn|warning", error: "error", critical: "critical|fatal" };

/** What a /logs search asks for, before it becomes LogQL. */
export interface LogSearch {
	readonly serviceLabel: string;
	readonly service: string;
	readonly level?: LogLevel;
	readonly contains?: string;
	readonly correlation?: string;
}

/** Builds the LogQL for a search; label names come from config only, values and text through logqlString. */
export function buildLogQuery(search: LogSearch): string {
	if (!LABEL_NAME.test(search.serviceLabel)) throw new Error(`not a label name: ${search.serviceLabel}`);
	if (search.service.length === 0 && !search.correlation) throw new UserFacingError("Pick a service to search.");
	// A correlation id alone searches every service: it is what follows one request across them.
	const selector = search.service.length > 0 ? `${search.serviceLabel}=${logqlString(search.service)}` : `${search.serviceLabel}=~".+"`;
	const parts = [`{${selector}}`];
	if (search.contains) parts.push(`|= ${logqlString(search.contains)}`);
	if (search.correlation) parts.push(`|= ${logqlString(search.correlation)}`);
	if (search.level) {
		// JSON lines carry the level as a field; plain lines that mention it still match the line filter.
		parts.push(`|~ ${logqlString(`(?i)${LEVEL_WORDS[search.level]}`)}`);
	}
	return parts.join(" ");
}
