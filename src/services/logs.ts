import { createHash } from "node:crypto";
import { type EnvironmentConfig, knownEnvironment } from "../config.ts";
import { UserFacingError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { buildLogQuery, checkQuerySize, type LogLevel, lineMatches } from "./logql.ts";
import { LOKI_DEFAULT_MAX_ENTRIES, type LogLine, LokiError, type LokiTarget, labelValues, queryRange } from "./loki.ts";
import type { SshService } from "./ssh.ts";

/**
 * A position between log lines. Lines are ordered by time, then by `id` (a hash of stream labels,
 * time and text), so lines sharing a nanosecond still have one fixed order and a page boundary can
 * fall between them: Older shows exactly the lines before the cursor, Newer exactly those after.
 */
export interface LogCursor {
	readonly ns: bigint;
	readonly id: string;
}

/** A /logs search, before it is turned into LogQL or a `docker logs` call. */
export interface LogSearchRequest {
	readonly environment: string;
	readonly service: string;
	readonly level?: LogLevel;
	readonly contains?: string;
	readonly correlation?: string;
	/** Raw LogQL, for roles allowed `logs.raw-query`; Loki only. */
	readonly rawQuery?: string;
	readonly start: Date;
	readonly end: Date;
	/** How many lines to return. */
	readonly limit: number;
	/** backward (default): the newest lines (before `before`, if given); forward: the oldest (after `after`). */
	readonly direction?: "backward" | "forward";
	/** Only lines before this one (Older). From a customId: checked against [start, end). */
	readonly before?: LogCursor;
	/** Only lines after this one (Newer). From a customId: checked against [start, end). */
	readonly after?: LogCursor;
}

/** One log line, with its place in the order pages follow. */
export interface LogEntry extends LogCursor {
	readonly line: string;
	readonly labels: Readonly<Record<string, string>>;
}

/** What a search found, newest first, and how it was asked. */
export interface LogResult {
	readonly source: "loki" | "docker";
	/** The LogQL that ran, or the docker command. */
	readonly query: string;
	/** The Loki tenant asked (X-Scope-OrgID); Loki answers an unknown tenant with no lines, not an error. */
	readonly tenant?: string | undefined;
	/** The search's whole range, [startNs, endNs). */
	readonly startNs: bigint;
	readonly endNs: bigint;
	readonly direction: "backward" | "forward";
	/** The cursor this page was asked from, if any (Older / Newer). */
	readonly before?: LogCursor | undefined;
	readonly after?: LogCursor | undefined;
	/** Newest first. */
	readonly entries: readonly LogEntry[];
	/** True when the range holds more matching lines beyond these, in the direction asked (older for backward). */
	readonly more: boolean;
}

/** Log search over Loki, or over `docker logs` by SSH where an environment has no Loki. */
export interface LogsService {
	search(request: LogSearchRequest): Promise<LogResult>;
	/** Services to offer in autocomplete: Loki label values (cached a minute) or the allow-listed containers. */
	services(environment: string): Promise<string[]>;
}

/** Dependencies of the logs service. */
export interface LogsDeps {
	readonly environments: Readonly<Record<string, EnvironmentConfig>>;
	readonly secret: (name: string) => string | undefined;
	/** Runs `docker logs` where an environment has no Loki. */
	readonly ssh: Pick<SshService, "run">;
	readonly log: Logger;
	/** The longest range one search may cover (config `logs.maxRangeHours`). */
	readonly maxRangeHours: number;
}

const NS_PER_MS = 1_000_000n;
const NS_PER_HOUR = 3_600_000_000_000n;
const CURSOR_ID = /^[0-9a-f]{16}$/;

/** The id that orders lines sharing a timestamp: the same for the same line in every answer. */
export function entryId(labels: Readonly<Record<string, string>>, ns: bigint, line: string): string {
	const sorted = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
	return createHash("sha256")
		.update(JSON.stringify([sorted, ns.toString(), line]))
		.digest("hex")
		.slice(0, 16);
}

/** Orders by time, then by id: the one order all pages follow. */
export function compareEntries(a: LogCursor, b: LogCursor): number {
	if (a.ns !== b.ns) return a.ns < b.ns ? -1 : 1;
	return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function toEntry(line: LogLine): LogEntry {
	return { ns: line.ns, id: entryId(line.labels, line.ns, line.line), line: line.line, labels: line.labels };
}

/**
 * The [startNs, endNs) a search covers. Paging cursors arrive from customIds, so they must lie
 * inside the request's own range: a forged one must not reach Loki or `docker logs`.
 */
export function searchRange(request: LogSearchRequest, maxRangeHours: number): { startNs: bigint; endNs: bigint } {
	const startNs = BigInt(request.start.getTime()) * NS_PER_MS;
	const endNs = BigInt(request.end.getTime()) * NS_PER_MS;
	if (!(endNs > startNs)) throw new UserFacingError("The range is empty: the start must be before the end.");
	if (endNs - startNs > BigInt(maxRangeHours) * NS_PER_HOUR)
		throw new UserFacingError(`That range is longer than the ${maxRangeHours} h opsbot searches at once. Narrow it.`);
	for (const cursor of [request.before, request.after]) {
		if (cursor && (cursor.ns < startNs || cursor.ns >= endNs || !CURSOR_ID.test(cursor.id)))
			throw new UserFacingError("That page lies outside this search's time range; run /logs again.");
	}
	return { startNs, endNs };
}

/**
 * One request for lines in [start, end): what came back and the limit actually applied (Loki may allow fewer than
 * asked).
 */
export type PageFetch = (range: {
	start: bigint;
	end: bigint;
	limit: number;
	direction: "backward" | "forward";
}) => Promise<{ lines: LogEntry[]; limit: number }>;

/**
 * Lines asked of Loki for a page of `count`: headroom for lines at the cursor's timestamp that are filtered out again.
 */
export function fetchLimit(count: number, max = LOKI_DEFAULT_MAX_ENTRIES): number {
	return Math.min(max, count * 2 + 20);
}

// Large results are assembled from pages of this size, so each page's check fits one Loki answer.
const CHUNK = 500;

/**
 * Exactly the first `count` lines after `after` / before `before` within [startNs, endNs), in the
 * direction asked, with none skipped or repeated. Loki's answer to a query with a limit is not
 * always the true first N: across its 30-minute query splits and several streams it can swap a
 * line for an older one. An answer with fewer lines than the limit is complete, though, so when
 * Loki cuts its answer the range that must hold the true page (up to the page's last timestamp)
 * is asked again, and only a complete answer for it is used.
 */
export async function pageExactly(
	fetch: PageFetch,
	p: {
		startNs: bigint;
		endNs: bigint;
		before?: LogCursor | undefined;
		after?: LogCursor | undefined;
		direction: "backward" | "forward";
		count: number;
	},
): Promise<{ entries: LogEntry[]; more: boolean }> {
	// The cursor's own timestamp is inside the range: lines sharing it are kept or dropped by id.
	const lo = p.after && p.after.ns > p.startNs ? p.after.ns : p.startNs;
	const hi = p.before && p.before.ns + 1n < p.endNs ? p.before.ns + 1n : p.endNs;
	if (hi <= lo || p.count <= 0) return { entries: [], more: false };
	const keep = (e: LogEntry) =>
		(!p.before || compareEntries(e, p.before) < 0) && (!p.after || compareEntries(e, p.after) > 0);
	const order = p.direction === "backward" ? (a: LogEntry, b: LogEntry) => compareEntries(b, a) : compareEntries;
	const pick = (lines: LogEntry[]) => lines.filter(keep).sort(order);
	let limit = fetchLimit(p.count);
	for (;;) {
		const first = await fetch({ start: lo, end: hi, limit, direction: p.direction });
		const kept = pick(first.lines);
		if (first.lines.length < first.limit) return { entries: kept.slice(0, p.count), more: kept.length > p.count };
		if (kept.length >= p.count) {
			const edge = kept[p.count - 1]!.ns;
			const check = await fetch(
				p.direction === "backward"
					? { start: edge, end: hi, limit: first.limit, direction: p.direction }
					: { start: lo, end: edge + 1n, limit: first.limit, direction: p.direction },
			);
			if (check.lines.length < check.limit) return { entries: pick(check.lines).slice(0, p.count), more: true };
		}
		if (first.limit < limit || limit >= LOKI_DEFAULT_MAX_ENTRIES) {
			throw new UserFacingError(
				`More lines share one timestamp here than opsbot can page through with Loki's limit of ${first.limit} ` +
					`lines per query. Narrow the time range or add a filter.`,
			);
		}
		limit = Math.min(LOKI_DEFAULT_MAX_ENTRIES, limit * 4);
	}
}

/** "2026-11-24T12:00:00.123456789Z message" (docker --timestamps) -> [ns, message]. */
export function splitDockerTimestamp(line: string): [bigint, string] | undefined {
	const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}) (.*)$/.exec(line);
	if (!m) return undefined;
	const seconds = Date.parse(`${m[1]}${m[3]}`);
	if (Number.isNaN(seconds)) return undefined;
	return [BigInt(seconds) * NS_PER_MS + BigInt((m[2] ?? "").padEnd(9, "0")), m[4] ?? ""];
}

/** Creates the logs service. */
export function createLogsService(deps: LogsDeps): LogsService {
	const serviceCache = new Map<string, { at: number; values: string[] }>();
	// A Loki configured with a lower max_entries_limit_per_query says so once; later searches ask for no more.
	const entryCaps = new Map<string, number>();

	function environment(name: string): EnvironmentConfig {
		const env = knownEnvironment(deps, name);
		if (!env.loki && !env.ssh)
			throw new UserFacingError(`${name} has neither Loki nor an SSH host configured, so there are no logs to search.`);
		return env;
	}

	function lokiTarget(env: EnvironmentConfig): LokiTarget | undefined {
		if (!env.loki) return undefined;
		return {
			url: env.loki.url,
			tenant: env.loki.tenant,
			basicAuth: env.loki.basicAuthEnv ? deps.secret(env.loki.basicAuthEnv) : undefined,
			timeoutMs: env.loki.timeoutMs,
		};
	}

	function lokiFetch(name: string, target: LokiTarget, query: string): PageFetch {
		return async function fetch(range) {
			const cap = entryCaps.get(name) ?? LOKI_DEFAULT_MAX_ENTRIES;
			const limit = Math.min(range.limit, cap);
			try {
				return { lines: (await queryRange(target, query, { ...range, limit })).map(toEntry), limit };
			} catch (err) {
				if (err instanceof LokiError && err.maxEntries !== undefined && err.maxEntries < limit) {
					entryCaps.set(name, err.maxEntries);
					return fetch(range);
				}
				throw err;
			}
		};
	}

	async function searchLoki(
		name: string,
		env: EnvironmentConfig,
		target: LokiTarget,
		request: LogSearchRequest,
		range: { startNs: bigint; endNs: bigint },
	): Promise<LogResult> {
		const query =
			request.rawQuery ??
			buildLogQuery({ serviceLabel: env.loki!.serviceLabel, service: request.service, ...pick(request) });
		checkQuerySize(
			query,
			request.rawQuery ? { query: request.rawQuery } : { service: request.service, contains: request.contains },
		);
		const direction = request.direction ?? "backward";
		const fetch = lokiFetch(name, target, query);
		const entries: LogEntry[] = [];
		let { before, after } = request;
		let more = false;
		while (entries.length < request.limit) {
			const page = await pageExactly(fetch, {
				...range,
				before,
				after,
				direction,
				count: Math.min(CHUNK, request.limit - entries.length),
			});
			entries.push(...page.entries);
			more = page.more;
			const last = page.entries.at(-1);
			if (!page.more || !last) break;
			if (direction === "backward") before = last;
			else after = last;
		}
		return {
			source: "loki",
			query,
			tenant: target.tenant,
			...range,
			direction,
			before: request.before,
			after: request.after,
			entries: newestFirst(entries),
			more,
		};
	}

	return {
		async search(request) {
			const env = environment(request.environment);
			const range = searchRange(request, deps.maxRangeHours);
			const loki = lokiTarget(env);
			if (loki) return searchLoki(request.environment, env, loki, request, range);
			if (request.rawQuery)
				throw new UserFacingError(
					`${request.environment} has no Loki, so a LogQL query cannot run there; use the filters instead.`,
				);
			const containers = env.ssh?.containers ?? [];
			if (!request.service)
				throw new UserFacingError([
					`${request.environment} has no Loki, so opsbot reads one container's `,
					{ code: "docker logs" },
					` there: pick a container (${containers.join(", ") || "none allowed"}).`,
				]);
			if (!containers.includes(request.service)) {
				throw new UserFacingError([
					{ code: request.service.slice(0, 60) },
					` is not an allow-listed container on ${request.environment}. Allowed: ${containers.join(", ") || "none"}.`,
				]);
			}
			const direction = request.direction ?? "backward";
			const lo = request.after && request.after.ns > range.startNs ? request.after.ns : range.startNs;
			const hi = request.before && request.before.ns + 1n < range.endNs ? request.before.ns + 1n : range.endNs;
			// docker filters by time and tail; opsbot applies the text filters, so it reads more than it shows.
			const tail = String(Math.min(50_000, request.limit * 20));
			const seconds = (ns: bigint, round: "down" | "up") =>
				((Number(ns / NS_PER_MS) + (round === "up" && ns % NS_PER_MS !== 0n ? 1 : 0)) / 1000).toFixed(3);
			const argv = [
				"docker",
				"logs",
				"--timestamps",
				"--since",
				seconds(lo, "down"),
				"--until",
				seconds(hi, "up"),
				"--tail",
				tail,
				request.service,
			];
			const result = await deps.ssh.run(request.environment, argv, {
				maxBytes: 16 * 1024 * 1024,
				slowAdvice: "there may be too many lines; narrow the time range",
			});
			if (result.code !== 0) {
				deps.log.warn({ code: result.code, stderr: result.stderr.slice(0, 300) }, "docker logs failed");
				throw new UserFacingError([{ code: "docker logs" }, ` failed on ${env.ssh!.host} (exit ${result.code}).`]);
			}
			const labels = { container: request.service };
			const keep = (e: LogEntry) =>
				(!request.before || compareEntries(e, request.before) < 0) &&
				(!request.after || compareEntries(e, request.after) > 0);
			const all = `${result.stdout}\n${result.stderr}`
				.split("\n")
				.map(splitDockerTimestamp)
				.filter((x): x is [bigint, string] => x !== undefined)
				.filter(([ns, line]) => ns >= lo && ns < hi && lineMatches(pick(request), line))
				.map(([ns, line]) => ({ ns, id: entryId(labels, ns, line), line, labels }))
				.filter(keep)
				.sort(direction === "backward" ? (a, b) => compareEntries(b, a) : compareEntries);
			return {
				source: "docker",
				query: `docker ${argv.slice(1).join(" ")}`,
				...range,
				direction,
				before: request.before,
				after: request.after,
				entries: newestFirst(all.slice(0, request.limit)),
				more: all.length > request.limit,
			};
		},
		async services(name) {
			const env = environment(name);
			const loki = lokiTarget(env);
			if (!loki) return [...(env.ssh?.containers ?? [])];
			const cached = serviceCache.get(name);
			if (cached && Date.now() - cached.at < 60_000) return cached.values;
			const values = await labelValues(loki, env.loki!.serviceLabel);
			serviceCache.set(name, { at: Date.now(), values });
			return values;
		},
	};
}

function newestFirst(entries: LogEntry[]): LogEntry[] {
	return [...entries].sort((a, b) => compareEntries(b, a));
}

function pick(request: LogSearchRequest) {
	return {
		...(request.level ? { level: request.level } : {}),
		...(request.contains ? { contains: request.contains } : {}),
		...(request.correlation ? { correlation: request.correlation } : {}),
	};
}
