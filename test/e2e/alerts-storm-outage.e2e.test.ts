import { afterEach, describe, expect, it } from "vitest";
import { startDiscordDouble, type DiscordDouble } from "../discord-double/index.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { STORM_CHANNELS, barrier, channelRateLimit, fire, ownMessages, requestTitle, stormGuild, stormOpsYaml, stormOver, stormToken, summaries, writes } from "../support/storm.ts";

describe("alert storms through npm start's process, against a Discord that rate-limits each channel", () => {
	let double: DiscordDouble | undefined;
	let bot: TestBot | undefined;
	afterEach(async () => {
		await bot?.kill();
		await double?.close();
		bot = undefined;
		double = undefined;
	});

	it("loses and doubles nothing, and keeps one summary, when Discord answers 429 and 5xx through a storm", { timeout: 120_000 }, async () => {
		double = await startDiscordDouble({ guild: stormGuild, channelRateLimit });
		bot = await startTestBot(double, stormOpsYaml(double), { WEBHOOK_TOKEN: stormToken });
		const channel = STORM_CHANNELS[0];
		const names = Array.from({ length: 12 }, (_, i) => `Outage${i}`);
		for (let i = 0; i < 1_000; i++) double.failNext({ pathPrefix: `/channels/${channel}/messages`, ...(i % 2 === 0 ? { status: 503 as const } : { status: 429 as const, retryAfterSeconds: 1 }) });
		const refused = () => double!.requests.filter((r) => r.status === 429 || r.status === 503);
		const isSummary = (title: string) => title.includes("Alert storm");
		const isGroup = (name: string) => (title: string) => title.split(" · ")[1] === name;
		// One delivery attempt is several requests (discord.js retries a 5xx 3 times and waits out each 429
		// itself); two attempts of one message are told apart by another message's requests between them.
		const attempts = (of: (title: string) => boolean) => {
			let count = 0;
			let previous = false;
			for (const r of writes(double!, channel)) {
				const current = of(requestTitle(r));
				if (current && !previous) count++;
				previous = current;
			}
			return count;
		};

		const statuses = await fire(bot, names);
		// The outage lasts until the summary and a group's message were each refused, backed off and refused
		// again. Not until every group was tried: delivery writes a channel in order and retries its first
		// messages as their backoff ends (about 4 s per attempt here), so the rest wait in the outbox for
		// minutes; they must come through after the outage all the same, once each.
		await double.waitFor(() => attempts(isSummary) >= 2 && names.some((n) => attempts(isGroup(n)) >= 2), 90_000);
		const failedWhileDown = refused();
		double.clearFaults();
		const recoveredAt = Date.now();
		await double.waitFor(() => stormOver(double!, channel) && names.every((n) => ownMessages(double!, channel, n).length > 0), 90_000);
		await barrier(bot, double, channel);

		expect(statuses.every((s) => s === 202)).toBe(true);
		expect(new Set(failedWhileDown.map((r) => r.status))).toEqual(new Set([429, 503]));
		for (const name of names) expect(ownMessages(double, channel, name), name).toHaveLength(1);
		expect(summaries(double, channel)).toHaveLength(1);
		expect(double.requests.filter((r) => r.at >= recoveredAt && r.status === 429)).toEqual([]);
	});
});
