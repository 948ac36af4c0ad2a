import pg from "pg";
import { pino } from "pino";
import { OpsFileSchema } from "../src/config.ts";
import { createAuditService } from "../src/services/audit.ts";
import { createDatabase } from "../src/services/postgres.ts";
import { createAuditLog, insertAuditRow } from "../test/support/audit-log.ts";
import { startPgBouncer } from "../test/support/pgbouncer.ts";
import { startPostgres } from "../test/support/postgres.ts";
import { type BenchRow, percentile, round } from "./types.ts";

const ROWS = Number(process.env.AUDIT_BENCH_ROWS ?? 10_000_000);
const CALLS = 200;
const SCHEMA = "bench";

/** /whodeleted and /audit on a seeded audit_log (10 million rows by default), through PgBouncer. */
export async function run(): Promise<BenchRow[]> {
	const postgres = await startPostgres();
	const pgbouncer = await startPgBouncer(postgres);
	const log = pino({ level: "silent" });
	const db = createDatabase({ url: pgbouncer.opsbotUrl, maxConnections: 2, statementTimeoutMs: 10_000, log });
	try {
		const seedStarted = performance.now();
		await createAuditLog(postgres.appUrl, SCHEMA, ROWS);
		const seedSeconds = (performance.now() - seedStarted) / 1000;
		const app = new pg.Client({ connectionString: postgres.appUrl });
		await app.connect();
		await insertAuditRow(app, SCHEMA, {
			action: "DELETE",
			resource_type: "User",
			resource_id: "123",
			user_id: 4242,
			username: "alice",
			timestamp: new Date(Date.now() - 3_600_000),
		});
		const table = OpsFileSchema.shape.audit.parse({ schema: SCHEMA });
		const audit = createAuditService({ database: () => db, table, log });

		const time = async (fn: (i: number) => Promise<unknown>): Promise<number[]> => {
			for (let i = 0; i < 20; i++) await fn(i); // warm-up
			const samples: number[] = [];
			for (let i = 0; i < CALLS; i++) {
				const started = performance.now();
				await fn(i);
				samples.push(performance.now() - started);
			}
			return samples.sort((a, b) => a - b);
		};
		const types = ["User", "Game", "GameRequest", "Team", "Match"];
		const whodeleted = await time((i) =>
			audit.whoDeleted("bench", types[i % types.length]!, String((i * 2_654_435_761) % 500_000)),
		);
		const now = new Date();
		const byUser = (hours: number) =>
			time((i) =>
				audit.search(
					"bench",
					{ user: String(1 + ((i * 37) % 5000)), since: new Date(now.getTime() - hours * 3_600_000), until: now },
					{ size: 10 },
				),
			);
		const user24h = await byUser(24);
		const user7d = await byUser(24 * 7);

		const plans: string[] = [];
		for (const [label, query] of [
			["whodeleted User 123", audit.whoDeletedQuery("User", "123")],
			[
				"audit --user 42 --since 24h",
				audit.searchQuery({ user: "42", since: new Date(now.getTime() - 86_400_000), until: now }, { size: 10 }),
			],
			[
				"audit --user 42 --since 7d",
				audit.searchQuery({ user: "42", since: new Date(now.getTime() - 7 * 86_400_000), until: now }, { size: 10 }),
			],
		] as const) {
			const { rows } = await app.query(`EXPLAIN (ANALYZE, BUFFERS) ${query.sql}`, query.params);
			plans.push(`-- ${label}\n${rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n")}`);
		}
		await app.end();
		process.stderr.write(`\n${plans.join("\n\n")}\n\n`);
		const note = `${(ROWS / 1e6).toFixed(1)}M rows, ${CALLS} calls, through PgBouncer`;
		return [
			{
				bench: "audit",
				metric: "seed + index + analyze",
				value: round(seedSeconds),
				unit: "s",
				note: `${ROWS} rows, generate_series`,
			},
			{
				bench: "audit",
				metric: "/whodeleted service call, p50",
				value: round(percentile(whodeleted, 50)),
				unit: "ms",
				note,
			},
			{
				bench: "audit",
				metric: "/whodeleted service call, p95",
				value: round(percentile(whodeleted, 95)),
				unit: "ms",
				note: "target < 25 ms",
			},
			{
				bench: "audit",
				metric: "/audit by user over 24 h, p50",
				value: round(percentile(user24h, 50)),
				unit: "ms",
				note,
			},
			{ bench: "audit", metric: "/audit by user over 24 h, p95", value: round(percentile(user24h, 95)), unit: "ms" },
			{
				bench: "audit",
				metric: "/audit by user over 7 d, p50",
				value: round(percentile(user7d, 50)),
				unit: "ms",
				note,
			},
			{ bench: "audit", metric: "/audit by user over 7 d, p95", value: round(percentile(user7d, 95)), unit: "ms" },
		];
	} finally {
		await db.close();
		await pgbouncer.stop();
		await postgres.stop();
	}
}
