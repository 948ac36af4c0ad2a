import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { createAuditLog, insertAuditRow } from "../support/audit-log.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { runOpsbotCli } from "../support/cli.ts";

const ADMIN = "300000000000000002";
const SCHEMA = `dropped_conn_${process.pid}`;

/**
 * D1: a DBA (or a failover, or a PgBouncer restart) drops opsbot's connection in the middle of a
 * query. The shipped process must answer that request in plain words, stay up, and serve the next
 * one on a fresh connection; directly and through PgBouncer.
 */
describe("a PostgreSQL connection dropped mid-query", () => {
	const postgres = inject("postgres");
	const pgbouncer = inject("pgbouncer");
	let double: DiscordDouble;
	let bot: TestBot;
	let opsYaml: string;
	let superuser: pg.Client;

	beforeAll(async () => {
		await createAuditLog(postgres.appUrl, SCHEMA, 200);
		const app = new pg.Client({ connectionString: postgres.appUrl });
		await app.connect();
		await insertAuditRow(app, SCHEMA, {
			timestamp: new Date(Date.now() - 3_600_000),
			action: "DELETE",
			resource_type: "User",
			resource_id: "4242",
			user_id: 7,
			username: "bob",
			user_email: "bob@corp.example",
			ip_address: "198.51.100.23",
			correlation_id: "corr-x",
			request_method: "DELETE",
			request_path: "/api/users/4242",
		});
		await app.end();
		superuser = new pg.Client({ connectionString: postgres.superuserUrl });
		superuser.on("error", () => undefined);
		await superuser.connect();
		double = await startDiscordDouble({ guild: { roles: [{ id: ADMIN, name: "admins" }] } });
		opsYaml = `discord:
  guildId: "${double.guildId}"
  roles: { admins: "${ADMIN}" }
access:
  commands: { whodeleted: [admins], audit: [admins], health: [admins] }
environments:
  direct:
    postgres: { urlEnv: DIRECT_DATABASE_URL }
    checks:
      - name: audit rows
        sql: "SELECT count(*) FROM ${SCHEMA}.audit_log"
  pooled:
    postgres: { urlEnv: POOLED_DATABASE_URL }
    checks:
      - name: audit rows
        sql: "SELECT count(*) FROM ${SCHEMA}.audit_log"
audit: { schema: ${SCHEMA}, statementTimeoutMs: 20000 }
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-state-"))}
`;
		bot = await startTestBot(double, opsYaml, {
			DIRECT_DATABASE_URL: postgres.opsbotUrl,
			POOLED_DATABASE_URL: pgbouncer.opsbotUrl,
		});
	});
	afterAll(async () => {
		await bot?.stop();
		await double?.close();
		await superuser?.end();
	});

	async function answer(name: string, options: { name: string; type: number; value: string }[]) {
		const sent = await double.sendInteraction({ kind: "command", name, options, user: { roles: [ADMIN] } });
		expect((await sent.response()).type).toBe(5);
		return double.waitFor(() => {
			const m = double.originalMessage(sent.id);
			return m && (m.embeds.length > 0 || m.content) ? m : undefined;
		}, 30_000);
	}

	/** Runs `/command` while the audit table is locked, and terminates opsbot's backend once it waits on that lock. */
	function terminatedMidQuery(name: string, options: { name: string; type: number; value: string }[]) {
		return terminatedWhile(() => answer(name, options));
	}

	async function terminatedWhile<T>(action: () => Promise<T>): Promise<T> {
		// The lock on a connection of its own: pg_stat_activity is read once per transaction.
		const locker = new pg.Client({ connectionString: postgres.superuserUrl });
		await locker.connect();
		await locker.query("BEGIN");
		await locker.query(`LOCK TABLE ${SCHEMA}.audit_log IN ACCESS EXCLUSIVE MODE`);
		try {
			const reply = action();
			let terminated = 0;
			for (let i = 0; i < 300 && terminated === 0; i++) {
				const { rows } = await superuser.query<{ n: number }>(
					// Only this file's statements: other files run beside it on the same server.
					"SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity " +
						"WHERE application_name = 'opsbot' AND wait_event_type = 'Lock' AND strpos(query, $1) > 0",
					[SCHEMA],
				);
				terminated = rows[0]!.n;
				if (terminated === 0) await new Promise((resolve) => setTimeout(resolve, 50));
			}
			expect(terminated).toBe(1);
			return await reply;
		} finally {
			await locker.end();
		}
	}

	it.each(["direct", "pooled"])(
		"answers /audit with 'not reachable' when its backend is terminated (%s), stays up, and the next /audit works",
		async (env) => {
			const options = [
				{ name: "env", type: 3, value: env },
				{ name: "type", type: 3, value: "User" },
				{ name: "id", type: 3, value: "4242" },
				{ name: "since", type: 3, value: "7d" },
			];
			const message = await terminatedMidQuery("audit", options);

			expect(message.content).toContain(`The PostgreSQL of ${env} is not reachable`);
			expect(bot.process.child.exitCode).toBeNull();
			const next = await answer("audit", options);
			expect(JSON.stringify(next.embeds)).toMatch(/Audit log, page 1.*DELETE\*\* User `4242`/);
		},
	);

	it("answers /whodeleted 'not reachable' when its backend is terminated; the next one finds the delete", async () => {
		const options = [
			{ name: "env", type: 3, value: "direct" },
			{ name: "type", type: 3, value: "User" },
			{ name: "id", type: 3, value: "4242" },
		];
		const message = await terminatedMidQuery("whodeleted", options);

		expect(message.content).toContain("The PostgreSQL of direct is not reachable");
		const next = await answer("whodeleted", options);
		expect(JSON.stringify(next.embeds)).toContain("corr-x");
	});

	it.each(["direct", "pooled"])(
		"shows a SQL check whose backend is terminated as down in /health (%s), and stays up",
		async (env) => {
			const message = await terminatedWhile(() => answer("health", [{ name: "env", type: 3, value: env }]));

			expect(JSON.stringify(message.embeds)).toMatch(/audit rows[^"]*PostgreSQL: connection/);
			expect(bot.process.child.exitCode).toBeNull();
			await bot.waitForLog((l) => typeof l.msg === "string" && l.msg.endsWith("connection lost"));
			expect(JSON.stringify((await answer("health", [{ name: "env", type: 3, value: env }])).embeds)).toMatch(
				/audit rows[^"]*\b201\b/,
			);
		},
	);

	it.each(["direct", "pooled"])("shows that check down in the CLI's health (%s) instead of crashing", async (env) => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-cli-"));
		writeFileSync(join(dir, "opsbot.yaml"), opsYaml);
		const run = await terminatedWhile(() =>
			runOpsbotCli(["health", "--env", env], {
				OPSBOT_CONFIG: join(dir, "opsbot.yaml"),
				DIRECT_DATABASE_URL: postgres.opsbotUrl,
				POOLED_DATABASE_URL: pgbouncer.opsbotUrl,
			}),
		);

		expect(run.stderr).not.toContain("Unhandled 'error' event");
		expect(run.stdout).toMatch(/audit rows.*PostgreSQL: connection/);
	});
});
