import { createServer, type Socket } from "node:net";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { poolReport } from "../../src/commands/pool.ts";
import { textToMarkdown } from "../../src/render/report.ts";
import { createPoolService } from "../../src/services/pool.ts";
import { createDatabase, type Database, describePgFailure } from "../../src/services/postgres.ts";
import { openConnections } from "../support/db.ts";
import { startPgBouncer, type TestPgBouncer } from "../support/pgbouncer.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";
import { freePort } from "../support/proc.ts";

const silent = pino({ level: "silent" });
const thresholds = { warnPercent: 70, criticalPercent: 90, idleMinutes: 0.01, idleInTransactionMinutes: 1 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function service(db: Database, adminUrl?: string) {
	return createPoolService({
		database: () => db,
		pgbouncerAdminUrl: () => (adminUrl ? { url: adminUrl, timeoutMs: 3_000 } : undefined),
		log: silent,
	});
}

// A PostgreSQL and PgBouncer of this file's own, not the run's shared ones: a snapshot reads the whole server
// (pg_stat_activity, SHOW POOLS), and its likely cause would name other files' sessions.
describe("pool service against real PostgreSQL and PgBouncer", () => {
	let postgres: TestPostgres;
	let pgbouncer: TestPgBouncer;
	beforeAll(async () => {
		postgres = await startPostgres();
		pgbouncer = await startPgBouncer(postgres);
	});
	afterAll(async () => {
		await pgbouncer?.stop();
		await postgres?.stop();
	});

	it("counts idle and idle-in-transaction sessions by application and names the likely cause", async () => {
		const db = createDatabase({ url: pgbouncer.opsbotUrl, maxConnections: 2, statementTimeoutMs: 3_000, log: silent });
		await using idle = await openConnections(postgres.appUrl, 8, { applicationName: "gunicorn" });
		await using stuck = await openConnections(postgres.appUrl, 2, { applicationName: "worker", inTransaction: true });
		await sleep(1_200);

		const snapshot = await service(db, pgbouncer.adminUrl).snapshot("local");
		await db.close();

		expect(idle.clients.length + stuck.clients.length).toBe(10);
		if ("error" in snapshot.postgres) throw new Error(snapshot.postgres.error);
		const sessions = snapshot.postgres.sessions;
		expect(sessions.filter((s) => s.application === "gunicorn" && s.state === "idle")).toHaveLength(8);
		expect(sessions.filter((s) => s.application === "worker" && s.state === "idle in transaction")).toHaveLength(2);
		expect(snapshot.postgres.usable).toBe(97);
		expect(
			snapshot.pgbouncer && "pools" in snapshot.pgbouncer
				? snapshot.pgbouncer.pools.map((p) => `${p.database}/${p.user}`)
				: [],
		).toContain("appdb/opsbot");
		const report = poolReport(snapshot, thresholds);
		expect(textToMarkdown(report.summary ?? "")).toBe(
			"**Note:** 8 idle connections from app `gunicorn` older than 0.01 min",
		);
		expect(textToMarkdown(report.fields?.find((f) => f.label === "Longest idle in transaction")?.value ?? "")).toMatch(
			/pid \d+ · `worker` 127\.0\.0\.1 · \d+ s/,
		);
	});

	it("sees clients waiting in a PgBouncer pool that is too small", async () => {
		const tiny = await startPgBouncer(postgres, { poolSize: 1 });
		const holder = new pg.Client({ connectionString: tiny.appUrl });
		const waiter = new pg.Client({ connectionString: tiny.appUrl });
		const db = createDatabase({ url: postgres.opsbotUrl, maxConnections: 1, statementTimeoutMs: 3_000, log: silent });
		try {
			await holder.connect();
			await waiter.connect();
			await holder.query("BEGIN; SELECT 1"); // transaction pooling: the only server connection is now taken
			const waiting = waiter.query("SELECT 1");
			await sleep(1_100);

			const snapshot = await service(db, tiny.adminUrl).snapshot("local");
			await holder.query("COMMIT");
			await waiting;

			const bouncer = snapshot.pgbouncer;
			if (!bouncer || "error" in bouncer) throw new Error("pgbouncer half missing");
			const pool = bouncer.pools.find((p) => p.database === "appdb" && p.user === "app");
			expect(pool).toMatchObject({ clientsWaiting: 1, serversActive: 1, poolMode: "transaction" });
			expect(pool?.maxWaitSeconds).toBeGreaterThanOrEqual(1);
			expect(poolReport(snapshot, { ...thresholds, idleMinutes: 60 }).level).toBe("warn");
		} finally {
			await Promise.allSettled([holder.end(), waiter.end(), db.close()]);
			await tiny.stop();
		}
	});

	it("still reports PostgreSQL, with a clear note, when PgBouncer is down", async () => {
		const db = createDatabase({ url: postgres.opsbotUrl, maxConnections: 1, statementTimeoutMs: 3_000, log: silent });
		const closed = `postgres://pgb_admin:x@127.0.0.1:${await freePort()}/pgbouncer`;

		const snapshot = await service(db, closed).snapshot("local");
		await db.close();

		expect("used" in snapshot.postgres).toBe(true);
		expect(snapshot.pgbouncer).toEqual({ error: "connection refused" });
		const report = poolReport(snapshot, thresholds);
		expect(report.fields?.find((f) => f.label === "PgBouncer")?.value).toBe(
			"unreachable: connection refused. The PostgreSQL figures are current.",
		);
	});

	it("ends exactly the idle sessions it was given that still qualify, and nothing else", async () => {
		const db = createDatabase({
			url: postgres.opsbotUrl,
			maxConnections: 1,
			statementTimeoutMs: 3_000,
			applicationName: "opsbot",
			log: silent,
		});
		const pool = service(db);
		await using victims = await openConnections(postgres.appUrl, 3, { applicationName: "victim" });
		await using otherDatabase = await openConnections(postgres.appUrl.replace(/\/appdb$/, "/postgres"), 1, {
			applicationName: "victim",
		});
		await using ownName = await openConnections(postgres.appUrl, 1, { applicationName: "opsbot" });
		await using inTransaction = await openConnections(postgres.appUrl, 1, {
			applicationName: "victim",
			inTransaction: true,
		});
		await sleep(1_200);
		const pidsOf = async (held: { clients: readonly pg.Client[] }) =>
			Promise.all(
				held.clients.map(async (c) => (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid),
			);
		// Asking for a pid resets its idle time; wait again so the victims qualify.
		const [victimPids, otherPids, ownPids, txPids] = [
			await pidsOf(victims),
			await pidsOf(otherDatabase),
			await pidsOf(ownName),
			(await inTransaction.clients[0]!.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows.map((r) => r.pid),
		];
		await sleep(1_200);

		const candidates = (await pool.idleCandidates("local", 1 / 60)).filter((c) => c.application === "victim");
		// A forged list: the other database's, opsbot's own and the in-transaction sessions must be refused at execution.
		const forged = [
			...candidates,
			...[...otherPids, ...ownPids, ...txPids].map((pid) => ({
				pid,
				backendStart: candidates[0]!.backendStart,
				application: "x",
				clientAddr: "x",
				idleSeconds: 99,
			})),
		];
		const result = await pool.terminate("local", forged, 1 / 60);
		await sleep(200);

		expect(candidates.map((c) => c.pid).sort()).toEqual([...victimPids].sort());
		expect(result.ended.map((c) => c.pid).sort()).toEqual([...victimPids].sort());
		expect(result.skipped).toBe(otherPids.length + ownPids.length + txPids.length);
		const alive = await db.read<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", [
			[...victimPids, ...otherPids, ...ownPids, ...txPids],
		]);
		expect(alive.map((r) => r.pid).sort()).toEqual([...otherPids, ...ownPids, ...txPids].sort());
		await db.close();
	});

	it("ends exactly the sessions idle in transaction longer than N, and nothing else", async () => {
		const db = createDatabase({
			url: postgres.opsbotUrl,
			maxConnections: 1,
			statementTimeoutMs: 3_000,
			applicationName: "opsbot",
			log: silent,
		});
		const pool = service(db);
		const pidOf = async (c: pg.Client) =>
			(await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
		await using stuck = await openConnections(postgres.appUrl, 2, { applicationName: "tx-victim" });
		await using aborted = await openConnections(postgres.appUrl, 1, { applicationName: "tx-victim" });
		await using plainIdle = await openConnections(postgres.appUrl, 2, { applicationName: "tx-idle" });
		await using otherDatabase = await openConnections(postgres.appUrl.replace(/\/appdb$/, "/postgres"), 1, {
			applicationName: "tx-victim",
		});
		await using ownName = await openConnections(postgres.appUrl, 1, { applicationName: "opsbot" });
		await using young = await openConnections(postgres.appUrl, 1, { applicationName: "tx-young" });
		// Each pid is read before its transaction opens: a query inside one would reset its idle time.
		const [stuckPids, abortedPids, idlePids, otherPids, ownPids, youngPids] = await Promise.all(
			[stuck, aborted, plainIdle, otherDatabase, ownName, young].map((held) => Promise.all(held.clients.map(pidOf))),
		);
		for (const c of [...stuck.clients, ...otherDatabase.clients, ...ownName.clients]) await c.query("BEGIN; SELECT 1");
		await aborted.clients[0]!.query("BEGIN");
		await aborted.clients[0]!.query("SELECT 1/0").catch(() => undefined); // now "idle in transaction (aborted)"
		await sleep(2_200);
		await young.clients[0]!.query("BEGIN; SELECT 1"); // idle in transaction, but for well under N
		const victims = [...stuckPids!, ...abortedPids!];
		const bystanders = [...idlePids!, ...otherPids!, ...ownPids!, ...youngPids!];
		const olderThanMinutes = 1 / 60; // N = 1 s

		const candidates = (await pool.idleCandidates("local", olderThanMinutes, "idle-in-transaction")).filter(
			(c) => c.application.startsWith("tx-") || c.application === "opsbot",
		);
		// A forged list adds every bystander with its real backend_start: each must be refused at execution.
		const starts = await db.read<{ pid: number; backend_start: string }>(
			"SELECT pid, backend_start::text AS backend_start FROM pg_stat_activity WHERE pid = ANY($1::int[])",
			[bystanders],
		);
		const forged = [
			...candidates,
			...starts.map((r) => ({
				pid: r.pid,
				backendStart: r.backend_start,
				application: "x",
				clientAddr: "x",
				idleSeconds: 99,
			})),
		];
		const result = await pool.terminate("local", forged, olderThanMinutes, "idle-in-transaction");
		await sleep(200);
		const alive = await db.read<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", [
			[...victims, ...bystanders],
		]);
		await db.close();

		expect(starts).toHaveLength(bystanders.length);
		expect(candidates.map((c) => c.pid).sort()).toEqual([...victims].sort());
		expect(result.ended.map((c) => c.pid).sort()).toEqual([...victims].sort());
		expect(result.skipped).toBe(bystanders.length);
		expect(alive.map((r) => r.pid).sort()).toEqual([...bystanders].sort());
	});

	it("never holds more than its pool (2) under 200 concurrent snapshots, and names itself", async () => {
		const db = createDatabase({
			url: postgres.opsbotUrl,
			maxConnections: 2,
			statementTimeoutMs: 5_000,
			applicationName: "opsbot-bounded",
			log: silent,
		});
		const watcher = new pg.Client({ connectionString: postgres.superuserUrl });
		await watcher.connect();
		let maxHeld = 0;
		let maxSeen = 0;
		const sampler = setInterval(() => (maxHeld = Math.max(maxHeld, db.held())), 1);
		let sampling = true;
		const watching = (async () => {
			while (sampling) {
				const { rows } = await watcher.query<{ n: string }>(
					"SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'opsbot-bounded'",
				);
				maxSeen = Math.max(maxSeen, Number(rows[0]?.n));
			}
		})();

		const snapshots = await Promise.all(Array.from({ length: 200 }, () => service(db).snapshot("local")));
		sampling = false;
		clearInterval(sampler);
		await watching;
		await watcher.end();
		await db.close();

		expect(snapshots.every((s) => "used" in s.postgres)).toBe(true);
		expect(maxHeld).toBeLessThanOrEqual(2);
		expect(maxSeen).toBeGreaterThan(0);
		expect(maxSeen).toBeLessThanOrEqual(2);
	});

	it("queues a snapshot behind a busy pool until a connection is free, however long past connect timeout", async () => {
		// The connect timeout is min(statementTimeoutMs, 10 s) = 1 s; the only connection stays busy for 1.5 s.
		const db = createDatabase({ url: postgres.opsbotUrl, maxConnections: 1, statementTimeoutMs: 1_000, log: silent });
		const busy = db.read("SELECT pg_sleep(1.5)", [], { timeoutMs: 3_000 });

		const snapshot = await service(db).snapshot("local");
		await busy;
		await db.close();

		expect(snapshot.postgres).toHaveProperty("used");
	});

	it("still gives up opening a connection to a server that never answers, after the connect timeout", async () => {
		const sockets = new Set<Socket>();
		const silentServer = createServer((socket) => sockets.add(socket)); // accepts, never speaks
		await new Promise<void>((resolve) => silentServer.listen(0, "127.0.0.1", resolve));
		const port = (silentServer.address() as { port: number }).port;
		const db = createDatabase({
			url: `postgres://opsbot:x@127.0.0.1:${port}/appdb`,
			maxConnections: 1,
			statementTimeoutMs: 1_000,
			log: silent,
		});

		const failure = await db.read("SELECT 1").then(
			() => undefined,
			(err: unknown) => err,
		);
		await db.close();
		for (const socket of sockets) socket.destroy();
		silentServer.close();

		expect(describePgFailure(failure)).toBe("timed out");
	}, 10_000);
});
