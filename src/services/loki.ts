import { z } from "zod";
import { UserFacingError } from "../errors.ts";
import type { Text } from "../render/report.ts";
import { HttpAnswerError, HttpStatusError, requestJson, ServiceUnavailableError } from "./http.ts";
import { withSlash } from "./prometheus.ts";

/** One log line as Loki sent it: its time in nanoseconds and the labels of its (output) stream. */
export interface LogLine {
	readonly ns: bigint;
	readonly line: string;
	readonly labels: Readonly<Record<string, string>>;
}

/** Where a Loki lives and how to talk to it. */
export interface LokiTarget {
	readonly url: string;
	readonly tenant?: string | undefined;
	/** `user:password` for basic auth, from the environment. Secret. */
	readonly basicAuth?: string | undefined;
	readonly timeoutMs: number;
}

/**
 * Loki's default `max_entries_limit_per_query`. A Loki configured lower says so in its 400
 * (`... (N > M)`), and opsbot then asks for at most M.
 */
export const LOKI_DEFAULT_MAX_ENTRIES = 5_000;

const Answer = z.object({
	status: z.literal("success"),
	data: z.object({ resultType: z.string(), result: z.array(z.unknown()) }),
});
const Stream = z.object({
	stream: z.record(z.string(), z.string()),
	values: z.array(z.tuple([z.string().regex(/^\d{1,20}$/), z.string()]).rest(z.unknown())),
});
const NOT_A_QUERY_RESULT: Text = [
	"Loki's answer is not a query result this opsbot understands. Check ",
	{ code: "loki.url" },
	" points at Loki.",
];
const ValuesAnswer = z.object({ status: z.literal("success"), data: z.array(z.string()).nullable().default([]) });

/** Loki answered with an error, or not at all; `text` is already plain advice for the user. */
export class LokiError extends UserFacingError {
	/** The HTTP status, or 0 when no answer came. */
	readonly status: number;
	/** Loki's own `max_entries_limit_per_query`, when this error says it was exceeded. */
	readonly maxEntries: number | undefined;
	constructor(
		status: number,
		text: Text,
		options: { unavailable?: boolean; maxEntries?: number; cause?: unknown } = {},
	) {
		// unavailable: Loki could not serve the request (down, slow, overloaded, broken), as opposed to refusing it.
		super(text, {
			unavailable: options.unavailable ?? false,
			...(options.cause === undefined ? {} : { cause: options.cause }),
		});
		this.name = "LokiError";
		this.status = status;
		this.maxEntries = options.maxEntries;
	}
}

/** The query is a metric query (`count_over_time(...)`, `rate(...)`): Loki answers a time series, not log lines. */
export class MetricQueryError extends UserFacingError {
	readonly resultType: string;
	constructor(resultType: string) {
		super(
			`That LogQL is a metric query (Loki answered a ${resultType} of numbers, not log lines); /logs shows log ` +
				`lines. Run it in Grafana Explore, or drop the range aggregation to see the lines.`,
		);
		this.name = "MetricQueryError";
		this.resultType = resultType;
	}
}

// gRPC wrapping that Loki puts around errors from its queriers: not part of the reason.
const RPC_PREFIX = /^rpc error: code = [^ ]+ desc = /;

/** Turns Loki's plain-text errors (PROTOCOLS.md §2.6) into what the user should change, keeping Loki's reason. */
export function explainLokiError(status: number, body: string, tenant?: string): LokiError {
	const text = (body.trim().split("\n")[0] ?? "").replace(RPC_PREFIX, "").slice(0, 400);
	const regexp = /error parsing regexp: (.*)$/.exec(text);
	if (regexp) {
		// Loki answers 500 for a regular expression it cannot compile, though the query is at fault.
		const stage = /stage '(.*?)' : error parsing regexp/.exec(text)?.[1];
		return new LokiError(status, [
			"Loki cannot use the regular expression",
			...(stage ? [" in ", { code: stage }] : []),
			`: ${regexp[1]}. Loki uses Go's RE2 syntax: no lookahead, lookbehind or backreferences.`,
		]);
	}
	if (status === 400) {
		if (/empty-compatible value/.test(text)) {
			return new LokiError(status, [
				"Loki needs at least one label matcher that cannot match an empty value: ",
				{ code: 'service=~".+"' },
				" works, ",
				{ code: 'service=~".*"' },
				" or ",
				{ code: 'service=""' },
				" alone does not.",
			]);
		}
		const size = /input size too long \((\d+) > (\d+)\)/.exec(text);
		if (size)
			return new LokiError(status, `The query is ${size[1]} bytes and Loki accepts at most ${size[2]}. Shorten it.`);
		const entries = /max entries limit per query exceeded, limit > \w+ \((\d+) > (\d+)\)/.exec(text);
		if (entries)
			return new LokiError(
				status,
				`Loki returns at most ${entries[2]} lines per query (its max_entries_limit_per_query); ${entries[1]} were ` +
					`asked for. Lower the limit.`,
				{ maxEntries: Number(entries[2]) },
			);
		const range = /query time range exceeds the limit \(query length: ([^,]+), limit: ([^)]+)\)/.exec(text);
		if (range)
			return new LokiError(status, [
				`That time range (${range[1]}) is longer than Loki allows (${range[2]}). Narrow `,
				{ code: "since" },
				".",
			]);
		if (/maximum number of series/.test(text))
			return new LokiError(
				status,
				`The query matches too many streams for Loki (${text}). Pick a service or add filters.`,
			);
		if (/invalid tenant ID/.test(text))
			return new LokiError(status, [
				"Loki refuses the tenant id",
				...(tenant ? [" ", { code: tenant }] : []),
				" (",
				{ code: "loki.tenant" },
				" in the config).",
			]);
		if (/parse error/.test(text))
			return new LokiError(status, `Loki could not parse the query: ${text}. Check the LogQL syntax.`);
		return new LokiError(status, `Loki rejected the query: ${text}`);
	}
	if (status === 401)
		return new LokiError(status, [
			`Loki refused the request (${text || "HTTP 401"}): no or wrong tenant (X-Scope-OrgID) or credentials. Check `,
			{ code: "loki.tenant" },
			" and ",
			{ code: "loki.basicAuthEnv" },
			" in the config.",
		]);
	if (status === 429)
		return new LokiError(
			status,
			"Loki is busy (too many outstanding requests). Try again in a moment or narrow the search.",
			{ unavailable: true },
		);
	if (status === 504 || status === 499)
		return new LokiError(status, "The search took too long in Loki. Narrow the time range or add a filter.", {
			unavailable: true,
		});
	if (status === 503)
		return new LokiError(status, `Loki is not ready${text ? ` (${text})` : ""}. Try again shortly.`, {
			unavailable: true,
		});
	return new LokiError(
		status,
		`Loki answered HTTP ${status}. Try again; if it persists, check Loki's health with /health.`,
		{ unavailable: status >= 500 },
	);
}

/** The one Loki request: tenant and basic-auth headers, the target's timeout, and HTTP failures in Loki's words. */
async function get<S extends z.ZodType>(
	target: LokiTarget,
	path: string,
	params: URLSearchParams,
	schema: S,
	unexpected: Text,
): Promise<z.infer<S>> {
	const headers: Record<string, string> = {};
	if (target.tenant) headers["x-scope-orgid"] = target.tenant;
	if (target.basicAuth) headers.authorization = `Basic ${Buffer.from(target.basicAuth).toString("base64")}`;
	try {
		return await requestJson(`${new URL(path, withSlash(target.url)).href}?${params}`, {
			service: "Loki",
			headers,
			timeoutMs: target.timeoutMs,
			maxBytes: 64 * 1024 * 1024,
			schema,
		});
	} catch (err) {
		if (err instanceof HttpStatusError) throw explainLokiError(err.status, err.body, target.tenant);
		if (err instanceof ServiceUnavailableError) {
			const seconds = Number((target.timeoutMs / 1000).toFixed(1));
			const message: Text =
				err.reason === "timeout"
					? [
							`Loki did not answer within ${seconds} s (`,
							{ code: "loki.timeoutMs" },
							"). Narrow the search, or check Loki with /health.",
						]
					: err.failure === "connection refused"
						? "Loki is not reachable (connection refused). Check Loki with /health."
						: `Loki could not be reached (${err.failure}). Check Loki with /health.`;
			throw new LokiError(0, message, { unavailable: true, cause: err });
		}
		if (err instanceof HttpAnswerError) {
			const message: Text =
				err.kind === "not-json"
					? [
							"Loki answered with something that is not JSON. Check ",
							{ code: "loki.url" },
							" points at Loki, or check Loki with /health.",
						]
					: err.kind === "too-large"
						? "Loki's answer is larger than opsbot reads (64 MiB). Narrow the search or lower the limit."
						: unexpected;
			throw new LokiError(200, message, { unavailable: true, cause: err });
		}
		throw err;
	}
}

/**
 * One query_range request for log lines over [start, end) as Loki answers it: at most `limit`
 * lines, in no particular order across streams. With a limit, Loki's answer is not always the
 * true first `limit` lines (see logs.ts); callers page with that in mind.
 */
export async function queryRange(
	target: LokiTarget,
	query: string,
	range: { start: bigint; end: bigint; limit: number; direction: "backward" | "forward" },
): Promise<LogLine[]> {
	const answer = await get(
		target,
		"loki/api/v1/query_range",
		new URLSearchParams({
			query,
			start: range.start.toString(),
			end: range.end.toString(),
			limit: String(range.limit),
			direction: range.direction,
		}),
		Answer,
		NOT_A_QUERY_RESULT,
	);
	if (answer.data.resultType !== "streams") throw new MetricQueryError(answer.data.resultType);
	const streams = z.array(Stream).safeParse(answer.data.result);
	if (!streams.success) throw new LokiError(200, NOT_A_QUERY_RESULT, { unavailable: true, cause: streams.error });
	return streams.data.flatMap((stream) =>
		stream.values.map(([ns, line]) => ({ ns: BigInt(ns), line, labels: stream.stream })),
	);
}

/** Values of one label over the last `hours` (for autocomplete). */
export async function labelValues(target: LokiTarget, label: string, hours = 6): Promise<string[]> {
	if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label)) throw new Error(`not a label name: ${label}`);
	const end = BigInt(Date.now()) * 1_000_000n;
	const start = end - BigInt(hours) * 3_600_000_000_000n;
	const answer = await get(
		target,
		`loki/api/v1/label/${label}/values`,
		new URLSearchParams({ start: start.toString(), end: end.toString() }),
		ValuesAnswer,
		["Loki's answer is not a list of label values. Check ", { code: "loki.url" }, " points at Loki."],
	);
	return answer.data ?? [];
}
