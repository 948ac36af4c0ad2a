import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bothStateBackends } from "../alerts/state-database.ts";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import { postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { cardsTitled, embedDescription as description, embedTitle as title } from "../support/cards.ts";
import { freePort } from "../support/proc.ts";

const CHANNEL = "400000000000000001";
/**
 * alerts.regroupMinutes in this test: 9 s. A re-fire reaches opsbot 1-3 s after the resolution it follows
 * (AlertManager's 1 s group_interval here, then the webhook), well inside it; the new card waits it out.
 */
const REGROUP_MS = 9_000;

/** Flapping through the shipped process, fired and resolved through a real AlertManager, on both stores. */
describe.each(bothStateBackends("opsbot_flapping"))(
	"a flapping group (%s store, npm start's process, real AlertManager)",
	(_store, env) => {
		let double: DiscordDouble;
		let alertmanager: TestAlertManager;
		let bot: TestBot;
		const token = randomBytes(24).toString("hex");

		beforeAll(async () => {
			const port = await freePort();
			[double, alertmanager] = await Promise.all([
				startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } }),
				// Each change of the group is sent a group_interval after the one before: 1 s, not the 2 s default.
				startAlertManager({ webhookUrl: `http://127.0.0.1:${port}/alerts`, bearerToken: token, groupInterval: "1s" }),
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
  regroupMinutes: ${REGROUP_MS / 60_000}
`,
				{ WEBHOOK_TOKEN: token, ...(await env()) },
			);
		});
		afterAll(async () => {
			await bot?.stop();
			await alertmanager?.stop();
			await double?.close();
		});

		const byTitle = (re: RegExp) => cardsTitled(double, CHANNEL, re);
		const labels = { alertname: "Flappy", severity: "warning", env: "production" };
		const fire = () => postAlerts(alertmanager.url, [{ labels }]);
		const resolve = () =>
			postAlerts(alertmanager.url, [{ labels, endsAt: new Date(Date.now() - 1_000).toISOString() }]);
		const shows = (id: string, test: (m: StoredMessage) => boolean) =>
			double.waitFor(() => {
				const m = double.messages.get(id);
				return m && test(m) ? m : undefined;
			}, 30_000);

		it("re-opens its card on a re-fire within regroupMinutes, counted; after it, a new card links the old", async () => {
			await fire();
			const card = await double.waitFor(() => byTitle(/^🟠 WARNING · Flappy · production$/)[0], 30_000);
			await resolve();
			await shows(card.id, (m) => title(m).startsWith("✅"));
			await fire();
			const reopened = await shows(card.id, (m) => title(m).startsWith("🟠"));
			expect(description(reopened)).toContain("🔁 flapped 1× in the last hour");
			await resolve();
			await shows(card.id, (m) => title(m).startsWith("✅"));
			// opsbot took the resolution before the card showed it.
			const resolvedAt = Date.now();
			expect(byTitle(/Flappy/)).toHaveLength(1);

			// Past the window: a new episode, a new card, with a link to the one before.
			await new Promise((r) => setTimeout(r, Math.max(0, resolvedAt + REGROUP_MS + 1_000 - Date.now())));
			await fire();
			const next = await double.waitFor(
				() => byTitle(/^🟠 WARNING · Flappy · production$/).find((m) => m.id !== card.id),
				30_000,
			);
			expect(description(next)).not.toContain("flapped");
			expect(JSON.stringify(next.components)).toContain(
				`https://discord.com/channels/${double.guildId}/${CHANNEL}/${card.id}`,
			);
			expect(title(double.messages.get(card.id))).toBe("✅ RESOLVED · Flappy · production");
		});
	},
);
