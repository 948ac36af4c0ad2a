import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import pg from "pg";
import { pino } from "pino";
import { openPostgresAlertStore } from "../src/alerts/pg-store.ts";
import { WebhookPayload } from "../src/alerts/schema.ts";
import { countPgWire } from "../test/support/pg-wire.ts";
import { startPostgres } from "../test/support/postgres.ts";
import { syncWal } from "./ingest.ts";
import { type BenchRow, percentile, round } from "./types.ts";
import { body } from "./webhook-load.ts";

// Where one PostgreSQL group commit's time goes, in measures that do not depend on the machine's load:
// the round trips and statements each batch costs, the server's time per statement (pg_stat_statements,
// planning included), and the store's CPU per webhook. The ingest bench's traffic (250 groups, each
// updated ten times with a changing alert count) is replayed into the store in-process, in waves of
// WAVE concurrent accepts, so each wave is one group commit of that size whatever the load.

const GROUPS = 250;
const TURNS = 10;
/** Concurrent accepts per wave: each wave is one group commit of this size. */
const WAVES = process.env.GROUP_COMMIT_WAVES ? process.env.GROUP_COMMIT_WAVES.split(",").map(Number) : [10, 50];

/** CPU time (user + system, ms) of the server processes serving `database` (clock ticks of 10 ms). */
async function backendCpu(admin: pg.Client, database: string): Promise<number> {
	const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = $1", [
		database,
	]);
	let ms = 0;
	for (const { pid } of rows) {
		const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
		ms += (Number(fields[11]) + Number(fields[12])) * 10;
	}
	return ms;
}

const walBytes = async (admin: pg.Client) =>
	Number((await admin.query<{ b: string }>("SELECT wal_bytes::bigint AS b FROM pg_stat_wal")).rows[0]!.b);

const byValue = (a: number, b: number) => a - b;

const load = () =>
	loadavg()
		.map((n) => n.toFixed(2))
		.join(" ");

export async function run(): Promise<BenchRow[]> {
	const wire = countPgWire();
	const postgres = await startPostgres({
		settings: { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track_planning": "on" },
	});
	const rows: BenchRow[] = [];
	try {
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await syncWal(admin);
		await admin.query("CREATE EXTENSION pg_stat_statements");
		for (const wave of WAVES) {
			const database = `opsbot_group_commit_${wave}`;
			await admin.query(`CREATE DATABASE ${database}`);
			const store = await openPostgresAlertStore(
				postgres.superuserUrl.replace(/\/appdb$/, `/${database}`),
				pino({ level: "silent" }),
			);
			const payloads = Array.from({ length: GROUPS * TURNS }, (_, i) =>
				WebhookPayload.parse(JSON.parse(body(`Load${i % GROUPS}`, 1 + (Math.floor(i / GROUPS) % 7)))),
			);
			const targets = [{ channel: "400000000000000001" }];
			// The pool's connections are open before the measure (their CPU is read from /proc by pid).
			await Promise.all(payloads.slice(0, 8).map((p) => store.accept(p, targets)));
			await admin.query("SELECT pg_stat_statements_reset()");
			const cpuServer = await backendCpu(admin, database);
			const wal = await walBytes(admin);
			// Counted from here to the end of the loop: the store's statements only, not this bench's own.
			const before = { ...wire };
			const commitsBefore = wire.commitWaits.length;
			const cpu = process.cpuUsage();
			const walls: number[] = [];
			const loadAtStart = load();
			for (let i = 0; i < payloads.length; i += wave) {
				const started = performance.now();
				await Promise.all(payloads.slice(i, i + wave).map((p) => store.accept(p, targets)));
				walls.push(performance.now() - started);
			}
			const used = process.cpuUsage(cpu);
			const batches = wire.begins - before.begins;
			const roundTrips = wire.roundTrips - before.roundTrips;
			const statements = wire.statements - before.statements;
			const serverCpu = (await backendCpu(admin, database)) - cpuServer;
			const walWritten = (await walBytes(admin)) - wal;
			const server = await admin.query<{ query: string; calls: string; exec: number; plan: number }>(
				`SELECT s.query, s.calls, s.total_exec_time AS exec, s.total_plan_time AS plan
				FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1
				ORDER BY s.total_exec_time + s.total_plan_time DESC`,
				[database],
			);
			await store.close();
			const bench = `group-commit ${wave} per batch`;
			const note = `${payloads.length} webhooks in waves of ${wave}, ${batches} group commits; load ${loadAtStart}`;
			const serverMs = server.rows.reduce((sum, r) => sum + r.exec + r.plan, 0);
			rows.push(
				{
					bench,
					metric: "round trips per group commit",
					value: round(roundTrips / batches),
					unit: "",
					note,
				},
				{
					bench,
					metric: "statements per group commit",
					value: round(statements / batches),
					unit: "",
				},
				{
					bench,
					metric: "server time per group commit",
					value: round(serverMs / batches),
					unit: "ms",
					note: "pg_stat_statements exec + plan (a COMMIT's WAL flush is not counted there)",
				},
				{
					bench,
					metric: "server CPU per webhook",
					value: round(serverCpu / payloads.length),
					unit: "ms",
					note: "the pool's backends, /proc utime + stime",
				},
				{
					bench,
					metric: "WAL per webhook",
					value: round(walWritten / payloads.length / 1024),
					unit: "KiB",
					note: "pg_stat_wal",
				},
				{
					bench,
					metric: "COMMIT wait p50",
					value: round(percentile(wire.commitWaits.slice(commitsBefore).sort(byValue), 50)),
					unit: "ms",
					note: "COMMIT sent to answered: the WAL flush, and any write pipelined before it (depends on load)",
				},
				{
					bench,
					metric: "store CPU per webhook",
					value: round((used.user + used.system) / 1_000 / payloads.length),
					unit: "ms",
					note: "this process (the store, pg) / webhooks",
				},
				{
					bench,
					metric: "wall per group commit p50 / p99",
					value: `${round(percentile(walls.sort(byValue), 50))} / ${round(percentile(walls, 99))}`,
					unit: "ms",
					note: "depends on load",
				},
			);
			for (const r of server.rows.slice(0, 8)) {
				const calls = Number(r.calls);
				const perCall = (ms: number) => round(ms / calls);
				rows.push({
					bench,
					metric: `  ${r.query.replace(/\s+/g, " ").slice(0, 60)}`,
					value: `${round((r.exec + r.plan) / batches)}`,
					unit: "ms",
					note: `${round(calls / batches)} per commit; a call: plan ${perCall(r.plan)}, exec ${perCall(r.exec)} ms`,
				});
			}
		}
		await admin.end();
	} finally {
		await postgres.stop();
	}
	return rows;
}
