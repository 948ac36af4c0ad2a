import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { payload } from "../support/alert-fixtures.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";

const CHANNEL = "400000000000000001";
const GROUPS = 300;

describe("npm start's webhook under a burst of concurrent webhooks", () => {
	let double: DiscordDouble;
	let bot: TestBot | undefined;
	beforeAll(async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
	});
	afterAll(async () => {
		await bot?.kill();
		await double.close();
	});

	// Two process starts, 1,200 webhooks and 300 posts, each phase waiting for its own condition (ready
	// logs, answers, every group's message within 60 s): about 17 s alone, more than the default 30 s when
	// the suite's four workers share two cores, which cut the 60 s wait below short.
	it("loses none of the groups it answered 202 when killed with SIGKILL right after, and posts each exactly once", {
		timeout: 90_000,
	}, async () => {
		const token = randomBytes(24).toString("hex");
		const ops =
			`discord: { guildId: "${double.guildId}" }\nenvironments: { production: {} }\n` +
			`stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-ingest-"))}\nalerts:\n  listen: { host: 127.0.0.1, port: 0 }\n` +
			`  defaultChannel: "${CHANNEL}"\n`;
		const groups = Array.from({ length: GROUPS }, (_, i) => `Burst${i}`);
		const body = (g: string, n: number) =>
			JSON.stringify(
				payload(n, {
					groupKey: g,
					groupLabels: { alertname: g },
					commonLabels: { alertname: g, severity: "warning" },
					commonAnnotations: {},
				}),
			);
		// Discord is slow to accept, so the process dies with most of the burst still in its outbox.
		double.failNext({
			method: "POST",
			pathPrefix: `/channels/${CHANNEL}/messages`,
			status: 429,
			retryAfterSeconds: 0.5,
			count: 20,
		});
		bot = await startTestBot(double, ops, { WEBHOOK_TOKEN: token, LOG_LEVEL: "info" });
		const origin = bot.webhookUrl!;
		const pool = new Pool(origin, { connections: 64 });
		const post = async (text: string) => {
			const res = await pool.request({
				origin,
				path: "/alerts",
				method: "POST",
				headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
				body: text,
			});
			return { status: res.statusCode, ...((await res.body.json()) as { queued?: number; duplicates?: number }) };
		};

		// Every group fires, then grows, each time sent by two AlertManagers (HA): 1,200 requests over 64 connections.
		const answers = await Promise.all(groups.flatMap((g) => [post(body(g, 1)), post(body(g, 1))]));
		answers.push(...(await Promise.all(groups.flatMap((g) => [post(body(g, 2)), post(body(g, 2))]))));
		await bot.kill();
		await pool.close();
		const beforeRestart = double.channelMessages(CHANNEL).length;
		double.clearFaults();
		bot = await startTestBot(double, ops, { WEBHOOK_TOKEN: token });
		const titles = () =>
			double.channelMessages(CHANNEL).map((m) => String((m.embeds[0] as { title?: string } | undefined)?.title));
		await double.waitFor(() => groups.every((g) => titles().includes(`🟠 WARNING · ${g}`)), 60_000);

		expect(answers.filter((a) => a.status === 202)).toHaveLength(4 * GROUPS);
		expect(answers.reduce((sum, a) => sum + (a.queued ?? 0), 0)).toBe(2 * GROUPS);
		expect(answers.reduce((sum, a) => sum + (a.duplicates ?? 0), 0)).toBe(2 * GROUPS);
		expect(beforeRestart).toBeLessThan(GROUPS);
		for (const g of groups) expect(titles().filter((t) => t === `🟠 WARNING · ${g}`)).toHaveLength(1);
	});
});
