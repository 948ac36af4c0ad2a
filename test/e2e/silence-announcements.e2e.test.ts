import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, type RecordedRequest, startDiscordDouble } from "../discord-double/index.ts";
import { amtool, postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { freePort } from "../support/proc.ts";

const ONCALL = "300000000000000201";
const CHANNEL = "400000000000000201";
const DB_CHANNEL = "400000000000000202";
const token = randomBytes(24).toString("hex");
const oncall = { id: "200000000000000211", username: "olivia", roles: [ONCALL] };

type Embed = { title?: string; description?: string };

describe("no silence goes unnoticed: announcements and reminders through the message outbox", () => {
	let double: DiscordDouble;
	let bot: TestBot;
	let alertmanager: TestAlertManager;
	let opsYaml: string;

	beforeAll(async () => {
		double = await startDiscordDouble({
			guild: {
				channels: [
					{ id: CHANNEL, name: "alerts" },
					{ id: DB_CHANNEL, name: "db-alerts" },
				],
				roles: [{ id: ONCALL, name: "oncall" }],
			},
		});
		const port = await freePort();
		opsYaml = `discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}" } }
access:
  commands: { silence: [oncall], maintenance: [oncall] }
  actions: { alert.silence: [oncall], silence.expire: [oncall], maintenance.create: [oncall] }
environments:
  production:
    alertmanager: { url: "http://127.0.0.1:${port}" }
defaultEnvironment: production
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-announce-"))}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
  routes: [{ match: { service: db }, channel: "${DB_CHANNEL}" }]
  silenceWatch: { intervalSeconds: 1 }
  silences: { remindBeforeMinutes: 15 }
`;
		bot = await startTestBot(double, opsYaml, { WEBHOOK_TOKEN: token });
		alertmanager = await startAlertManager({ port, webhookUrl: `${bot.webhookUrl}/alerts`, bearerToken: token });
	});
	afterAll(async () => {
		await alertmanager?.stop();
		await bot?.stop();
		await double?.close();
	});

	const titled = (channel: string, title: string) =>
		double.channelMessages(channel).filter((m) => (m.embeds[0] as Embed | undefined)?.title === title);
	const mentioning = (channel: string, title: string, text: string) =>
		titled(channel, title).filter((m) => JSON.stringify(m.embeds).includes(text));
	const posts = (channel: string) =>
		double.requests.filter(
			(r: RecordedRequest) => r.method === "POST" && r.path === `/channels/${channel}/messages` && r.status === 200,
		);

	it("announces an amtool silence where it mutes, reminds on the card, each once across a restart", async () => {
		await postAlerts(alertmanager.url, [{ labels: { alertname: "DbReplicaLag", env: "production", service: "db" } }]);
		const card = await double.waitFor(
			() => double.channelMessages(DB_CHANNEL).find((m) => /DbReplicaLag/.test(String((m.embeds[0] as Embed).title))),
			20_000,
		);
		// Ends within the 15-minute reminder window, while its alert fires.
		const id = await amtool(alertmanager.url, [
			"silence",
			"add",
			"--author=dave",
			"--comment=replica rebuild",
			"--duration=10m",
			"alertname=DbReplicaLag",
		]);

		const announced = await double.waitFor(
			() => mentioning(DB_CHANNEL, "🔕 Silence made outside opsbot", id)[0],
			20_000,
		);
		const reminder = await double.waitFor(() => mentioning(DB_CHANNEL, "⏰ Silence ends soon", id)[0], 20_000);
		const reminderPost = posts(DB_CHANNEL).find((r) => JSON.stringify(r.body).includes("Silence ends soon"));
		await bot.stop();
		bot = await startTestBot(double, opsYaml, { WEBHOOK_TOKEN: token });
		// A later silence announced after the restart shows the announcer has run its passes since.
		const later = await amtool(alertmanager.url, [
			"silence",
			"add",
			"--author=erin",
			"--comment=later",
			"--duration=1h",
			"alertname=Later",
		]);
		await double.waitFor(() => mentioning(CHANNEL, "🔕 Silence made outside opsbot", later)[0], 20_000);

		expect(String((announced.embeds[0] as Embed).description)).toContain(
			'**dave** silenced `{alertname="DbReplicaLag"}`',
		);
		expect(JSON.stringify(announced.embeds)).toContain("replica rebuild");
		expect(reminderPost?.body).toMatchObject({ message_reference: { message_id: card.id } });
		expect(reminder.id).toBeTruthy();
		expect(mentioning(DB_CHANNEL, "🔕 Silence made outside opsbot", id)).toHaveLength(1);
		expect(mentioning(DB_CHANNEL, "⏰ Silence ends soon", id)).toHaveLength(1);
		expect(mentioning(CHANNEL, "🔕 Silence made outside opsbot", id)).toHaveLength(0);
	});

	it("announces a maintenance window when made, when it starts and when it ends, each once", async () => {
		const start = new Date(Date.now() + 4_000).toISOString();
		const sent = await double.sendInteraction({
			kind: "command",
			name: "maintenance",
			options: [
				{ name: "env", type: 3, value: "production" },
				{ name: "service", type: 3, value: "db" },
				{ name: "start", type: 3, value: start },
				{ name: "duration", type: 3, value: "30m" },
				{ name: "comment", type: 3, value: "failover drill" },
			],
			user: oncall,
		});
		await sent.response(10_000);
		const preview = await double.waitFor(() => {
			const m = double.originalMessage(sent.id);
			return m?.components.length ? m : undefined;
		}, 15_000);
		const confirm = JSON.stringify(preview.components).match(/maintenance:confirm:[A-Za-z0-9_-]+/)![0];
		await (
			await double.sendInteraction({ kind: "button", customId: confirm, messageId: preview.id, user: oncall })
		).response();
		const done = await double.waitFor(() => {
			const m = double.messages.get(preview.id);
			return m && /Maintenance window scheduled/.test(JSON.stringify(m.embeds)) ? m : undefined;
		}, 15_000);
		const id = JSON.stringify(done.embeds).match(/[0-9a-f]{8}-[0-9a-f-]{27}/)![0];

		await double.waitFor(() => mentioning(DB_CHANNEL, "🛠️ Maintenance window scheduled", id)[0], 20_000);
		await double.waitFor(() => mentioning(DB_CHANNEL, "🛠️ Maintenance window started", id)[0], 20_000);
		const expire = await double.sendInteraction({
			kind: "command",
			name: "silence",
			options: [{ type: 1, name: "expire", options: [{ name: "id", type: 3, value: id }] }],
			user: oncall,
		});
		await expire.response(10_000);
		const asked = await double.waitFor(() => {
			const m = double.originalMessage(expire.id);
			return m?.components.length ? m : undefined;
		}, 15_000);
		const yes = JSON.stringify(asked.components).match(/silence:expireconfirm:[A-Za-z0-9_-]+/)![0];
		await (
			await double.sendInteraction({ kind: "button", customId: yes, messageId: asked.id, user: oncall })
		).response();
		await double.waitFor(() => mentioning(DB_CHANNEL, "✅ Maintenance window ended", id)[0], 20_000);
		// Passes go on every second: wait for a later one to have run, then count.
		const marker = await amtool(alertmanager.url, [
			"silence",
			"add",
			"--author=x",
			"--comment=m",
			"--duration=1h",
			"alertname=Marker",
		]);
		await double.waitFor(() => mentioning(CHANNEL, "🔕 Silence made outside opsbot", marker)[0], 20_000);

		const windowPosts = (phase: string) => mentioning(DB_CHANNEL, `🛠️ Maintenance window ${phase}`, id).length;
		expect([windowPosts("scheduled"), windowPosts("started")]).toEqual([1, 1]);
		expect(mentioning(DB_CHANNEL, "✅ Maintenance window ended", id)).toHaveLength(1);
		expect(
			titled(DB_CHANNEL, "🔕 Silence made outside opsbot").filter((m) => JSON.stringify(m.embeds).includes(id)),
		).toEqual([]);
	});
});
