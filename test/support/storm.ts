import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CHANNEL_BUDGET, STORM_AFTER_MS } from "../../src/alerts/storm.ts";
import type { DiscordDouble, RecordedRequest, StoredMessage } from "../discord-double/index.ts";
import { payload } from "./alert-fixtures.ts";
import type { TestBot } from "./bot.ts";
import { embedTitle as title } from "./cards.ts";

/** What the alerts-storm-*.e2e files share: three alert channels, Discord's per-channel pace, a webhook token. */
export const STORM_CHANNELS = ["400000000000000001", "400000000000000002", "400000000000000003"] as const;
/** Discord's per-channel limit, as the double enforces it. */
export const channelRateLimit = { count: 5, windowMs: 5_000 };
/**
 * A channel bucket five times faster than Discord's usual one, for storms whose point is not the
 * pace itself (restart, replicas): opsbot learns a channel's bucket from the X-RateLimit
 * headers of its first answered write and paces to it, so the same storm drains in a fifth of the
 * time and is held to the same rules (no 429, nothing lost or doubled). `alerts-storm-channels` and
 * `alerts-storm-outage` keep Discord's own 5 per 5 s.
 */
export const fastChannelRateLimit = { count: 5, windowMs: 1_000 };

/**
 * How many groups fired at once are sure to start a storm under `limit`: more than the channel could
 * post within STORM_AFTER_MS, both with the budget opsbot assumes before Discord's headers
 * (CHANNEL_BUDGET) and with the one it learns from them, plus a margin for webhooks that arrive late
 * (on a loaded machine a burst of webhooks is taken in over a second or two, while delivery drains it).
 */
export function stormSize(limit: { count: number; windowMs: number }, margin = 25): number {
	const postable = (b: { count: number; windowMs: number }) =>
		b.count + Math.floor((b.count * STORM_AFTER_MS) / b.windowMs);
	return Math.max(postable(limit), postable(CHANNEL_BUDGET)) + margin;
}
export const stormToken = randomBytes(24).toString("hex");
export const stormGuild = { channels: STORM_CHANNELS.map((id, i) => ({ id, name: `alerts-${i}` })) };

/** The first embed's title (cards.ts), under the name the storm files use. */
export { title };

const isSummary = (m: StoredMessage) => title(m).includes("Alert storm");
/** The messages of group `name` in `channel`: its firing message and any resolved record. */
export const ownMessages = (double: DiscordDouble, channel: string, name: string) =>
	double.channelMessages(channel).filter((m) => title(m).split(" · ")[1] === name);
export const summaries = (double: DiscordDouble, channel: string) => double.channelMessages(channel).filter(isSummary);
export const writes = (double: DiscordDouble, channel: string) =>
	double.requests.filter((r) => r.path.startsWith(`/channels/${channel}/messages`) && r.method !== "GET");
export const stormOver = (double: DiscordDouble, channel: string) =>
	summaries(double, channel).length === 1 && /^(✅|🌤️) Alert storm over/.test(title(summaries(double, channel)[0]!));

/** The embed title a request tried to write (to tell which group a refused request was for). */
export const requestTitle = (r: RecordedRequest) =>
	String((r.body as { embeds?: { title?: string }[] } | undefined)?.embeds?.[0]?.title ?? "");

export function stormOpsYaml(double: DiscordDouble, stateDir = mkdtempSync(join(tmpdir(), "opsbot-storm-"))): string {
	return `discord: { guildId: "${double.guildId}" }
environments: { production: {} }
stateDir: ${stateDir}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${STORM_CHANNELS[0]}"
  routes:
    - match: { team: b }
      channel: "${STORM_CHANNELS[1]}"
    - match: { team: c }
      channel: "${STORM_CHANNELS[2]}"
`;
}

/** Sends each group's webhook at once, as AlertManager flushes many groups after the same group_wait. */
export async function fire(
	bot: TestBot,
	names: readonly string[],
	labels: Record<string, string> = {},
): Promise<number[]> {
	return Promise.all(
		names.map((name) =>
			fetch(`${bot.webhookUrl}/alerts`, {
				method: "POST",
				headers: { "content-type": "application/json", authorization: `Bearer ${stormToken}` },
				body: JSON.stringify(
					payload(3, {
						groupKey: name,
						groupLabels: { alertname: name },
						commonLabels: { alertname: name, severity: "warning", ...labels },
					}),
				),
			}).then((r) => r.status),
		),
	);
}

/**
 * A barrier instead of "wait a second and see": sends one more group to `channel` and waits for its
 * message. Delivery writes a channel in order, so anything still queued before it (a duplicate, a
 * second summary) has been written by the time this returns.
 */
export async function barrier(
	bot: TestBot,
	double: DiscordDouble,
	channel: string = STORM_CHANNELS[0],
	timeoutMs = 30_000,
): Promise<void> {
	const name = `Barrier${randomBytes(3).toString("hex")}`;
	const team = channel === STORM_CHANNELS[1] ? "b" : channel === STORM_CHANNELS[2] ? "c" : "a";
	const [status] = await fire(bot, [name], { team });
	if (status !== 202) throw new Error(`the barrier webhook was refused (${status})`);
	await double.waitFor(() => ownMessages(double, channel, name).length > 0, timeoutMs);
}
