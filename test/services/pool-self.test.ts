import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { poolReport } from "../../src/commands/pool.ts";
import { reportToText } from "../../src/render/report.ts";
import { createPoolService, type PoolSnapshot } from "../../src/services/pool.ts";
import { createDatabase } from "../../src/services/postgres.ts";
import { openConnections } from "../support/db.ts";
import { startPgBouncer, type TestPgBouncer } from "../support/pgbouncer.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";
import { healthService } from "../support/services.ts";

const silent = pino({ level: "silent" });
const thresholds = { warnPercent: 70, criticalPercent: 90, idleMinutes: 60, idleInTransactionMinutes: 1 };

function figures(snapshot: PoolSnapshot) {
	if ("error" in snapshot.postgres) throw new Error(`postgres: ${snapshot.postgres.error}`);
	if (!snapshot.pgbouncer || "error" in snapshot.pgbouncer) throw new Error("pgbouncer half missing");
	return { postgres: snapshot.postgres, pools: snapshot.pgbouncer.pools };
}

// A PostgreSQL and PgBouncer of this file's own: "no other client" must really mean none.
describe("/pool and /health leave opsbot's own connections out of the figures (real PostgreSQL and PgBouncer)", () => {
	let postgres: TestPostgres;
	let bouncer: TestPgBouncer;
	beforeAll(async () => {
		postgres = await startPostgres();
		bouncer = await startPgBouncer(postgres);
	});
	afterAll(async () => {
		await bouncer?.stop();
		await postgres?.stop();
	});

	it("with no other client, /pool shows no active or waiting PgBouncer client, no PostgreSQL session used", async () => {
		const db = createDatabase({ url: bouncer.opsbotUrl, maxConnections: 2, statementTimeoutMs: 3_000, log: silent });
		const pool = createPoolService({
			database: () => db,
			pgbouncerAdminUrl: () => ({ url: bouncer.statsUrl, timeoutMs: 3_000 }),
			log: silent,
		});

		// The first snapshot opens opsbot's pooled connection while SHOW runs; in the second it sits idle in PgBouncer.
		const snapshots = [await pool.snapshot("local"), await pool.snapshot("local"), await pool.snapshot("local")];
		await db.close();

		for (const snapshot of snapshots) {
			const { postgres: pg, pools } = figures(snapshot);
			expect(pg.used).toBe(0);
			expect(pg.sessions).toEqual([]);
			for (const p of pools)
				expect({
					pool: `${p.database}/${p.user}`,
					active: p.clientsActive,
					waiting: p.clientsWaiting,
					maxWait: p.maxWaitSeconds,
				}).toEqual({ pool: `${p.database}/${p.user}`, active: 0, waiting: 0, maxWait: 0 });
		}
		const last = snapshots.at(-1)!;
		expect(figures(last).pools.map((p) => `${p.database}/${p.user}`)).toEqual(["appdb/opsbot"]);
		expect("ownClients" in last.pgbouncer! && last.pgbouncer.ownClients).toBeGreaterThanOrEqual(1);
		const text = reportToText(poolReport(last, thresholds));
		expect(text).toContain("Connections on local: 0 / 97 used (0 %)");
		expect(text).toContain("appdb/opsbot transaction: clients 0 active, 0 waiting");
		expect(text.replace(/\s+/g, " ")).toMatch(
			/opsbot's own connections \(\d+ in PostgreSQL, \d+ in PgBouncer\) are not counted/,
		);
	});

	it("with no other client, /health reports no connection used and no client waiting", async () => {
		const db = createDatabase({ url: bouncer.opsbotUrl, maxConnections: 2, statementTimeoutMs: 3_000, log: silent });
		const secrets = new Map([["PGB", bouncer.statsUrl]]);
		const health = healthService({
			environments: {
				local: {
					http: [],
					postgres: { urlEnv: "DB", timeoutMs: 3_000, maxConnections: 2 },
					pgbouncer: { adminUrlEnv: "PGB", timeoutMs: 3_000 },
				},
			},
			databases: { get: () => db },
			secret: (name) => secrets.get(name),
			log: silent,
		});

		const runs = [await health.check("local"), await health.check("local")];
		await db.close();

		for (const run of runs) {
			expect(run.checks.map((c) => [c.name, c.state])).toEqual([
				["postgresql", "ok"],
				["pgbouncer", "ok"],
			]);
			expect(run.checks[0]?.detail).toMatch(/^PostgreSQL 15\.\d+, 0 \/ 97 connections used \(0 %\)$/);
			expect(run.checks[1]?.detail).toBe("1 pool, 0 clients waiting");
		}
	});
	// Last: PgBouncer keeps the server connection it opens for the app's pool, which is not opsbot's.
	it("still counts everyone else's clients and sessions", async () => {
		const db = createDatabase({ url: bouncer.opsbotUrl, maxConnections: 2, statementTimeoutMs: 3_000, log: silent });
		const pool = createPoolService({
			database: () => db,
			pgbouncerAdminUrl: () => ({ url: bouncer.statsUrl, timeoutMs: 3_000 }),
			log: silent,
		});
		await using direct = await openConnections(postgres.appUrl, 3, { applicationName: "gunicorn" });
		await using viaBouncer = await openConnections(bouncer.appUrl, 2, { applicationName: "worker" });

		const snapshot = await pool.snapshot("local");
		await db.close();

		const { postgres: pg, pools } = figures(snapshot);
		expect(direct.clients).toHaveLength(3);
		expect(viaBouncer.clients).toHaveLength(2);
		expect(pg.sessions.filter((s) => s.application === "gunicorn")).toHaveLength(3);
		expect(pg.sessions.filter((s) => s.application === "opsbot")).toEqual([]);
		expect(pools.find((p) => p.database === "appdb" && p.user === "app")).toMatchObject({
			clientsActive: 2,
			clientsWaiting: 0,
		});
		expect(pools.find((p) => p.database === "appdb" && p.user === "opsbot")).toMatchObject({
			clientsActive: 0,
			clientsWaiting: 0,
		});
	});
});
