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
