import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Events } from "discord.js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAlertRelay, type AlertRelay } from "../../src/alerts/relay.ts";
import { restSender } from "../../src/alerts/delivery.ts";
import { COMMANDS, COMPONENTS } from "../../src/commands/index.ts";
import { loadConfig } from "../../src/config.ts";
import { createContext } from "../../src/context.ts";
import { createDiscordClient } from "../../src/discord/client.ts";
import { createRouter } from "../../src/discord/router.ts";
import { expireSilence, getSilence } from "../../src/services/alertmanager.ts";
import { startDiscordDouble, type DiscordDouble, type StoredMessage } from "../discord-double/index.ts";
import { postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { freePort } from "../support/proc.ts";

const ONCALL = "300000000000000001";
const CHANNEL = "400000000000000001";
const oncall = { id: "200000000000000031", username: "olivia", roles: [ONCALL] };

/** main.ts's composition, in this process, with the silence watch's times shortened. */
async function startBot(double: DiscordDouble, opsYaml: string, env: Record<string, string>) {
	const path = join(mkdtempSync(join(tmpdir(), "opsbot-watch-")), "opsbot.yaml");
	writeFileSync(path, opsYaml);
	const config = loadConfig({ ...env, OPSBOT_CONFIG: path, DISCORD_TOKEN: "double-token", DISCORD_APPLICATION_ID: double.applicationId, DISCORD_API_URL: double.apiUrl }, "bot");
	const logs: Record<string, unknown>[] = [];
	const log = pino({ level: "debug" }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
	const { ctx, close } = createContext(config, log);
	const router = createRouter(COMMANDS, COMPONENTS, ctx);
	const client = createDiscordClient({ apiUrl: double.apiUrl, router, log });
	const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
	await client.login("double-token");
	await ready;
	// settleMs 0: this AlertManager started seconds ago, and the test knows it lost no alerts.
	const relay = (await startAlertRelay(config, client, log, ctx.services.alertState, restSender(client.rest), { silenceWatch: { intervalMs: 300, settleMs: 0 } })) as AlertRelay;
	return {
		logs,
		relay,
		async stop() {
			await relay.close();
			await router.drain();
			await client.destroy();
			await close();
		},
	};
}

describe("groups silenced from Discord follow AlertManager (real AlertManager, Discord double)", () => {
	let double: DiscordDouble;
	let alertmanager: TestAlertManager;
	let bot: Awaited<ReturnType<typeof startBot>>;
	const token = randomBytes(24).toString("hex");

	beforeAll(async () => {
		const port = await freePort();
		[double, alertmanager] = await Promise.all([
			startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }], roles: [{ id: ONCALL, name: "oncall" }] } }),
			startAlertManager({ webhookUrl: `http://127.0.0.1:${port}/alerts`, bearerToken: token }),
		]);
		bot = await startBot(
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
`,
			{ WEBHOOK_TOKEN: token },
		);
	});
	afterAll(async () => {
		await bot?.stop();
		await alertmanager?.stop();
		await double?.close();
	});

	const title = (m: StoredMessage | undefined) => String((m?.embeds[0] as { title?: string } | undefined)?.title ?? "");
	const description = (m: StoredMessage | undefined) => String((m?.embeds[0] as { description?: string } | undefined)?.description ?? "");
	const byTitle = (re: RegExp) => double.channelMessages(CHANNEL).filter((m) => re.test(title(m)));
	async function silenceFromDiscord(message: StoredMessage): Promise<string> {
		const selectId = JSON.stringify(message.components).match(/alert:silence:[0-9a-f]{32}/)![0];
		const sent = await double.sendInteraction({ kind: "select", customId: selectId, values: ["1"], messageId: message.id, user: oncall });
		await sent.response();
		const reply = await double.waitFor(() => [...double.messages.values()].find((m) => m.interactionId === sent.id && m.content)?.content, 10_000);
		await double.waitFor(() => description(double.messages.get(message.id)).includes("Silenced by"), 10_000);
		return reply.match(/silence `([0-9a-f-]{36})`/)![1]!;
	}

	it("turns the message resolved, green and without buttons, once the silenced alerts end in AlertManager", async () => {
		const labels = { alertname: "QueueStuck", severity: "warning", env: "production", queue: "mail" };
		await postAlerts(alertmanager.url, [{ labels }]);
		const message = await double.waitFor(() => byTitle(/^🔥 QueueStuck/)[0], 20_000);
		await silenceFromDiscord(message);

		await postAlerts(alertmanager.url, [{ labels, endsAt: new Date(Date.now() - 1_000).toISOString() }]);
		const resolved = await double.waitFor(() => (title(double.messages.get(message.id)).startsWith("✅") ? double.messages.get(message.id) : undefined), 20_000);

		expect(title(resolved)).toBe("✅ Resolved: QueueStuck");
		expect((resolved.embeds[0] as { color: number }).color).toBe(0x2ecc71);
		expect(resolved.components).toEqual([]);
		expect(byTitle(/QueueStuck/)).toHaveLength(1);
		expect(bot.logs.some((l) => l.msg === "every alert of a silenced group ended in AlertManager; marked resolved")).toBe(true);
	});

	it("shows the silence cleared when it is expired in AlertManager while the alert still fires", async () => {
		await postAlerts(alertmanager.url, [{ labels: { alertname: "DiskFilling", severity: "warning", env: "production" } }]);
		const message = await double.waitFor(() => byTitle(/^🔥 DiskFilling/)[0], 20_000);
		const silenceId = await silenceFromDiscord(message);

		await expireSilence(alertmanager.url, silenceId);
		const cleared = await double.waitFor(() => (!description(double.messages.get(message.id)).includes("Silenced by") ? double.messages.get(message.id) : undefined), 20_000);

		expect((await getSilence(alertmanager.url, silenceId)).status.state).toBe("expired");
		expect(title(cleared)).toMatch(/^🔥 DiskFilling/);
		expect(JSON.stringify(cleared.components)).toContain("alert:silence:");
		expect(JSON.stringify(cleared.components)).not.toContain("alert:unsilence:");
	});
});
