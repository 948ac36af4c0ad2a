import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import { actionLogOf, stateEnvFor } from "../support/bot.ts";
import { cardsTitled, embedTitle as title } from "../support/cards.ts";
import { type MainProcess, spawnMain } from "../support/main-process.ts";
import { freePort } from "../support/proc.ts";
import { startHangingServer } from "../support/raw-http.ts";
import { fakeDocker, startSshd, type TestSshd } from "../support/sshd.ts";

const ONCALL = "300000000000000001";
const ADMIN = "300000000000000002";
const CHANNEL = "400000000000000001";
const ZERO = "0001-01-01T00:00:00Z";
const oncall = { id: "200000000000000021", username: "olivia", roles: [ONCALL] };
const admin = { id: "200000000000000022", username: "adam", roles: [ADMIN] };

/** A version-4 webhook body for a one-alert group, as AlertManager posts it. */
function webhook(alertname: string, status: "firing" | "resolved", labels: Record<string, string>, startsAt: string) {
	const all = { alertname, severity: "critical", ...labels };
	return {
		version: "4",
		groupKey: `{}:{alertname="${alertname}"}`,
		truncatedAlerts: 0,
		status,
		receiver: "opsbot",
		groupLabels: { alertname },
		commonLabels: all,
		commonAnnotations: { summary: `${alertname} summary` },
		externalURL: "http://alertmanager.local:9093",
		alerts: [
			{
				status,
				labels: all,
				annotations: {},
				startsAt,
				endsAt: status === "resolved" ? new Date().toISOString() : ZERO,
				generatorURL: "",
				fingerprint: createFingerprint(alertname),
			},
		],
	};
}

function createFingerprint(alertname: string): string {
	return Buffer.from(alertname).toString("hex").padEnd(16, "0").slice(0, 16);
}

describe("alert state at press time, in the shipped process (node src/main.ts)", () => {
	let double: DiscordDouble;
	let sshd: TestSshd;
	let docker: ReturnType<typeof fakeDocker>;
	let hanging: Awaited<ReturnType<typeof startHangingServer>>;
	let main: MainProcess;
	let port: number;
	let stateDir: string;
	let stateEnv: Record<string, string>;
	const token = randomBytes(24).toString("hex");

	beforeAll(async () => {
		[double, sshd, hanging, port] = await Promise.all([
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
			startHangingServer(),
			freePort(),
		]);
		docker = fakeDocker(sshd.binDir, "");
		stateDir = mkdtempSync(join(tmpdir(), "opsbot-alert-state-"));
		stateEnv = await stateEnvFor(stateDir);
		main = spawnMain(
			`discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}", admins: "${ADMIN}" } }
access:
  actions: { alert.ack: [oncall], alert.silence: [oncall], alert.restart: [admins], alert.logs: [oncall] }
environments:
  production:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: root, keyFileEnv: SSH_KEY, hostKey: "${sshd.hostKey}", ` +
				`containers: [api] }
  hanging:
    alertmanager: { url: "${hanging.url}", timeoutMs: 500 }
defaultEnvironment: production
stateDir: ${stateDir}
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
  # Every re-fire a new episode (no flapping window): the tests press on an earlier episode's message.
  regroupMinutes: 0
`,
			{
				DISCORD_TOKEN: "double-token",
				DISCORD_APPLICATION_ID: double.applicationId,
				DISCORD_API_URL: double.apiUrl,
				WEBHOOK_TOKEN: token,
				SSH_KEY: sshd.privateKeyPath,
				LOG_LEVEL: "debug",
				...stateEnv,
			},
		);
		await double.waitFor(
			() => main.output().includes("alert receiver listening") || main.child.exitCode !== null,
			30_000,
		);
		if (main.child.exitCode !== null) throw new Error(`opsbot exited:\n${main.output()}`);
	});
	afterAll(async () => {
		if (main && main.child.exitCode === null) {
			main.child.kill("SIGTERM");
			await Promise.race([main.exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
			main.child.kill("SIGKILL");
		}
		await Promise.all([double?.close(), sshd?.stop(), hanging?.close()]);
	});

	async function post(body: unknown): Promise<void> {
		const res = await fetch(`http://127.0.0.1:${port}/alerts`, {
			method: "POST",
			headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
			body: JSON.stringify(body),
		});
		if (res.status !== 202) throw new Error(`webhook answered ${res.status}: ${await res.text()}`);
	}
	const byTitle = (re: RegExp) => cardsTitled(double, CHANNEL, re);
	const customId = (m: StoredMessage, prefix: string) =>
		JSON.stringify(m.components).match(new RegExp(`${prefix}[0-9a-f]{32}`))?.[0] ?? "";
	async function press(customIdValue: string, message: StoredMessage, user: typeof oncall, values?: string[]) {
		const sent = values
			? await double.sendInteraction({ kind: "select", customId: customIdValue, values, messageId: message.id, user })
			: await double.sendInteraction({ kind: "button", customId: customIdValue, messageId: message.id, user });
		await sent.response();
		return sent;
	}
	/** The text a press got back: its follow-up, or its (deferred) reply edited. */
	const answer = (interactionId: string, timeoutMs = 10_000) =>
		double.waitFor(
			() =>
				[...double.messages.values()].find(
					(m) => m.interactionId === interactionId && m.content && !m.content.startsWith("Restart container"),
				)?.content,
			timeoutMs,
		);
	/** The action log, oldest first. */
	const actions = async () => (await actionLogOf(stateDir, stateEnv).recent(1_000)).reverse();

	it(
		"refuses Restart on a resolved alert, at the confirmation and on a stale button, and Acknowledge too; runs " +
			"nothing and records each refusal",
		async () => {
			const startsAt = new Date(Date.now() - 60_000).toISOString();
			await post(webhook("ApiDown", "firing", { container: "api", env: "production" }, startsAt));
			const message = await double.waitFor(() => byTitle(/^🔴 CRITICAL · ApiDown · production$/)[0], 20_000);
			const restartId = customId(message, "alert:restart:");
			const ackId = customId(message, "alert:ack:");
			const first = await press(restartId, message, admin);
			const confirmation = await double.waitFor(
				() => (double.originalMessage(first.id)?.content ? double.originalMessage(first.id) : undefined),
				10_000,
			);
			const confirmId = JSON.stringify(confirmation.components).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0];

			await post(webhook("ApiDown", "resolved", { container: "api", env: "production" }, startsAt));
			await double.waitFor(() => title(double.messages.get(message.id)).startsWith("✅"), 20_000);
			const confirmed = await press(confirmId, confirmation, admin);
			const confirmedAnswer = await answer(confirmed.id);
			const stale = await press(restartId, double.messages.get(message.id)!, admin);
			const staleAnswer = await answer(stale.id);
			const ack = await press(ackId, double.messages.get(message.id)!, oncall);
			const ackAnswer = await answer(ack.id);

			expect(confirmation.content).toContain("Restart container `api`");
			expect(confirmedAnswer).toBe("This alert is resolved; nothing was restarted.");
			expect(staleAnswer).toBe("This alert is resolved; nothing was restarted.");
			expect(ackAnswer).toBe("This alert is resolved; nothing was acknowledged.");
			expect(docker.calls()).toEqual([]);
			expect(main.output()).not.toContain('"restart","api"');
			const refusals = (await actions()).filter((a) => a.result === "refused: alert resolved");
			expect(refusals.map((a) => a.action).sort()).toEqual(["alert.ack", "alert.restart", "alert.restart"]);
			expect(title(double.messages.get(message.id))).toBe("✅ RESOLVED · ApiDown · production");
			// Only the Timeline button (the episode's history for the postmortem) stays on a resolved card.
			expect(JSON.stringify(double.messages.get(message.id)!.components).match(/"alert:[a-z]+/g)).toEqual([
				'"alert:timeline',
			]);
		},
	);

	it("refuses a press on the message of an earlier episode once the alert fires again", async () => {
		const [old] = byTitle(/ApiDown/);
		await post(webhook("ApiDown", "firing", { container: "api", env: "production" }, new Date().toISOString()));
		const current = await double.waitFor(() => byTitle(/^🔴 CRITICAL · ApiDown · production$/)[0], 20_000);

		const stale = await press(customId(current, "alert:restart:"), old!, admin);
		const staleAnswer = await answer(stale.id);

		expect(current.id).not.toBe(old!.id);
		expect(staleAnswer).toBe(
			"This message is about an earlier episode of this alert; nothing was restarted. Use the alert's newest message.",
		);
		expect(docker.calls()).toEqual([]);
		expect((await actions()).at(-1)).toMatchObject({ action: "alert.restart", result: "refused: earlier episode" });
	});

	it("gives up on a silence when AlertManager does not answer within its configured timeout, and says so", async () => {
		await post(webhook("QueueStuck", "firing", { env: "hanging" }, new Date().toISOString()));
		const message = await double.waitFor(() => byTitle(/^🔴 CRITICAL · QueueStuck · hanging$/)[0], 20_000);
		const before = hanging.requests();

		const started = Date.now();
		const sent = await press(customId(message, "alert:silence:"), message, oncall, ["1"]);
		const reply = await answer(sent.id, 15_000);
		const took = Date.now() - started;

		expect(reply).toBe("AlertManager did not answer within 500 ms; nothing was silenced.");
		expect(took).toBeLessThan(3_000);
		expect(hanging.requests()).toBe(before + 1);
		expect((await actions()).at(-1)).toMatchObject({
			action: "alert.silence",
			result: "failed: AlertManager unavailable",
		});
		expect(String((double.messages.get(message.id)!.embeds[0] as { description?: string }).description)).not.toContain(
			"silenced by",
		);
	});
});
