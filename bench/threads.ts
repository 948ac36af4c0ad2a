import { randomBytes } from "node:crypto";
import { type StoredMessage, startDiscordDouble } from "../test/discord-double/index.ts";
import { postAlerts, startAlertManager } from "../test/support/alertmanager.ts";
import { startTestBot } from "../test/support/bot.ts";
import { freePort } from "../test/support/proc.ts";
import { type BenchRow, percentile, round } from "./types.ts";

const CHANNEL = "400000000000000001";
const ONCALL = "300000000000000001";
const PRESSES = 20;
/** Between presses: under the double's 5 writes per 5 s per channel, so pacing is not what is measured. */
const PRESS_EVERY_MS = 1_500;

const title = (m: StoredMessage | undefined) => String((m?.embeds[0] as { title?: string } | undefined)?.title ?? "");

/**
 * Issue 23's "action -> its line in the thread" (target p95 < 2 s outside storms), through the shipped
 * process (node src/main.ts, SQLite store), a real AlertManager and the Discord double: a critical group's
 * thread opens at once; then Acknowledge and Un-acknowledge are pressed in turn, and each press is timed
 * from the interaction sent to its line reaching the thread.
 */
export async function run(): Promise<BenchRow[]> {
	const token = randomBytes(24).toString("hex");
	const port = await freePort();
	const double = await startDiscordDouble({
		guild: { channels: [{ id: CHANNEL, name: "alerts" }], roles: [{ id: ONCALL, name: "oncall" }] },
	});
	const alertmanager = await startAlertManager({ webhookUrl: `http://127.0.0.1:${port}/alerts`, bearerToken: token });
	const bot = await startTestBot(
		double,
		`discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}" } }
access:
  actions: { alert.ack: [oncall] }
environments:
  production:
    alertmanager: { url: "${alertmanager.url}" }
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
`,
		{ WEBHOOK_TOKEN: token },
	);
	const user = { id: "200000000000000011", username: "olivia", roles: [ONCALL] };
	const latencies: number[] = [];
	try {
		await postAlerts(alertmanager.url, [
			{ labels: { alertname: "ThreadBench", severity: "critical", env: "production" } },
		]);
		const card = await double.waitFor(
			() => double.channelMessages(CHANNEL).find((m) => /ThreadBench/.test(title(m))),
			60_000,
		);
		// The critical group's thread (its id is the card's) and its first post.
		await double.waitFor(() => (double.channelMessages(card.id).length > 0 ? true : undefined), 60_000);
		for (let i = 0; i < PRESSES; i++) {
			const before = double.channelMessages(card.id).length;
			const action = i % 2 === 0 ? "ack" : "unack";
			const current = double.messages.get(card.id) ?? card;
			const customId = JSON.stringify(current.components).match(
				new RegExp(`alert:${action}:[0-9a-f]{32}(:\\d+)?`),
			)?.[0];
			if (!customId) throw new Error(`no ${action} button on the card`);
			const pressedAt = Date.now();
			const sent = await double.sendInteraction({ kind: "button", customId, messageId: card.id, user });
			await sent.response();
			await double.waitFor(() => (double.channelMessages(card.id).length > before ? true : undefined), 30_000);
			latencies.push(Date.now() - pressedAt);
			// The card shows the new state before the next press reads its buttons.
			await double.waitFor(() => {
				const acked = title(double.messages.get(card.id)).includes("ACKED");
				return acked === (action === "ack") ? true : undefined;
			}, 30_000);
			await new Promise((resolve) => setTimeout(resolve, PRESS_EVERY_MS));
		}
	} finally {
		await bot.stop();
		await alertmanager.stop();
		await double.close();
	}
	const sorted = [...latencies].sort((a, b) => a - b);
	const note = `${PRESSES} presses (Acknowledge, Un-acknowledge in turn), SQLite store`;
	return [
		{ bench: "threads", metric: "action -> thread line p50", value: round(percentile(sorted, 50)), unit: "ms", note },
		{ bench: "threads", metric: "action -> thread line p95", value: round(percentile(sorted, 95)), unit: "ms", note },
		{ bench: "threads", metric: "action -> thread line max", value: round(sorted.at(-1) ?? Number.NaN), unit: "ms" },
	];
}
