import { findEnvironment, type EnvironmentConfig } from "../config.ts";
import { UserFacingError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { labelValues, queryLogs, type LokiTarget } from "./loki.ts";
import { buildLogQuery, LEVEL_WORDS, type LogLevel } from "./logql.ts";
import { HostKeyMismatchError, runSsh, SshTimeoutError, type SshTarget } from "./ssh.ts";

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
	readonly limit: number;
	/** backward (default): the newest lines before `end`; forward: the oldest after `start`. */
	readonly direction?: "backward" | "forward";
	/** Nanosecond cursors that override start/end for paging. */
	readonly startNs?: bigint;
	readonly endNs?: bigint;
}

/** One log line. */
export interface LogEntry {
	readonly ns: bigint;
	readonly line: string;
	readonly labels: Readonly<Record<string, string>>;
}

/** What a search found, newest first, and how it was asked. */
export interface LogResult {
	readonly source: "loki" | "docker";
	/** The LogQL that ran, or the docker command. */
	readonly query: string;
	readonly startNs: bigint;
	readonly endNs: bigint;
	readonly entries: readonly LogEntry[];
	/** True when the limit cut the result (there may be more in the range). */
	readonly full: boolean;
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
	readonly log: Logger;
	/** The longest range one search may cover (config `logs.maxRangeHours`). */
	readonly maxRangeHours: number;
}

const NS_PER_MS = 1_000_000n;
const NS_PER_HOUR = 3_600_000_000_000n;

/**
 * The [startNs, endNs) a search covers. Paging cursors may narrow the request's own range but never
 * widen it: they arrive from customIds, so a forged one must not reach Loki or `docker logs`.
 */
export function searchRange(request: LogSearchRequest, maxRangeHours: number): { startNs: bigint; endNs: bigint } {
	const outerStart = BigInt(request.start.getTime()) * NS_PER_MS;
	const outerEnd = BigInt(request.end.getTime()) * NS_PER_MS;
	if (!(outerEnd > outerStart)) throw new UserFacingError("The range is empty: the start must be before the end.");
	if (outerEnd - outerStart > BigInt(maxRangeHours) * NS_PER_HOUR) throw new UserFacingError(`That range is longer than the ${maxRangeHours} h opsbot searches at once. Narrow it.`);
	const startNs = request.startNs ?? outerStart;
	const endNs = request.endNs ?? outerEnd;
	if (startNs < outerStart || endNs > outerEnd || !(endNs > startNs)) throw new UserFacingError("That page lies outside this search's time range; run /logs again.");
	return { startNs, endNs };
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

	function environment(name: string): EnvironmentConfig {
		const env = findEnvironment(deps, name);
		if (!env) throw new UserFacingError(`Unknown environment \`${name.slice(0, 40)}\`. Known: ${Object.keys(deps.environments).join(", ")}.`);
		if (!env.loki && !env.ssh) throw new UserFacingError(`${name} has neither Loki nor an SSH host configured, so there are no logs to search.`);
		return env;
	}

	function lokiTarget(env: EnvironmentConfig): LokiTarget | undefined {
		if (!env.loki) return undefined;
		return { url: env.loki.url, tenant: env.loki.tenant, basicAuth: env.loki.basicAuthEnv ? deps.secret(env.loki.basicAuthEnv) : undefined, timeoutMs: env.loki.timeoutMs };
	}

	function sshTarget(env: EnvironmentConfig): SshTarget {
		const ssh = env.ssh!;
		const key = deps.secret(ssh.keyFileEnv);
		if (!key) throw new UserFacingError("The SSH key for this environment is not configured.");
		return { host: ssh.host, port: ssh.port, user: ssh.user, privateKeyPath: key, hostKey: ssh.hostKey, timeoutMs: ssh.timeoutMs };
	}

	return {
		async search(request) {
			const env = environment(request.environment);
			const { startNs, endNs } = searchRange(request, deps.maxRangeHours);
			const loki = lokiTarget(env);
			if (loki) {
				const query = request.rawQuery ?? buildLogQuery({ serviceLabel: env.loki!.serviceLabel, service: request.service, ...pick(request) });
				const lines = await queryLogs(loki, query, { start: startNs, end: endNs, limit: request.limit, direction: request.direction ?? "backward" });
				const entries = lines.map((l) => ({ ns: BigInt(l.ns), line: l.line, labels: l.labels }));
				entries.sort((a, b) => (a.ns === b.ns ? 0 : a.ns > b.ns ? -1 : 1));
				return { source: "loki", query, startNs, endNs, entries, full: lines.length >= request.limit };
			}
			if (request.rawQuery) throw new UserFacingError(`${request.environment} has no Loki, so a LogQL query cannot run there; use the filters instead.`);
			const containers = env.ssh?.containers ?? [];
			if (!containers.includes(request.service)) {
				throw new UserFacingError(`\`${request.service.slice(0, 60)}\` is not an allow-listed container on ${request.environment}. Allowed: ${containers.join(", ") || "none"}.`);
			}
			// docker filters by time and tail; opsbot applies the text filters, so it reads more than it shows.
			const tail = String(Math.min(50_000, request.limit * 20));
			const argv = ["docker", "logs", "--timestamps", "--since", (Number(startNs / NS_PER_MS) / 1000).toFixed(3), "--until", (Number(endNs / NS_PER_MS) / 1000).toFixed(3), "--tail", tail, request.service];
			const result = await runSsh(sshTarget(env), argv, { maxBytes: 16 * 1024 * 1024 }).catch((err: unknown) => {
				if (err instanceof HostKeyMismatchError) throw new UserFacingError(`The SSH host key of ${env.ssh!.host} does not match the pinned key in the config; opsbot refused to connect. If the host was rebuilt, update \`ssh.hostKey\`.`, { cause: err });
				if (err instanceof SshTimeoutError) {
					const advice = err.phase === "connect" ? "the host may be down or unreachable over SSH" : "there may be too many lines; narrow the time range";
					throw new UserFacingError(`docker logs on ${env.ssh!.host} did not answer within ${formatSeconds(err.ms)} (${advice}). Try again, or check /health ${request.environment}.`, { cause: err });
				}
				throw err;
			});
			if (result.code !== 0) {
				deps.log.warn({ code: result.code, stderr: result.stderr.slice(0, 300) }, "docker logs failed");
				throw new UserFacingError(`\`docker logs\` failed on ${env.ssh!.host} (exit ${result.code}).`);
			}
			const level = request.level ? new RegExp(LEVEL_WORDS[request.level], "i") : undefined;
			const all = `${result.stdout}\n${result.stderr}`
				.split("\n")
				.map(splitDockerTimestamp)
				.filter((x): x is [bigint, string] => x !== undefined)
				.filter(([ns, line]) => ns >= startNs && ns < endNs && (!request.contains || line.includes(request.contains)) && (!request.correlation || line.includes(request.correlation)) && (!level || level.test(line)))
				.map(([ns, line]) => ({ ns, line, labels: { container: request.service } }));
			all.sort((a, b) => (a.ns === b.ns ? 0 : a.ns > b.ns ? -1 : 1));
			const entries = request.direction === "forward" ? all.slice(-request.limit) : all.slice(0, request.limit);
			return { source: "docker", query: `docker ${argv.slice(1).join(" ")}`, startNs, endNs, entries, full: all.length > request.limit };
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

function formatSeconds(ms: number): string {
	return `${Number((ms / 1000).toFixed(1))} s`;
}

function pick(request: LogSearchRequest) {
	return {
		...(request.level ? { level: request.level } : {}),
		...(request.contains ? { contains: request.contains } : {}),
		...(request.correlation ? { correlation: request.correlation } : {}),
	};
}
