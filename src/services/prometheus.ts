import { z } from "zod";
import { getJson, HttpStatusError, type HttpCallOptions } from "./http.ts";

const ActiveTarget = z.object({
	labels: z.record(z.string(), z.string()).default({}),
	scrapePool: z.string().default(""),
	health: z.string(),
	lastError: z.string().default(""),
});

const TargetsAnswer = z.object({
	status: z.literal("success"),
	data: z.object({ activeTargets: z.array(ActiveTarget) }),
});

/** One active scrape target as `/api/v1/targets` lists it. */
export type ActiveTarget = z.infer<typeof ActiveTarget>;

/** Reads `/api/v1/targets` (active targets only). */
export async function fetchActiveTargets(baseUrl: string, options: HttpCallOptions): Promise<ActiveTarget[]> {
	return TargetsAnswer.parse(await getJson(new URL("api/v1/targets?state=active", withSlash(baseUrl)).href, options)).data.activeTargets;
}

/** A scrape target Prometheus could not reach. */
export interface DownTarget {
	readonly job: string;
	readonly instance: string;
	readonly lastError: string;
}

/** Scrape target health: how many are up and which are not. */
export interface TargetHealth {
	readonly total: number;
	readonly up: number;
	readonly down: readonly DownTarget[];
}

/** Reads `/api/v1/targets` (active only) and lists every target that is not up. */
export async function fetchTargetHealth(baseUrl: string, options: HttpCallOptions): Promise<TargetHealth> {
	const targets = await fetchActiveTargets(baseUrl, options);
	// "unknown" means not scraped yet (a fresh target), which is not a failure.
	const down = targets
		.filter((t) => t.health === "down")
		.map((t) => ({ job: t.labels.job ?? t.scrapePool, instance: t.labels.instance ?? "?", lastError: t.lastError }));
	return { total: targets.length, up: targets.filter((t) => t.health === "up").length, down };
}

/** Ensures a base URL ends in "/" so relative API paths append instead of replacing its last segment. */
export function withSlash(url: string): string {
	return url.endsWith("/") ? url : `${url}/`;
}

const RangeAnswer = z.object({
	status: z.literal("success"),
	data: z.object({
		resultType: z.literal("matrix"),
		result: z.array(z.object({ metric: z.record(z.string(), z.string()), values: z.array(z.tuple([z.number(), z.string()])) })),
	}),
});

/** One series of a range query: its labels and [unix ms, value] points, oldest first. */
export interface RangeSeries {
	readonly metric: Readonly<Record<string, string>>;
	readonly points: readonly { at: number; value: number }[];
}

/** Runs `/api/v1/query_range` (form-encoded POST, so long expressions fit) and returns the matrix. */
export async function queryRange(baseUrl: string, query: string, range: { start: Date; end: Date; stepSeconds: number }, options: HttpCallOptions): Promise<RangeSeries[]> {
	// Whole seconds keep `end` on the step grid, so the newest point is evaluated at `end` itself.
	const end = Math.ceil(range.end.getTime() / 1000);
	const start = end - Math.round((range.end.getTime() - range.start.getTime()) / 1000 / range.stepSeconds) * range.stepSeconds;
	const params = new URLSearchParams({ query, start: String(start), end: String(end), step: String(range.stepSeconds) });
	const url = new URL(`api/v1/query_range?${params}`, withSlash(baseUrl)).href;
	const answer = RangeAnswer.parse(await getJson(url, options));
	return answer.data.result.map((series) => ({
		metric: series.metric,
		points: series.values.map(([t, v]) => ({ at: t * 1000, value: Number(v) })).filter((p) => Number.isFinite(p.value)),
	}));
}

const Sample = z.tuple([z.number(), z.string()]);
const InstantAnswer = z.object({
	status: z.literal("success"),
	data: z.discriminatedUnion("resultType", [
		z.object({ resultType: z.literal("vector"), result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: Sample })) }),
		z.object({ resultType: z.literal("scalar"), result: Sample }),
		z.object({ resultType: z.literal("string"), result: Sample }),
		z.object({ resultType: z.literal("matrix"), result: z.array(z.unknown()) }),
	]),
});

/** One sample of an instant vector: its labels (with `__name__` for raw series), value and evaluation time (unix ms). */
export interface InstantSample {
	readonly metric: Readonly<Record<string, string>>;
	readonly value: number;
	readonly at: number;
}

/** What an instant query returned; values are parsed numbers, so NaN and ±Inf survive for the caller to judge. */
export type InstantResult =
	| { readonly resultType: "vector"; readonly samples: readonly InstantSample[] }
	| { readonly resultType: "scalar"; readonly sample: InstantSample }
	| { readonly resultType: "string" | "matrix" };

/** Prometheus refused or could not finish a query; `errorType` is its own (bad_data, execution, timeout, ...). */
export class PrometheusQueryError extends Error {
	readonly errorType: string;
	readonly status: number;
	constructor(status: number, errorType: string, options?: ErrorOptions) {
		super(`Prometheus answered HTTP ${status} (${errorType})`, options);
		this.name = "PrometheusQueryError";
		this.status = status;
		this.errorType = errorType;
	}
}

/**
 * Runs `/api/v1/query` at the current time. Prometheus gets a `timeout` a little inside our own
 * deadline, so a slow expression comes back as its own "timeout" error rather than a cut connection.
 */
export async function queryInstant(baseUrl: string, query: string, options: HttpCallOptions): Promise<InstantResult> {
	const evalTimeoutMs = Math.max(options.timeoutMs - 250, Math.round(options.timeoutMs * 0.8));
	const params = new URLSearchParams({ query, timeout: String(evalTimeoutMs / 1000) });
	let json: unknown;
	try {
		json = await getJson(new URL(`api/v1/query?${params}`, withSlash(baseUrl)).href, options);
	} catch (err) {
		// 400 bad_data, 422 execution, 503 timeout: the body names the kind; the body may be cut short, so no JSON.parse.
		if (err instanceof HttpStatusError) {
			const errorType = /"errorType"\s*:\s*"(\w+)"/.exec(err.body)?.[1];
			if (errorType) throw new PrometheusQueryError(err.status, errorType, { cause: err });
		}
		throw err;
	}
	const { data } = InstantAnswer.parse(json);
	// Prometheus writes infinities as "+Inf"/"-Inf", which Number() reads as NaN.
	const number = (v: string) => (v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v));
	const sample = (metric: Record<string, string>, [t, v]: [number, string]): InstantSample => ({ metric, value: number(v), at: t * 1000 });
	switch (data.resultType) {
		case "vector":
			return { resultType: "vector", samples: data.result.map((r) => sample(r.metric, r.value)) };
		case "scalar":
			return { resultType: "scalar", sample: sample({}, data.result) };
		default:
			return { resultType: data.resultType };
	}
}

/** A PromQL string literal for `value` (label values in selectors): backslash, quote and newlines escaped. */
export function promqlString(value: string): string {
	return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\r/g, "\\r")}"`;
}
