import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { OpsFileSchema } from "../../src/config.ts";
import { formatNumber, judgeNumber } from "../../src/services/custom-checks.ts";
import { createDatabase, type Database } from "../../src/services/postgres.ts";
import { openConnections } from "../support/db.ts";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.ts";
import { startHangingServer } from "../support/raw-http.ts";
import { healthService } from "../support/services.ts";

const silent = pino({ level: "silent" });

/** An environment as the config file gives it (defaults and validation by the real schema). */
function environment(yaml: Record<string, unknown>) {
	return OpsFileSchema.parse({ discord: { guildId: "100000000000000001" }, environments: { production: yaml } })
		.environments.production!;
}

describe("custom SQL checks against real PostgreSQL, through PgBouncer, read-only", () => {
	const postgres = inject("postgres");
	const pgbouncer = inject("pgbouncer");
	let app: pg.Client;
	let db: Database;

	beforeAll(async () => {
		app = new pg.Client({ connectionString: postgres.appUrl });
		await app.connect();
		await app.query(
			`DROP TABLE IF EXISTS "BackupLog"; CREATE TABLE "BackupLog" (id serial PRIMARY KEY, created_at timestamptz ` +
				`NOT NULL)`,
		);
		// opsbot's role may use the sequence, so only the READ ONLY transaction stands between a check and nextval().
		await app.query(
			"DROP SEQUENCE IF EXISTS health_check_seq; CREATE SEQUENCE health_check_seq; GRANT USAGE ON SEQUENCE " +
				"health_check_seq TO opsbot",
		);
		db = createDatabase({ url: pgbouncer.opsbotUrl, maxConnections: 2, statementTimeoutMs: 5_000, log: silent });
	});
	afterAll(async () => {
		await db?.close();
		await app?.query(`DROP TABLE IF EXISTS "BackupLog"; DROP SEQUENCE IF EXISTS health_check_seq`);
		await app?.end();
	});

	function service(checks: Record<string, unknown>[]) {
		const health = healthService({
			environments: { production: environment({ postgres: { urlEnv: "DB" }, checks }) },
			databases: { get: () => db },
			secret: () => undefined,
			log: silent,
		});
		return async () => (await health.check("production")).checks.filter((c) => c.kind === "sql");
	}

	async function newestBackup(hoursAgo: number): Promise<void> {
		await app.query(`TRUNCATE "BackupLog"`);
		await app.query(
			`INSERT INTO "BackupLog" (created_at) VALUES (now() - make_interval(hours => $1)), (now() - ` +
				`make_interval(hours => $1 + 24))`,
			[hoursAgo],
		);
	}

	it("judges the age of the newest BackupLog row against its thresholds, both ways", async () => {
		const run = service([
			{
				name: "backup age",
				sql: `SELECT extract(epoch FROM now() - max(created_at)) / 3600 FROM "BackupLog";`,
				unit: "h",
				degraded: 26,
				down: 48,
			},
		]);

		await newestBackup(10);
		const [fresh] = await run();
		await newestBackup(30);
		const [late] = await run();
		await newestBackup(50);
		const [missing] = await run();
		await newestBackup(2);
		const [again] = await run();

		expect(fresh).toMatchObject({ name: "backup age", kind: "sql", state: "ok", detail: "10 h", unit: "h" });
		expect(fresh?.value).toBeCloseTo(10, 2);
		expect(late).toMatchObject({ state: "degraded", detail: "30 h (≥ 26 h)" });
		expect(missing).toMatchObject({ state: "down", detail: "50 h (≥ 48 h)" });
		expect(again).toMatchObject({ state: "ok", detail: "2 h" });
	});

	it("counts idle connections older than a moment (the team's exhaustion), degraded while they are held", async () => {
		const gunicorn = `gunicorn_${process.pid}`;
		const run = service([
			{
				name: "stale idle connections",
				// An application name of this file's own: other files hold gunicorn connections to the same appdb meanwhile.
				sql:
					`SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' AND application_name = '${gunicorn}' AND ` +
					`state_change < now() - interval '1 second'`,
				degraded: 3,
				down: 20,
			},
		]);

		const [before] = await run();
		const held = await openConnections(postgres.appUrl, 5, { applicationName: gunicorn });
		// Until the connections are a second old (not a fixed 1.5 s), then until their backends are gone.
		const until = (state: object) =>
			vi.waitFor(async () => expect((await run())[0]).toMatchObject(state), { timeout: 10_000, interval: 100 });
		await until({ state: "degraded", detail: "5 (≥ 3)" });
		await held.close();
		await until({ state: "ok", detail: "0" });

		expect(before).toMatchObject({ state: "ok", detail: "0" });
	});

	it("says in plain words when a query gives no number, and never crashes the run", async () => {
		await app.query(`TRUNCATE "BackupLog"`);
		const run = service([
			{ name: "empty table", sql: `SELECT max(created_at)::text FROM "BackupLog"` },
			{ name: "null", sql: `SELECT extract(epoch FROM now() - max(created_at)) FROM "BackupLog"` },
			{ name: "no row", sql: "SELECT 1 WHERE false" },
			{ name: "many rows", sql: "SELECT generate_series(1, 100000)" },
			{ name: "two values", sql: "SELECT 1, 2" },
			{ name: "a timestamp", sql: "SELECT now()" },
			{ name: "an interval", sql: "SELECT interval '5 minutes'" },
			{ name: "text", sql: "SELECT 'five'" },
			{ name: "missing table", sql: `SELECT count(*) FROM "Backups"` },
			{ name: "syntax", sql: "SELEC 1" },
		]);

		const checks = await run();

		expect(checks.map((c) => [c.name, c.state, c.detail])).toEqual([
			["empty table", "down", "returned NULL, not a number"],
			["null", "down", "returned NULL, not a number"],
			["no row", "down", "returned no row"],
			["many rows", "down", "returned more than one row, expected one"],
			["two values", "down", "returned 2 columns, expected one value"],
			["a timestamp", "down", "returned a timestamp; use extract(epoch FROM now() - ...) for an age in seconds"],
			["an interval", "down", "returned an interval; use extract(epoch FROM ...) for seconds"],
			["text", "down", "returned text, not a number"],
			["missing table", "down", "query failed: a table it names does not exist (SQLSTATE 42P01)"],
			["syntax", "down", "query failed: syntax error (one statement only) (SQLSTATE 42601)"],
		]);
	});

	it("runs read-only, one statement, under its own statement_timeout", async () => {
		await newestBackup(1);
		const run = service([
			{ name: "writes", sql: "SELECT nextval('health_check_seq')" },
			{ name: "two statements", sql: `SELECT 1; DELETE FROM "BackupLog"` },
			{ name: "slow", sql: "SELECT 1 FROM pg_sleep(3)", timeoutMs: 300 },
		]);

		const began = Date.now();
		const checks = await run();
		const elapsed = Date.now() - began;
		const { rows } = await app.query<{ n: number }>(`SELECT count(*)::int AS n FROM "BackupLog"`);

		expect(checks.map((c) => [c.name, c.state, c.detail])).toEqual([
			["writes", "down", "query failed: it tries to write; checks run read-only (SQLSTATE 25006)"],
			["two statements", "down", "query failed: syntax error (one statement only) (SQLSTATE 42601)"],
			["slow", "down", "query failed: cancelled by statement_timeout after 0.3 s (SQLSTATE 57014)"],
		]);
		expect(rows[0]?.n).toBe(2);
		expect(elapsed).toBeLessThan(2_500);
	});

	it("refuses parameters, a missing source and inverted thresholds when the config is read", () => {
		const parse = (env: Record<string, unknown>) =>
			OpsFileSchema.safeParse({ discord: { guildId: "100000000000000001" }, environments: { production: env } });

		const params = parse({ postgres: { urlEnv: "DB" }, checks: [{ name: "p", sql: "SELECT $1::int" }] });
		const both = parse({
			postgres: { urlEnv: "DB" },
			prometheus: { url: "http://p:9090" },
			checks: [{ name: "b", sql: "SELECT 1", promql: "vector(1)" }],
		});
		const noDb = parse({ checks: [{ name: "n", sql: "SELECT 1" }] });
		const inverted = parse({
			postgres: { urlEnv: "DB" },
			checks: [{ name: "i", sql: "SELECT 1", direction: "below", degraded: 1, down: 5 }],
		});
		const duplicate = parse({
			http: [{ name: "api", url: "http://a/" }],
			postgres: { urlEnv: "DB" },
			checks: [{ name: "api", sql: "SELECT 1" }],
		});
		const noProm = parse({ hosts: [{ name: "h", instance: "h:9100" }] });

		const issues = (r: ReturnType<typeof parse>) =>
			r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
		expect(issues(params)).toEqual([
			"environments.production.checks.0.sql: checks take no parameters ($1, $2, ...): write the values into the query",
		]);
		expect(issues(both)).toEqual(["environments.production.checks.0: give exactly one of promql or sql"]);
		expect(issues(noDb)).toEqual([
			"environments.production.checks.0.sql: an sql check needs this environment's postgres",
		]);
		expect(issues(inverted)).toEqual([
			"environments.production.checks.0.degraded: with direction below, degraded must be above down",
		]);
		expect(issues(duplicate)).toEqual(['environments.production.checks.0.name: duplicate check name "api"']);
		expect(issues(noProm)).toEqual([
			"environments.production.hosts.0: needs this environment's prometheus (its figures come from there)",
		]);
	});
});

describe("custom PromQL checks against real Prometheus", () => {
	let prometheus: TestPrometheus;
	let app: Server;
	let depth = 5;

	beforeAll(async () => {
		// The application's own metric, changed by the test and scraped by Prometheus every 250 ms.
		app = createServer((_, res) => res.end(`# TYPE app_queue_depth gauge\napp_queue_depth{queue="mail"} ${depth}\n`));
		await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
		prometheus = await startPrometheus({
			targets: { app: [`127.0.0.1:${(app.address() as AddressInfo).port}`] },
			scrapeInterval: "250ms",
		});
	});
	afterAll(async () => {
		await prometheus?.stop();
		await new Promise((resolve) => app?.close(resolve));
	});

	function service(checks: Record<string, unknown>[], url = prometheus.url) {
		const health = healthService({
			environments: { production: environment({ prometheus: { url, timeoutMs: 2_000 }, checks }) },
			databases: { get: () => undefined },
			secret: () => undefined,
			log: silent,
		});
		return async () => (await health.check("production")).checks.filter((c) => c.kind === "promql");
	}

	async function until(run: () => ReturnType<ReturnType<typeof service>>, value: number) {
		return vi.waitFor(
			async () => {
				const checks = await run();
				expect(checks[0]?.value).toBe(value);
				return checks;
			},
			{ timeout: 15_000, interval: 250 },
		);
	}

	it("reads one number and crosses its thresholds both ways as the scraped figure moves", async () => {
		const run = service([
			{ name: "mail queue", promql: 'max(app_queue_depth{queue="mail"})', unit: "mails", degraded: 100, down: 1000 },
		]);

		const [ok] = await until(run, 5);
		depth = 250;
		const [degraded] = await until(run, 250);
		depth = 5000;
		const [down] = await until(run, 5000);
		depth = 7;
		const [back] = await until(run, 7);

		expect(ok).toMatchObject({ name: "mail queue", kind: "promql", state: "ok", detail: "5 mails" });
		expect(degraded).toMatchObject({ state: "degraded", detail: "250 mails (≥ 100 mails)" });
		expect(down).toMatchObject({ state: "down", detail: "5000 mails (≥ 1000 mails)" });
		expect(back).toMatchObject({ state: "ok", detail: "7 mails" });
	});

	it("says why an expression gives no single number, and names Prometheus when it fails", async () => {
		const hanging = await startHangingServer();
		const run = service([
			{ name: "targets up", promql: "count(up == 1)", direction: "below", degraded: 2, down: 0 },
			{ name: "absent", promql: "app_never_exported" },
			{ name: "per target", promql: "up" },
			{ name: "broken", promql: "sum(" },
			{ name: "a string", promql: '"text"' },
			{ name: "not a number", promql: "0/0" },
		]);
		const stuck = service([{ name: "stuck", promql: "vector(1)", timeoutMs: 300 }], hanging.url);

		// Both targets (Prometheus itself, every second, and the app) scraped up at least once: on a loaded machine
		// the first test can end before Prometheus has scraped itself.
		const checks = await vi.waitFor(
			async () => {
				const all = await run();
				expect(all[0]?.detail).toBe("2 (≤ 2)");
				return all;
			},
			{ timeout: 15_000, interval: 250 },
		);
		const [timedOut] = await stuck();
		await hanging.close();

		expect(checks.map((c) => [c.name, c.state, c.detail])).toEqual([
			["targets up", "degraded", "2 (≤ 2)"],
			["absent", "down", "returned no series (an absent metric? `or vector(0)` gives a default)"],
			["per target", "down", "returned 2 series, expected one (aggregate with sum, max, ...)"],
			["broken", "down", "Prometheus refused the expression as invalid PromQL (bad_data)"],
			["a string", "down", "returned a string, not one number"],
			["not a number", "down", "returned NaN, not a finite number"],
		]);
		expect(timedOut).toMatchObject({ state: "down", detail: "no answer within 300 ms" });
	});
});

describe("judging a custom check's number", () => {
	it("compares above or below, at the threshold included, and prints the unit", () => {
		const above = { direction: "above" as const, degraded: 26, down: 48, unit: "h" };
		const below = { direction: "below" as const, degraded: 10, down: 5, unit: "%" };

		expect([25.9, 26, 47.99, 48].map((v) => judgeNumber(above, v))).toEqual([
			{ state: "ok", detail: "25.9 h" },
			{ state: "degraded", detail: "26 h (≥ 26 h)" },
			{ state: "degraded", detail: "47.99 h (≥ 26 h)" },
			{ state: "down", detail: "48 h (≥ 48 h)" },
		]);
		expect([10.5, 10, 5].map((v) => judgeNumber(below, v).state)).toEqual(["ok", "degraded", "down"]);
		expect(judgeNumber({ direction: "above", unit: "" }, 1e6)).toEqual({ state: "ok", detail: "1000000" });
		expect([3.14158, 0.001234, 123.456, -0.5].map(formatNumber)).toEqual(["3.14", "0.00123", "123", "-0.5"]);
	});
});
