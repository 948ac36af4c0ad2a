import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDatabase } from "../../src/services/postgres.ts";
import { openConnections } from "../support/db.ts";
import { startPgBouncer, type TestPgBouncer } from "../support/pgbouncer.ts";
import { healthService } from "../support/services.ts";

const silent = pino({ level: "silent" });

// A PgBouncer of this file's own in front of the run's PostgreSQL: "1 pool, 0 or 1 client waiting" is read from
// SHOW POOLS, where other files' clients of the shared PgBouncer would be counted too.
describe("health checks against real PostgreSQL and PgBouncer", () => {
	const postgres = inject("postgres");
	let pgbouncer: TestPgBouncer;
	beforeAll(async () => {
		pgbouncer = await startPgBouncer(postgres);
	});
	afterAll(async () => {
		await pgbouncer?.stop();
	});

	it("reports the server version and connections used, through PgBouncer, and pool waiting clients", async () => {
		const db = createDatabase({ url: pgbouncer.opsbotUrl, maxConnections: 2, statementTimeoutMs: 3_000, log: silent });
		await using idle = await openConnections(postgres.appUrl, 5, { applicationName: "gunicorn" });
		const secrets = new Map([["PGB_ADMIN", pgbouncer.adminUrl]]);
		const service = healthService({
			environments: {
				local: {
					http: [],
					postgres: { urlEnv: "DB", timeoutMs: 3_000, maxConnections: 2 },
					pgbouncer: { adminUrlEnv: "PGB_ADMIN", timeoutMs: 3_000 },
				},
			},
			databases: { get: () => db },
			secret: (name) => secrets.get(name),
			log: silent,
		});

		const snapshot = await service.check("local");
		await db.close();

		const [pgCheck, pgbCheck] = snapshot.checks;
		expect(idle.clients).toHaveLength(5);
		expect(pgCheck).toMatchObject({ name: "postgresql", state: "ok" });
		expect(pgCheck?.detail).toMatch(/^PostgreSQL 15\.\d+, \d+ \/ 97 connections used \(\d+ %\)$/);
		const used = Number(/, (\d+) \//.exec(pgCheck?.detail ?? "")?.[1]);
		// the 5 idle clients; opsbot's own session (PgBouncer's server connection lent to it) is not counted
		expect(used).toBeGreaterThanOrEqual(5);
		expect(pgbCheck).toMatchObject({ name: "pgbouncer", state: "ok" });
		expect(pgbCheck?.detail).toMatch(/^1 pool, [01] clients? waiting/);
	});

	it("says what is wrong when PostgreSQL refuses the password or PgBouncer is not there", async () => {
		const wrong = postgres.opsbotUrl.replace(/:[^:@]+@/, ":not-the-password@");
		const db = createDatabase({ url: wrong, maxConnections: 1, statementTimeoutMs: 2_000, log: silent });
		const secrets = new Map([["PGB_ADMIN", pgbouncer.adminUrl.replace(`:${pgbouncer.port}/`, ":1/")]]);
		const service = healthService({
			environments: {
				local: {
					http: [],
					postgres: { urlEnv: "DB", timeoutMs: 3_000, maxConnections: 1 },
					pgbouncer: { adminUrlEnv: "PGB_ADMIN", timeoutMs: 2_000 },
				},
			},
			databases: { get: () => db },
			secret: (name) => secrets.get(name),
			log: silent,
		});

		const snapshot = await service.check("local");
		await db.close();

		expect(snapshot.checks.map((c) => [c.name, c.state, c.detail])).toEqual([
			["postgresql", "down", "authentication failed"],
			["pgbouncer", "down", "connection refused"],
		]);
		expect(JSON.stringify(snapshot)).not.toContain(postgres.passwords.opsbot);
	});

	it("holds no more connections than its pool allows under 50 parallel checks", async () => {
		const db = createDatabase({
			url: postgres.opsbotUrl,
			maxConnections: 2,
			statementTimeoutMs: 5_000,
			applicationName: "opsbot-bounded",
			log: silent,
		});
		const service = healthService({
			environments: { local: { http: [], postgres: { urlEnv: "DB", timeoutMs: 10_000, maxConnections: 2 } } },
			databases: { get: () => db },
			secret: () => undefined,
			log: silent,
		});
		let maxHeld = 0;
		const sampler = setInterval(() => (maxHeld = Math.max(maxHeld, db.held())), 1);

		const snapshots = await Promise.all(Array.from({ length: 50 }, () => service.check("local")));
		clearInterval(sampler);
		await db.close();

		expect(snapshots.every((s) => s.checks[0]?.state === "ok")).toBe(true);
		expect(maxHeld).toBeGreaterThan(0);
		expect(maxHeld).toBeLessThanOrEqual(2);
	});
});
