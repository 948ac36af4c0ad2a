import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startDiscordDouble, type DiscordDouble } from "../discord-double/index.ts";
import { freshStateDatabase } from "../alerts/state-database.ts";
import { payload } from "../support/alert-fixtures.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";

const CHANNEL = "400000000000000001";

/** The shipped process on a PostgreSQL state database (STATE_DATABASE_URL) whose connections a DBA keeps terminating. */
describe("the state database drops connections under webhook load", () => {
	const postgres = inject("postgres");
	let double: DiscordDouble;
	let bot: TestBot;
	let token: string;
	let stateDatabase: string;

	beforeAll(async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
		token = randomBytes(24).toString("hex");
		const stateUrl = await freshStateDatabase("opsbot_state_faults");
		stateDatabase = new URL(stateUrl).pathname.slice(1);
		const ops = `discord: { guildId: "${double.guildId}" }\nenvironments: { production: {} }\nalerts:\n  listen: { host: 127.0.0.1, port: 0 }\n  defaultChannel: "${CHANNEL}"\n`;
		bot = await startTestBot(double, ops, { WEBHOOK_TOKEN: token, STATE_DATABASE_URL: stateUrl, LOG_LEVEL: "info" });
	});
	afterAll(async () => {
		await bot?.kill();
		await double?.close();
	});

	it("stays up: every webhook answered 202 is posted, the others got a 5xx for AlertManager to retry", async () => {
		const dba = new pg.Client({ connectionString: postgres.superuserUrl });
		await dba.connect();
		const answers = new Map<string, number>();
		let terminated = 0;
		let sending = true;
		const post = async (group: string) => {
			const body = JSON.stringify(payload(1, { groupKey: group, groupLabels: { alertname: group }, commonLabels: { alertname: group, severity: "warning" }, commonAnnotations: {} }));
			const res = await fetch(`${bot.webhookUrl}/alerts`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body });
			await res.arrayBuffer();
			answers.set(group, res.status);
		};
		const sender = async (n: number) => {
			for (let i = 0; sending; i++) await post(`Drop${n}x${i}`);
		};
		const senders = [0, 1, 2, 3].map(sender);
		// 12 rounds, a quarter of a second apart: each lands inside a transaction or between them.
		for (let round = 0; round < 12; round++) {
			await new Promise((resolve) => setTimeout(resolve, 250));
			const { rows } = await dba.query<{ n: number }>("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'opsbot-state'", [stateDatabase]);
			terminated += rows[0]!.n;
		}
		sending = false;
		await Promise.all(senders);
		await dba.end();
		const accepted = [...answers].filter(([, status]) => status === 202).map(([group]) => group);
		const titles = () => double.channelMessages(CHANNEL).map((m) => String((m.embeds[0] as { title?: string } | undefined)?.title));
		await double.waitFor(() => accepted.every((g) => titles().includes(`🔥 ${g} — 1 firing`)), 60_000);

		expect(terminated).toBeGreaterThanOrEqual(6);
		expect(bot.process.child.exitCode).toBeNull();
		expect(accepted.length).toBeGreaterThan(4);
		expect([...answers.values()].filter((status) => status !== 202 && status < 500)).toEqual([]);
		for (const g of accepted) expect(titles().filter((t) => t.startsWith(`🔥 ${g} `))).toHaveLength(1);
		// The bot still takes webhooks on fresh connections.
		await post("AfterDrops");
		expect(answers.get("AfterDrops")).toBe(202);
	}, 90_000);
});
