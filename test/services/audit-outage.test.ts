import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { audit as auditCmd } from "../../src/commands/audit.ts";
import { whodeleted } from "../../src/commands/whodeleted.ts";
import { OpsFileSchema } from "../../src/config.ts";
import type { HandlerContext } from "../../src/discord/handler.ts";
import { UserFacingError } from "../../src/errors.ts";
import { createAuditService } from "../../src/services/audit.ts";
import { createDatabase, type Database } from "../../src/services/postgres.ts";
import { createAuditLog } from "../support/audit-log.ts";
import { runOpsbotCli } from "../support/cli.ts";
import { createPendingStore } from "../support/pending.ts";
import { freePort } from "../support/proc.ts";

const silent = pino({ level: "silent" });
const SCHEMA = `audit_outage_${process.pid}`;
const PASSWORD = "not-a-real-secret-4711";

async function failure(work: Promise<unknown>): Promise<Error> {
	const result = await work.then(
		() => undefined,
		(err: unknown) => err,
	);
	if (!(result instanceof Error)) throw new Error("expected the call to fail");
	return result;
}

const cli = runOpsbotCli;

describe("audit lookups explain a PostgreSQL outage in plain words", () => {
	const postgres = inject("postgres");
	let port: number;
	let closedUrl: string;
	let down: Database;
	const table = OpsFileSchema.shape.audit.parse({ schema: SCHEMA, statementTimeoutMs: 500 });
	const service = (db: Database) => createAuditService({ database: () => db, table, log: silent });

	beforeAll(async () => {
		await createAuditLog(postgres.appUrl, SCHEMA, 200);
		port = await freePort();
		closedUrl = `postgres://opsbot:${PASSWORD}@127.0.0.1:${port}/appdb`;
		down = createDatabase({ url: closedUrl, maxConnections: 2, statementTimeoutMs: 500, log: silent });
	});
	afterAll(async () => {
		await down?.close();
	});

	const refused =
		"The PostgreSQL of local is not reachable (connection refused). Check /health local and try again once it is back.";
	const leaks = (message: string) =>
		[String(port), PASSWORD, "127.0.0.1", "ECONNREFUSED", "postgres://"].filter((s) => message.includes(s));

	it("says the server is not reachable when nothing listens on the database port, for /whodeleted, /audit", async () => {
		const audit = service(down);

		const whoDeleted = await failure(audit.whoDeleted("local", "User", "123"));
		const search = await failure(
			audit.search("local", { since: new Date(Date.now() - 3_600_000), until: new Date() }, { size: 10 }),
		);

		for (const err of [whoDeleted, search]) {
			expect(err).toBeInstanceOf(UserFacingError);
			expect(err.message).toBe(refused);
			expect(leaks(err.message)).toEqual([]);
		}
	});

	it("gives the user of /whodeleted and /audit that explanation instead of 'Something went wrong'", async () => {
		const ops = OpsFileSchema.parse({
			discord: { guildId: "100000000000000001" },
			environments: { local: { postgres: { urlEnv: "DB" } } },
		});
		const replies: unknown[] = [];
		const options: Record<string, string> = { type: "User", id: "123", env: "local" };
		const interaction = {
			options: { getString: (name: string) => options[name] ?? null, getBoolean: () => null },
			editReply: async (r: unknown) => void replies.push(r),
		} as unknown as Parameters<typeof whodeleted.execute>[0];
		const ctx = {
			config: { ops, env: {}, secrets: new Map() },
			log: silent,
			access: { mayDo: () => true, mayUseCommand: () => true },
			services: { audit: service(down), auditQueries: createPendingStore(60_000) },
			actor: { userId: "1", username: "u", roleIds: [] },
			ephemeral: true,
		} as unknown as HandlerContext;

		const err = await failure(whodeleted.execute(interaction, ctx));
		const auditErr = await failure(auditCmd.execute(interaction, ctx));

		expect(err).toBeInstanceOf(UserFacingError);
		expect(err.message).toBe(refused);
		expect(auditErr).toBeInstanceOf(UserFacingError);
		expect(auditErr.message).toBe(refused);
		expect(replies).toEqual([]);
	});

	it("gives the CLI the same explanation, without pg's message or the URL", async () => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-outage-"));
		writeFileSync(
			join(dir, "opsbot.yaml"),
			`discord: { guildId: "100000000000000001" }\nenvironments:\n  local:\n` +
				`    postgres: { urlEnv: LOCAL_DATABASE_URL }\n`,
		);

		const result = await cli(["whodeleted", "User", "123", "--env", "local"], {
			OPSBOT_CONFIG: join(dir, "opsbot.yaml"),
			LOCAL_DATABASE_URL: closedUrl,
			LOG_LEVEL: "silent",
		});

		// 69 (unavailable), as the README's exit-code table says for a service that did not answer.
		expect(result.code).toBe(69);
		expect(result.stderr.trim()).toBe(refused);
		expect(leaks(result.stderr + result.stdout)).toEqual([]);
	});

	it("says opsbot's login was refused when the password is wrong", async () => {
		const wrong = createDatabase({
			url: postgres.opsbotUrl.replace(/:[^:@]+@/, `:${PASSWORD}@`),
			maxConnections: 1,
			statementTimeoutMs: 2_000,
			log: silent,
		});

		const err = await failure(service(wrong).whoDeleted("local", "User", "123"));
		await wrong.close();

		expect(err).toBeInstanceOf(UserFacingError);
		expect(err.message).toBe(
			"opsbot could not log in to the PostgreSQL of local (authentication failed). An admin should check the user " +
				"and password in its database URL.",
		);
		expect(leaks(err.message)).toEqual([]);
	});

	it("names statement_timeout when the real server cancels a /whodeleted lookup stuck behind a lock", async () => {
		const db = createDatabase({ url: postgres.opsbotUrl, maxConnections: 2, statementTimeoutMs: 500, log: silent });
		const locker = new pg.Client({ connectionString: postgres.appUrl });
		await locker.connect();
		await locker.query(`BEGIN; LOCK TABLE ${SCHEMA}.audit_log IN ACCESS EXCLUSIVE MODE`);
		try {
			const audit = service(db);

			const whoDeleted = await failure(audit.whoDeleted("local", "User", "123"));
			const search = await failure(
				audit.search("local", { since: new Date(Date.now() - 3_600_000), until: new Date() }, { size: 10 }),
			);

			expect(whoDeleted).toBeInstanceOf(UserFacingError);
			expect(whoDeleted.message).toBe(
				"The PostgreSQL of local did not answer within 0.5 s (statement_timeout): it may be overloaded or the " +
					"table locked. Try again in a moment; /health local shows whether it is up.",
			);
			expect((whoDeleted.cause as { code?: string }).code).toBe("57014");
			expect(search).toBeInstanceOf(UserFacingError);
			expect(search.message).toMatch(/^That search would scan too much of audit_log and was stopped\./);
		} finally {
			await locker.query("ROLLBACK");
			await locker.end();
			await db.close();
		}
	});
});
