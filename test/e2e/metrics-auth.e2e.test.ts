import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { payload } from "../support/alert-fixtures.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";

const CHANNEL = "400000000000000001";

/**
 * D19: METRICS_TOKEN, when set, is the only key to /metrics; the webhook's credentials post alerts and nothing else.
 */
describe("a metrics credential of its own", () => {
	const webhookToken = randomBytes(24).toString("hex");
	const metricsToken = randomBytes(24).toString("hex");
	let double: DiscordDouble;
	let bot: TestBot;

	beforeAll(async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
		const ops =
			`discord: { guildId: "${double.guildId}" }\nenvironments: { production: {} }\nalerts:\n` +
			`  listen: { host: 127.0.0.1, port: 0 }\n  defaultChannel: "${CHANNEL}"\n  metrics: { requireAuth: true }\n`;
		bot = await startTestBot(double, ops, { WEBHOOK_TOKEN: webhookToken, METRICS_TOKEN: metricsToken });
	});
	afterAll(async () => {
		await bot?.stop();
		await double?.close();
	});

	const scrape = async (token?: string) =>
		(await fetch(`${bot.webhookUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} })).status;
	const post = async (token: string) => {
		const body = JSON.stringify(
			payload(1, {
				groupKey: "MetricsAuth",
				groupLabels: { alertname: "MetricsAuth" },
				commonLabels: { alertname: "MetricsAuth" },
				commonAnnotations: {},
			}),
		);
		const res = await fetch(`${bot.webhookUrl}/alerts`, {
			method: "POST",
			headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
			body,
		});
		await res.arrayBuffer();
		return res.status;
	};

	it("opens /metrics with METRICS_TOKEN only: not with the webhook token, not without one", async () => {
		expect(await scrape(metricsToken)).toBe(200);
		expect(await scrape(webhookToken)).toBe(401);
		expect(await scrape()).toBe(401);
	});

	it("does not take METRICS_TOKEN for posting alerts; the webhook token still posts", async () => {
		expect(await post(metricsToken)).toBe(401);
		expect(await post(webhookToken)).toBe(202);
	});
});
