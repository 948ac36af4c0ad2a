import { request } from "undici";
import { z } from "zod";
import { UserFacingError } from "../errors.ts";
import { readBounded } from "./http.ts";
import { withSlash } from "./prometheus.ts";

/** One log line: its time in nanoseconds (as Loki sends it, a string) and its stream labels. */
export interface LogLine {
	readonly ns: string;
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

const StreamsAnswer = z.object({
	status: z.literal("success"),
	data: z.object({
		resultType: z.literal("streams"),
		result: z.array(z.object({ stream: z.record(z.string(), z.string()), values: z.array(z.tuple([z.string(), z.string()]).rest(z.unknown())) })),
	}),
});
const ValuesAnswer = z.object({ status: z.literal("success"), data: z.array(z.string()).default([]) });

/** Loki answered with an error; `message` is already plain advice for the user. */
export class LokiError extends UserFacingError {
	readonly status: number;
	constructor(status: number, message: string) {
		super(message);
		this.name = "LokiError";
		this.status = status;
	}
}

/** Turns Loki's plain-text errors (PROTOCOLS.md §2.6) into what the user should change. */
export function explainLokiError(status: number, body: string): string {
	const text = body.trim().split("\n")[0]?.slice(0, 300) ?? "";
	if (status === 400 && /parse error/.test(text)) return `Loki could not parse the query: ${text}. Check the LogQL syntax.`;
	if (status === 400 && /max entries limit/.test(text)) return "Loki refuses to return that many lines at once. Lower the limit.";
	if (status === 400 && /time range exceeds/.test(text)) return "That time range is longer than Loki allows. Narrow `since`.";
	if (status === 400 && /maximum number of series/.test(text)) return "The query matches too many streams. Pick a service or add filters.";
	if (status === 400 && /empty-compatible|at least one/.test(text)) return "The query needs at least one label matcher that is not empty.";
	if (status === 400) return `Loki rejected the query: ${text}`;
	if (status === 401) return "Loki refused the request: no or wrong tenant (X-Scope-OrgID) or credentials. Check `loki.tenant` and `loki.basicAuthEnv` in the config.";
	if (status === 429) return "Loki is busy (too many outstanding requests). Try again in a moment or narrow the search.";
	if (status === 504 || status === 499) return "The search took too long in Loki. Narrow the time range or add a filter.";
	if (status === 503) return `Loki is not ready${text ? ` (${text})` : ""}. Try again shortly.`;
	return `Loki answered HTTP ${status}. Try again; if it persists, check Loki's health with /health.`;
}

async function get(target: LokiTarget, path: string, params: URLSearchParams): Promise<unknown> {
	const headers: Record<string, string> = { accept: "application/json", "user-agent": "opsbot" };
	if (target.tenant) headers["x-scope-orgid"] = target.tenant;
	if (target.basicAuth) headers.authorization = `Basic ${Buffer.from(target.basicAuth).toString("base64")}`;
	let response;
	try {
		response = await request(`${new URL(path, withSlash(target.url)).href}?${params}`, {
			headers,
			signal: AbortSignal.timeout(target.timeoutMs),
			headersTimeout: target.timeoutMs,
			bodyTimeout: target.timeoutMs,
		});
	} catch (err) {
		const code = (err as { code?: string; name?: string }).code ?? (err as { name?: string }).name;
		throw new LokiError(0, code === "ECONNREFUSED" ? "Loki is not reachable (connection refused)." : code === "TimeoutError" || code === "UND_ERR_HEADERS_TIMEOUT" ? "Loki did not answer in time. Narrow the search." : "Loki could not be reached.");
	}
	const text = await readBounded(response.body, 64 * 1024 * 1024);
	if (response.statusCode !== 200) throw new LokiError(response.statusCode, explainLokiError(response.statusCode, text));
	return JSON.parse(text) as unknown;
}

/** Runs a log query over [start, end) and returns lines newest first (direction backward). */
export async function queryLogs(target: LokiTarget, query: string, range: { start: bigint; end: bigint; limit: number; direction?: "backward" | "forward" }): Promise<LogLine[]> {
	const answer = StreamsAnswer.parse(
		await get(target, "loki/api/v1/query_range", new URLSearchParams({ query, start: range.start.toString(), end: range.end.toString(), limit: String(range.limit), direction: range.direction ?? "backward" })),
	);
	const lines = answer.data.result.flatMap((stream) => stream.values.map(([ns, line]) => ({ ns, line, labels: stream.stream })));
	// Loki sorts within a stream only; merge the streams here.
	lines.sort((a, b) => (BigInt(a.ns) === BigInt(b.ns) ? 0 : BigInt(a.ns) > BigInt(b.ns) ? -1 : 1));
	if (range.direction === "forward") lines.reverse();
	return lines.slice(0, range.limit);
}

/** Values of one label over the last `hours` (for autocomplete). */
export async function labelValues(target: LokiTarget, label: string, hours = 6): Promise<string[]> {
	if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label)) throw new Error(`not a label name: ${label}`);
	const end = BigInt(Date.now()) * 1_000_000n;
	const start = end - BigInt(hours) * 3_600_000_000_000n;
	return ValuesAnswer.parse(await get(target, `loki/api/v1/label/${label}/values`, new URLSearchParams({ start: start.toString(), end: end.toString() }))).data;
}
