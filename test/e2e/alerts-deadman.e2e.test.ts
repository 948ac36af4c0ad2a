import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bothStateBackends } from "../alerts/state-database.ts";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { freePort } from "../support/proc.ts";

const CHANNEL = "400000000000000001";
const PIPELINE = "400000000000000009";

/**
 * The dead man's switch through the shipped process, the Watchdog fired through a real AlertManager
 * (which sends it once, then only every repeat_interval: 1 h here), on both stores, its clock read every second.
 */
describe.each(bothStateBackends("opsbot_deadman"))(
	"the dead man's switch (%s store, npm start's process, real AlertManager)",
	(_store, env) => {
		let double: DiscordDouble;
		let alertmanager: TestAlertManager;
		let bot: TestBot;
		const token = randomBytes(24).toString("hex");

		beforeAll(async () => {
			const port = await freePort();
			[double, alertmanager] = await Promise.all([
				startDiscordDouble({
					guild: {
						channels: [
							{ id: CHANNEL, name: "alerts" },
							{ id: PIPELINE, name: "pipeline" },
						],
					},
				}),
				startAlertManager({ webhookUrl: `http://127.0.0.1:${port}/alerts`, bearerToken: token }),
			]);
			bot = await startTestBot(
				double,
				`discord: { guildId: "${double.guildId}" }
environments:
  production:
    alertmanager: { url: "${alertmanager.url}", timeoutMs: 2000 }
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
  deadman: { alertname: Watchdog, afterMinutes: 0.1, channel: "${PIPELINE}" }
  clocks: { intervalSeconds: 1 }
  reconcile: { intervalSeconds: 1, graceSeconds: 3600 }
`,
				{ WEBHOOK_TOKEN: token, ...(await env()) },
			);
		});
		afterAll(async () => {
			await bot?.stop();
			await alertmanager?.stop();
			await double?.close();
		});

		const notices = (prefix: string) => double.channelMessages(PIPELINE).filter((m) => m.content.startsWith(prefix));

		it("never posts the Watchdog; says once when it stops arriving, with what opsbot knows, and once when it is back", {
			timeout: 120_000,
		}, async () => {
			await postAlerts(alertmanager.url, [{ labels: { alertname: "Watchdog", severity: "none" } }]);
			await bot.waitForLog((l) => l.msg === "alert group accepted" && l.heartbeat === "Watchdog", 30_000);

			const down = await double.waitFor(() => notices("🚨")[0], 60_000);
			expect(down.content).toMatch(
				new RegExp(
					String.raw`^🚨 No Watchdog alert has reached opsbot from AlertManager since <t:\d+:t> \(\d+ s\): ` +
						String.raw`the alerting pipeline may be down\. AlertManager answers opsbot \(last \d+ s ago\); ` +
						String.raw`last webhook of any kind <t:\d+:t>\.$`,
				),
			);

			// A change of the Watchdog group makes AlertManager notify again: the heartbeat is back.
			await postAlerts(alertmanager.url, [{ labels: { alertname: "Watchdog", severity: "none", replica: "b" } }]);
			const back = await double.waitFor(() => notices("✅")[0], 60_000);
			expect(back.content).toMatch(
				/^✅ Watchdog reaches opsbot again \(arrived <t:\d+:t>, after \d+ s of silence\)\.$/,
			);

			// Two more passes of the clocks: no notice repeated (a new silence since the heartbeat, longer than the
			// 6 s here, is a new one: its own "since"), and no card was ever posted for the Watchdog.
			const passes = bot.logs().filter((l) => l.msg === "escalation pass done").length;
			await double.waitFor(
				() => bot.logs().filter((l) => l.msg === "escalation pass done").length >= passes + 2,
				30_000,
			);
			const since = notices("🚨").map((m) => m.content.match(/since <t:(\d+):t>/)![1]);
			expect(new Set(since).size).toBe(since.length);
			expect(notices("✅")).toHaveLength(1);
			expect(double.channelMessages(CHANNEL)).toEqual([]);
		});
	},
);
