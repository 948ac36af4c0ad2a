import { afterEach, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import {
	channelRateLimit,
	fire,
	ownMessages,
	STORM_CHANNELS,
	stormGuild,
	stormOpsYaml,
	stormOver,
	stormToken,
	summaries,
	writes,
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

	it("keeps the channels of a storm spread over several apart: each its own budget, summary and messages, and no 429", {
		timeout: 90_000,
	}, async () => {
		double = await startDiscordDouble({ guild: stormGuild, channelRateLimit });
		bot = await startTestBot(double, stormOpsYaml(double), { WEBHOOK_TOKEN: stormToken });
		const teams = ["a", "b", "c"];
		const names = (team: string) => Array.from({ length: 15 }, (_, i) => `Spread${team.toUpperCase()}${i}`);

		// Each channel's first post waits until every webhook is taken: 15 groups are a storm only if they are queued
		// together, and a loaded machine takes a burst in over a second or two while delivery drains it.
		const firstPosts = STORM_CHANNELS.map((channel) =>
			double!.holdNext({ method: "POST", pathPrefix: `/channels/${channel}/messages` }),
		);
		const statuses = (await Promise.all(teams.map((team) => fire(bot!, names(team), { team })))).flat();
		for (const post of firstPosts) post.release();
		await double.waitFor(() => STORM_CHANNELS.every((channel) => stormOver(double!, channel)), 60_000);

		expect(statuses.every((s) => s === 202)).toBe(true);
		for (const [i, channel] of STORM_CHANNELS.entries()) {
			expect(summaries(double, channel)).toHaveLength(1);
			for (const name of names(teams[i]!)) expect(ownMessages(double, channel, name), name).toHaveLength(1);
		}
		expect(double.requests.filter((r) => r.status === 429)).toEqual([]);
		// Independent budgets: every channel had written five times before any wrote a sixth.
		const sixth = Math.min(...STORM_CHANNELS.map((c) => writes(double!, c)[5]!.at));
		for (const channel of STORM_CHANNELS) expect(writes(double, channel)[4]!.at).toBeLessThanOrEqual(sixth);
	});
});
