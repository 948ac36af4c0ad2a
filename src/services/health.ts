import { type EnvironmentConfig, knownEnvironment } from "../config.ts";
import { TimeoutError, withTimeout } from "../errors.ts";
import type { Logger } from "../log.ts";
import { formatDuration } from "../time.ts";
import { type AlertManagerContact, displayUrl } from "./alertmanager.ts";
import {
	describePrometheusFailure,
	describeSqlFailure,
	judgeNumber,
	type NumberOutcome,
	promqlNumber,
	sqlNumber,
} from "./custom-checks.ts";
import { type HostFigures, judgeHost, readHostFigures } from "./host-resources.ts";
import { describeHttpFailure, probeHttp } from "./http.ts";
import { createPgBouncerAdmin } from "./pgbouncer.ts";
import { type DatabaseRegistry, describePgFailure } from "./postgres.ts";
import { type PrometheusService, withSlash } from "./prometheus.ts";
import { describeSshFailure, type SshService } from "./ssh.ts";

/** ok: working; degraded: working with a problem worth a look; down: not working. */
export type CheckState = "ok" | "degraded" | "down";

export type CheckKind =
	| "http"
	| "postgres"
	| "pgbouncer"
	| "prometheus"
	| "loki"
	| "alertmanager"
	| "containers"
	| "host"
	| "promql"
	| "sql";

/** The outcome of one check, in plain words. */
export interface CheckResult {
	readonly name: string;
	readonly kind: CheckKind;
	readonly state: CheckState;
	readonly latencyMs: number;
	/** What was found, e.g. "200 OK, certificate valid 81 days" or "connection refused". */
	readonly detail: string;
	/** A host check's figures per node-exporter instance (for --json). */
	readonly hosts?: readonly HostFigures[];
	/** A custom check's number and unit, when it produced one (for --json). */
	readonly value?: number;
	readonly unit?: string;
}

/** What a check's run found: its state and line, plus the figures behind them. */
type CheckOutcome = Pick<CheckResult, "state" | "detail" | "hosts" | "value" | "unit">;

/** All checks of one environment, from one run. */
export interface HealthSnapshot {
	readonly environment: string;
	readonly startedAt: Date;
	readonly durationMs: number;
	readonly checks: readonly CheckResult[];
}

/** Runs an environment's checks. */
export interface HealthService {
	check(environment: string): Promise<HealthSnapshot>;
	/** Every configured environment's checks, in parallel, in config order. */
	checkAll(): Promise<HealthSnapshot[]>;
}

interface PlannedCheck {
	readonly name: string;
	readonly kind: CheckKind;
	readonly timeoutMs: number;
	readonly run: (signal: AbortSignal) => Promise<CheckOutcome>;
	/** Plain words for a failure of this check; by default the failure of its kind's client (pg or HTTP). */
	readonly describe?: (err: unknown) => string;
}

/** Dependencies of the health service; typed by the part used so tests can pass their own. */
export interface HealthDeps {
	readonly environments: Readonly<Record<string, EnvironmentConfig>>;
	/** forChecks: where SQL checks run (their own role); without it (tests), get()'s database. */
	readonly databases: Pick<DatabaseRegistry, "get"> & Partial<Pick<DatabaseRegistry, "forChecks">>;
	readonly secret: (name: string) => string | undefined;
	readonly ssh: Pick<SshService, "run">;
	readonly prometheus: Pick<PrometheusService, "forEnvironment">;
	readonly log: Logger;
	readonly now?: () => Date;
	/** When the running bot last heard from each AlertManager (reconciliation asks them all the time). */
	readonly alertmanagerContacts?: () => readonly AlertManagerContact[];
}

/**
 * An environment's AlertManager: each member of its HA cluster probed (`/-/ready`) at once; ok when all
 * are ready, degraded when some are, down when none. The running bot adds when reconciliation last
 * heard from them.
 */
function alertManagerCheck(
	environment: string,
	service: NonNullable<EnvironmentConfig["alertmanager"]>,
	deps: Pick<HealthDeps, "alertmanagerContacts" | "now">,
): PlannedCheck {
	const urls = [service.url, ...(service.peers ?? [])];
	return {
		name: "alertmanager",
		kind: "alertmanager",
		timeoutMs: service.timeoutMs,
		run: async (signal) => {
			const probes = await Promise.all(
				urls.map((url) =>
					probeHttp(new URL("-/ready", withSlash(url)).href, {
						service: "AlertManager",
						timeoutMs: service.timeoutMs,
						signal,
					}).then(
						(probe) => {
							if (probe.status === 200) return undefined;
							const reason = probe.bodySnippet.split("\n")[0]?.trim().slice(0, 120);
							return `not ready (HTTP ${probe.status}${reason ? `: ${reason}` : ""})`;
						},
						(err: unknown) => {
							// One AlertManager: the failure is the check's, described as every check's is.
							if (urls.length === 1) throw err;
							const described = describeHttpFailure(err);
							return /timed out$/.test(described) ? `no answer within ${formatMs(service.timeoutMs)}` : described;
						},
					),
				),
			);
			const ready = probes.filter((problem) => problem === undefined).length;
			const problems = probes.flatMap((problem, i) =>
				problem === undefined ? [] : [urls.length > 1 ? `${displayUrl(urls[i]!)} ${problem}` : problem],
			);
			const heard = lastHeard(environment, deps);
			const state = ready === urls.length ? "ok" : ready > 0 ? "degraded" : "down";
			const counted = urls.length > 1 ? `${ready} of ${urls.length} ready` : ready ? "ready" : "";
			return { state, detail: [counted, ...problems, ...(heard ? [heard] : [])].filter(Boolean).join("; ") };
		},
	};
}

function lastHeard(environment: string, deps: Pick<HealthDeps, "alertmanagerContacts" | "now">): string | undefined {
	const contacts = deps.alertmanagerContacts?.().filter((c) => c.environments.includes(environment)) ?? [];
	const last = Math.max(...contacts.map((c) => c.lastAnswerAt ?? Number.NEGATIVE_INFINITY));
	if (contacts.length === 0) return undefined;
	if (!Number.isFinite(last)) return "opsbot has not heard from it since it started";
	const now = (deps.now?.() ?? new Date()).getTime();
	return `opsbot last heard from it ${formatDuration(Math.max(0, now - last), { seconds: true })} ago`;
}

/** Creates the health service: every configured check runs in parallel under its own timeout. */
export function createHealthService(deps: HealthDeps): HealthService {
	const now = deps.now ?? (() => new Date());
	const service: HealthService = {
		checkAll: () => Promise.all(Object.keys(deps.environments).map((environment) => service.check(environment))),
		async check(environment) {
			const config = knownEnvironment(deps, environment);
			const startedAt = now();
			const began = performance.now();
			const checks = await Promise.all(
				planChecks(environment, config, deps).map((planned) => runCheck(planned, deps.log)),
			);
			return { environment, startedAt, durationMs: Math.round(performance.now() - began), checks };
		},
	};
	return service;
}

async function runCheck(planned: PlannedCheck, log: Logger): Promise<CheckResult> {
	const controller = new AbortController();
	const began = performance.now();
	const elapsed = () => Math.round(performance.now() - began);
	try {
		const outcome = await withTimeout(planned.run(controller.signal), planned.timeoutMs, () => controller.abort());
		return { name: planned.name, kind: planned.kind, latencyMs: elapsed(), ...outcome };
	} catch (err) {
		const described = planned.describe
			? planned.describe(err)
			: planned.kind === "postgres" || planned.kind === "pgbouncer"
				? describePgFailure(err)
				: describeHttpFailure(err);
		// The client's own timeout and ours fire together; say it the same way either way.
		const detail =
			err instanceof TimeoutError || /(^|: )timed out$/.test(described)
				? `no answer within ${formatMs(planned.timeoutMs)}`
				: described;
		if (!(err instanceof TimeoutError))
			log.info({ err, check: planned.name, kind: planned.kind }, "health check failed");
		return { name: planned.name, kind: planned.kind, state: "down", latencyMs: elapsed(), detail };
	} finally {
		controller.abort();
	}
}

function planChecks(environment: string, config: EnvironmentConfig, deps: HealthDeps): PlannedCheck[] {
	const checks: PlannedCheck[] = config.http.map((http) => ({
		name: http.name,
		kind: "http" as const,
		timeoutMs: http.timeoutMs,
		run: async (signal) => {
			const probe = await probeHttp(http.url, { service: http.name, timeoutMs: http.timeoutMs, signal });
			const parts = [`HTTP ${probe.status}`];
			let state: CheckState = probe.status === http.expectStatus ? "ok" : "down";
			if (state === "down") parts.push(`expected ${http.expectStatus}`);
			if (probe.tlsExpiresAt) {
				const days = Math.floor((probe.tlsExpiresAt.getTime() - Date.now()) / 86_400_000);
				parts.push(days < 0 ? "certificate expired" : `certificate valid ${days} more days`);
				if (state === "ok" && days < http.tlsWarnDays) state = "degraded";
			}
			return { state, detail: parts.join(", ") };
		},
	}));

	if (config.postgres) {
		const timeoutMs = config.postgres.timeoutMs;
		checks.push({
			name: "postgresql",
			kind: "postgres",
			timeoutMs,
			run: async () => {
				const db = deps.databases.get(environment);
				if (!db) throw new Error("postgres not configured");
				// opsbot's own sessions (this query's backend, its pooled ones by application_name) are not load.
				const [row] = await db.read<{ version: string; used: string; max: number; reserved: number }>(
					`SELECT current_setting('server_version') AS version,
					        (SELECT count(*) FROM pg_stat_activity
					          WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name IS ` +
						`DISTINCT FROM $1) AS used,
					        current_setting('max_connections')::int AS max,
					        current_setting('superuser_reserved_connections')::int AS reserved`,
					[db.applicationName],
					{ timeoutMs },
				);
				if (!row) throw new Error("no row");
				const used = Number(row.used);
				const usable = Math.max(1, row.max - row.reserved);
				const ratio = used / usable;
				return {
					state: ratio >= 0.9 ? "degraded" : "ok",
					detail:
						`PostgreSQL ${row.version.split(" ")[0]}, ${used} / ${usable} connections used ` +
						`(${Math.round(ratio * 100)} %)`,
				};
			},
		});
	}

	if (config.pgbouncer) {
		const { adminUrlEnv, timeoutMs } = config.pgbouncer;
		checks.push({
			name: "pgbouncer",
			kind: "pgbouncer",
			timeoutMs,
			run: async () => {
				const url = deps.secret(adminUrlEnv);
				if (!url) throw new Error("pgbouncer admin url not set");
				const own = deps.databases.get(environment)?.applicationName ?? "opsbot";
				// opsbot's own clients (the postgres check runs through PgBouncer at the same moment) are not counted.
				const { pools } = await createPgBouncerAdmin({ url, timeoutMs, applicationName: own }).usage(own);
				const waiting = pools.reduce((sum, p) => sum + p.clientsWaiting, 0);
				const maxWait = Math.max(0, ...pools.map((p) => p.maxWaitSeconds));
				// A client waits for a moment whenever PgBouncer opens a server connection; only a real wait is a problem.
				return {
					state: waiting > 0 && maxWait >= 1 ? "degraded" : "ok",
					detail:
						`${pools.length} pool${pools.length === 1 ? "" : "s"}, ${waiting} ` +
						`client${waiting === 1 ? "" : "s"} waiting${waiting > 0 ? ` (longest ${maxWait.toFixed(1)} s)` : ""}`,
				};
			},
		});
	}

	const prometheus = deps.prometheus.forEnvironment(environment);
	if (config.prometheus && prometheus) {
		const { timeoutMs } = config.prometheus;
		checks.push({
			name: "prometheus",
			kind: "prometheus",
			timeoutMs,
			run: async (signal) => {
				const health = await prometheus.targetHealth({ timeoutMs, signal });
				if (health.down.length === 0) return { state: "ok", detail: `${health.up} / ${health.total} targets up` };
				const shown = health.down.slice(0, 10).map((t) => `${t.job} ${t.instance}`);
				const more = health.down.length > shown.length ? ` and ${health.down.length - shown.length} more` : "";
				return {
					state: "degraded",
					detail: `${health.down.length} target${health.down.length === 1 ? "" : "s"} down: ${shown.join(", ")}${more}`,
				};
			},
		});
	}

	if (prometheus) {
		for (const host of config.hosts ?? []) {
			checks.push({
				name: host.name,
				kind: "host",
				timeoutMs: host.timeoutMs,
				describe: describePrometheusFailure,
				run: async (signal) => {
					const hosts = await readHostFigures(prometheus, host, { timeoutMs: host.timeoutMs, signal });
					return { ...judgeHost(host, hosts), hosts };
				},
			});
		}
	}

	for (const [kind, service, path] of [["loki", config.loki, "ready"]] as const) {
		if (!service) continue;
		checks.push({
			name: kind,
			kind,
			timeoutMs: service.timeoutMs,
			run: async (signal) => {
				const probe = await probeHttp(new URL(path, withSlash(service.url)).href, {
					service: kind === "loki" ? "Loki" : "AlertManager",
					timeoutMs: service.timeoutMs,
					signal,
				});
				if (probe.status === 200) return { state: "ok", detail: "ready" };
				// Loki explains itself in a plain-text body ("Ingester not ready: ..."); show the first line.
				const reason = probe.bodySnippet.split("\n")[0]?.trim().slice(0, 120);
				return { state: "down", detail: `not ready (HTTP ${probe.status}${reason ? `: ${reason}` : ""})` };
			},
		});
	}
	if (config.alertmanager) checks.push(alertManagerCheck(environment, config.alertmanager, deps));
	if (config.ssh && config.ssh.containers.length > 0) {
		const ssh = config.ssh;
		checks.push({
			name: `containers on ${ssh.host}`,
			kind: "containers",
			timeoutMs: ssh.timeoutMs,
			describe: describeSshFailure,
			run: async () => {
				const result = await deps.ssh.run(
					environment,
					["docker", "ps", "--all", "--format", "{{.Names}}|{{.Status}}"],
					{ maxBytes: 256 * 1024 },
				);
				if (result.code !== 0) return { state: "down", detail: `docker ps failed (exit ${result.code})` };
				return containerStates(result.stdout, ssh.containers);
			},
		});
	}
	for (const check of config.checks ?? []) {
		const judged = (outcome: NumberOutcome): CheckOutcome =>
			"value" in outcome
				? { ...judgeNumber(check, outcome.value), value: outcome.value, unit: check.unit }
				: { state: "down", detail: outcome.problem };
		if (check.promql !== undefined && prometheus) {
			const { promql } = check;
			checks.push({
				name: check.name,
				kind: "promql",
				timeoutMs: check.timeoutMs,
				describe: describePrometheusFailure,
				run: async (signal) => judged(await promqlNumber(prometheus, promql, { timeoutMs: check.timeoutMs, signal })),
			});
		} else if (check.sql !== undefined) {
			const { sql } = check;
			checks.push({
				name: check.name,
				kind: "sql",
				// statement_timeout is the query's budget; the margin lets PostgreSQL cancel it (and say so) before we stop
				// waiting.
				timeoutMs: check.timeoutMs + 1_000,
				describe: (err) => describeSqlFailure(err, check.timeoutMs),
				run: async () => {
					const db = deps.databases.forChecks ? deps.databases.forChecks(environment) : deps.databases.get(environment);
					if (!db) throw new Error("postgres not configured");
					return judged(await sqlNumber(db, sql, check.timeoutMs));
				},
			});
		}
	}
	return checks;
}

/** Reads `docker ps --format '{{.Names}}|{{.Status}}'` for the allow-listed containers only. */
export function containerStates(output: string, allowed: readonly string[]): { state: CheckState; detail: string } {
	const status = new Map(
		output
			.split("\n")
			.map((line) => line.split("|", 2) as [string, string | undefined])
			.filter(([name]) => name)
			.map(([name, s]) => [name.trim(), (s ?? "").trim()]),
	);
	const parts = allowed.map((name) => {
		const s = status.get(name);
		if (!s) return { name, state: "down" as const, text: `${name} not found` };
		const up = /^Up\b/.test(s);
		const unhealthy = /unhealthy|Restarting/i.test(s);
		return {
			name,
			state: up && !unhealthy ? ("ok" as const) : up ? ("degraded" as const) : ("down" as const),
			text: `${name} ${s.toLowerCase()}`,
		};
	});
	const state: CheckState = parts.some((p) => p.state === "down")
		? "down"
		: parts.some((p) => p.state === "degraded")
			? "degraded"
			: "ok";
	return { state, detail: parts.map((p) => p.text).join(", ") };
}

/** "2 s", "250 ms". */
export function formatMs(ms: number): string {
	return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
