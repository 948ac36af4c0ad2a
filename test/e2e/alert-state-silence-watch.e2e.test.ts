import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAlertManagerClient } from "../../src/services/alertmanager.ts";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import { postAlerts, readSilence, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { cardsTitled, embedDescription as description, embedTitle as title } from "../support/cards.ts";
import { freePort } from "../support/proc.ts";

const ONCALL = "300000000000000001";
const CHANNEL = "400000000000000001";
const oncall = { id: "200000000000000031", username: "olivia", roles: [ONCALL] };

describe("groups silenced from Discord follow AlertManager (npm start, real AlertManager, Discord double)", () => {
	let double: DiscordDouble;
	let alertmanager: TestAlertManager;
	let bot: TestBot;
	const token = randomBytes(24).toString("hex");

	beforeAll(async () => {
		const port = await freePort();
		[double, alertmanager] = await Promise.all([
			startDiscordDouble({
				guild: { channels: [{ id: CHANNEL, name: "alerts" }], roles: [{ id: ONCALL, name: "oncall" }] },
			}),
			startAlertManager({ webhookUrl: `http://127.0.0.1:${port}/alerts`, bearerToken: token }),
		]);
		bot = await startTestBot(
			double,
			`discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}" } }
access:
  actions: { alert.ack: [oncall], alert.silence: [oncall] }
environments:
  production:
    alertmanager: { url: "${alertmanager.url}", timeoutMs: 2000 }
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-watch-state-"))}
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
  silenceWatch: { intervalSeconds: 1 }
  # settle 0: this AlertManager started seconds ago, and the test knows it lost no alerts.
  # grace 3 s: above its group_wait (1 s).
  reconcile: { intervalSeconds: 1, graceSeconds: 3, alertmanagerSettleSeconds: 0 }
`,
			{ WEBHOOK_TOKEN: token },
		);
	});
	afterAll(async () => {
		await bot?.stop();
		await alertmanager?.stop();
		await double?.close();
	});

	const byTitle = (re: RegExp) => cardsTitled(double, CHANNEL, re);
	async function silenceFromDiscord(message: StoredMessage): Promise<string> {
		const selectId = JSON.stringify(message.components).match(/alert:silence:[0-9a-f]{32}/)![0];
		const sent = await double.sendInteraction({
			kind: "select",
			customId: selectId,
			values: ["1"],
			messageId: message.id,
			user: oncall,
		});
		await sent.response();
		const reply = await double.waitFor(
			() => [...double.messages.values()].find((m) => m.interactionId === sent.id && m.content)?.content,
			10_000,
		);
		await double.waitFor(() => description(double.messages.get(message.id)).includes("silenced by"), 10_000);
		return reply.match(/silence `([0-9a-f-]{36})`/)![1]!;
	}

	it("turns the message resolved, green and without buttons, once the silenced alerts end in AlertManager", async () => {
		const labels = { alertname: "QueueStuck", severity: "warning", env: "production", queue: "mail" };
		await postAlerts(alertmanager.url, [{ labels }]);
		const message = await double.waitFor(() => byTitle(/^🟠 WARNING · QueueStuck · production$/)[0], 20_000);
		await silenceFromDiscord(message);

		await postAlerts(alertmanager.url, [{ labels, endsAt: new Date(Date.now() - 1_000).toISOString() }]);
		const resolved = await double.waitFor(
			() => (title(double.messages.get(message.id)).startsWith("✅") ? double.messages.get(message.id) : undefined),
			20_000,
		);

		expect(title(resolved)).toBe("✅ RESOLVED · QueueStuck · production");
		expect((resolved.embeds[0] as { color: number }).color).toBe(0x2ecc71);
		// Only the Timeline button (the episode's history for the postmortem) stays on a resolved card.
		expect(JSON.stringify(resolved.components).match(/"alert:[a-z]+/g)).toEqual(['"alert:timeline']);
		expect(byTitle(/QueueStuck/)).toHaveLength(1);
		// AlertManager sends no resolution for silenced alerts: reconciliation saw the group gone.
		expect(description(resolved)).toContain("resolved \\(AlertManager no longer holds it\\)");
		expect(
			bot
				.logs()
				.some((l) => l.msg === "AlertManager no longer holds an alert group and sent no resolution; marked resolved"),
		).toBe(true);
	});

	it("shows the silence cleared when it is expired in AlertManager while the alert still fires", async () => {
		await postAlerts(alertmanager.url, [
			{ labels: { alertname: "DiskFilling", severity: "warning", env: "production" } },
		]);
		const message = await double.waitFor(() => byTitle(/^🟠 WARNING · DiskFilling · production$/)[0], 20_000);
		const silenceId = await silenceFromDiscord(message);

		await createAlertManagerClient({ url: alertmanager.url, timeoutMs: 5_000 }).expireSilence(silenceId);
		const cleared = await double.waitFor(
			() =>
				!description(double.messages.get(message.id)).includes("silenced by")
					? double.messages.get(message.id)
					: undefined,
			20_000,
		);

		expect((await readSilence(alertmanager.url, silenceId)).status.state).toBe("expired");
		expect(title(cleared)).toBe("🟠 WARNING · DiskFilling · production");
		expect(JSON.stringify(cleared.components)).toContain("alert:silence:");
		expect(JSON.stringify(cleared.components)).not.toContain("alert:unsilence:");
	});
});
