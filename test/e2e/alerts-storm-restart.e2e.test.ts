import { afterEach, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import {
	barrier,
	fastChannelRateLimit,
	fire,
	ownMessages,
	STORM_CHANNELS,
	stormGuild,
	stormOpsYaml,
	stormOver,
	stormSize,
	stormToken,
	summaries,
} from "../support/storm.ts";

describe("alert storms through npm start's process, against a Discord that rate-limits each channel", () => {
	let double: DiscordDouble | undefined;
	let bot: TestBot | undefined;
	afterEach(async () => {
		await bot?.kill();
		await double?.close();
		bot = undefined;
		double = undefined;
	});

	it("resumes the same summary after kill -9 mid-storm, losing and doubling nothing", { timeout: 90_000 }, async () => {
		double = await startDiscordDouble({ guild: stormGuild, channelRateLimit: fastChannelRateLimit });
		const yaml = stormOpsYaml(double);
		bot = await startTestBot(double, yaml, { WEBHOOK_TOKEN: stormToken });
		const names = Array.from({ length: stormSize(fastChannelRateLimit) }, (_, i) => `Killed${i}`);
		const channel = STORM_CHANNELS[0];

		const statuses = await fire(bot, names);
		await double.waitFor(
			() => summaries(double!, channel).length === 1 && double!.channelMessages(channel).length >= 5,
			30_000,
		);
		await bot.kill();
		const [summary] = summaries(double, channel);
		const posted = double.channelMessages(channel).length;
		const restartedAt = Date.now();
		bot = await startTestBot(double, yaml, { WEBHOOK_TOKEN: stormToken });
		await double.waitFor(
			() => stormOver(double!, channel) && names.every((n) => ownMessages(double!, channel, n).length > 0),
			60_000,
		);
		await barrier(bot, double, channel);

		expect(statuses.every((s) => s === 202)).toBe(true);
		expect(posted).toBeLessThan(names.length);
		for (const name of names) expect(ownMessages(double, channel, name), name).toHaveLength(1);
		expect(summaries(double, channel).map((m) => m.id)).toEqual([summary!.id]);
		expect(
			double.requests.filter((r) => r.method === "PATCH" && r.path.endsWith(`/${summary!.id}`) && r.at >= restartedAt)
				.length,
		).toBeGreaterThanOrEqual(1);
		await bot.stop();
		bot = undefined;
	});
});
