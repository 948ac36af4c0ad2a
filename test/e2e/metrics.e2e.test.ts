import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";

const CHANNEL = "400000000000000001";
const token = randomBytes(24).toString("hex");

function webhook(alertname: string): string {
	return JSON.stringify({
		version: "4",
		groupKey: `{}:{alertname="${alertname}"}`,
		status: "firing",
		receiver: "opsbot",
		groupLabels: { alertname },
		commonLabels: { alertname, severity: "warning" },
		alerts: [
			{
				status: "firing",
				labels: { alertname, severity: "warning" },
				startsAt: new Date().toISOString(),
				fingerprint: randomBytes(8).toString("hex"),
			},
		],
	});
}

/** The value of one sample in Prometheus text format, or undefined. */
function sample(text: string, series: string): number | undefined {
	const line = text.split("\n").find((l) => l.startsWith(`${series} `));
	return line ? Number(line.slice(series.length + 1)) : undefined;
}

describe("/metrics of npm start's process", () => {
	let double: DiscordDouble;
	let other: DiscordDouble;
	let bot: TestBot;
	let secured: TestBot;

	const ops = (guildId: string, extra = "") => `discord: { guildId: "${guildId}" }
access: { commands: { health: [everyone] } }
environments:
  local:
    http: [{ name: nothing, url: "http://127.0.0.1:1/", timeoutMs: 300 }]
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
${extra}`;

	beforeAll(async () => {
		// One bot per double: a double delivers each interaction to one gateway session.
		[double, other] = await Promise.all([
			startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } }),
			startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } }),
		]);
		[bot, secured] = await Promise.all([
			startTestBot(double, ops(double.guildId), { WEBHOOK_TOKEN: token }),
			startTestBot(other, ops(other.guildId, "  metrics: { requireAuth: true }\n"), { WEBHOOK_TOKEN: token }),
		]);
	});
	afterAll(async () => {
		await Promise.all([bot?.stop(), secured?.stop()]);
		await Promise.all([double?.close(), other?.close()]);
	});

	it("counts commands, webhooks and Discord calls, and says the gateway is connected", async () => {
		const sent = await double.sendInteraction({
			kind: "command",
			name: "health",
			options: [{ name: "env", type: 3, value: "local" }],
		});
		await sent.response();
		await double.waitFor(() => double.originalMessage(sent.id)?.embeds.length);
		const posted = await fetch(`${bot.webhookUrl}/alerts`, {
			method: "POST",
			headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
			body: webhook("MetricsProbe"),
		});
		const refused = await fetch(`${bot.webhookUrl}/alerts`, {
			method: "POST",
			headers: { "content-type": "application/json" },
			body: webhook("MetricsProbe"),
		});
		await double.waitFor(
			() =>
				double
					.channelMessages(CHANNEL)
					.some((m) => String((m.embeds[0] as { title?: string }).title).includes("MetricsProbe")),
			15_000,
		);

		// The command's final answer is counted once the router is done with it.
		let text = "";
		await vi.waitFor(
			async () => {
				const res = await fetch(`${bot.webhookUrl}/metrics`);
				expect(res.status).toBe(200);
				expect(res.headers.get("content-type")).toContain("text/plain");
				text = await res.text();
				expect(
					sample(text, 'opsbot_interactions_total{kind="command",name="health",result="ok"}') ?? 0,
				).toBeGreaterThan(0);
			},
			{ timeout: 5_000, interval: 100 },
		);

		expect([posted.status, refused.status]).toEqual([202, 401]);
		expect(sample(text, 'opsbot_interactions_total{kind="command",name="health",result="ok"}')).toBe(1);
		expect(sample(text, 'opsbot_interaction_first_response_seconds_count{kind="command",name="health"}')).toBe(1);
		expect(sample(text, 'opsbot_webhooks_total{status="202"}')).toBeGreaterThanOrEqual(1);
		expect(sample(text, 'opsbot_webhooks_total{status="401"}')).toBeGreaterThanOrEqual(1);
		expect(sample(text, "opsbot_discord_gateway_connected")).toBe(1);
		expect(text).toMatch(
			/opsbot_discord_requests_total\{route="\/channels\/:id\/messages",method="POST",status="200"\} \d+/,
		);
		expect(text).toMatch(/opsbot_alert_groups\{state="firing"\} [1-9]/);
		expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
		expect(text).not.toContain(token);
	});

	it("serves every metric the example alert rules use", async () => {
		const rules = readFileSync("deploy/prometheus/opsbot-rules.yml", "utf8");
		const used = new Set([...rules.matchAll(/\b(opsbot_[a-z_]+)/g)].map((m) => m[1]!));
		const text = await (await fetch(`${bot.webhookUrl}/metrics`)).text();

		expect(used.size).toBeGreaterThan(3);
		for (const name of used) expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, "m"));
	});

	it("asks for the webhook credentials when the config says so", async () => {
		const without = await fetch(`${secured.webhookUrl}/metrics`);
		const wrong = await fetch(`${secured.webhookUrl}/metrics`, { headers: { authorization: "Bearer nope" } });
		const right = await fetch(`${secured.webhookUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });

		expect([without.status, wrong.status, right.status]).toEqual([401, 401, 200]);
		expect(await right.text()).toContain("opsbot_webhooks_total");
	});
});
