import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { sqlNumber } from "../../src/services/custom-checks.ts";
import { createDatabase, createDatabaseRegistry, type Database } from "../../src/services/postgres.ts";
import { runOpsbotCli, runOpsbotInProcess } from "../support/cli.ts";

const silent = pino({ level: "silent" });

/** D10: what a "read-only" SQL check does must end with it, and the known side-effect functions never get that far. */
describe("custom SQL checks leave nothing behind", () => {
	const postgres = inject("postgres");
	const pgbouncer = inject("pgbouncer");
	let other: pg.Client;
	const opened: Database[] = [];
	// One connection, so the next query is sure to run on the session the check used.
	const database = (url: string) => {
		const db = createDatabase({ url, maxConnections: 1, statementTimeoutMs: 5_000, log: silent });
		opened.push(db);
		return db;
	};

	beforeAll(async () => {
		other = new pg.Client({ connectionString: postgres.superuserUrl });
		await other.connect();
	});
	afterAll(async () => {
		await Promise.all(opened.map((db) => db.close()));
		await other?.end();
	});

	it.each([
		["directly", () => postgres.opsbotUrl],
		["through PgBouncer", () => pgbouncer.opsbotUrl],
	])("drops a session advisory lock the check took (%s)", async (_how, url) => {
		const db = database(url());
		const key = 424_200 + opened.length;

		const outcome = await sqlNumber(db, `SELECT count(pg_advisory_lock(${key}))`, 3_000);
		const { rows } = await other.query<{ free: boolean }>("SELECT pg_try_advisory_lock($1) AS free", [key]);
		await other.query("SELECT pg_advisory_unlock($1)", [key]);

		expect(outcome).toEqual({ value: 1 });
		expect(rows[0]!.free).toBe(true);
	});

	it.each([
		["directly", () => postgres.opsbotUrl],
		["through PgBouncer", () => pgbouncer.opsbotUrl],
	])("undoes a session setting the check made with set_config(..., false) (%s)", async (_how, url) => {
		const db = database(url());

		const outcome = await sqlNumber(db, "SELECT length(set_config('application_name', 'hijacked', false))", 3_000);
		const after = await db.read<{ name: string }>("SELECT current_setting('application_name') AS name");

		expect(outcome).toEqual({ value: 8 });
		expect(after[0]!.name).toBe("opsbot");
	});

	it("drops a lock a failing check took before it failed", async () => {
		const db = database(postgres.opsbotUrl);

		const outcome = await sqlNumber(db, "SELECT count(pg_advisory_lock(424299)) / 0", 3_000).catch(
			(err: unknown) => err,
		);
		const { rows } = await other.query<{ free: boolean }>("SELECT pg_try_advisory_lock(424299) AS free");
		await other.query("SELECT pg_advisory_unlock(424299)");

		expect((outcome as { code?: string }).code).toBe("22012");
		expect(rows[0]!.free).toBe(true);
	});

	it("runs checks under postgres.checksUrlEnv's role when set, and under opsbot's own otherwise", async () => {
		const registry = createDatabaseRegistry(
			(environment) => ({
				url: postgres.opsbotUrl,
				...(environment === "split" ? { checksUrl: postgres.appUrl } : {}),
				maxConnections: 1,
				statementTimeoutMs: 5_000,
			}),
			silent,
		);
		const who = async (db: Database | undefined) => (await db!.read<{ u: string }>("SELECT current_user AS u"))[0]!.u;
		try {
			expect([
				await who(registry.forChecks("split")),
				await who(registry.get("split")),
				await who(registry.forChecks("same")),
			]).toEqual(["app", "opsbot", "opsbot"]);
			expect(registry.forChecks("same")).toBe(registry.get("same"));
		} finally {
			await registry.close();
		}
	});

	const sideEffectCalls = [
		"pg_terminate_backend(pid) FROM pg_stat_activity",
		"pg_advisory_lock(1)",
		"set_config('application_name', 'x', false)",
		"PG_NOTIFY('c', 'x')",
		"pg_logical_emit_message(true, 'p', 'x')",
		"txid_current()",
	];
	it.each(sideEffectCalls)("refuses a check calling %s at config load: exit 78, naming the key", async (call) => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-d10-"));
		writeFileSync(
			join(dir, "opsbot.yaml"),
			`discord: { guildId: "100000000000000001" }\nenvironments:\n  production:\n` +
				`    postgres: { urlEnv: PROD_DATABASE_URL }\n    checks:\n      - name: sneaky\n` +
				`        sql: "SELECT count(${call.replaceAll('"', '\\"')})"\n`,
		);

		// The first through `npx opsbot` (the exit status as a shell sees it), the others in this process.
		const cli = call === sideEffectCalls[0] ? runOpsbotCli : runOpsbotInProcess;
		const run = await cli(["health", "--env", "production"], {
			OPSBOT_CONFIG: join(dir, "opsbot.yaml"),
			PROD_DATABASE_URL: postgres.opsbotUrl,
		});

		expect(run.code).toBe(78);
		const called = call.slice(0, call.indexOf("(")).toLowerCase();
		expect(run.stderr).toContain(`environments.production.checks.0.sql: calls ${called}, which acts outside the check`);
	});
});
