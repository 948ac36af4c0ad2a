import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { startPgBouncer, type TestPgBouncer } from "../support/pgbouncer.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";

const ONCALL = "300000000000000001";

// A PostgreSQL and PgBouncer of this file's own, not the run's shared ones: "all good" and "1 pool" are read
// from the whole server (connections used, SHOW POOLS), which other files' clients would change.
describe("/health end to end: discord.js, the Discord double, real PostgreSQL and PgBouncer", () => {
	let postgres: TestPostgres;
	let pgbouncer: TestPgBouncer;
	let double: DiscordDouble;
	let bot: TestBot;
	let api: Server;

	beforeAll(async () => {
		postgres = await startPostgres();
		pgbouncer = await startPgBouncer(postgres);
		api = createServer((_, res) => res.end('{"status":"ok"}'));
		await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
		const apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
		double = await startDiscordDouble({ guild: { roles: [{ id: ONCALL, name: "oncall" }] } });
		bot = await startTestBot(
			double,
			`discord:
  guildId: "${double.guildId}"
  roles: { oncall: "${ONCALL}" }
access:
  commands: { health: [oncall] }
environments:
  production:
    http: [{ name: backend, url: "${apiUrl}/api/health", timeoutMs: 2000 }]
    postgres: { urlEnv: PROD_DATABASE_URL, timeoutMs: 3000 }
    pgbouncer: { adminUrlEnv: PROD_PGBOUNCER_ADMIN_URL, timeoutMs: 3000 }
  staging:
    http: [{ name: backend, url: "http://127.0.0.1:1/api/health", timeoutMs: 1000 }]
`,
			{ PROD_DATABASE_URL: pgbouncer.opsbotUrl, PROD_PGBOUNCER_ADMIN_URL: pgbouncer.adminUrl },
		);
	});
	afterAll(async () => {
		await bot?.stop();
		await double?.close();
		await new Promise((resolve) => api.close(resolve));
		await pgbouncer?.stop();
		await postgres?.stop();
	});

	it("defers inside the deadline, then edits in an embed that says what the real services said", async () => {
		const sent = await double.sendInteraction({
			kind: "command",
			name: "health",
			options: [{ name: "env", type: 3, value: "production" }],
			user: { roles: [ONCALL] },
		});

		const first = await sent.response();
		const message = await double.waitFor(
			() =>
				double.originalMessage(sent.id)?.embeds[0]?.title?.toString().startsWith("Health of production") &&
				double.originalMessage(sent.id),
		);

		expect(first.type).toBe(5);
		expect(first.at - sent.sentAt).toBeLessThan(3_000);
		const embed = message.embeds[0] as { title: string; description: string; color: number };
		expect(embed.title).toBe("Health of production: all good");
		expect(embed.color).toBe(0x2ecc71);
		expect(embed.description).toMatch(/🟢 \*\*backend\*\* http · \d+ ms — HTTP 200/);
		expect(embed.description).toMatch(
			/🟢 \*\*postgresql\*\* postgres · \d+ ms — PostgreSQL 15\.\d+, \d+ \/ 97 connections used/,
		);
		expect(embed.description).toMatch(/🟢 \*\*pgbouncer\*\* \d+ ms — 1 pool/);
		expect(JSON.stringify(message.components)).toContain('"custom_id":"health:rerun:production"');
		expect(JSON.stringify(double.requests)).not.toContain(postgres.passwords.opsbot);
	});

	it("summarises every environment without env, and the Re-run button edits the same message", async () => {
		const sent = await double.sendInteraction({ kind: "command", name: "health", user: { roles: [ONCALL] } });
		const summary = await double.waitFor(() =>
			double.originalMessage(sent.id)?.embeds.length ? double.originalMessage(sent.id) : undefined,
		);

		const press = await double.sendInteraction({
			kind: "button",
			customId: "health:rerun:all",
			messageId: summary.id,
			user: { roles: [ONCALL] },
		});
		const ack = await press.response();
		await double.waitFor(() => (double.messages.get(summary.id)?.edits ?? 0) >= 2);

		const embed = summary.embeds[0] as { title: string; description: string };
		expect(embed.title).toBe("Health of 2 environments: down");
		expect(embed.description).toMatch(/^1 down · 1 ok\n🔴 \*\*staging\*\*/);
		expect(embed.description).toContain("🟢 **production** 3 / 3 checks ok");
		expect(embed.description).toContain("🔴 **staging** backend down");
		expect(ack.type).toBe(6);
		expect(double.messages.get(summary.id)?.embeds[0]).toMatchObject({ title: "Health of 2 environments: down" });
	});

	it("refuses a member without an allowed role, ephemerally, and logs the refusal", async () => {
		const sent = await double.sendInteraction({
			kind: "command",
			name: "health",
			user: { id: "200000000000000099", roles: [] },
		});

		const response = await sent.response();

		expect(response.type).toBe(4);
		expect(response.data).toMatchObject({ flags: 64 });
		expect(String(response.data?.content)).toContain("You are not allowed to use /health");
		await bot.waitForLog((l) => l.msg === "command refused: role not allowed" && l.userId === "200000000000000099");
	});

	it("refuses a forged button and an unknown environment in plain words", async () => {
		const channelMessage = (await bot.rest.post(`/channels/${double.channelIds[0]}/messages`, {
			body: { content: "x" },
		})) as { id: string };

		const forged = await double.sendInteraction({
			kind: "button",
			customId: "health:rerun:'; DROP",
			messageId: channelMessage.id,
			user: { roles: [ONCALL] },
		});
		const unknown = await double.sendInteraction({
			kind: "command",
			name: "health",
			options: [{ name: "env", type: 3, value: "prod<script>" }],
			user: { roles: [ONCALL] },
		});
		const forgedResponse = await forged.response();
		const unknownMessage = await double.waitFor(() =>
			double.originalMessage(unknown.id)?.content ? double.originalMessage(unknown.id) : undefined,
		);

		expect(forgedResponse).toMatchObject({ type: 4, data: { flags: 64 } });
		expect(String(forgedResponse.data?.content)).toContain("This button is not valid");
		expect(unknownMessage.content).toContain("Unknown environment `prod<script>`. Known: production, staging.");
	});

	it(
		"refuses Re-run for an environment that is not configured, even one named like an Object.prototype key, " +
			"and records it",
		async () => {
			const channelMessage = (await bot.rest.post(`/channels/${double.channelIds[0]}/messages`, {
				body: { content: "x" },
			})) as { id: string };

			const press = await double.sendInteraction({
				kind: "button",
				customId: "health:rerun:constructor",
				messageId: channelMessage.id,
				user: { id: "200000000000000042", roles: [ONCALL] },
			});
			await press.response();
			const reply = await double.waitFor(() =>
				[...double.messages.values()].find((m) => m.interactionId === press.id && m.content),
			);

			expect(reply.content).toBe("That environment is no longer configured; run /health again.");
			expect((await bot.actionLog.recent(1, { userId: "200000000000000042" }))[0]).toMatchObject({
				action: "health.rerun",
				result: "refused: unknown environment",
			});
		},
	);
});
