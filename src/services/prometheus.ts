import { z } from "zod";
import { getJson, type HttpCallOptions } from "./http.ts";

const TargetsAnswer = z.object({
	status: z.literal("success"),
	data: z.object({
		activeTargets: z.array(
			z.object({
				labels: z.record(z.string(), z.string()).default({}),
				scrapePool: z.string().default(""),
				health: z.string(),
				lastError: z.string().default(""),
			}),
		),
	}),
});

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
	const answer = TargetsAnswer.parse(await getJson(new URL("api/v1/targets?state=active", withSlash(baseUrl)).href, options));
	const targets = answer.data.activeTargets;
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
