import type pg from "pg";
import type { CustomCheckConfig } from "../config.ts";
import { describeHttpFailure } from "./http.ts";
import { type Database, describePgFailure } from "./postgres.ts";
import { type PrometheusCallOptions, type PrometheusClient, PrometheusQueryError } from "./prometheus.ts";

/** A custom check's one number, or why there is none ("returned no row"), in plain words. */
export type NumberOutcome = { readonly value: number } | { readonly problem: string };

/** Runs a custom check's PromQL at the current time; it must give exactly one number. */
export async function promqlNumber(
	prometheus: Pick<PrometheusClient, "queryInstant">,
	expression: string,
	options: PrometheusCallOptions,
): Promise<NumberOutcome> {
	const result = await prometheus.queryInstant(expression, options);
	if (result.resultType === "scalar") return finite(result.sample.value);
	if (result.resultType !== "vector") return { problem: `returned a ${result.resultType}, not one number` };
	if (result.samples.length === 0)
		return { problem: "returned no series (an absent metric? `or vector(0)` gives a default)" };
	if (result.samples.length > 1)
		return { problem: `returned ${result.samples.length} series, expected one (aggregate with sum, max, ...)` };
	return finite(result.samples[0]!.value);
}

/**
 * Runs a custom check's SQL through opsbot's read-only path: a READ ONLY transaction with
 * statement_timeout, on opsbot's own small pool. The extended protocol refuses more than one
 * statement, so no `COMMIT; ...` can leave the read-only transaction, and the query is wrapped
 * with LIMIT 2 so a query returning a whole table cannot fill memory (two rows already say "too many").
 */
export async function sqlNumber(
	db: Pick<Database, "transaction">,
	sql: string,
	timeoutMs: number,
): Promise<NumberOutcome> {
	// A trailing semicolon would end the subquery; a trailing line comment would swallow the closing paren without the
	// newline.
	const text = `SELECT * FROM (\n${sql.trim().replace(/;\s*$/, "")}\n) AS opsbot_check LIMIT 2`;
	const query: pg.QueryArrayConfig & { queryMode: "extended" } = { text, rowMode: "array", queryMode: "extended" };
	// leaveNothing: rolled back, advisory locks dropped, so what a check set or took ends with it (config.ts refuses the
	// known culprits by name).
	const result = await db.transaction((client) => client.query(query), {
		readOnly: true,
		timeoutMs,
		leaveNothing: true,
	});
	if (result.rows.length === 0) return { problem: "returned no row" };
	if (result.rows.length > 1) return { problem: "returned more than one row, expected one" };
	if (result.fields.length !== 1) return { problem: `returned ${result.fields.length} columns, expected one value` };
	const value: unknown = result.rows[0]![0];
	if (value === null) return { problem: "returned NULL, not a number" };
	if (typeof value === "number") return finite(value);
	// int8 and numeric arrive as strings to keep their precision.
	if (typeof value === "string" && /^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(value))
		return finite(Number(value));
	if (typeof value === "string" && /^\s*[-+]?(nan|infinity)\s*$/i.test(value))
		return { problem: `returned ${value.trim()}, not a finite number` };
	if (value instanceof Date)
		return { problem: "returned a timestamp; use extract(epoch FROM now() - ...) for an age in seconds" };
	if (typeof value === "object" && value !== null && "toPostgres" in value)
		return { problem: "returned an interval; use extract(epoch FROM ...) for seconds" };
	return { problem: `returned ${typeof value === "boolean" ? "true/false" : "text"}, not a number` };
}

function finite(value: number): NumberOutcome {
	return Number.isFinite(value)
		? { value }
		: { problem: `returned ${Number.isNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf"}, not a finite number` };
}

/** The check's state and line: "30.1 h (≥ 26 h)" past a threshold, "4.2 h" within them. */
export function judgeNumber(
	check: Pick<CustomCheckConfig, "direction" | "degraded" | "down" | "unit">,
	value: number,
): { state: "ok" | "degraded" | "down"; detail: string } {
	const shown = withUnit(value, check.unit);
	const past = (threshold: number | undefined) =>
		threshold !== undefined && (check.direction === "above" ? value >= threshold : value <= threshold);
	const sign = check.direction === "above" ? "≥" : "≤";
	if (past(check.down)) return { state: "down", detail: `${shown} (${sign} ${withUnit(check.down!, check.unit)})` };
	if (past(check.degraded))
		return { state: "degraded", detail: `${shown} (${sign} ${withUnit(check.degraded!, check.unit)})` };
	return { state: "ok", detail: shown };
}

function withUnit(value: number, unit: string): string {
	return unit ? `${formatNumber(value)} ${unit}` : formatNumber(value);
}

/** Whole numbers as they are, otherwise two decimals (three significant digits below 1): 42, 3.14, 0.00123. */
export function formatNumber(value: number): string {
	if (Number.isInteger(value)) return String(value);
	const abs = Math.abs(value);
	if (abs >= 100) return String(Math.round(value));
	if (abs >= 1) return String(Number(value.toFixed(2)));
	return String(Number(value.toPrecision(3)));
}

/**
 * Plain words for a failed PromQL query: Prometheus' own error kind, or why it could not be reached. Never its raw
 * text.
 */
export function describePrometheusFailure(err: unknown): string {
	if (err instanceof PrometheusQueryError) {
		switch (err.errorType) {
			case "bad_data":
				return "Prometheus refused the expression as invalid PromQL (bad_data)";
			case "execution":
				return "Prometheus could not evaluate the expression (execution error)";
			case "timeout":
				return "Prometheus gave up evaluating the expression (query timeout)";
			case "canceled":
				return "Prometheus cancelled the query";
			default:
				return `Prometheus answered HTTP ${err.status} (${err.errorType})`;
		}
	}
	return `Prometheus: ${describeHttpFailure(err)}`;
}

/**
 * Plain words for a failed SQL check, with its SQLSTATE so an admin can look it up. Never pg's message, which can quote
 * data.
 */
export function describeSqlFailure(err: unknown, timeoutMs: number): string {
	const e = err as { code?: unknown; message?: unknown } | undefined;
	const code = typeof e?.code === "string" ? e.code : "";
	const known: Record<string, string> = {
		"42P01": "a table it names does not exist",
		"42703": "a column it names does not exist",
		"42883": "a function it calls does not exist (or not for these argument types)",
		"42601": "syntax error (one statement only)",
		"42501": "permission denied for opsbot's role",
		"25006": "it tries to write; checks run read-only",
		"42P02": "it uses a parameter ($1); checks take none",
		"22012": "division by zero",
		"57014": `cancelled by statement_timeout after ${Number((timeoutMs / 1000).toFixed(1))} s`,
	};
	if (known[code]) return `query failed: ${known[code]} (SQLSTATE ${code})`;
	// pg reports a bind with the wrong number of parameters as a protocol violation.
	if (code === "08P01" && typeof e?.message === "string" && /bind message supplies/.test(e.message))
		return `query failed: it uses a parameter ($1); checks take none (SQLSTATE ${code})`;
	const described = describePgFailure(err);
	if (described !== "query failed") return `PostgreSQL: ${described}`;
	return /^[0-9A-Z]{5}$/.test(code) ? `query failed (SQLSTATE ${code})` : "query failed";
}
