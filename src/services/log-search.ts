import { defaultEnvironment, findEnvironment, type LokiConfig, type OpsFile } from "../config.ts";
import { UserFacingError } from "../errors.ts";
import { joinText } from "../render/report.ts";
import { parseRange } from "../time.ts";
import { CORRELATION_ID, CORRELATION_ID_RULE, LOG_LEVELS, type LogLevel } from "./logql.ts";
import type { LogCursor, LogResult, LogSearchRequest, LogsService } from "./logs.ts";
import { MetricQueryError } from "./loki.ts";

/** What the Older / Newer / Download buttons of a /logs message refer to, kept server-side. */
export interface LogsQueryState {
	readonly request: LogSearchRequest;
	readonly title: string;
}

/** A search as the user gave it: slash command options or CLI flags, unchecked. */
export interface RawLogSearch {
	readonly env?: string | null;
	readonly service?: string | null;
	readonly level?: string | null;
	readonly contains?: string | null;
	readonly correlation?: string | null;
	readonly since?: string | null;
	readonly limit?: number | null;
	readonly query?: string | null;
}

/**
 * A search from raw options, with the configured defaults and bounds. Whether the asker may run a
 * raw `query` is the caller's to check (the slash command asks the access policy; the CLI is run
 * by an operator on the host).
 */
export function logSearchRequest(ops: OpsFile, raw: RawLogSearch, now = new Date()): LogSearchRequest {
	const settings = ops.logs;
	const environment = raw.env ?? defaultEnvironment(ops);
	if (!raw.service && !raw.query && !raw.correlation)
		throw new UserFacingError([
			"Pick a service, or give a correlation id (which searches every service), or, if your role allows it, a raw ",
			{ code: "query" },
			".",
		]);
	if (raw.level && !LOG_LEVELS.includes(raw.level as LogLevel))
		throw new UserFacingError(`Unknown level; use one of ${LOG_LEVELS.join(", ")}.`);
	if (raw.correlation && !CORRELATION_ID.test(raw.correlation)) throw new UserFacingError(CORRELATION_ID_RULE);
	const limit = raw.limit ?? settings.defaultLimit;
	if (!Number.isInteger(limit) || limit < 1 || limit > settings.maxLimit)
		throw new UserFacingError(`The limit must be between 1 and ${settings.maxLimit}.`);
	const { start, end } = parseRange(raw.since ?? settings.defaultSince, settings.maxRangeHours, now);
	for (const [name, value] of [
		["contains", raw.contains],
		["correlation", raw.correlation],
		["query", raw.query],
	] as const) {
		if (value && value.length > 1_000)
			throw new UserFacingError([{ code: name }, " is too long (at most 1000 characters)."]);
	}
	return {
		environment,
		service: raw.service ?? "",
		start,
		end,
		limit,
		...(raw.level ? { level: raw.level as LogLevel } : {}),
		...(raw.contains ? { contains: raw.contains } : {}),
		...(raw.correlation ? { correlation: raw.correlation } : {}),
		...(raw.query ? { rawQuery: raw.query } : {}),
	};
}

const NS_PER_MS = 1_000_000n;
const NS_PER_HOUR = 3_600_000_000_000n;

/**
 * The cursor of an Older/Newer press, or undefined for "from the edge of the range". The cursor
 * comes from a customId (untrusted) and the search from the state store; both are re-checked on
 * every press so a page never leaves the original search's [start, end) nor opsbot's maximum
 * range, whatever the customId says.
 */
export function pageCursor(
	request: LogSearchRequest,
	rawNs: string | undefined,
	rawId: string | undefined,
	maxRangeHours: number,
): LogCursor | undefined {
	const startNs = BigInt(request.start.getTime()) * NS_PER_MS;
	const endNs = BigInt(request.end.getTime()) * NS_PER_MS;
	if (!(endNs > startNs) || endNs - startNs > BigInt(maxRangeHours) * NS_PER_HOUR)
		throw new UserFacingError("This search's time range is not valid any more; run /logs again.");
	if (rawNs === undefined && rawId === undefined) return undefined;
	if (!rawNs || !/^\d{1,20}$/.test(rawNs) || !rawId || !/^[0-9a-f]{16}$/.test(rawId))
		throw new UserFacingError(
			"That page is not valid; use the buttons on the latest /logs message or run /logs again.",
		);
	const ns = BigInt(rawNs);
	if (ns < startNs || ns >= endNs)
		throw new UserFacingError(
			"That page lies outside this search's time range; use the buttons on the latest /logs message or run /logs again.",
		);
	return { ns, id: rawId };
}

/** Where "Open in Grafana" points: the Grafana URL, its organisation and the Loki data source there. */
export type GrafanaTarget = Pick<LokiConfig, "grafanaUrl" | "grafanaOrgId" | "grafanaDatasource">;

/** A Grafana Explore link for a query and range, when one is configured and it fits in a button (512 characters). */
export function grafanaExploreUrl(
	grafana: GrafanaTarget | undefined,
	query: string,
	startNs: bigint,
	endNs: bigint,
): string | undefined {
	if (!grafana?.grafanaUrl) return undefined;
	const left = JSON.stringify({
		datasource: grafana.grafanaDatasource ?? "loki",
		queries: [{ refId: "A", expr: query }],
		range: { from: String(startNs / NS_PER_MS), to: String(endNs / NS_PER_MS) },
	});
	const url =
		`${grafana.grafanaUrl.replace(/\/$/, "")}/explore?orgId=${grafana.grafanaOrgId ?? 1}&left=` +
		`${encodeURIComponent(left)}`;
	return url.length <= 512 ? url : undefined;
}

/** What a search needs: the logs service and the environments (for their Grafana). */
export interface LogSearchDeps {
	readonly logs: Pick<LogsService, "search">;
	readonly ops: Pick<OpsFile, "environments">;
}

/**
 * Runs a search through the logs service. A metric query gets the Grafana link for it where one
 * is configured, since /logs cannot show a time series.
 */
export async function searchLogs(deps: LogSearchDeps, request: LogSearchRequest): Promise<LogResult> {
	try {
		return await deps.logs.search(request);
	} catch (err) {
		if (!(err instanceof MetricQueryError)) throw err;
		const loki = findEnvironment(deps.ops, request.environment)?.loki;
		const start = BigInt(request.start.getTime()) * NS_PER_MS;
		const end = BigInt(request.end.getTime()) * NS_PER_MS;
		const link = request.rawQuery ? grafanaExploreUrl(loki, request.rawQuery, start, end) : undefined;
		throw new UserFacingError(link ? joinText([err.text, link], "\n") : err.text, { cause: err });
	}
}
