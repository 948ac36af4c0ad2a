import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { createAuditLog, insertAuditRow } from "../support/audit-log.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { runOpsbotCli } from "../support/cli.ts";

const ONCALL = "300000000000000001";
const ADMIN = "300000000000000002";
const SCHEMA = `audit_e2e_${process.pid}`;

describe("/whodeleted and /audit end to end: the Discord double and real PostgreSQL", () => {
	const postgres = inject("postgres");
	const pgbouncer = inject("pgbouncer");
	let double: DiscordDouble;
	let bot: TestBot;
	let opsYaml: string;

	beforeAll(async () => {
		await createAuditLog(postgres.appUrl, SCHEMA, 20_000);
		const app = new pg.Client({ connectionString: postgres.appUrl });
		await app.connect();
		for (const [hours, correlation] of [
			[30, "corr-a"],
			[2, "corr-b"],
		] as const) {
			await insertAuditRow(app, SCHEMA, {
				timestamp: new Date(Date.now() - hours * 3_600_000),
				action: "DELETE",
				resource_type: "User",
				resource_id: "900123",
				user_id: 7,
				username: "bob",
				user_email: "bob@corp.example",
				ip_address: "198.51.100.23",
				correlation_id: correlation,
				request_method: "DELETE",
				request_path: "/api/users/900123",
			});
		}
		await app.end();
		double = await startDiscordDouble({
			guild: {
				roles: [
					{ id: ONCALL, name: "oncall" },
					{ id: ADMIN, name: "admins" },
				],
			},
		});
		opsYaml = `discord:
  guildId: "${double.guildId}"
  roles: { oncall: "${ONCALL}", admins: "${ADMIN}" }
access:
  commands: { whodeleted: [oncall, admins], audit: [oncall, admins] }
  actions: { audit.see-pii: [admins] }
environments:
  production:
    postgres: { urlEnv: PROD_DATABASE_URL }
    loki: { url: "http://127.0.0.1:9/" }
audit: { schema: ${SCHEMA}, maxRows: 30 }
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-state-"))}
`;
		bot = await startTestBot(double, opsYaml, { PROD_DATABASE_URL: pgbouncer.opsbotUrl });
	});
	afterAll(async () => {
		await bot?.stop();
		await double?.close();
	});

	async function reply(
		name: string,
		options: { name: string; type: number; value: string | boolean }[],
		roles: string[],
	) {
		const sent = await double.sendInteraction({ kind: "command", name, options, user: { roles } });
		expect((await sent.response()).type).toBe(5);
		return double.waitFor(() => {
			const m = double.originalMessage(sent.id);
			return m && (m.embeds.length > 0 || m.content) ? m : undefined;
		});
	}

	it("answers /whodeleted with both deletes, masked for on-call and in full for admins", async () => {
		const masked = await reply(
			"whodeleted",
			[
				{ name: "type", type: 3, value: "User" },
				{ name: "id", type: 3, value: "900123" },
			],
			[ONCALL],
		);
		const full = await reply(
			"whodeleted",
			[
				{ name: "type", type: 3, value: "User" },
				{ name: "id", type: 3, value: "900123" },
			],
			[ADMIN],
		);

		const maskedText = JSON.stringify(masked.embeds);
		expect(masked.embeds[0]).toMatchObject({ title: "Who deleted User 900123" });
		expect(maskedText).toContain("corr-b");
		expect(maskedText.indexOf("corr-b")).toBeLessThan(maskedText.indexOf("corr-a"));
		expect(maskedText).toContain("b•••@corp.example");
		expect(maskedText).not.toContain("bob@corp.example");
		expect(maskedText).not.toContain("198.51.100.23");
		expect(JSON.stringify(full.embeds)).toContain("bob@corp.example");
		const buttons = JSON.stringify(masked.components);
		expect(buttons).toMatch(/"custom_id":"logs:correlation:production:corr-b:\d+"/);
		expect(buttons).toMatch(/"custom_id":"logs:correlation:production:corr-a:\d+"/);
	});

	it("autocompletes resource types from the table", async () => {
		// The first question loads the types in the background; ask until they are there.
		const ask = async () =>
			await (
				await double.sendInteraction({
					kind: "autocomplete",
					name: "whodeleted",
					options: [{ name: "type", type: 3, value: "gam", focused: true }],
					user: { roles: [ONCALL] },
				})
			).response();
		const response = await vi.waitFor(
			async () => {
				const answer = await ask();
				expect((answer.data as { choices?: unknown[] } | undefined)?.choices?.length).toBeGreaterThan(0);
				return answer;
			},
			{ timeout: 5_000, interval: 100 },
		);

		expect(response.type).toBe(8);
		expect(response.data).toEqual({
			choices: [
				{ name: "Game", value: "Game" },
				{ name: "GameRequest", value: "GameRequest" },
			],
		});
	});

	it("pages /audit with Older and Newer buttons and attaches the CSV", async () => {
		const first = await reply(
			"audit",
			[
				{ name: "type", type: 3, value: "Team" },
				{ name: "since", type: 3, value: "7d" },
			],
			[ADMIN],
		);
		const older = JSON.stringify(first.components).match(/audit:page:[A-Za-z0-9_-]+:1:older/)?.[0] ?? "";
		const firstLines = (first.embeds[0] as { description: string }).description;

		const press = await double.sendInteraction({
			kind: "button",
			customId: older,
			messageId: first.id,
			user: { roles: [ADMIN] },
		});
		expect((await press.response()).type).toBe(6);
		const second = await double.waitFor(
			() =>
				(double.messages.get(first.id)?.embeds[0] as { title?: string } | undefined)?.title?.startsWith(
					"Audit log, page 2",
				) && double.messages.get(first.id),
		);
		const csvId = JSON.stringify(second.components).match(/audit:csv:[A-Za-z0-9_-]+/)?.[0] ?? "";
		const csvPress = await double.sendInteraction({
			kind: "button",
			customId: csvId,
			messageId: first.id,
			user: { roles: [ADMIN] },
		});
		await csvPress.response();
		const csv = await double.waitFor(() => double.originalMessage(csvPress.id)?.files[0]);

		const ids = (text: string) => [...text.matchAll(/#(\d+)/g)].map((m) => m[1]);
		expect(ids(firstLines)).toHaveLength(10);
		expect(
			ids((second.embeds[0] as { description: string }).description).filter((id) => ids(firstLines).includes(id)),
		).toEqual([]);
		expect(csv.name).toBe("audit.csv");
		const lines = csv.data.toString("utf8").trim().split("\r\n");
		expect(lines[0]).toMatch(/^id,timestamp,action,resource_type/);
		expect(lines).toHaveLength(31); // header + audit.maxRows
		expect(double.originalMessage(csvPress.id)?.content).toContain("cut at the configured maximum of 30");
	});

	it("asks for audit.see-pii at every press: pages and the CSV are masked once the role is gone (D18)", async () => {
		const first = await reply(
			"audit",
			[
				{ name: "type", type: 3, value: "Team" },
				{ name: "since", type: 3, value: "7d" },
			],
			[ADMIN],
		);
		const olderId = JSON.stringify(first.components).match(/audit:page:[A-Za-z0-9_-]+:1:older/)?.[0] ?? "";
		const csvId = JSON.stringify(first.components).match(/audit:csv:[A-Za-z0-9_-]+/)?.[0] ?? "";
		const firstText = JSON.stringify(first.embeds); // the double edits the message in place
		// The same member, whose admins role (and with it audit.see-pii) was removed since; on-call still may use /audit.
		const older = await double.sendInteraction({
			kind: "button",
			customId: olderId,
			messageId: first.id,
			user: { roles: [ONCALL] },
		});
		await older.response();
		const second = await double.waitFor(
			() =>
				(double.messages.get(first.id)?.embeds[0] as { title?: string } | undefined)?.title?.startsWith(
					"Audit log, page 2",
				) && double.messages.get(first.id),
		);
		const csvPress = await double.sendInteraction({
			kind: "button",
			customId: csvId,
			messageId: first.id,
			user: { roles: [ONCALL] },
		});
		await csvPress.response();
		const csv = await double.waitFor(() => double.originalMessage(csvPress.id)?.files[0]);

		const fullEmail = /user\d+@example\.com/;
		expect(firstText).toMatch(fullEmail);
		const secondText = JSON.stringify(second.embeds);
		expect(secondText).toMatch(/u•••@example\.com/);
		expect(secondText).not.toMatch(fullEmail);
		expect(secondText).toContain("Emails and IP addresses are masked for your roles.");
		const csvText = csv.data.toString("utf8");
		expect(csvText).toMatch(/u•••@example\.com/);
		expect(csvText).not.toMatch(fullEmail);
		expect(csvText).not.toMatch(/10\.\d+\.\d+\.\d+/);
	});

	it("turns a bad time into a plain message", async () => {
		const message = await reply("audit", [{ name: "since", type: 3, value: "last tuesday" }], [ADMIN]);

		expect(message.content).toContain('Cannot read the time "last tuesday": use 15m, 24h, 7d or an ISO date');
	});

	it("prints the same answer from the CLI: whodeleted --json and audit --explain", async () => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-cli-"));
		writeFileSync(join(dir, "opsbot.yaml"), opsYaml);
		const run = (args: string[]) =>
			runOpsbotCli(args, { OPSBOT_CONFIG: join(dir, "opsbot.yaml"), PROD_DATABASE_URL: pgbouncer.opsbotUrl });

		const who = await run(["whodeleted", "User", "900123", "--json"]);
		const explain = await run(["audit", "--user", "bob@corp.example", "--since", "7d", "--explain"]);

		expect(who.code).toBe(0);
		expect(explain.code).toBe(0);
		expect(
			(JSON.parse(who.stdout) as { deletes: { correlationId: string }[] }).deletes.map((d) => d.correlationId),
		).toEqual(["corr-b", "corr-a"]);
		expect(explain.stdout).toContain("CREATE INDEX CONCURRENTLY");
		expect(explain.stdout).toContain('lower("user_email")');
	});
});
