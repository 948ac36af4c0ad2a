import { describe, expect, it } from "vitest";
import { healthReport, healthSummaryReport } from "../../src/commands/health.ts";
import { poolButtons, poolReport, terminationPreview, terminationResultText } from "../../src/commands/pool.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { reportToEmbed, textToMarkdown, textToPlain } from "../../src/render/report.ts";
import type { CheckResult, HealthSnapshot } from "../../src/services/health.ts";
import { type HostFigures, judgeHost, type MountFigures } from "../../src/services/host-resources.ts";
import type { PgBouncerPool } from "../../src/services/pgbouncer.ts";
import type {
	PgBouncerUsage,
	PoolSnapshot,
	PostgresUsage,
	Session,
	TerminationCandidate,
} from "../../src/services/pool.ts";
import type { PoolThresholds } from "../../src/services/pool-diagnosis.ts";
import { expectGoldenFile, expectReportGolden } from "../support/golden.ts";

// Fixed fixtures: documentation address ranges only. Application names, states and errors carry
// markdown on purpose (underscores, asterisks, backticks, parentheses) to show how each view treats them.
const takenAt = new Date("2026-11-20T09:15:30.250Z");
const thresholds: PoolThresholds = {
	warnPercent: 70,
	criticalPercent: 90,
	idleMinutes: 5,
	idleInTransactionMinutes: 1,
};

let nextPid = 4100;
function sessions(count: number, over: Partial<Session>): Session[] {
	return Array.from({ length: count }, () => ({
		pid: nextPid++,
		backendStart: "2026-11-20 08:00:00.000000+00",
		database: "appdb",
		user: "app",
		application: "gunicorn",
		clientAddr: "192.0.2.10",
		state: "active",
		stateSeconds: 0.2,
		blockedBy: [],
		...over,
	}));
}

function postgres(list: readonly Session[], over: Partial<PostgresUsage> = {}): PostgresUsage {
	return {
		database: "appdb",
		maxConnections: 100,
		reserved: 3,
		usable: 97,
		used: list.length,
		sessions: list,
		ownSessions: 0,
		...over,
	};
}

function bouncerPool(over: Partial<PgBouncerPool>): PgBouncerPool {
	return {
		database: "appdb",
		user: "app",
		clientsActive: 4,
		clientsWaiting: 0,
		serversActive: 2,
		serversIdle: 3,
		maxWaitSeconds: 0,
		poolMode: "transaction",
		...over,
	};
}

function bouncer(pools: readonly PgBouncerPool[], over: Partial<PgBouncerUsage> = {}): PgBouncerUsage {
	return {
		pools,
		ownClients: 0,
		stats: [{ database: "appdb", queriesPerSecond: 41.6, avgQueryMs: 3.25, avgWaitMs: 0.04 }],
		...over,
	};
}

function snapshot(pg: PoolSnapshot["postgres"], pgbouncer?: PoolSnapshot["pgbouncer"]): PoolSnapshot {
	return { environment: "production", takenAt, postgres: pg, ...(pgbouncer ? { pgbouncer } : {}) };
}

const quiet = [
	...sessions(3, { application: "gunicorn", clientAddr: "192.0.2.10" }),
	...sessions(2, { application: "gunicorn", clientAddr: "192.0.2.10", state: "idle", stateSeconds: 42 }),
	...sessions(1, { application: "celery_worker", clientAddr: "198.51.100.7", state: "idle", stateSeconds: 12 * 60 }),
	...sessions(1, { application: "", clientAddr: "198.51.100.8", state: "idle", stateSeconds: 75 * 60 }),
];

const crowded = [
	...sessions(52, {
		application: "gunicorn",
		clientAddr: "192.0.2.10",
		state: "idle",
		stateSeconds: 3 * 3_600 + 5 * 60,
	}),
	...sessions(6, { application: "gunicorn", clientAddr: "192.0.2.11", state: "idle", stateSeconds: 2 * 3_600 }),
	...sessions(4, { application: "celery_worker", clientAddr: "198.51.100.7" }),
	...sessions(3, { application: "*cron*", clientAddr: "198.51.100.9", state: "idle", stateSeconds: 30 }),
	...sessions(2, { application: "psql", clientAddr: "192.0.2.44" }),
	...sessions(1, { application: "`report`", clientAddr: "192.0.2.45" }),
	...sessions(1, { application: "metabase", clientAddr: "198.51.100.20", state: "idle", stateSeconds: 90 }),
	...sessions(1, { application: "pgadmin", clientAddr: "198.51.100.21", state: "idle", stateSeconds: 89 }),
];

const stuckPids = sessions(2, {
	application: "celery_worker",
	clientAddr: "198.51.100.7",
	state: "idle in transaction",
	stateSeconds: 14 * 60,
});
const stuck = [
	...sessions(80, { application: "gunicorn", clientAddr: "192.0.2.10", state: "idle", stateSeconds: 20 }),
	...stuckPids,
	...sessions(1, {
		application: "",
		clientAddr: "192.0.2.12",
		state: "idle in transaction (aborted)",
		stateSeconds: 61,
	}),
	...sessions(6, { application: "gunicorn", clientAddr: "192.0.2.11", blockedBy: [stuckPids[0]!.pid] }),
	...sessions(1, {
		application: "migrate_db",
		clientAddr: "192.0.2.13",
		blockedBy: [stuckPids[0]!.pid, stuckPids[1]!.pid],
	}),
];

const blockedOnly = [
	...sessions(10, { application: "gunicorn", clientAddr: "192.0.2.10" }),
	...sessions(1, { application: "gunicorn", clientAddr: "192.0.2.10", state: "idle in transaction", stateSeconds: 20 }),
	...sessions(1, { application: "migrate_db", clientAddr: "192.0.2.13", blockedBy: [4242] }),
];

// When a confirmation lapses: Discord counts down to it (<t:…:R>).
const expiresAt = new Date("2026-11-20T09:16:30.000Z");

const candidate = (
	pid: number,
	application: string,
	clientAddr: string,
	idleSeconds: number,
): TerminationCandidate => ({
	pid,
	backendStart: "2026-11-20 08:00:00.000000+00",
	application,
	clientAddr,
	idleSeconds,
});

const check = (over: Partial<CheckResult> & Pick<CheckResult, "name" | "kind">): CheckResult => ({
	state: "ok",
	latencyMs: 12,
	detail: "HTTP 200",
	...over,
});

const healthy: HealthSnapshot = {
	environment: "production",
	startedAt: new Date("2026-11-20T09:15:30.000Z"),
	durationMs: 184,
	checks: [
		check({ name: "backend", kind: "http", detail: "HTTP 200, certificate valid 81 days" }),
		check({ name: "postgresql", kind: "postgres", latencyMs: 9, detail: "PostgreSQL 17.2, 12 / 97 connections used" }),
		check({ name: "pgbouncer", kind: "pgbouncer", latencyMs: 4, detail: "1 pool, 0 clients waiting" }),
	],
};

const troubled: HealthSnapshot = {
	environment: "staging-eu",
	startedAt: new Date("2026-11-20T09:16:00.000Z"),
	durationMs: 2_013,
	checks: [
		check({ name: "containers", kind: "containers", detail: "api up 3 days, worker_1 up 3 days (healthy)" }),
		check({ name: "backend", kind: "http", state: "down", latencyMs: 2_001, detail: "no answer within 2 s" }),
		check({
			name: "prod_db",
			kind: "host",
			state: "degraded",
			latencyMs: 88,
			detail: "disk at 90 % (≥ 85 %) — disk 90/100 GB (90 %) · ram 3.0/5.3 GB (56 %) · load 0.4/core · up 12 d",
		}),
		check({ name: "*scrape* targets", kind: "promql", latencyMs: 15, detail: "`2`" }),
		check({
			name: "loki",
			kind: "loki",
			state: "down",
			latencyMs: 31,
			detail: "not ready (HTTP 503: Ingester not ready: waiting for 15s after being ready)",
		}),
		check({ name: "backup age", kind: "sql", state: "degraded", latencyMs: 7, detail: "30 h (≥ 26 h)" }),
	],
};

const unconfigured: HealthSnapshot = {
	environment: "dev",
	startedAt: new Date("2026-11-20T09:16:05.000Z"),
	durationMs: 0,
	checks: [],
};

describe("pool and health reports in both views", () => {
	it("shows a quiet pool as ok, without PgBouncer", () => {
		expectReportGolden("pool-ok", poolReport(snapshot(postgres(quiet)), thresholds));
	});

	it("shows a pool past the warning threshold, with idle connections from one app as the likely cause", () => {
		expectReportGolden("pool-warn", poolReport(snapshot(postgres(crowded)), thresholds));
	});

	it("shows a nearly exhausted pool as critical, with sessions idle in transaction and blocked ones", () => {
		expectReportGolden("pool-critical", poolReport(snapshot(postgres(stuck)), thresholds));
	});

	it("offers to end the sessions idle in transaction when they are the cause, not idle connections", () => {
		expectGoldenFile(
			"pool-critical.buttons.json",
			`${JSON.stringify(poolButtons(snapshot(postgres(stuck)), thresholds).toJSON(), null, 2)}\n`,
		);
	});

	it("offers idle connections older than idleMinutes when they are the cause; no End button when none qualify", () => {
		expectGoldenFile(
			"pool-warn.buttons.json",
			`${JSON.stringify(poolButtons(snapshot(postgres(crowded)), thresholds).toJSON(), null, 2)}\n`,
		);
		expectGoldenFile(
			"pool-blocked.buttons.json",
			`${JSON.stringify(poolButtons(snapshot(postgres(blockedOnly)), thresholds).toJSON(), null, 2)}\n`,
		);
	});

	it("names blocked sessions as the cause when nothing else explains the trouble, in warn colour", () => {
		expectReportGolden("pool-blocked", poolReport(snapshot(postgres(blockedOnly)), thresholds));
	});

	it("calls a cause under a fine level a note", () => {
		const fewStale = [
			...sessions(5, { application: "cron", state: "idle", stateSeconds: 10 * 60 }),
			...sessions(5, {}),
		];

		expectReportGolden("pool-note", poolReport(snapshot(postgres(fewStale)), thresholds));
	});

	it("shows PostgreSQL unreachable, with PgBouncer's pools still shown", () => {
		const report = poolReport(
			snapshot(
				{ error: 'password authentication failed for user "app_ro"' },
				bouncer([bouncerPool({ clientsWaiting: 3, maxWaitSeconds: 4.25 })]),
			),
			thresholds,
		);

		expectReportGolden("pool-unreachable", report);
	});

	it("shows PgBouncer's pools and traffic, and clients waiting in it as the likely cause", () => {
		const pools = [
			bouncerPool({ clientsWaiting: 5, maxWaitSeconds: 2.5 }),
			bouncerPool({
				database: "app_db2",
				user: "report_ro",
				poolMode: "session",
				clientsWaiting: 1,
				maxWaitSeconds: 0.4,
			}),
		];

		expectReportGolden(
			"pool-pgbouncer",
			poolReport(
				snapshot(
					postgres(quiet.slice(0, 5)),
					bouncer(pools, {
						stats: [
							{ database: "appdb", queriesPerSecond: 41.6, avgQueryMs: 3.25, avgWaitMs: 812.5 },
							{ database: "app_db2", queriesPerSecond: 0.4, avgQueryMs: 120, avgWaitMs: 0 },
						],
					}),
				),
				thresholds,
			),
		);
	});

	it("shows PgBouncer with no pools and no traffic yet", () => {
		expectReportGolden(
			"pool-pgbouncer-empty",
			poolReport(snapshot(postgres([]), bouncer([], { stats: [] })), thresholds),
		);
	});

	it("keeps the PostgreSQL figures and warns when PgBouncer is down", () => {
		expectReportGolden(
			"pool-pgbouncer-down",
			poolReport(snapshot(postgres(quiet), { error: "connection refused" }), thresholds),
		);
	});

	it("claims no current PostgreSQL figures when PostgreSQL and PgBouncer are both down", () => {
		const report = poolReport(snapshot({ error: "connection refused" }, { error: "connection refused" }), thresholds);

		expectReportGolden("pool-both-down", report);
		expect(JSON.stringify(report)).not.toContain("current");
	});

	it("says how many of opsbot's own connections are left out", () => {
		expectReportGolden(
			"pool-own",
			poolReport(
				snapshot(postgres(quiet, { ownSessions: 2 }), bouncer([bouncerPool({})], { ownClients: 1 })),
				thresholds,
			),
		);
	});

	it("previews one session to end", () => {
		expectReportGolden(
			"pool-terminate-one",
			terminationPreview("production", [candidate(4100, "gunicorn", "192.0.2.10", 6 * 60)], 5, { expiresAt }),
		);
	});

	it("previews several sessions to end, unnamed and oddly named ones included", () => {
		const candidates = [
			candidate(4101, "celery_worker", "198.51.100.7", 3 * 3_600 + 5 * 60),
			candidate(4102, "", "192.0.2.12", 89),
			candidate(4103, "`x`*y*", "2001:db8::5", 2 * 3_600),
		];

		expectReportGolden("pool-terminate-many", terminationPreview("staging-eu", candidates, 0.05, { expiresAt }));
	});

	it("previews sessions idle in transaction to end, saying their transactions roll back", () => {
		const candidates = [
			candidate(4180, "celery_worker", "198.51.100.7", 14 * 60),
			candidate(4181, "celery_worker", "198.51.100.7", 14 * 60),
			candidate(4182, "", "192.0.2.12", 61),
		];

		expectReportGolden(
			"pool-terminate-idle-in-transaction",
			terminationPreview("production", candidates, 1, { sessions: "idle-in-transaction", expiresAt }),
		);
	});

	it("shows a healthy environment", () => {
		expectReportGolden("health-ok", healthReport(healthy));
	});

	it("shows an environment with checks down and degraded, details carrying markdown", () => {
		expectReportGolden("health-down", healthReport(troubled));
	});

	it("says when an environment has no checks", () => {
		expectReportGolden("health-none", healthReport(unconfigured));
	});

	it("summarises every environment, naming what is not ok", () => {
		expectReportGolden("health-summary", healthSummaryReport([healthy, troubled, unconfigured]));
	});

	it("summarises one environment with only degraded checks", () => {
		expectReportGolden(
			"health-summary-one",
			healthSummaryReport([{ ...troubled, checks: troubled.checks.filter((c) => c.state !== "down") }]),
		);
	});

	it("keeps a host with 120 mounts on /health as one line naming the full ones (D13)", () => {
		const GiB = 1024 ** 3;
		const mount = (i: number, percent: number): MountFigures => ({
			mountpoint: `/data/vol${i}`,
			device: `/dev/vd${i}`,
			fstype: "ext4",
			sizeBytes: 100 * GiB,
			usedBytes: percent * GiB,
			availBytes: (100 - percent) * GiB,
			percent,
		});
		const mounts = Array.from({ length: 120 }, (_, i) => mount(i, i === 7 ? 90.4 : i === 93 ? 86 : 40 + (i % 30)));
		const figures: HostFigures = {
			instance: "storage-1:9100",
			up: true,
			hasNodeMetrics: true,
			mounts,
			missingMounts: [],
			memory: { totalBytes: 64 * GiB, usedBytes: 20 * GiB, percent: 31 },
			load1: 1.2,
			cores: 8,
			uptimeSeconds: 40 * 86_400,
		};
		const hostConfig = OpsFileSchema.parse({
			discord: { guildId: "100000000000000001" },
			environments: {
				e: { prometheus: { url: "http://p:9090" }, hosts: [{ name: "storage", instance: "storage-1:9100" }] },
			},
		}).environments.e!.hosts![0]!;
		const judged = judgeHost(hostConfig, [figures]);
		const report = healthReport({
			...healthy,
			checks: [...healthy.checks, check({ name: "storage", kind: "host", latencyMs: 41, ...judged })],
		});

		// Without Discord's escapes, to compare the words.
		const description = (reportToEmbed(report).toJSON().description ?? "").replace(/\\/g, "");

		expect(description).toContain(
			"🟠 **storage** host · 41 ms — disk /data/vol7 at 90 % (≥ 85 %), disk /data/vol93 at 86 % (≥ 85 %) " +
				"— disk: 118 ok, 2 ≥ 85 % · ram",
		);
		expectReportGolden("health-many-mounts", report);
	});

	it("summarises no environment at all", () => {
		expectReportGolden("health-summary-empty", healthSummaryReport([]));
	});
});

describe("the message after a confirmed termination", () => {
	it("names the sessions ended and how many were left alone, marked up for Discord and exact in plain text", () => {
		const result = {
			ended: [candidate(4101, "celery_worker", "198.51.100.7", 400), candidate(4102, "", "192.0.2.12", 400)],
			skipped: 1,
		};

		const text = terminationResultText("staging-eu", result);

		expect(textToMarkdown(text)).toBe(
			"Ended 2 idle connections on staging\\-eu \\(1 left alone: busy again or gone\\).\n" +
				"pid 4101 · `celery_worker` 198.51.100.7\npid 4102 · `?` 192.0.2.12",
		);
		expect(textToPlain(text)).toBe(
			"Ended 2 idle connections on staging-eu (1 left alone: busy again or gone).\n" +
				"pid 4101 · celery_worker 198.51.100.7\npid 4102 · ? 192.0.2.12",
		);
	});

	it("names sessions idle in transaction as such", () => {
		const text = terminationResultText(
			"production",
			{ ended: [candidate(4180, "celery_worker", "198.51.100.7", 900)], skipped: 0 },
			"idle-in-transaction",
		);

		expect(textToPlain(text)).toBe(
			"Ended 1 session idle in transaction on production.\npid 4180 · celery_worker 198.51.100.7",
		);
	});

	it("lists the first 30 sessions and counts the rest", () => {
		const ended = Array.from({ length: 32 }, (_, i) => candidate(5000 + i, "gunicorn", "192.0.2.10", 400));

		const lines = textToPlain(terminationResultText("production", { ended, skipped: 0 })).split("\n");

		expect(lines[0]).toBe("Ended 32 idle connections on production.");
		expect(lines).toHaveLength(32);
		expect(lines.at(-2)).toBe("pid 5029 · gunicorn 192.0.2.10");
		expect(lines.at(-1)).toBe("… and 2 more");
	});
});
