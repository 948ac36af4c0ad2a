import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { buildLogQuery, logqlString } from "../../src/services/logql.ts";
import { type LokiDouble, startLokiDouble } from "../loki-double/index.ts";
import { freshTenant, type TestLoki } from "../support/loki.ts";
import { sharedLoki } from "../support/shared-loki.ts";

/**
 * The Loki double against the real Loki 2.9.13: the same requests to both, compared on what opsbot
 * reads — status codes, content types, error texts, response shape, limits and ordering.
 *
 * What the double does not copy (and opsbot does not rely on):
 * - the 30-minute query splits, and with them the backward answers across several streams that
 *   are not the true newest N (the double's answer always is; opsbot pages as if it may not be);
 * - which streams' JSON fields get `_extracted`: Loki decides once per query, so a stream without
 *   the clashing label sometimes gets the suffix too (compared without it; opsbot reads both);
 * - which of several lines sharing the cut-off timestamp a limited answer keeps, and the order of
 *   streams in `result` (opsbot orders lines by time and id itself);
 * - regular expressions: RE2 is approximated with JavaScript's engine, and only the common RE2
 *   error texts are reproduced (unclosed or unexpected parenthesis or bracket, lookarounds,
 *   backreferences);
 * - LogQL beyond what opsbot sends: other parsers, line_format, number filters and metric queries
 *   other than count_over_time answer a 400 naming the unsupported part; count_over_time's step
 *   alignment is not Loki's (only the matrix shape is compared);
 * - syntax errors beyond literal-not-terminated, unexpected identifier and unexpected end;
 * - push validation (order, age, future, per-stream results), flushing, /ready's start-up delay,
 *   `stats`.
 */

interface Outcome {
	status: number;
	contentType: string | null;
	body: unknown;
}

const NS_PER_MINUTE = 60_000_000_000n;

describe("the Loki double answers like the real Loki 2.9.13 where opsbot reads it", () => {
	let loki: TestLoki;
	let double: LokiDouble;
	const tenant = freshTenant("contract");
	const now = BigInt(Date.now()) * 1_000_000n;
	const t = (minutesAgo: number, plusNs = 0n) => now - BigInt(minutesAgo) * NS_PER_MINUTE + plusNs;
	const start = t(60);
	const end = now;

	const data: { labels: Record<string, string>; entries: { ns: bigint; line: string }[] }[] = [
		{
			labels: { service: "api", pod: "a" },
			entries: [
				{ ns: t(50), line: JSON.stringify({ level: "info", msg: "no errors found", correlation_id: "c-420" }) },
				{ ns: t(40), line: JSON.stringify({ level: "ERROR", msg: "payment failed", correlation_id: "c-42" }) },
				{ ns: t(30), line: "2026-11-24 ERROR plain failure for c-42." },
				{ ns: t(20), line: "[2026-11-24 12:00] INFO errors are counted, c-420 too" },
				{ ns: t(10), line: "tie one" },
				{ ns: t(10), line: "tie two" },
				{ ns: t(10), line: "tie three" },
				{ ns: t(5), line: "has `backticks` and C:\\temp\\new" },
			],
		},
		{
			labels: { service: "worker", level: "warn" },
			entries: [
				{ ns: t(45), line: JSON.stringify({ level: "error", msg: "job failed", correlation_id: "c-42" }) },
				{ ns: t(35), line: JSON.stringify({ msg: "no level field", correlation_id: "c-42" }) },
				{ ns: t(25), line: "plain worker line about c-42" },
			],
		},
	];

	beforeAll(async () => {
		loki = await sharedLoki();
		double = await startLokiDouble();
		for (const { labels, entries } of data) {
			await loki.push(tenant, labels, entries);
			// The double is fed through its push API too, the same way.
			const res = await fetch(`${double.url}/loki/api/v1/push`, {
				method: "POST",
				headers: { "content-type": "application/json", "x-scope-orgid": tenant },
				body: JSON.stringify({ streams: [{ stream: labels, values: entries.map((e) => [e.ns.toString(), e.line]) }] }),
			});
			expect(res.status).toBe(204);
		}
	});
	afterAll(async () => {
		await double?.close();
	});

	async function ask(base: string, path: string, params: Record<string, string>, as: string | null): Promise<Outcome> {
		const res = await fetch(`${base}${path}${Object.keys(params).length ? `?${new URLSearchParams(params)}` : ""}`, {
			headers: as === null ? {} : { "x-scope-orgid": as },
		});
		const text = await res.text();
		let body: unknown = text;
		if (res.status === 200 && res.headers.get("content-type")?.startsWith("application/json")) {
			const parsed = JSON.parse(text) as { status: string; data: unknown };
			body = normalise(parsed);
		}
		return { status: res.status, contentType: res.headers.get("content-type"), body };
	}

	// What opsbot reads of an answer: status, result type, each stream's labels and values in order; streams in no
	// particular order.
	function normalise(answer: { status: string; data: unknown }): unknown {
		const data = answer.data as
			| {
					resultType?: string;
					result?: { stream?: Record<string, string>; metric?: Record<string, string>; values: unknown[][] }[];
			  }
			| string[]
			| undefined;
		if (Array.isArray(data) || data === undefined) return answer;
		if (data.resultType === "matrix") {
			return {
				status: answer.status,
				resultType: "matrix",
				series: (data.result ?? [])
					.map((s) => ({
						metric: s.metric,
						valueTypes: [...new Set(s.values.map((v) => `${typeof v[0]},${typeof v[1]}`))],
					}))
					.sort((a, b) => JSON.stringify(a.metric).localeCompare(JSON.stringify(b.metric))),
			};
		}
		return {
			status: answer.status,
			resultType: data.resultType,
			streams: (data.result ?? [])
				.map((s) => ({ stream: s.stream && unsuffixed(s.stream), values: s.values }))
				.sort((a, b) => JSON.stringify(a.stream).localeCompare(JSON.stringify(b.stream))),
		};
	}

	// Loki caches the name a JSON field gets per query: once one stream clashes (`level_extracted`), streams
	// without a `level` label may get the suffix too, depending on which stream it read first. opsbot reads both.
	function unsuffixed(stream: Record<string, string>): Record<string, string> {
		return Object.fromEntries(
			Object.entries(stream).map(([k, v]) => [
				k.endsWith("_extracted") && !Object.hasOwn(stream, k.slice(0, -"_extracted".length))
					? k.slice(0, -"_extracted".length)
					: k,
				v,
			]),
		);
	}

	const range = (query: string, extra: Record<string, string> = {}) => ({
		query,
		start: start.toString(),
		end: end.toString(),
		...extra,
	});
	const cases: [string, string, Record<string, string>, (string | null)?][] = [
		["no tenant header", "/loki/api/v1/query_range", range('{service="api"}'), null],
		["a tenant id Loki refuses", "/loki/api/v1/query_range", range('{service="api"}'), "a/b"],
		[
			"a tenant with no logs (an empty 200, not an error)",
			"/loki/api/v1/query_range",
			range('{service="api"}'),
			"nobody-here",
		],
		[
			"all lines, newest first (ties in one stream: last pushed first)",
			"/loki/api/v1/query_range",
			range('{service=~".+"}'),
		],
		["all lines, oldest first", "/loki/api/v1/query_range", range('{service=~".+"}', { direction: "forward" })],
		["a limit that cuts across streams", "/loki/api/v1/query_range", range('{service=~".+"}', { limit: "4" })],
		["a limit, forward", "/loki/api/v1/query_range", range('{service=~".+"}', { limit: "4", direction: "forward" })],
		[
			"start inclusive, end exclusive",
			"/loki/api/v1/query_range",
			{ query: '{service=~".+"}', start: t(40).toString(), end: t(10).toString() },
		],
		[
			"seconds and RFC3339 timestamps",
			"/loki/api/v1/query_range",
			{
				query: '{service=~".+"}',
				start: String(Number(start / 1_000_000_000n)),
				end: new Date(Number(end / 1_000_000n)).toISOString(),
			},
		],
		[
			"line filters, case-insensitive regex",
			"/loki/api/v1/query_range",
			range('{service=~".+"} |= "c-42" |~ "(?i)error"'),
		],
		[
			"a literal with backticks and backslashes",
			"/loki/api/v1/query_range",
			range(`{service="api"} |= ${logqlString("C:\\temp\\new")} |= ${logqlString("`backticks`")}`),
		],
		[
			"opsbot's level filter on mixed JSON and plain lines",
			"/loki/api/v1/query_range",
			range(buildLogQuery({ serviceLabel: "service", service: "api", level: "error" })),
		],
		[
			"opsbot's correlation filter, every service (a stream label clashes with a JSON field)",
			"/loki/api/v1/query_range",
			range(buildLogQuery({ serviceLabel: "service", service: "", correlation: "c-42" })),
		],
		[
			"opsbot's level and correlation filters together",
			"/loki/api/v1/query_range",
			range(buildLogQuery({ serviceLabel: "service", service: "worker", level: "error", correlation: "c-42" })),
		],
		[
			"`| json` on its own: every field a label, __error__ on plain lines",
			"/loki/api/v1/query_range",
			range('{service="api"} | json | drop __error_details__'),
		],
		["an unclosed group in a line-filter regex (500)", "/loki/api/v1/query_range", range('{service="api"} |~ "(a"')],
		["an unexpected parenthesis", "/loki/api/v1/query_range", range('{service="api"} |~ "a)"')],
		["an unclosed bracket", "/loki/api/v1/query_range", range('{service="api"} |~ "[a"')],
		["a lookahead (RE2 has none)", "/loki/api/v1/query_range", range('{service="api"} |~ "(?=a)"')],
		["a backreference", "/loki/api/v1/query_range", range('{service="api"} |~ "(a)\\\\1"')],
		["an invalid regex in a stream selector (400)", "/loki/api/v1/query_range", range('{service=~"(a"}')],
		["an invalid regex in a label filter", "/loki/api/v1/query_range", range('{service="api"} | json | level=~"(a"')],
		["a string that is not terminated", "/loki/api/v1/query_range", range('{service="api"} |= `x')],
		["an unexpected identifier", "/loki/api/v1/query_range", range('{service="api"} oops')],
		["an unclosed selector", "/loki/api/v1/query_range", range('{service="api"')],
		["an empty query", "/loki/api/v1/query_range", range("")],
		["only empty-compatible matchers", "/loki/api/v1/query_range", range('{service=~".*"}')],
		[
			"a query over 5,120 bytes once escaped",
			"/loki/api/v1/query_range",
			range(`{service="api"} |= ${logqlString("\u0001".repeat(900))}`),
		],
		[
			"more entries than max_entries_limit_per_query",
			"/loki/api/v1/query_range",
			range('{service="api"}', { limit: "5001" }),
		],
		["a limit of 0", "/loki/api/v1/query_range", range('{service="api"}', { limit: "0" })],
		["a limit that is not a number", "/loki/api/v1/query_range", range('{service="api"}', { limit: "abc" })],
		["an invalid direction", "/loki/api/v1/query_range", range('{service="api"}', { direction: "sideways" })],
		[
			"a range one second over 721 h",
			"/loki/api/v1/query_range",
			{
				query: '{service="api"}',
				start: (end - 721n * 60n * NS_PER_MINUTE - 1_000_000_000n).toString(),
				end: end.toString(),
			},
		],
		[
			"an end before the start",
			"/loki/api/v1/query_range",
			{ query: '{service="api"}', start: end.toString(), end: start.toString() },
		],
		["a start that is not a time", "/loki/api/v1/query_range", { query: '{service="api"}', start: "garbage" }],
		["a metric query answers a matrix", "/loki/api/v1/query_range", range('count_over_time({service=~".+"}[10m])')],
		["label values", "/loki/api/v1/label/service/values", {}],
		["label values of a tenant with no logs", "/loki/api/v1/label/service/values", {}, "nobody-here"],
		["an unknown path", "/loki/api/v1/nope", {}],
	];

	it.each(cases)("%s", async (_name, path, params, as = tenant) => {
		const [real, fake] = await Promise.all([ask(loki.url, path, params, as), ask(double.url, path, params, as)]);

		expect(fake).toEqual(real);
	});

	it("answers /ready like a started Loki", async () => {
		// Loki answers queries a moment before /ready turns 200.
		await vi.waitFor(async () => expect((await fetch(`${loki.url}/ready`)).status).toBe(200), {
			timeout: 10_000,
			interval: 100,
		});
		const [real, fake] = await Promise.all([fetch(`${loki.url}/ready`), fetch(`${double.url}/ready`)]);

		expect([fake.status, await fake.text()]).toEqual([real.status, await real.text()]);
	});
});
