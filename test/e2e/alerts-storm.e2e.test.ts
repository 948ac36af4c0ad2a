import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startDiscordDouble, type DiscordDouble, type StoredMessage } from "../discord-double/index.ts";
import { payload } from "../support/alert-fixtures.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";

const token = randomBytes(24).toString("hex");
const CHANNELS = ["400000000000000001", "400000000000000002", "400000000000000003"];
// Discord's per-channel limit, as the double enforces it.
const channelRateLimit = { count: 5, windowMs: 5_000 };

const title = (m: StoredMessage) => String((m.embeds[0] as { title?: string } | undefined)?.title ?? "");
const isSummary = (m: StoredMessage) => title(m).includes("Alert storm");
const ownMessages = (double: DiscordDouble, channel: string, name: string) => double.channelMessages(channel).filter((m) => title(m).split(" · ")[1] === name);
const summaries = (double: DiscordDouble, channel: string) => double.channelMessages(channel).filter(isSummary);
const writes = (double: DiscordDouble, channel: string) => double.requests.filter((r) => r.path.startsWith(`/channels/${channel}/messages`) && r.method !== "GET");

function opsYaml(double: DiscordDouble, stateDir = mkdtempSync(join(tmpdir(), "opsbot-storm-"))): string {
	return `discord: { guildId: "${double.guildId}" }
environments: { production: {} }
stateDir: ${stateDir}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNELS[0]}"
  routes:
    - match: { team: b }
      channel: "${CHANNELS[1]}"
    - match: { team: c }
      channel: "${CHANNELS[2]}"
`;
}

/** Sends each group's webhook at once, as AlertManager flushes many groups after the same group_wait. */
async function fire(bot: TestBot, names: readonly string[], labels: Record<string, string> = {}): Promise<number[]> {
	return Promise.all(
		names.map((name) =>
			fetch(`${bot.webhookUrl}/alerts`, {
				method: "POST",
				headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
				body: JSON.stringify(payload(3, { groupKey: name, groupLabels: { alertname: name }, commonLabels: { alertname: name, severity: "warning", ...labels } })),
			}).then((r) => r.status),
		),
	);
}

const stormOver = (double: DiscordDouble, channel: string) => summaries(double, channel).length === 1 && /^(✅|🌤️) Alert storm over/.test(title(summaries(double, channel)[0]!));

describe("alert storms through npm start's process, against a Discord that rate-limits each channel", () => {
	let double: DiscordDouble | undefined;
	let bot: TestBot | undefined;
	afterEach(async () => {
		await bot?.kill();
		await double?.close();
		bot = undefined;
		double = undefined;
	});

	it("keeps the channels of a storm spread over several apart: each its own budget, summary and messages, and no 429", { timeout: 90_000 }, async () => {
		double = await startDiscordDouble({ guild: { channels: CHANNELS.map((id, i) => ({ id, name: `alerts-${i}` })) }, channelRateLimit });
		bot = await startTestBot(double, opsYaml(double), { WEBHOOK_TOKEN: token });
		const teams = ["a", "b", "c"];
		const names = (team: string) => Array.from({ length: 15 }, (_, i) => `Spread${team.toUpperCase()}${i}`);

		const statuses = (await Promise.all(teams.map((team) => fire(bot!, names(team), { team })))).flat();
		await double.waitFor(() => CHANNELS.every((channel) => stormOver(double!, channel)), 60_000);

		expect(statuses.every((s) => s === 202)).toBe(true);
		for (const [i, channel] of CHANNELS.entries()) {
			expect(summaries(double, channel)).toHaveLength(1);
			for (const name of names(teams[i]!)) expect(ownMessages(double, channel, name), name).toHaveLength(1);
		}
		expect(double.requests.filter((r) => r.status === 429)).toEqual([]);
		// Independent budgets: every channel had written five times before any wrote a sixth.
		const sixth = Math.min(...CHANNELS.map((c) => writes(double!, c)[5]!.at));
		for (const channel of CHANNELS) expect(writes(double, channel)[4]!.at).toBeLessThanOrEqual(sixth);
	});

	it("loses and doubles nothing, and keeps one summary, when Discord answers 429 and 5xx for 30 s of a storm", { timeout: 120_000 }, async () => {
		double = await startDiscordDouble({ guild: { channels: CHANNELS.map((id, i) => ({ id, name: `alerts-${i}` })) }, channelRateLimit });
		bot = await startTestBot(double, opsYaml(double), { WEBHOOK_TOKEN: token });
		const names = Array.from({ length: 12 }, (_, i) => `Outage${i}`);
		for (let i = 0; i < 1_000; i++) double.failNext({ pathPrefix: `/channels/${CHANNELS[0]}/messages`, ...(i % 2 === 0 ? { status: 503 as const } : { status: 429 as const, retryAfterSeconds: 1 }) });

		const statuses = await fire(bot, names);
		await new Promise((resolve) => setTimeout(resolve, 30_000));
		const failedWhileDown = double.requests.filter((r) => r.status === 429 || r.status === 503).length;
		double.clearFaults();
		const recoveredAt = Date.now();
		await double.waitFor(() => stormOver(double!, CHANNELS[0]!) && names.every((n) => ownMessages(double!, CHANNELS[0]!, n).length > 0), 60_000);
		await new Promise((resolve) => setTimeout(resolve, 1_000)); // anything posted twice would show by now

		expect(statuses.every((s) => s === 202)).toBe(true);
		expect(failedWhileDown).toBeGreaterThan(0);
		for (const name of names) expect(ownMessages(double, CHANNELS[0]!, name), name).toHaveLength(1);
		expect(summaries(double, CHANNELS[0]!)).toHaveLength(1);
		expect(double.requests.filter((r) => r.at >= recoveredAt && r.status === 429)).toEqual([]);
	});

	it("resumes the same summary after kill -9 mid-storm, losing and doubling nothing", { timeout: 90_000 }, async () => {
		double = await startDiscordDouble({ guild: { channels: CHANNELS.map((id, i) => ({ id, name: `alerts-${i}` })) }, channelRateLimit });
		const yaml = opsYaml(double);
		bot = await startTestBot(double, yaml, { WEBHOOK_TOKEN: token });
		const names = Array.from({ length: 20 }, (_, i) => `Killed${i}`);
		const channel = CHANNELS[0]!;

		const statuses = await fire(bot, names);
		await double.waitFor(() => summaries(double!, channel).length === 1 && double!.channelMessages(channel).length >= 5, 30_000);
		await bot.kill();
		const [summary] = summaries(double, channel);
		const posted = double.channelMessages(channel).length;
		const restartedAt = Date.now();
		bot = await startTestBot(double, yaml, { WEBHOOK_TOKEN: token });
		await double.waitFor(() => stormOver(double!, channel) && names.every((n) => ownMessages(double!, channel, n).length > 0), 60_000);
		await new Promise((resolve) => setTimeout(resolve, 1_000)); // anything posted twice would show by now

		expect(statuses.every((s) => s === 202)).toBe(true);
		expect(posted).toBeLessThan(names.length);
		for (const name of names) expect(ownMessages(double, channel, name), name).toHaveLength(1);
		expect(summaries(double, channel).map((m) => m.id)).toEqual([summary!.id]);
		expect(double.requests.filter((r) => r.method === "PATCH" && r.path.endsWith(`/${summary!.id}`) && r.at >= restartedAt).length).toBeGreaterThanOrEqual(1);
		await bot.stop();
		bot = undefined;
	});
});
