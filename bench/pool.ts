import pg from "pg";
import { pino } from "pino";
import { createPoolService } from "../src/services/pool.ts";
import { createDatabase } from "../src/services/postgres.ts";
import { openConnections } from "../test/support/db.ts";
import { startPgBouncer } from "../test/support/pgbouncer.ts";
import { startPostgres } from "../test/support/postgres.ts";
import { type BenchRow, percentile, round } from "./types.ts";

const SEQUENTIAL = 300;
const CONCURRENT = 200;

/**
 * /pool: snapshot latency through PgBouncer with 60 idle sessions present, and opsbot's connections under 200
 * concurrent calls.
 */
export async function run(): Promise<BenchRow[]> {
	const postgres = await startPostgres();
	const pgbouncer = await startPgBouncer(postgres);
	const idle = await openConnections(postgres.appUrl, 60, { applicationName: "gunicorn" });
	const log = pino({ level: "silent" });
	const db = createDatabase({
		url: pgbouncer.opsbotUrl,
		maxConnections: 2,
		statementTimeoutMs: 5_000,
		applicationName: "opsbot-bench",
		log,
	});
	const service = createPoolService({
		database: () => db,
		pgbouncerAdminUrl: () => ({ url: pgbouncer.adminUrl, timeoutMs: 5_000 }),
		log,
	});
	try {
		for (let i = 0; i < 20; i++) await service.snapshot("bench"); // warm-up
		const latencies: number[] = [];
		for (let i = 0; i < SEQUENTIAL; i++) {
			const started = performance.now();
			await service.snapshot("bench");
			latencies.push(performance.now() - started);
		}
		latencies.sort((a, b) => a - b);

		const watcher = new pg.Client({ connectionString: postgres.superuserUrl });
		await watcher.connect();
		let maxHeld = 0;
		let maxServer = 0;
		let watching = true;
		const sampler = setInterval(() => (maxHeld = Math.max(maxHeld, db.held())), 1);
		const serverSide = (async () => {
			while (watching) {
				// Through PgBouncer the server sessions carry the client's application_name.
				const { rows } = await watcher.query<{ n: string }>(
					"SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'opsbot-bench'",
				);
				maxServer = Math.max(maxServer, Number(rows[0]?.n));
			}
		})();
		const started = performance.now();
		await Promise.all(Array.from({ length: CONCURRENT }, () => service.snapshot("bench")));
		const burstMs = performance.now() - started;
		watching = false;
		clearInterval(sampler);
		await serverSide;
		await watcher.end();
		return [
			{
				bench: "pool",
				metric: "/pool snapshot (PG + PgBouncer), p50",
				value: round(percentile(latencies, 50)),
				unit: "ms",
				note: `${SEQUENTIAL} sequential, 60 idle sessions present`,
			},
			{ bench: "pool", metric: "/pool snapshot, p95", value: round(percentile(latencies, 95)), unit: "ms" },
			{ bench: "pool", metric: `${CONCURRENT} concurrent snapshots, total`, value: round(burstMs), unit: "ms" },
			{
				bench: "pool",
				metric: "max connections opsbot held (client side)",
				value: maxHeld,
				unit: "conns",
				note: "pool max 2",
			},
			{
				bench: "pool",
				metric: "max server sessions named opsbot-bench",
				value: maxServer,
				unit: "conns",
				note: "sampled from pg_stat_activity",
			},
		];
	} finally {
		await db.close();
		await idle.close();
		await pgbouncer.stop();
		await postgres.stop();
	}
}
