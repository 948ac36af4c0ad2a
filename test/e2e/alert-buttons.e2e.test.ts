import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import { postAlerts, readSilence, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { fakeDocker, startSshd, type TestSshd } from "../support/sshd.ts";

const ONCALL = "300000000000000001";
const ADMIN = "300000000000000002";
const CHANNEL = "400000000000000001";
const token = randomBytes(24).toString("hex");
const oncall = { id: "200000000000000011", username: "olivia", roles: [ONCALL] };
const admin = { id: "200000000000000012", username: "adam", roles: [ADMIN] };

describe("alert buttons end to end: Discord double, real AlertManager, real sshd", () => {
	let double: DiscordDouble;
	let bot: TestBot;
	let alertmanager: TestAlertManager;
	let sshd: TestSshd;
	let docker: ReturnType<typeof fakeDocker>;
	// The fault itself (D17): something in front of AlertManager answering a web page to the silence request.
	let htmlAnswering: Server;
	const EXPIRE_FAILS_SILENCE = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
	const silencePosts: string[] = [];

	beforeAll(async () => {
		htmlAnswering = createServer((req, res) => {
			let body = "";
			req.on("data", (chunk: Buffer) => (body += chunk.toString()));
			req.on("end", () => {
				// A silence of the ExpireFails group is made, but expiring it meets a proxy error (HTTP 502).
				if (req.method === "POST" && req.url === "/api/v2/silences" && body.includes("ExpireFails"))
					return void res
						.writeHead(200, { "content-type": "application/json" })
						.end(JSON.stringify({ silenceID: EXPIRE_FAILS_SILENCE }));
				if (req.method === "DELETE" && req.url === `/api/v2/silence/${EXPIRE_FAILS_SILENCE}`)
					return void res.writeHead(502, { "content-type": "text/html" }).end("<html>Bad gateway</html>");
				if (req.method === "POST" && req.url === "/api/v2/silences") silencePosts.push(req.url);
				res.writeHead(200, { "content-type": "text/html" }).end("<html><body>Sign in to continue</body></html>");
			});
		});
		await new Promise<void>((resolve) => htmlAnswering.listen(0, "127.0.0.1", resolve));
		[double, sshd] = await Promise.all([
			startDiscordDouble({
				guild: {
					channels: [{ id: CHANNEL, name: "alerts" }],
					roles: [
						{ id: ONCALL, name: "oncall" },
						{ id: ADMIN, name: "admins" },
					],
				},
			}),
			startSshd(),
		]);
		docker = fakeDocker(sshd.binDir, "");
		// AlertManager needs the receiver's URL and opsbot needs AlertManager's: start AlertManager for the API first, then
		// the bot, then point a second AlertManager's webhook at the bot.
		const api = await startAlertManager();
		bot = await startTestBot(
			double,
			`discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}", admins: "${ADMIN}" } }
access:
  commands: { audit: [admins] }
  actions: { alert.ack: [oncall], alert.silence: [oncall], alert.restart: [admins], alert.logs: [oncall] }
environments:
  production:
    alertmanager: { url: "${api.url}" }
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: root, keyFileEnv: SSH_KEY, hostKey: "${sshd.hostKey}", ` +
				`containers: [api, worker] }
  rebuilt:
    alertmanager: { url: "${api.url}" }
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: root, keyFileEnv: SSH_KEY, hostKey: "ssh-ed25519 ` +
				`AAAAC3NzaC1lZDI1NTE5AAAAIBm9ZyXwzsEMqoaN3MKjQx9u0uw0jNIKXD3LrR9bbhpH", containers: [web] }
  proxied:
    alertmanager: { url: "http://127.0.0.1:${(htmlAnswering.address() as AddressInfo).port}" }
defaultEnvironment: production
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-buttons-"))}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
  restartCooldownSeconds: 600
`,
			{ WEBHOOK_TOKEN: token, SSH_KEY: sshd.privateKeyPath },
		);
		alertmanager = await startAlertManager({ webhookUrl: `${bot.webhookUrl}/alerts`, bearerToken: token });
		silencesAt = api;
	});
	let silencesAt: TestAlertManager;
	afterAll(async () => {
		await Promise.all([alertmanager?.stop(), silencesAt?.stop()]);
		await bot?.stop();
		await Promise.all([double?.close(), sshd?.stop(), new Promise((resolve) => htmlAnswering?.close(resolve))]);
	});

	const byTitle = (re: RegExp) =>
		double
			.channelMessages(CHANNEL)
			.find((m) => re.test(String((m.embeds[0] as { title?: string } | undefined)?.title)));
	// Each test fires its own alert (a fresh alertname is its own AlertManager group and message), so no
	// test depends on another having run first.
	let fired = 0;
	async function firing(
		alertname: string,
		labels: Record<string, string>,
	): Promise<{ name: string; message: StoredMessage }> {
		const name = `${alertname}${++fired}`;
		await postAlerts(alertmanager.url, [{ labels: { alertname: name, ...labels } }]);
		return { name, message: await double.waitFor(() => byTitle(new RegExp(`\\b${name}\\b`)), 20_000) };
	}
	const apiDown = () => firing("ApiDown", { severity: "critical", container: "api", env: "production" });
	const components = (m: StoredMessage | undefined) => JSON.stringify(m?.components ?? []);
	const customId = (m: StoredMessage, prefix: string) =>
		components(m).match(new RegExp(`${prefix}[0-9a-f]{32}`))?.[0] ?? "";
	async function press(
		customIdValue: string,
		message: StoredMessage,
		user: { id: string; username: string; roles: string[] },
		values?: string[],
	) {
		const sent = values
			? await double.sendInteraction({ kind: "select", customId: customIdValue, values, messageId: message.id, user })
			: await double.sendInteraction({ kind: "button", customId: customIdValue, messageId: message.id, user });
		await sent.response();
		return sent;
	}
	const followUp = (interactionId: string) =>
		double.waitFor(() => [...double.messages.values()].find((m) => m.interactionId === interactionId && m.content));

	it(
		"offers Acknowledge, Restart and Silence on a firing alert naming an allow-listed container, and no " +
			"Restart otherwise",
		async () => {
			const [{ message: api }, { message: db }] = await Promise.all([
				apiDown(),
				firing("DbSlow", { severity: "warning", container: "postgres", env: "production" }),
			]);

			expect(components(api)).toMatch(/"custom_id":"alert:ack:[0-9a-f]{32}"/);
			expect(components(api)).toMatch(/"custom_id":"alert:restart:[0-9a-f]{32}","label":"Restart api…"/);
			expect(components(api)).toMatch(/"custom_id":"alert:silence:[0-9a-f]{32}"/);
			expect(components(db)).not.toContain("alert:restart:");
		},
	);

	it(
		"acknowledges: the title says ACKED in yellow, the ping is dropped, the card says who, and it offers " +
			"Un-acknowledge",
		async () => {
			const { name, message } = await apiDown();
			const firingLook = {
				title: (message.embeds[0] as { title: string }).title,
				color: (message.embeds[0] as { color: number }).color,
				content: message.content,
			};

			await press(customId(message, "alert:ack:"), message, oncall);
			const edited = await double.waitFor(
				() =>
					String((double.messages.get(message.id)?.embeds[0] as { description?: string }).description).includes(
						"acknowledged by",
					)
						? double.messages.get(message.id)
						: undefined,
				10_000,
			);

			expect(firingLook).toEqual({
				title: `🔴 CRITICAL · ${name} · production`,
				color: 0xe74c3c,
				content: `🔴 ${name} on production (1 of 1)`,
			});
			expect(edited.embeds[0]).toMatchObject({ title: `🟡 ACKED · ${name} · production`, color: 0xf1c40f });
			expect(edited.content).toBe("");
			expect((edited.embeds[0] as { description: string }).description).toContain(`✋ acknowledged by <@${oncall.id}>`);
			expect(components(edited)).toContain("alert:unack:");
			// The record is written before the re-render is kicked, but a poll may edit the message first.
			await vi.waitFor(
				async () =>
					expect((await bot.actionLog.recent(1, { userId: oncall.id }))[0]).toMatchObject({
						action: "alert.ack",
						result: "ok",
					}),
				{ timeout: 5_000, interval: 20 },
			);
		},
	);

	it("refuses Restart to a role without alert.restart, records it, and runs nothing", async () => {
		const { message } = await apiDown();
		docker = fakeDocker(sshd.binDir, "");

		const sent = await press(customId(message, "alert:restart:"), message, oncall);

		expect(String(double.interactionResponse(sent.id)?.data?.content)).toContain(
			"You are not allowed to use alert.restart",
		);
		expect((await bot.actionLog.recent(1, { userId: oncall.id }))[0]).toMatchObject({
			action: "alert.restart",
			result: "refused: role not allowed",
		});
		expect(docker.calls()).toEqual([]);
	});

	it(
		"restarts after confirmation exactly once; a second press of the same confirmation or a new one in the " +
			"cooldown does nothing",
		async () => {
			const { message } = await apiDown();
			docker = fakeDocker(sshd.binDir, "");

			const first = await press(customId(message, "alert:restart:"), message, admin);
			const confirmation = await double.waitFor(() =>
				double.originalMessage(first.id)?.content ? double.originalMessage(first.id) : undefined,
			);
			const confirmId = components(confirmation).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0];
			const question = confirmation.content;
			await press(confirmId, confirmation, admin);
			const done = await double.waitFor(
				() =>
					double.messages.get(confirmation.id)?.content.startsWith("🔁")
						? double.messages.get(confirmation.id)
						: undefined,
				15_000,
			);
			const again = await press(confirmId, confirmation, admin);
			const againReply = await followUp(again.id);
			const second = await press(customId(message, "alert:restart:"), message, admin);
			const secondConfirmation = await double.waitFor(() =>
				double.originalMessage(second.id)?.content ? double.originalMessage(second.id) : undefined,
			);
			const inCooldown = await press(
				components(secondConfirmation).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0],
				secondConfirmation,
				admin,
			);
			const cooldownReply = await followUp(inCooldown.id);

			expect(question).toContain("Restart container `api` on `127.0.0.1` (production)?");
			expect(done.content).toBe("🔁 Restarted `api` on `127.0.0.1`.");
			expect(againReply.content).toContain("This confirmation has expired or is not valid");
			expect(cooldownReply.content).toContain("was restarted");
			expect(docker.calls()).toEqual([["restart", "api"]]);
			const alertMessage = await double.waitFor(
				() =>
					String((double.messages.get(message.id)?.embeds[0] as { description?: string }).description).includes(
						"restarted",
					)
						? double.messages.get(message.id)
						: undefined,
				10_000,
			);
			expect((alertMessage.embeds[0] as { description: string }).description).toMatch(
				new RegExp(`🔁 restarted \`api\` by <@${admin.id}> <t:\\d+:t> \\(<t:\\d+:R>\\)`),
			);
		},
	);

	it(
		"cancels a restart confirmation: nothing runs, the cancel is recorded, and the confirmation cannot be " +
			"pressed afterwards",
		async () => {
			const { message } = await apiDown();
			const callsBefore = docker.calls().length;

			const shown = await press(customId(message, "alert:restart:"), message, admin);
			const confirmation = await double.waitFor(() =>
				double.originalMessage(shown.id)?.content ? double.originalMessage(shown.id) : undefined,
			);
			const confirmId = components(confirmation).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0];
			await press(components(confirmation).match(/alert:restartcancel:[A-Za-z0-9_-]+/)![0], confirmation, admin);
			const cancelled = await double.waitFor(() =>
				double.messages.get(confirmation.id)?.content.startsWith("Cancelled")
					? double.messages.get(confirmation.id)
					: undefined,
			);
			// A Confirm press that was already on its way (the buttons are gone from the message now).
			const late = await press(confirmId, confirmation, admin);
			const lateReply = await followUp(late.id);

			expect(cancelled.content).toBe("Cancelled; nothing was restarted.");
			expect(lateReply.content).toContain("This confirmation has expired or is not valid");
			expect(docker.calls()).toHaveLength(callsBefore);
			const records = await bot.actionLog.recent(2, { userId: admin.id });
			expect(records.map((r) => [r.action, r.target, r.result])).toEqual([
				["alert.restart", "?", "refused: unknown confirmation"],
				["alert.restart", "production/api", "cancelled"],
			]);
		},
	);

	it("opens the logs of the alert's container around its start", async () => {
		const { name, message } = await apiDown();
		const stamp = new Date(Date.now() - 30_000).toISOString().replace("Z", "000000Z");
		docker = fakeDocker(sshd.binDir, `${stamp} api crashed: out of memory\n`);

		const sent = await press(customId(message, "alert:logs:"), message, oncall);
		const reply = await double.waitFor(
			() => (double.originalMessage(sent.id)?.embeds.length ? double.originalMessage(sent.id) : undefined),
			10_000,
		);

		expect((reply.embeds[0] as { title: string }).title).toBe(`Logs of api around ${name}`);
		expect((reply.embeds[0] as { description: string }).description).toContain("api crashed: out of memory");
		expect(docker.calls()[0]?.slice(0, 2)).toEqual(["logs", "--timestamps"]);
		expect(reply.flags & 64).toBe(64);
	});

	it("refuses to restart on a host whose key does not match the pinned one, running nothing", async () => {
		const { message } = await firing("WebDown", { severity: "critical", container: "web", env: "rebuilt" });
		docker = fakeDocker(sshd.binDir, "");

		const first = await press(customId(message, "alert:restart:"), message, admin);
		const confirmation = await double.waitFor(() =>
			double.originalMessage(first.id)?.content ? double.originalMessage(first.id) : undefined,
		);
		const confirm = await press(
			components(confirmation).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0],
			confirmation,
			admin,
		);
		const reply = await followUp(confirm.id);

		expect(reply.content).toContain(
			"does not match the pinned key in the config; opsbot refused to connect, so nothing was run",
		);
		expect(docker.calls()).toEqual([]);
	});

	it("silences for a custom duration and comment from the form, after a preview", async () => {
		const { message } = await firing("WebDown", { severity: "critical", container: "web", env: "rebuilt" });
		const select = await double.sendInteraction({
			kind: "select",
			customId: customId(message, "alert:silence:"),
			values: ["custom"],
			messageId: message.id,
			user: oncall,
		});
		const modal = await select.response();
		const prefilled = (modal.data as { components: { components: { custom_id: string; value?: string }[] }[] })
			.components[2]!.components[0]!.value!;

		const submit = await double.sendInteraction({
			kind: "modal",
			customId: String((modal.data as { custom_id: string }).custom_id),
			fields: { duration: "90m", comment: "deploying a fix", matchers: prefilled },
			messageId: message.id,
			user: oncall,
		});
		const preview = await followUp(submit.id);
		await press(components(preview).match(/silence:confirm:[A-Za-z0-9_-]+/)![0], preview, oncall);
		const done = await double.waitFor(() =>
			/Silence created/.test(JSON.stringify(double.messages.get(preview.id)?.embeds))
				? double.messages.get(preview.id)
				: undefined,
		);
		const silence = await readSilence(
			silencesAt.url,
			JSON.stringify(done.embeds).match(/[0-9a-f]{8}-[0-9a-f-]{27}/)![0],
		);
		const bad = await double.sendInteraction({
			kind: "modal",
			customId: String((modal.data as { custom_id: string }).custom_id),
			fields: { duration: "forever", comment: "x", matchers: prefilled },
			messageId: message.id,
			user: oncall,
		});
		const badReply = await followUp(bad.id);

		expect(modal.type).toBe(9);
		expect(silence.comment).toBe("deploying a fix");
		expect(Date.parse(silence.endsAt) - Date.now()).toBeGreaterThan(85 * 60_000);
		expect(Date.parse(silence.endsAt) - Date.now()).toBeLessThan(91 * 60_000);
		expect(badReply.content).toBe(
			"Give the duration as minutes, hours, days or weeks, e.g. 30m, 1h, 4h, 12h, 1d, 7d or 90m.",
		);
	});

	it("refuses a forged alert id and records it", async () => {
		const { message } = await apiDown();

		const sent = await press(`alert:ack:${"0".repeat(32)}`, message, oncall);
		const reply = await followUp(sent.id);

		// Error words go through the Discord view: plain text escaped (renders as "(any more)").
		expect(reply.content).toBe("This alert is not known to opsbot \\(any more\\).");
		expect((await bot.actionLog.recent(1, { userId: oncall.id }))[0]).toMatchObject({
			result: "refused: unknown alert group",
		});
	});

	it("shows opsbot's own action log with /audit source:opsbot", async () => {
		// Its own actions: a refused restart, and a restart of `worker` (the restart test's cooldown is on `api`).
		const { message } = await firing("WorkerDown", { severity: "critical", container: "worker", env: "production" });
		docker = fakeDocker(sshd.binDir, "", "api|Up 2 hours\nworker|Up 2 hours\n");
		await press(customId(message, "alert:restart:"), message, oncall);
		const shown = await press(customId(message, "alert:restart:"), message, admin);
		const confirmation = await double.waitFor(() =>
			double.originalMessage(shown.id)?.content ? double.originalMessage(shown.id) : undefined,
		);
		await press(components(confirmation).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0], confirmation, admin);
		await double.waitFor(() => double.messages.get(confirmation.id)?.content.startsWith("🔁") || undefined, 15_000);

		const sent = await double.sendInteraction({
			kind: "command",
			name: "audit",
			options: [{ name: "source", type: 3, value: "opsbot" }],
			user: admin,
		});
		await sent.response();
		const reply = await double.waitFor(() =>
			double.originalMessage(sent.id)?.embeds.length ? double.originalMessage(sent.id) : undefined,
		);

		const description = (reply.embeds[0] as { description: string }).description;
		expect(description).toContain("alert.restart");
		expect(description).toContain("refused: role not allowed");
		// Literal text is escaped for Discord, which hides the backslashes: "adam (2000…12)" on screen.
		expect(description).toMatch(/adam \\\(200000000000000012\\\) → `production\/worker`: ok/);
	});

	it("silences through AlertManager with the group's labels and the user as creator; Unsilence expires it", async () => {
		const { name, message } = await firing("DbSlow", {
			severity: "warning",
			container: "postgres",
			env: "production",
		});

		const sent = await press(customId(message, "alert:silence:"), message, oncall, ["4"]);
		const reply = await followUp(sent.id);
		const silenceId = reply.content.match(/silence `([0-9a-f-]{36})`/)![1]!;
		const silence = await readSilence(silencesAt.url, silenceId);
		const edited = await double.waitFor(
			() =>
				String((double.messages.get(message.id)?.embeds[0] as { description?: string }).description).includes(
					"silenced by",
				)
					? double.messages.get(message.id)
					: undefined,
			10_000,
		);
		const silencedLook = {
			title: (edited.embeds[0] as { title: string }).title,
			color: (edited.embeds[0] as { color: number }).color,
		};
		const unsilence = await press(components(edited).match(/alert:unsilence:[0-9a-f]{32}/)![0], edited, oncall);
		await followUp(unsilence.id);
		const expired = await readSilence(silencesAt.url, silenceId);

		expect(silence.status.state).toBe("active");
		expect(silence.createdBy).toContain("olivia");
		expect(silence.matchers.map((m) => `${m.name}=${m.value}`).sort()).toEqual([
			`alertname=${name}`,
			"container=postgres",
			"env=production",
			"severity=warning",
		]);
		expect(expired.status.state).toBe("expired");
		expect(silencedLook).toEqual({ title: `🔕 SILENCED · ${name} · production`, color: 0x95a5a6 });
	});

	it(
		"resolves: the acknowledged card turns RESOLVED in green, keeps who acknowledged it, and drops its action " +
			"buttons",
		async () => {
			const { name, message } = await apiDown();
			await press(customId(message, "alert:ack:"), message, oncall);
			await double.waitFor(
				() =>
					String((double.messages.get(message.id)?.embeds[0] as { description?: string }).description).includes(
						"acknowledged by",
					) || undefined,
				10_000,
			);

			await postAlerts(alertmanager.url, [
				{
					labels: { alertname: name, severity: "critical", container: "api", env: "production" },
					endsAt: new Date(Date.now() - 1_000).toISOString(),
				},
			]);
			const resolved = await double.waitFor(
				() =>
					(double.messages.get(message.id)?.embeds[0] as { title?: string }).title?.startsWith("✅")
						? double.messages.get(message.id)
						: undefined,
				20_000,
			);

			expect(resolved.embeds[0]).toMatchObject({ title: `✅ RESOLVED · ${name} · production`, color: 0x2ecc71 });
			expect((resolved.embeds[0] as { description: string }).description).toMatch(
				new RegExp(
					`^Fired <t:\\d+:t> \\(<t:\\d+:R>\\) · ended <t:\\d+:t> after \\*\\*\\d+ min\\*\\*\n` +
						`✋ acknowledged by <@${oncall.id}>\n`,
				),
			);
			expect(resolved.content).toBe("");
			// Its action buttons go; only Timeline (the episode's history for the postmortem) stays.
			expect(components(resolved).match(/"custom_id":"[a-z]+:[a-z]+/g)).toEqual(['"custom_id":"alert:timeline']);
		},
	);

	it("says a silence may or may not exist when AlertManager answers a web page, and records it (D17)", async () => {
		await postAlerts(alertmanager.url, [{ labels: { alertname: "QueueSlow", severity: "warning", env: "proxied" } }]);
		const message = await double.waitFor(() => byTitle(/QueueSlow/), 20_000);

		const sent = await press(customId(message, "alert:silence:"), message, oncall, ["1"]);
		const reply = await followUp(sent.id);

		expect(silencePosts).toHaveLength(1);
		expect(reply.content).toBe(
			`AlertManager answered something that is not JSON, so opsbot cannot tell whether the silence was created. ` +
				`Check the silences in AlertManager \\(<${alertmanager.url.replace(/\/$/, "")}/#/silences>\\) before ` +
				`silencing again.`,
		);
		expect((await bot.actionLog.recent(1, { userId: oncall.id }))[0]).toMatchObject({
			action: "alert.silence",
			result: "unknown: unexpected AlertManager answer",
			details: { answer: "not-json" },
		});
	});
	it("says plainly when AlertManager answers an error to Unsilence, and records it", async () => {
		await postAlerts(alertmanager.url, [{ labels: { alertname: "ExpireFails", severity: "warning", env: "proxied" } }]);
		const message = await double.waitFor(() => byTitle(/ExpireFails/), 20_000);
		await followUp((await press(customId(message, "alert:silence:"), message, oncall, ["1"])).id);
		const silenced = await double.waitFor(
			() =>
				components(double.messages.get(message.id)).includes("alert:unsilence:")
					? double.messages.get(message.id)
					: undefined,
			10_000,
		);

		const sent = await press(components(silenced).match(/alert:unsilence:[0-9a-f]{32}/)![0], silenced, oncall);
		const reply = await followUp(sent.id);

		expect(reply.content).toBe(
			`AlertManager answered HTTP 502 to expiring silence \`${EXPIRE_FAILS_SILENCE}\`; check it in AlertManager ` +
				`\\(<${alertmanager.url.replace(/\/$/, "")}/#/silences>\\).`,
		);
		await vi.waitFor(
			async () =>
				expect((await bot.actionLog.recent(1, { userId: oncall.id }))[0]).toMatchObject({
					action: "alert.unsilence",
					result: "failed: AlertManager answered HTTP 502",
					details: { silenceId: EXPIRE_FAILS_SILENCE, status: 502 },
				}),
			{ timeout: 5_000, interval: 20 },
		);
	});
});
