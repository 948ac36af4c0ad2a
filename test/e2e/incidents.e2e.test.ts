import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshStateDatabase } from "../alerts/state-database.ts";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import { postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { runOpsbotCli, runOpsbotInProcess } from "../support/cli.ts";
import { freePort } from "../support/proc.ts";
import { fakeDocker, startSshd, type TestSshd } from "../support/sshd.ts";

const ONCALL = "300000000000000001";
const CHANNEL = "400000000000000001";
const oncall = { id: "200000000000000011", username: "olivia", roles: [ONCALL] };
const outsider = { id: "200000000000000013", username: "otto", roles: [] };

const restartSteps = Array.from({ length: 14 }, (_, i) => `api: step ${i + 1}/14 done`);
const restartOutput = `api\n${restartSteps.join("\n")}\n`;

type Embed = { title?: string; description?: string; fields?: { name: string; value: string }[] };

// The history of an episode, from the webhook and the buttons to /alerts, the Timeline button and the
// CLI, through the shipped process: real AlertManager (webhook and silences), real sshd, the Discord double.
describe.each(["SQLite", "PostgreSQL"])("incident history through the shipped bot (%s store)", (storeName) => {
	let double: DiscordDouble;
	let bot: TestBot;
	let alertmanager: TestAlertManager;
	let sshd: TestSshd;
	let cliEnv: Record<string, string>;
	const token = randomBytes(24).toString("hex");

	beforeAll(async () => {
		[double, sshd] = await Promise.all([
			startDiscordDouble({
				guild: { channels: [{ id: CHANNEL, name: "alerts" }], roles: [{ id: ONCALL, name: "oncall" }] },
			}),
			startSshd(),
		]);
		// A restart that says more than its thread post shows: the post attaches all of it.
		fakeDocker(sshd.binDir, "2026-12-06T09:00:00Z api listening on :8080\n", undefined, { restartOutput });
		// One AlertManager sends the webhooks and holds the silences: the bot's port is chosen first.
		const port = await freePort();
		alertmanager = await startAlertManager({ webhookUrl: `http://127.0.0.1:${port}/alerts`, bearerToken: token });
		const stateDir = mkdtempSync(join(tmpdir(), "opsbot-incidents-"));
		const ops = `discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}" } }
access:
  commands: { alerts: [oncall] }
  actions: { alert.ack: [oncall], alert.silence: [oncall], alert.restart: [oncall], alert.logs: [oncall] }
environments:
  production:
    alertmanager: { url: "${alertmanager.url}" }
    ssh:
      host: 127.0.0.1
      port: ${sshd.port}
      user: root
      keyFileEnv: SSH_KEY
      hostKey: "${sshd.hostKey}"
      containers: [api]
defaultEnvironment: production
stateDir: ${stateDir}
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
  # A silenced group's end is never notified: reconciliation resolves it once AlertManager no longer holds it.
  reconcile: { intervalSeconds: 1, graceSeconds: 2, alertmanagerSettleSeconds: 0 }
`;
		const state: Record<string, string> =
			storeName === "PostgreSQL" ? { STATE_DATABASE_URL: await freshStateDatabase("opsbot_incidents") } : {};
		bot = await startTestBot(double, ops, { WEBHOOK_TOKEN: token, SSH_KEY: sshd.privateKeyPath, ...state });
		const opsFile = join(stateDir, "opsbot.yaml");
		writeFileSync(opsFile, ops);
		cliEnv = { OPSBOT_CONFIG: opsFile, SSH_KEY: sshd.privateKeyPath, ...bot.stateEnv };
	}, 120_000);
	afterAll(async () => {
		await alertmanager?.stop();
		await bot?.stop();
		await Promise.all([double?.close(), sshd?.stop()]);
	});

	const title = (m: StoredMessage | undefined) => String((m?.embeds[0] as Embed | undefined)?.title);
	const card = () => double.channelMessages(CHANNEL).find((m) => /\bApiDown\b/.test(title(m)));
	const customId = (m: StoredMessage, prefix: string) =>
		JSON.stringify(m.components).match(new RegExp(`${prefix}[0-9a-f]{32}(:\\d+)?`))?.[0] ?? "";
	async function press(id: string, message: StoredMessage, user = oncall, values?: string[]) {
		const sent = values
			? await double.sendInteraction({ kind: "select", customId: id, values, messageId: message.id, user })
			: await double.sendInteraction({ kind: "button", customId: id, messageId: message.id, user });
		await sent.response();
		return sent;
	}
	async function command(name: string, sub: string, options: { name: string; value: string }[] = [], user = oncall) {
		const sent = await double.sendInteraction({
			kind: "command",
			name,
			options: [{ type: 1, name: sub, options: options.map((o) => ({ ...o, type: 3 })) }],
			user,
		});
		await sent.response(10_000);
		return double.waitFor(
			() => double.originalMessage(sent.id)?.embeds[0] ?? (double.originalMessage(sent.id)?.content || undefined),
			10_000,
		);
	}

	it("records who did what in the episode, lists it under /alerts firing, and exports its timeline when it resolves", {
		timeout: 120_000,
	}, async () => {
		const labels = { alertname: "ApiDown", severity: "critical", container: "api", env: "production" };
		await postAlerts(alertmanager.url, [{ labels }]);
		const message = await double.waitFor(card, 30_000);
		// Buttons act on the store's current card: wait until the bot has recorded this one as posted. Polled with the
		// CLI's own code in this process: a spawned run per poll cost ~0.8 s of CPU (the journey spawns it below).
		await double.waitFor(async () => {
			const held = await runOpsbotInProcess(["alerts", "--json"], cliEnv);
			return held.stdout.includes(`"messageId": "${message.id}"`) || undefined;
		}, 30_000);

		await press(customId(message, "alert:ack:"), message);
		await double.waitFor(() => (title(double.messages.get(message.id)).includes("ACKED") ? true : undefined), 30_000);
		const shown = await press(customId(message, "alert:restart:"), double.messages.get(message.id)!);
		const confirmation = await double.waitFor(() =>
			double.originalMessage(shown.id)?.content ? double.originalMessage(shown.id) : undefined,
		);
		const confirm = JSON.stringify(confirmation.components).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0];
		await press(confirm, confirmation);
		await double.waitFor(() => double.messages.get(confirmation.id)?.content.startsWith("🔁") || undefined, 20_000);
		const logs = await press(customId(message, "alert:logs:"), double.messages.get(message.id)!);
		await double.waitFor(() => double.originalMessage(logs.id)?.embeds.length || undefined, 15_000);

		const firing = (await command("alerts", "firing", [{ name: "severity", value: "critical" }])) as Embed;
		const refused = await command("alerts", "firing", [], outsider);

		expect(firing.title).toBe("Firing now: 1 group (1 critical)");
		expect(firing.description).toContain("production: 1 critical");
		expect(firing.description).toContain("acknowledged by olivia");
		expect(firing.description).toContain(`/${CHANNEL}/${message.id})`);
		expect(JSON.stringify(refused)).not.toContain("ApiDown");

		await press(
			customId(double.messages.get(message.id)!, "alert:silence:"),
			double.messages.get(message.id)!,
			oncall,
			["1"],
		);
		await double.waitFor(
			() => (title(double.messages.get(message.id)).includes("SILENCED") ? true : undefined),
			15_000,
		);
		await postAlerts(alertmanager.url, [{ labels, endsAt: new Date(Date.now() - 1_000).toISOString() }]);
		const resolved = await double.waitFor(() => {
			const m = double.messages.get(message.id);
			return title(m).startsWith("✅") && customId(m!, "alert:timeline:") ? m : undefined;
		}, 30_000);

		const pressed = await press(customId(resolved, "alert:timeline:"), resolved);
		const answer = await double.waitFor(() => {
			const m = double.originalMessage(pressed.id);
			return m?.files.length ? m : undefined;
		}, 15_000);
		const markdown = answer.files[0]!.data.toString("utf8");

		expect(answer.flags & 64).toBe(64); // only the presser sees it
		expect(answer.files[0]!.name).toBe("timeline-ApiDown-1.md");
		expect(title(answer)).toBe("Timeline: ApiDown (production), episode 1");
		const rows = markdown.split("\n").filter((l) => l.startsWith("| 20"));
		expect(rows.map((r) => r.split(" | ").slice(2).join(" | "))).toEqual([
			expect.stringMatching(/^AlertManager \| Fired: 1 alert \(container=api\) \|$/),
			"olivia | Acknowledged |",
			"olivia | Restarted container api on 127.0.0.1 (production) |",
			expect.stringMatching(/^olivia \| Opened the logs of api \(production\) from .* UTC to .* UTC \|$/),
			expect.stringMatching(
				new RegExp(
					"^olivia \\| Silenced until .* UTC \\(silence [0-9a-f-]{36}; " +
						"alertname=ApiDown, container=api, env=production, severity=critical\\) \\|$",
				),
			),
			expect.stringMatching(/^AlertManager \| Episode resolved after .*: 1 alert \(container=api\) \|$/),
		]);
		expect(markdown).toContain(`- Card: <https://discord.com/channels/${double.guildId}/${CHANNEL}/${message.id}>`);
		expect(markdown).toContain(": alertname=ApiDown, container=api, env=production, severity=critical");
		expect(markdown).toMatch(/## Command output\n\n.*Restarted container api.*\n\n```text\napi\n/);
		expect(markdown).toContain(`\`\`\`text\n${restartOutput}\`\`\``);

		// A critical group's thread opened under its card at once; each event went there as it happened,
		// and the thread was archived once the resolution was posted.
		await double.waitFor(() => double.archived(message.id) || undefined, 30_000);
		const threadMessages = double.channelMessages(message.id);
		const thread = threadMessages.map((m) => m.content.replace(/ · <t:\d+:T>/, ""));
		expect(thread.slice(0, 3)).toEqual([
			"Fired: 1 alert \\(container=api\\)",
			"**olivia** · Acknowledged",
			"**olivia** · Restarted container api on 127.0.0.1 \\(production\\)\n" +
				`\`\`\`\napi\n${restartSteps.slice(0, 9).join("\n")}\n\`\`\`\n(output cut: all of it is in restart-output.txt)`,
		]);
		// The post shows the first 10 lines; all 15 come with it as a file.
		expect(threadMessages[2]!.files.map((f) => [f.name, f.data.toString("utf8")])).toEqual([
			["restart-output.txt", restartOutput],
		]);
		expect(threadMessages.slice(3).flatMap((m) => m.files)).toEqual([]);
		expect(thread[3]).toMatch(/^\*\*olivia\*\* · Opened the logs of api/);
		expect(thread[4]).toMatch(/^\*\*olivia\*\* · Silenced until/);
		expect(thread[5]).toMatch(/^Episode resolved after/);
		expect(thread).toHaveLength(6);

		const history = (await command("alerts", "history", [{ name: "since", value: "1h" }])) as Embed;
		expect(history.title).toBe("Alert history: 1 episode");
		expect(history.fields).toContainEqual({ name: "Acknowledged", value: "1 of 1", inline: true });

		// The same timeline from the terminal, by the card's link, and the history as JSON.
		const link = `https://discord.com/channels/${double.guildId}/${CHANNEL}/${message.id}`;
		const [cli, cliHistory] = await Promise.all([
			runOpsbotCli(["incident", link, "--markdown"], cliEnv),
			runOpsbotCli(["alerts", "--history", "--since", "1h", "--json"], cliEnv),
		]);
		expect(cli.stderr).toBe("");
		const withoutExportTime = (text: string) => text.replace(/_Exported by opsbot at .*_/, "");
		expect(withoutExportTime(cli.stdout)).toBe(withoutExportTime(markdown));
		expect(JSON.parse(cliHistory.stdout)).toMatchObject({
			total: 1,
			acknowledged: 1,
			resolved: 1,
			byName: [{ name: "ApiDown", episodes: 1, firing: 0 }],
		});
	});

	it("posts the events as replies on the card, said once in the log, when Discord refuses the thread", {
		timeout: 90_000,
	}, async () => {
		const labels = { alertname: "QueueSlow", severity: "warning", env: "production" };
		await postAlerts(alertmanager.url, [{ labels }]);
		const message = await double.waitFor(
			() => double.channelMessages(CHANNEL).find((m) => /\bQueueSlow\b/.test(title(m))),
			30_000,
		);
		await double.waitFor(async () => {
			const held = await runOpsbotInProcess(["alerts", "--json"], cliEnv);
			return held.stdout.includes(`"messageId": "${message.id}"`) || undefined;
		}, 30_000);
		// A warning opens no thread by itself; the first action does, and Discord refuses it.
		double.failNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages/${message.id}/threads`, status: 403 });

		await press(customId(message, "alert:ack:"), message);
		// The posts Discord took as replies to the card.
		const replies = () =>
			double.requests.filter(
				(r) =>
					r.method === "POST" &&
					r.path === `/channels/${CHANNEL}/messages` &&
					r.status === 200 &&
					(r.body as { message_reference?: { message_id?: string } }).message_reference?.message_id === message.id,
			);
		await double.waitFor(() => replies()[0], 30_000);
		const unack = await press(
			customId(double.messages.get(message.id)!, "alert:unack:"),
			double.messages.get(message.id)!,
		);
		await unack.response();
		await double.waitFor(() => replies()[1], 30_000);

		const said = replies().map((r) => String((r.body as { content?: string }).content));
		expect(said[0]).toMatch(/^\*\*olivia\*\* · Acknowledged · <t:\d+:T>$/);
		expect(said[1]).toMatch(/^\*\*olivia\*\* · Took the acknowledgement back · <t:\d+:T>$/);
		expect(double.channelMessages(message.id)).toEqual([]);
		expect(
			bot
				.logs()
				.filter((l) => l.msg === "could not start a thread on the alert's card; its events go as replies on the card"),
		).toHaveLength(1);
	});

	it("pages /alerts firing with Previous and Next, keeping its filters, for whoever ran it", {
		timeout: 90_000,
	}, async () => {
		const names = Array.from({ length: 11 }, (_, i) => `Pager${String(i).padStart(2, "0")}`);
		await postAlerts(
			alertmanager.url,
			names.map((alertname) => ({ labels: { alertname, severity: "info", env: "staging" } })),
		);
		const run = async () => {
			const sent = await double.sendInteraction({
				kind: "command",
				name: "alerts",
				options: [{ type: 1, name: "firing", options: [{ name: "name", type: 3, value: "pager" }] }],
				user: oncall,
			});
			await sent.response(10_000);
			return double.waitFor(() => {
				const m = double.originalMessage(sent.id);
				return m?.embeds.length ? m : undefined;
			}, 10_000);
		};
		// AlertManager flushes the groups after its group_wait: ask until opsbot holds all eleven.
		let first = await run();
		await double.waitFor(async () => {
			first = await run();
			return title(first) === "Firing now: 11 groups" || undefined;
		}, 30_000);
		const footer = (m: StoredMessage) => String((m.embeds[0] as { footer?: { text?: string } }).footer?.text);
		const next = JSON.stringify(first.components).match(/alerts:page:[A-Za-z0-9_-]+:10:next/)![0];

		expect(footer(first)).toBe("Groups 1-10 of 11, worst severity first, then newest.");
		await press(next, first);
		const paged = await double.waitFor(() => {
			const m = double.messages.get(first.id);
			return m && footer(m).startsWith("Groups 11-11") ? m : undefined;
		}, 15_000);
		expect((paged.embeds[0] as Embed).description).toContain('Only name containing "pager".');
		const previous = JSON.stringify(paged.components).match(/alerts:page:[A-Za-z0-9_-]+:0:prev/)![0];
		const stranger = await press(previous, paged, { ...oncall, id: "200000000000000014", username: "sam" });
		await double.waitFor(() => double.interactionResponse(stranger.id) ?? undefined, 10_000);
		expect(footer(double.messages.get(first.id)!)).toMatch(/^Groups 11-11/);
		await press(previous, paged);
		await double.waitFor(() => footer(double.messages.get(first.id)!).startsWith("Groups 1-10") || undefined, 15_000);
	});
});
