import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import {
	amtool,
	postAlerts,
	readSilence,
	readSilences,
	startAlertManager,
	type TestAlertManager,
} from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { runOpsbotCli } from "../support/cli.ts";
import { freePort } from "../support/proc.ts";

const ONCALL = "300000000000000101";
const INTERN = "300000000000000102";
const CHANNEL = "400000000000000101";
const token = randomBytes(24).toString("hex");
const oncall = { id: "200000000000000111", username: "olivia", roles: [ONCALL] };
const intern = { id: "200000000000000112", username: "ivan", roles: [INTERN] };

type Embed = { title?: string; description?: string; fields?: { name: string; value: string }[] };

describe("silences and maintenance windows end to end: Discord double, real AlertManager, amtool", () => {
	let double: DiscordDouble;
	let bot: TestBot;
	let alertmanager: TestAlertManager;
	// Accepts connections and never answers: AlertManager hung.
	let hung: Server;
	let opsYaml: string;

	beforeAll(async () => {
		hung = createServer(() => undefined);
		await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
		double = await startDiscordDouble({
			guild: {
				channels: [{ id: CHANNEL, name: "alerts" }],
				roles: [
					{ id: ONCALL, name: "oncall" },
					{ id: INTERN, name: "intern" },
				],
			},
		});
		// opsbot names AlertManager's address before AlertManager (whose webhook names opsbot's) starts.
		const port = await freePort();
		opsYaml = `discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}", intern: "${INTERN}" } }
access:
  commands: { silence: [oncall, intern], maintenance: [oncall] }
  actions:
    alert.silence: [oncall, intern]
    silence.extend: [oncall]
    silence.expire: [oncall]
    maintenance.create: [oncall]
  environments: { production: [oncall] }
environments:
  production:
    alertmanager: { url: "http://127.0.0.1:${port}" }
  staging:
    alertmanager: { url: "http://127.0.0.1:${port}" }
  hung:
    alertmanager: { url: "http://127.0.0.1:${(hung.address() as AddressInfo).port}", timeoutMs: 800 }
defaultEnvironment: production
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
  silences: { maxDuration: 2d }
`;
		bot = await startTestBot(double, opsYaml, { WEBHOOK_TOKEN: token });
		alertmanager = await startAlertManager({ port, webhookUrl: `${bot.webhookUrl}/alerts`, bearerToken: token });
	});
	afterAll(async () => {
		await alertmanager?.stop();
		await bot?.stop();
		await Promise.all([double?.close(), new Promise((resolve) => hung?.close(resolve))]);
	});

	let fired = 0;
	const byTitle = (re: RegExp) =>
		double.channelMessages(CHANNEL).find((m) => re.test(String((m.embeds[0] as Embed | undefined)?.title)));
	async function firing(
		alertname: string,
		alerts: Record<string, string>[],
	): Promise<{ name: string; card: StoredMessage }> {
		const name = `${alertname}${++fired}`;
		await postAlerts(
			alertmanager.url,
			alerts.map((labels) => ({ labels: { alertname: name, ...labels } })),
		);
		return { name, card: await double.waitFor(() => byTitle(new RegExp(`\\b${name}\\b`)), 20_000) };
	}
	const customId = (m: StoredMessage, prefix: string) =>
		JSON.stringify(m.components).match(new RegExp(`${prefix}[A-Za-z0-9_-]+`))?.[0] ?? "";
	const followUp = (interactionId: string) =>
		double.waitFor(
			() =>
				[...double.messages.values()].find((m) => m.interactionId === interactionId && (m.content || m.embeds.length)),
			15_000,
		);
	const original = (interactionId: string) =>
		double.waitFor(() => {
			const m = double.originalMessage(interactionId);
			return m && (m.content || m.embeds.length) ? m : undefined;
		}, 15_000);
	const embedText = (m: StoredMessage) => JSON.stringify(m.embeds);

	/** Opens the card's silence form; returns the modal's custom id and its prefilled fields. */
	async function openForm(card: StoredMessage, user: typeof oncall) {
		const select = await double.sendInteraction({
			kind: "select",
			customId: customId(card, "alert:silence:"),
			values: ["custom"],
			messageId: card.id,
			user,
		});
		const modal = (await select.response()).data as {
			custom_id: string;
			components: { components: { custom_id: string; value?: string }[] }[];
		};
		const fields = Object.fromEntries(
			modal.components.flatMap((row) => row.components.map((c) => [c.custom_id, c.value ?? ""])),
		);
		return { customId: modal.custom_id, fields };
	}
	async function submitForm(card: StoredMessage, user: typeof oncall, form: string, fields: Record<string, string>) {
		const submit = await double.sendInteraction({ kind: "modal", customId: form, fields, messageId: card.id, user });
		return followUp(submit.id);
	}
	async function press(message: StoredMessage, id: string, user: typeof oncall) {
		const sent = await double.sendInteraction({ kind: "button", customId: id, messageId: message.id, user });
		await sent.response();
		return sent;
	}
	async function command(name: string, options: unknown[], user = oncall) {
		const sent = await double.sendInteraction({ kind: "command", name, options: options as never, user });
		await sent.response(10_000);
		return { sent, reply: await original(sent.id) };
	}
	const sub = (name: string, options: Record<string, string>) => [
		{ type: 1, name, options: Object.entries(options).map(([n, value]) => ({ name: n, type: 3, value })) },
	];

	it("silences from a card: form, a preview warning of reach beyond the card, then Confirm", async () => {
		const { name, card } = await firing("ApiErrors", [
			{ env: "production", service: "api", instance: "a" },
			{ env: "production", service: "api", instance: "b" },
		]);
		await postAlerts(alertmanager.url, [{ labels: { alertname: `Latency${fired}`, env: "staging", service: "api" } }]);
		const before = (await readSilences(alertmanager.url)).length;

		const form = await openForm(card, oncall);
		const preview = await submitForm(card, oncall, form.customId, {
			duration: "90m",
			comment: "rolling back the api",
			matchers: 'service="api"',
		});
		const madeBeforeConfirm = (await readSilences(alertmanager.url)).length - before;
		const previewLook = { title: (preview.embeds[0] as Embed).title, text: embedText(preview) };
		const confirm = await press(preview, customId(preview, "silence:confirm:"), oncall);
		const done = await double.waitFor(() => {
			const m = double.messages.get(preview.id);
			return m && /Silence created/.test(embedText(m)) ? m : undefined;
		});
		const silenceId = embedText(done).match(/[0-9a-f]{8}-[0-9a-f-]{27}/)![0];
		const made = await readSilence(alertmanager.url, silenceId);

		expect(form.fields).toEqual({
			duration: "1h",
			comment: "",
			matchers: `{alertname="${name}", env="production", service="api"}`,
		});
		expect(previewLook.title).toBe("Silence preview · production: mutes 3 alerts now");
		expect(previewLook.text).toContain("1 of the 3 alerts it mutes now is not on this card.");
		expect(previewLook.text).toContain("It also reaches staging.");
		expect(madeBeforeConfirm).toBe(0);
		expect(confirm.id).toBeTruthy();
		expect(made).toMatchObject({
			status: { state: "active" },
			createdBy: `olivia (Discord ${oncall.id}) via opsbot`,
			comment: "rolling back the api",
			matchers: [{ name: "service", value: "api", isRegex: false, isEqual: true }],
		});
		expect(Date.parse(made.endsAt) - Date.parse(made.startsAt)).toBeGreaterThan(89 * 60_000);
		expect(Date.parse(made.endsAt) - Date.parse(made.startsAt)).toBeLessThan(91 * 60_000);
		await vi.waitFor(
			async () =>
				expect((await bot.actionLog.recent(1, { userId: oncall.id }))[0]).toMatchObject({
					action: "alert.silence",
					result: "ok",
					details: { silenceId },
				}),
			{ timeout: 5_000, interval: 50 },
		);
		await double.waitFor(() => /SILENCED/.test(embedText(double.messages.get(card.id)!)), 15_000);
		// The episode's history (its timeline) has the silence, read with the CLI from the bot's store.
		const config = join(bot.stateDir, "cli.yaml");
		writeFileSync(config, `${opsYaml}stateDir: ${JSON.stringify(bot.stateDir)}\n`);
		const link = `https://discord.com/channels/${double.guildId}/${CHANNEL}/${card.id}`;
		const incident = await runOpsbotCli(["incident", link, "--json"], {
			OPSBOT_CONFIG: config,
			WEBHOOK_TOKEN: token,
			...bot.stateEnv,
		});
		const events = (JSON.parse(incident.stdout) as { events: { kind: string; details: Record<string, unknown> }[] })
			.events;
		expect(events.find((e) => e.kind === "silenced")?.details).toMatchObject({
			silenceId,
			matchers: [{ name: "service", value: "api" }],
			comment: "rolling back the api",
		});
	});

	it("refuses a silence that reaches into an environment the user may not act on, and records it", async () => {
		const { card } = await firing("QueueDepth", [{ env: "staging", service: "worker" }]);
		const before = (await readSilences(alertmanager.url)).length;

		const form = await openForm(card, intern);
		const reply = await submitForm(card, intern, form.customId, {
			duration: "1h",
			comment: "noisy",
			matchers: 'service="worker"',
		});

		expect(reply.content).toBe(
			"This reaches production, which your roles may not act on \\(access.environments\\); nothing was silenced.",
		);
		expect((await readSilences(alertmanager.url)).length).toBe(before);
		expect((await bot.actionLog.recent(1, { userId: intern.id }))[0]).toMatchObject({
			action: "alert.silence",
			result: "refused: environment not allowed",
		});
	});

	it("refuses a match-everything set and a bad regex before asking AlertManager", async () => {
		const { card } = await firing("DiskFull", [{ env: "staging", service: "db" }]);
		const before = (await readSilences(alertmanager.url)).length;
		const form = await openForm(card, oncall);

		const everything = await submitForm(card, oncall, form.customId, {
			duration: "1h",
			comment: "x",
			matchers: 'alertname=~".*"',
		});
		const badRegex = await submitForm(card, oncall, form.customId, {
			duration: "1h",
			comment: "x",
			matchers: 'alertname=~"Disk(Full"',
		});
		const tooLong = await submitForm(card, oncall, form.customId, {
			duration: "3d",
			comment: "x",
			matchers: 'env="staging", service="db"',
		});

		expect(everything.content).toContain("so this silence would mute every alert");
		expect(badRegex.content).toMatch(/^The regex for alertname does not compile/);
		expect(tooLong.content).toBe("A silence made through opsbot lasts at most 2 d \\(alerts.silences.maxDuration\\).");
		expect((await readSilences(alertmanager.url)).length).toBe(before);
	});

	it("lists an amtool silence, autocompletes it, extends it in place, expires it after asking", async () => {
		const name = `DbMigration${++fired}`;
		await postAlerts(alertmanager.url, [{ labels: { alertname: name, env: "production", service: "db" } }]);
		const id = await amtool(alertmanager.url, [
			"silence",
			"add",
			"--author=carol",
			"--comment=schema migration",
			"--duration=1h",
			`alertname=${name}`,
		]);
		const before = await readSilence(alertmanager.url, id);

		const { reply: list } = await command("silence", sub("list", { env: "production" }));
		const auto = await double.sendInteraction({
			kind: "autocomplete",
			name: "silence",
			options: [{ type: 1, name: "extend", options: [{ name: "id", type: 3, value: name, focused: true }] }],
			user: oncall,
		});
		const choices = ((await auto.response()).data as { choices: { name: string; value: string }[] }).choices;
		const { reply: extended } = await command("silence", sub("extend", { id, by: "2h" }));
		const after = await readSilence(alertmanager.url, id);
		const { reply: asked } = await command("silence", sub("expire", { id }));
		const question = (asked.embeds[0] as Embed).title;
		const stillActive = (await readSilence(alertmanager.url, id)).status.state;
		await press(asked, customId(asked, "silence:expireconfirm:"), oncall);
		const expired = await double.waitFor(() => {
			const m = double.messages.get(asked.id);
			return m && /Silence expired/.test(embedText(m)) ? m : undefined;
		});

		const item = String((list.embeds[0] as Embed).description);
		expect(item).toContain(id);
		expect(item).toContain("· mutes 1 alert now");
		expect(item).toContain(`by carol · made outside opsbot · \`${id}\``);
		expect(item).toContain(`\`{alertname="${name}"}\` — schema migration`);
		expect(choices.map((c) => c.value)).toEqual([id]);
		expect(extended.embeds[0]).toMatchObject({ title: "Silence extended · production" });
		expect(embedText(extended)).toContain("Same silence, updated in place: no gap.");
		expect(after.id).toBe(id);
		expect(after.startsAt).toBe(before.startsAt);
		expect(Date.parse(after.endsAt) - Date.parse(before.endsAt)).toBe(2 * 3_600_000);
		expect(question).toBe("Expire this silence in production?");
		expect(stillActive).toBe("active");
		expect(expired.components).toEqual([]);
		expect((await readSilence(alertmanager.url, id)).status.state).toBe("expired");
		const records = await bot.actionLog.recent(5, { userId: oncall.id });
		expect(records.map((r) => [r.action, r.result, r.target])).toEqual(
			expect.arrayContaining([
				["silence.extend", "ok", id],
				["silence.expire", "ok", id],
			]),
		);
	});

	it("refuses extend and expire to a role without those actions, and changes nothing", async () => {
		const id = await amtool(alertmanager.url, [
			"silence",
			"add",
			"--author=carol",
			"--comment=keep",
			"--duration=1h",
			`alertname=Keep${++fired}`,
			"env=staging",
		]);
		const before = await readSilence(alertmanager.url, id);

		const { reply: extend } = await command("silence", sub("extend", { id, by: "1h" }), intern);
		const { reply: expire } = await command("silence", sub("expire", { id }), intern);

		expect(extend.content).toContain("You are not allowed to use silence.extend");
		expect(expire.content).toContain("You are not allowed to use silence.expire");
		expect(await readSilence(alertmanager.url, id)).toEqual(before);
	});

	it("schedules a maintenance window for later: previewed, then pending and listed", async () => {
		const { reply: preview } = await command("maintenance", [
			{ name: "env", type: 3, value: "staging" },
			{ name: "service", type: 3, value: "worker" },
			{ name: "start", type: 3, value: "+2h" },
			{ name: "duration", type: 3, value: "1h" },
			{ name: "comment", type: 3, value: "worker upgrade" },
		]);
		await press(preview, customId(preview, "maintenance:confirm:"), oncall);
		const done = await double.waitFor(() => {
			const m = double.messages.get(preview.id);
			return m && /Maintenance window scheduled/.test(embedText(m)) ? m : undefined;
		});
		const id = embedText(done).match(/[0-9a-f]{8}-[0-9a-f-]{27}/)![0];
		const made = await readSilence(alertmanager.url, id);
		const { reply: list } = await command("silence", sub("list", { env: "staging" }));

		expect(made.status.state).toBe("pending");
		expect(made.matchers.map((m) => `${m.name}=${m.value}`)).toEqual(["env=staging", "service=worker"]);
		expect(Date.parse(made.startsAt) - Date.now()).toBeGreaterThan(110 * 60_000);
		expect(Date.parse(made.endsAt) - Date.parse(made.startsAt)).toBe(3_600_000);
		expect(embedText(list)).toContain(id);
		expect(embedText(list)).toContain("⏳ **staging** starts");
		expect((await bot.actionLog.recent(1, { userId: oncall.id }))[0]).toMatchObject({
			action: "maintenance.create",
			result: "ok",
			details: { silenceId: id },
		});
	});

	it("pages /silence list five at a time; Next asks AlertManager again", async () => {
		const tag = `Paged${++fired}`;
		for (let i = 0; i < 6; i++)
			await amtool(alertmanager.url, [
				"silence",
				"add",
				"--author=pat",
				`--comment=${tag} ${i}`,
				`--duration=${20 + i}h`,
				`alertname=${tag}${i}`,
				"env=staging",
			]);

		const { reply: first } = await command("silence", sub("list", { env: "staging" }));
		const next = JSON.stringify(first.components).match(/silence:page:staging:1(?=")/)?.[0] ?? "";
		const firstPage = embedText(first);
		await press(first, next, oncall);
		const second = await double.waitFor(() => {
			const m = double.messages.get(first.id);
			return m && /page 2 of/.test(embedText(m)) ? m : undefined;
		});

		expect(firstPage).toMatch(/page 1 of \d/);
		expect(next).toBe("silence:page:staging:1");
		// Soonest end first: the last of the six (26 h) is on a later page than the first (20 h).
		expect(firstPage).not.toContain(`${tag} 5`);
		expect(embedText(second)).toContain(`${tag} 5`);
		expect(JSON.stringify(second.components)).toContain('"custom_id":"silence:page:staging:0"');
	});

	it("answers within AlertManager's timeout when it hangs, and makes nothing", async () => {
		const started = Date.now();
		const { reply } = await command("silence", sub("list", { env: "hung" }));

		expect(reply.content).toBe("AlertManager did not answer within 800 ms; no silences could be listed.");
		expect(Date.now() - started).toBeLessThan(10_000);
	});
});
