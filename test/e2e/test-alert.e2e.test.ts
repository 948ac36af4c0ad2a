import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { runOpsbotCli, runOpsbotInProcess } from "../support/cli.ts";

const ONCALL = "300000000000000001";
const ADMINS = "300000000000000002";
const WEBHOOK_TOKEN = "t".repeat(32);

/** `opsbot test-alert` (bin/opsbot.js) -> the shipped bot's webhook -> the double, then resolved by the CLI. */
describe("opsbot test-alert through the running bot", () => {
	let double: DiscordDouble;
	let bot: TestBot;
	let env: Record<string, string>;
	let general: string;
	let critical: string;

	beforeAll(async () => {
		double = await startDiscordDouble({
			guild: {
				channels: [
					{ id: "400000000000000001", name: "alerts" },
					{ id: "400000000000000002", name: "critical" },
				],
				roles: [
					{ id: ONCALL, name: "oncall" },
					{ id: ADMINS, name: "admins" },
				],
			},
		});
		[general, critical] = double.channelIds as [string, string];
		const yaml =
			`discord: { guildId: "${double.guildId}", opsChannels: ["${general}"], roles: { oncall: ` +
			`"${ONCALL}", admins: "${ADMINS}" } }
access: { commands: { alerts: [admins] }, actions: { alert.ack: [oncall] } }
environments:
  production: { http: [{ name: website, url: "http://127.0.0.1:1/" }] }
alerts:
  defaultChannel: "${general}"
  routes:
    - { match: { severity: critical }, channel: "${critical}", mentionRole: "${ONCALL}" }
`;
		bot = await startTestBot(double, yaml, { WEBHOOK_TOKEN });
		// The CLI reads the same ops file the bot runs (its port and stateDir filled in by startTestBot).
		const dir = mkdtempSync(join(tmpdir(), "opsbot-test-alert-"));
		const port = new URL(bot.webhookUrl!).port;
		writeFileSync(
			join(dir, "opsbot.yaml"),
			`${yaml.replace("alerts:\n", `alerts:\n  listen: { host: 127.0.0.1, port: ${port} }\n`)}stateDir: ${bot.stateDir}\n`,
		);
		env = {
			OPSBOT_CONFIG: join(dir, "opsbot.yaml"),
			DISCORD_TOKEN: "double-token",
			DISCORD_APPLICATION_ID: double.applicationId,
			WEBHOOK_TOKEN,
			...bot.stateEnv,
		};
	});
	afterAll(async () => {
		await bot?.stop();
		await double?.close();
	});

	it("posts a group marked TEST to the channel --channel names, at --severity, resolves it, and logs both", {
		timeout: 60_000,
	}, async () => {
		const run = await runOpsbotCli(
			["test-alert", "--channel", critical, "--severity", "critical", "--resolve-after", "1"],
			env,
			40_000,
		);

		expect(run.code, run.stderr).toBe(0);
		expect(run.stdout).toContain(`[OK] Test alert sent and resolved`);
		const message = await double.waitFor(
			() => double.channelMessages(critical).find((m) => JSON.stringify(m.embeds).includes("TEST")),
			15_000,
		);
		// The firing post mentioned the route's role (the resolved message no longer does).
		const firing = double.requests.find((r) => r.method === "POST" && r.path === `/channels/${critical}/messages`);
		expect(String((firing?.body as { content?: string } | undefined)?.content)).toContain(`<@&${ONCALL}>`);
		expect(JSON.stringify(message.embeds)).toContain("opsbot_test");
		expect(double.channelMessages(general)).toEqual([]);
		await double.waitFor(() => /resolved/i.test(JSON.stringify(double.messages.get(message.id)?.embeds)), 15_000);
		// A critical group's thread opens under its card at once (the test also checks opsbot may start
		// threads there), and is archived once the resolution is posted in it.
		await double.waitFor(() => double.archived(message.id) || undefined, 30_000);
		expect(double.channelMessages(message.id).map((m) => m.content)).toEqual([
			expect.stringMatching(/^Fired: 1 alert /),
			expect.stringMatching(/^Episode resolved after /),
		]);
		const logged = await bot.actionLog.recent(5, { action: "alert.test" });
		expect(logged.map((r) => [r.result, r.details?.step, r.target])).toEqual([
			["ok", "resolved", critical],
			["ok", "firing", critical],
		]);
	});

	it("refuses a channel no route reaches, naming the ones that are, and sends nothing", async () => {
		const before = double.messages.size;

		const run = await runOpsbotInProcess(["test-alert", "--channel", "400000000000000999"], env);

		expect(run.code).toBe(64);
		expect(run.stderr).toContain(
			`No route sends a warning test alert to channel 400000000000000999. Channels alerts reach: ${general}, ${critical}`,
		);
		expect(double.messages.size).toBe(before);
	});

	it("says when the token is not the bot's, and when no bot answers at the webhook", async () => {
		const wrongToken = await runOpsbotInProcess(["test-alert"], { ...env, WEBHOOK_TOKEN: "x".repeat(32) });
		expect(wrongToken.code).toBe(64);
		expect(wrongToken.stderr).toContain(
			"refused the webhook token: this WEBHOOK_TOKEN is not the one the bot started with",
		);

		const dir = mkdtempSync(join(tmpdir(), "opsbot-test-alert-"));
		writeFileSync(join(dir, "opsbot.yaml"), readFileSync(env.OPSBOT_CONFIG!, "utf8").replace(/port: \d+/, "port: 1"));
		const nobody = await runOpsbotInProcess(["test-alert"], { ...env, OPSBOT_CONFIG: join(dir, "opsbot.yaml") });
		expect(nobody.code).toBe(69);
		expect(nobody.stderr).toContain(
			"Nothing answers at http://127.0.0.1:1/alerts: is the bot running (npm start) with this config?",
		);
	});

	it("/alerts test (admins only) sends the same TEST group through the webhook and resolves it", {
		timeout: 60_000,
	}, async () => {
		const options = [
			{
				type: 1,
				name: "test",
				options: [
					{ name: "severity", type: 3, value: "warning" },
					{ name: "resolve_after", type: 4, value: 1 },
				],
			},
		];
		const before = double.channelMessages(general).length;

		const refused = await double.sendInteraction({
			kind: "command",
			name: "alerts",
			options,
			user: { id: "200000000000000005", roles: [ONCALL] },
		});
		await refused.response(10_000);
		await double.waitFor(
			() => double.originalMessage(refused.id)?.content || double.originalMessage(refused.id)?.embeds.length,
			10_000,
		);
		expect(double.channelMessages(general)).toHaveLength(before);

		const sent = await double.sendInteraction({
			kind: "command",
			name: "alerts",
			options,
			user: { id: "200000000000000006", username: "root-admin", roles: [ADMINS] },
		});
		await sent.response(10_000);
		const reply = await double.waitFor(
			() => double.originalMessage(sent.id)?.embeds[0] as { title?: string; description?: string } | undefined,
			10_000,
		);
		expect(reply.title).toBe("Test alert sent");
		expect(reply.description).toContain(`<#${general}>`);
		const message = await double.waitFor(
			() =>
				double
					.channelMessages(general)
					.slice(before)
					.find((m) => JSON.stringify(m.embeds).includes("TEST")),
			15_000,
		);
		expect(JSON.stringify(message.embeds)).toContain("root");
		await double.waitFor(() => /resolved/i.test(JSON.stringify(double.messages.get(message.id)?.embeds)), 15_000);
		// The bot logs the resolved step once its webhook answered, which may come after the edit reached Discord.
		await vi.waitFor(
			async () => {
				const logged = await bot.actionLog.recent(2, { action: "alert.test" });
				expect(logged.map((r) => [r.actor.username, r.details?.step])).toEqual([
					["root-admin", "resolved"],
					["root-admin", "firing"],
				]);
			},
			{ timeout: 10_000, interval: 50 },
		);
	});
});
