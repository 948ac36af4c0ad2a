import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { bothStateBackends } from "../alerts/state-database.ts";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { cardsTitled, embedDescription as description, embedTitle as title } from "../support/cards.ts";
import { freePort } from "../support/proc.ts";

const CHANNEL = "400000000000000001";

/**
 * Reconciliation through the shipped process against a real AlertManager, on both stores: webhooks are
 * lost on purpose (AlertManager pointed at a dead port, its resolution switched off while the bot is
 * stopped) and opsbot finds out by asking AlertManager. The environment's first AlertManager URL is a
 * dead port too: its HA peer answers.
 */
describe.each(bothStateBackends("opsbot_reconcile"))(
	"reconciliation with AlertManager (%s store, npm start's process, real AlertManager)",
	(_store, env) => {
		let double: DiscordDouble;
		let alertmanager: TestAlertManager;
		let bot: TestBot;
		let opsYaml: string;
		let botEnv: Record<string, string>;
		let webhookUrl: string;
		let deadUrl: string;
		const token = randomBytes(24).toString("hex");

		beforeAll(async () => {
			const port = await freePort();
			webhookUrl = `http://127.0.0.1:${port}/alerts`;
			// Nothing listens here: what AlertManager sends there is lost, and an AlertManager "there" never answers.
			deadUrl = `http://127.0.0.1:${await freePort()}`;
			[double, alertmanager] = await Promise.all([
				startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } }),
				startAlertManager({ webhookUrl: `${deadUrl}/alerts`, bearerToken: token }),
			]);
			opsYaml = `discord: { guildId: "${double.guildId}" }
environments:
  production:
    alertmanager: { url: "${deadUrl}", peers: ["${alertmanager.url}"], timeoutMs: 1000 }
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-reconcile-state-"))}
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
  # grace 3 s: above this AlertManager's group_wait (1 s), so its own webhooks are never "found".
  # settle 0: this AlertManager started seconds ago, and the test knows it lost no alerts.
  reconcile: { intervalSeconds: 1, graceSeconds: 3, alertmanagerSettleSeconds: 0, receivers: [opsbot] }
`;
			botEnv = { WEBHOOK_TOKEN: token, ...(await env()) };
			bot = await startTestBot(double, opsYaml, botEnv);
		});
		afterAll(async () => {
			await bot?.stop();
			await alertmanager?.stop();
			await double?.close();
		});

		const byTitle = (re: RegExp) => cardsTitled(double, CHANNEL, re);

		it("posts an alert whose webhook was lost, marked found, once even after AlertManager's webhook came", async () => {
			const labels = { alertname: "LostWebhook", severity: "warning", env: "production" };
			await postAlerts(alertmanager.url, [{ labels, annotations: { summary: "queue stuck" } }]);

			const message = await double.waitFor(() => byTitle(/^🟠 WARNING · LostWebhook · production$/)[0], 30_000);
			expect(description(message)).toContain(
				"🔎 found by reconciliation: AlertManager holds it, its webhook never came",
			);
			await bot.waitForLog(
				(l) => l.msg === "found an alert group by reconciliation: AlertManager holds it but its webhook never arrived",
			);

			// AlertManager mended: its webhook for the same alerts is a duplicate, not a second message.
			await alertmanager.reconfigure({ webhookUrl, bearerToken: token });
			await bot.waitForLog(
				(l) => l.msg === "alert group accepted" && l.groupKey === '{}:{alertname="LostWebhook"}',
				30_000,
			);
			expect(byTitle(/LostWebhook/)).toHaveLength(1);
		});

		it("resolves a group whose resolution was lost while the bot was down: AlertManager no longer has it", async () => {
			await alertmanager.reconfigure({ webhookUrl, bearerToken: token });
			const labels = { alertname: "GoneWhileDown", severity: "warning", env: "production" };
			await postAlerts(alertmanager.url, [{ labels }]);
			const message = await double.waitFor(() => byTitle(/^🟠 WARNING · GoneWhileDown · production$/)[0], 30_000);
			expect(description(message)).not.toContain("found by reconciliation");

			await bot.stop();
			// AlertManager will not send the resolution ("sometimes AlertManager does not send resolved").
			await alertmanager.reconfigure({ webhookUrl, bearerToken: token, sendResolved: false });
			await postAlerts(alertmanager.url, [{ labels, endsAt: new Date(Date.now() - 1_000).toISOString() }]);
			bot = await startTestBot(double, opsYaml, botEnv);

			const resolved = await double.waitFor(
				() => (title(double.messages.get(message.id)).startsWith("✅") ? double.messages.get(message.id) : undefined),
				30_000,
			);
			expect(title(resolved)).toBe("✅ RESOLVED · GoneWhileDown · production");
			expect(description(resolved)).toContain("resolved \\(AlertManager no longer holds it\\)");
			// Only the Timeline button (the episode's history for the postmortem) stays on a resolved card.
			expect(JSON.stringify(resolved.components).match(/"alert:[a-z]+/g)).toEqual(['"alert:timeline']);
			expect(byTitle(/GoneWhileDown/)).toHaveLength(1);
		});

		it("says on /readyz and /metrics when each AlertManager of the cluster last answered", async () => {
			type Readyz = {
				alertmanagers: { url: string; environments: string[]; lastAnswerAt: string | null; state: string }[];
			};
			// The bot may have just restarted: wait for its first reconcile pass to have asked both members.
			const readyz = await vi.waitFor(
				async () => {
					const body = (await (await fetch(`${bot.webhookUrl}/readyz`)).json()) as Readyz;
					if (body.alertmanagers.some((member) => member.state === "not asked yet")) throw new Error("not asked yet");
					return body;
				},
				{ timeout: 15_000, interval: 100 },
			);
			const [dead, live] = readyz.alertmanagers;
			expect(dead).toMatchObject({ url: deadUrl, environments: ["production"], lastAnswerAt: null });
			expect(dead?.state).toMatch(/^not answering: AlertManager is unavailable: connection refused/);
			expect(live).toMatchObject({ url: alertmanager.url, environments: ["production"], state: "answering" });
			expect(Date.now() - Date.parse(live?.lastAnswerAt ?? "")).toBeLessThan(60_000);

			const metrics = await (await fetch(`${bot.webhookUrl}/metrics`)).text();
			expect(metrics).toContain(`opsbot_alertmanager_up{url="${deadUrl}",environments="production"} 0`);
			expect(metrics).toContain(`opsbot_alertmanager_up{url="${alertmanager.url}",environments="production"} 1`);
			expect(metrics).toMatch(
				new RegExp(
					`opsbot_alertmanager_last_answer_timestamp_seconds\\{url="${alertmanager.url}",environments="production"\\} \\d`,
				),
			);
		});
	},
);
