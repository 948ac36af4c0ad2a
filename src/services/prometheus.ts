import { z } from "zod";
import type { EnvironmentConfig } from "../config.ts";
import { HttpStatusError, requestJson } from "./http.ts";

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

/** Ensures a base URL ends in "/" so relative API paths append instead of replacing its last segment. */
export function withSlash(url: string): string {
	return url.endsWith("/") ? url : `${url}/`;
}

const RangeAnswer = z.object({
	status: z.literal("success"),
	data: z.object({
		resultType: z.literal("matrix"),
		result: z.array(
			z.object({ metric: z.record(z.string(), z.string()), values: z.array(z.tuple([z.number(), z.string()])) }),
		),
	}),
});

/** One series of a range query: its labels and [unix ms, value] points, oldest first. */
export interface RangeSeries {
	readonly metric: Readonly<Record<string, string>>;
	readonly points: readonly { at: number; value: number }[];
}

const Sample = z.tuple([z.number(), z.string()]);
const InstantAnswer = z.object({
	status: z.literal("success"),
	data: z.discriminatedUnion("resultType", [
		z.object({
			resultType: z.literal("vector"),
			result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: Sample })),
		}),
		z.object({ resultType: z.literal("scalar"), result: Sample }),
		z.object({ resultType: z.literal("string"), result: Sample }),
		z.object({ resultType: z.literal("matrix"), result: z.array(z.unknown()) }),
	]),
});

/**
 * One sample of an instant vector: its labels (with `__name__` for raw series), value and evaluation time (unix ms).
 */
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

/** Per call: a deadline other than the configured one (a check's own), and the caller's cancellation. */
export interface PrometheusCallOptions {
	readonly timeoutMs?: number;
	readonly signal?: AbortSignal;
}

/** One Prometheus (HTTP API v1); every call has the configured timeout unless the call gives its own. */
export interface PrometheusClient {
	/** The configured timeout (`prometheus.timeoutMs`). */
	readonly timeoutMs: number;
	/** Runs `/api/v1/query_range` (form-encoded POST, so long expressions fit) and returns the matrix. */
	queryRange(
		query: string,
		range: { start: Date; end: Date; stepSeconds: number },
		options?: PrometheusCallOptions,
	): Promise<RangeSeries[]>;
	/**
	 * Runs `/api/v1/query` at the current time. Prometheus gets a `timeout` a little inside our own
	 * deadline, so a slow expression comes back as its own "timeout" error rather than a cut connection.
	 */
	queryInstant(query: string, options?: PrometheusCallOptions): Promise<InstantResult>;
	/** Reads `/api/v1/targets` (active targets only). */
	activeTargets(options?: PrometheusCallOptions): Promise<ActiveTarget[]>;
	/** Reads `/api/v1/targets` (active only) and lists every target that is not up. */
	targetHealth(options?: PrometheusCallOptions): Promise<TargetHealth>;
}

/** The Prometheus of each environment, built once from the config. */
export interface PrometheusService {
	/** The environment's Prometheus, or undefined where none is configured. */
	forEnvironment(environment: string): PrometheusClient | undefined;
}

/** Creates one client per environment that configures a Prometheus. */
export function createPrometheusService(
	environments: Readonly<Record<string, Pick<EnvironmentConfig, "prometheus">>>,
): PrometheusService {
	const clients = new Map(
		Object.entries(environments).flatMap(([name, env]) =>
			env.prometheus ? [[name, createPrometheusClient(env.prometheus)] as const] : [],
		),
	);
	return { forEnvironment: (environment) => clients.get(environment) };
}

/** A client for the Prometheus at `url`. */
export function createPrometheusClient(config: { readonly url: string; readonly timeoutMs: number }): PrometheusClient {
	const call = <S extends z.ZodType>(path: string, schema: S, options: PrometheusCallOptions, form?: URLSearchParams) =>
		requestJson(new URL(path, withSlash(config.url)).href, {
			service: "Prometheus",
			timeoutMs: options.timeoutMs ?? config.timeoutMs,
			schema,
			...(form ? { form } : {}),
			...(options.signal ? { signal: options.signal } : {}),
		});
	const activeTargets = async (options: PrometheusCallOptions = {}) =>
		(await call("api/v1/targets?state=active", TargetsAnswer, options)).data.activeTargets;
	return {
		timeoutMs: config.timeoutMs,
		async queryRange(query, range, options = {}) {
			// Whole seconds keep `end` on the step grid, so the newest point is evaluated at `end` itself.
			const end = Math.ceil(range.end.getTime() / 1000);
			const start =
				end - Math.round((range.end.getTime() - range.start.getTime()) / 1000 / range.stepSeconds) * range.stepSeconds;
			const answer = await call(
				"api/v1/query_range",
				RangeAnswer,
				options,
				new URLSearchParams({ query, start: String(start), end: String(end), step: String(range.stepSeconds) }),
			);
			return answer.data.result.map((series) => ({
				metric: series.metric,
				points: series.values
					.map(([t, v]) => ({ at: t * 1000, value: Number(v) }))
					.filter((p) => Number.isFinite(p.value)),
			}));
		},
		async queryInstant(query, options = {}) {
			const timeoutMs = options.timeoutMs ?? config.timeoutMs;
			const evalTimeoutMs = Math.max(timeoutMs - 250, Math.round(timeoutMs * 0.8));
			let answer: z.infer<typeof InstantAnswer>;
			try {
				answer = await call(
					"api/v1/query",
					InstantAnswer,
					{ ...options, timeoutMs },
					new URLSearchParams({ query, timeout: String(evalTimeoutMs / 1000) }),
				);
			} catch (err) {
				// 400 bad_data, 422 execution, 503 timeout: the body names the kind; the body may be cut short, so no JSON.parse.
				if (err instanceof HttpStatusError) {
					const errorType = /"errorType"\s*:\s*"(\w+)"/.exec(err.body)?.[1];
					if (errorType) throw new PrometheusQueryError(err.status, errorType, { cause: err });
				}
				throw err;
			}
			const { data } = answer;
			// Prometheus writes infinities as "+Inf"/"-Inf", which Number() reads as NaN.
			const number = (v: string) => (v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v));
			const sample = (metric: Record<string, string>, [t, v]: [number, string]): InstantSample => ({
				metric,
				value: number(v),
				at: t * 1000,
			});
			switch (data.resultType) {
				case "vector":
					return { resultType: "vector", samples: data.result.map((r) => sample(r.metric, r.value)) };
				case "scalar":
					return { resultType: "scalar", sample: sample({}, data.result) };
				default:
					return { resultType: data.resultType };
			}
		},
		activeTargets,
		async targetHealth(options) {
			const targets = await activeTargets(options);
			// "unknown" means not scraped yet (a fresh target), which is not a failure.
			const down = targets
				.filter((t) => t.health === "down")
				.map((t) => ({
					job: t.labels.job ?? t.scrapePool,
					instance: t.labels.instance ?? "?",
					lastError: t.lastError,
				}));
			return { total: targets.length, up: targets.filter((t) => t.health === "up").length, down };
		},
	};
}

/** A PromQL string literal for `value` (label values in selectors): backslash, quote and newlines escaped. */
export function promqlString(value: string): string {
	return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\r/g, "\\r")}"`;
}
