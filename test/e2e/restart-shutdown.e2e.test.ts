import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import { firingWebhook } from "../support/alert-fixtures.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { shortLeaseYaml } from "../support/replicas.ts";
import { fakeDocker, startSshd, type TestSshd } from "../support/sshd.ts";

const ADMIN = "300000000000000002";
const CHANNEL = "400000000000000001";
const webhookToken = randomBytes(24).toString("hex");
const admin = { id: "200000000000000012", username: "adam", roles: [ADMIN] };

/**
 * D4: a rollout (SIGTERM) or a crash (kill -9) while `docker restart` runs, with the real sshd and a slow container
 * stop.
 */
describe("a container restart in flight when opsbot stops", () => {
	const postgres = inject("postgres");
	let double: DiscordDouble;
	let sshd: TestSshd;
	let stateUrl: string;
	const bots: TestBot[] = [];

	beforeAll(async () => {
		const database = `opsbot_restart_stop_${process.pid}`;
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await admin.query(`CREATE DATABASE ${database}`);
		await admin.end();
		stateUrl = postgres.superuserUrl.replace(/\/appdb$/, `/${database}`);
		[double, sshd] = await Promise.all([
			startDiscordDouble({
				guild: { channels: [{ id: CHANNEL, name: "alerts" }], roles: [{ id: ADMIN, name: "admins" }] },
			}),
			startSshd(),
		]);
	}, 60_000);
	afterAll(async () => {
		await Promise.all(bots.map((b) => b.kill()));
		await Promise.all([double?.close(), sshd?.stop()]);
	});

	// The short gateway lease: on PostgreSQL the process started after kill -9 takes the gateway from the
	// dead one within about 8 s instead of the default's 20 s (SQLite holds no lease).
	const opsYaml = (stateDir: string) =>
		`discord: { guildId: "${double.guildId}", roles: { admins: "${ADMIN}" } }
access:
  actions: { alert.restart: [admins] }
environments:
  production:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: root, keyFileEnv: SSH_KEY, hostKey: "${sshd.hostKey}", ` +
		`containers: [api] }
defaultEnvironment: production
stateDir: ${stateDir}
${shortLeaseYaml}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
  restartCooldownSeconds: 600
`;
	async function start(stateDir: string, env: Record<string, string> = {}): Promise<TestBot> {
		const bot = await startTestBot(double, opsYaml(stateDir), {
			WEBHOOK_TOKEN: webhookToken,
			SSH_KEY: sshd.privateKeyPath,
			...env,
		});
		bots.push(bot);
		return bot;
	}
	const components = (m: StoredMessage | undefined) => JSON.stringify(m?.components ?? []);
	const byTitle = (name: string) =>
		double
			.channelMessages(CHANNEL)
			.find((m) => String((m.embeds[0] as { title?: string } | undefined)?.title).includes(name));
	async function press(customId: string, message: StoredMessage) {
		const sent = await double.sendInteraction({ kind: "button", customId, messageId: message.id, user: admin });
		await sent.response(10_000);
		return sent;
	}
	/**
	 * Posts a firing alert and waits for its message, and for the bot to have stored that message as the group's (a press
	 * sooner is refused as an earlier episode's).
	 */
	async function postAlert(bot: TestBot, name: string, stateUrl?: string): Promise<StoredMessage> {
		const res = await fetch(`${bot.webhookUrl}/alerts`, {
			method: "POST",
			headers: { authorization: `Bearer ${webhookToken}`, "content-type": "application/json" },
			body: JSON.stringify(
				firingWebhook(name, { severity: "critical", labels: { container: "api", env: "production" } }),
			),
		});
		expect(res.status).toBe(202);
		const message = await double.waitFor(() => byTitle(name), 20_000);
		const url = stateUrl ?? bot.stateEnv.STATE_DATABASE_URL;
		const storedIds = async (): Promise<string[]> => {
			if (!url) {
				const db = new DatabaseSync(join(bot.stateDir, "opsbot.sqlite"), { readOnly: true });
				try {
					return (db.prepare("SELECT message_id FROM groups").all() as { message_id: string | null }[]).flatMap((r) =>
						r.message_id ? [r.message_id] : [],
					);
				} finally {
					db.close();
				}
			}
			const client = new pg.Client({ connectionString: url });
			await client.connect();
			try {
				return (
					await client.query<{ message_id: string | null }>("SELECT message_id FROM opsbot_state.groups")
				).rows.flatMap((r) => (r.message_id ? [r.message_id] : []));
			} finally {
				await client.end();
			}
		};
		const deadline = Date.now() + 10_000;
		while (!(await storedIds()).includes(message.id)) {
			if (Date.now() > deadline)
				throw new Error(`the bot did not store message ${message.id} as ${name}'s within 10 s`);
			await new Promise((resolve) => setTimeout(resolve, 50));
		}
		return message;
	}
	/** Restart → Confirm on the alert's message; resolves once the Confirm press is acknowledged. */
	async function confirmRestart(
		alertMessage: StoredMessage,
	): Promise<{ confirmation: StoredMessage; confirmId: string }> {
		const restartId = await double.waitFor(
			() => components(double.messages.get(alertMessage.id)).match(/alert:restart:[0-9a-f]{32}/)?.[0],
			10_000,
		);
		const shown = await press(restartId, alertMessage);
		const confirmation = await double.waitFor(
			() => (double.originalMessage(shown.id)?.content ? double.originalMessage(shown.id) : undefined),
			10_000,
		);
		if (!components(confirmation).includes("restartconfirm"))
			throw new Error(`no restart confirmation: ${confirmation.content}`);
		const confirm = await press(
			components(confirmation).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0],
			confirmation,
		);
		return { confirmation, confirmId: confirm.id };
	}
	/** The answer to a Confirm press: the confirmation edited into the result, or a refusal in a follow-up. */
	const restartAnswer = ({ confirmation, confirmId }: { confirmation: StoredMessage; confirmId: string }) =>
		double.waitFor(() => {
			const edited = double.messages.get(confirmation.id)?.content ?? "";
			if (edited.startsWith("🔁") || edited.startsWith("opsbot was stopped")) return edited;
			return [...double.messages.values()].find(
				(m) => m.interactionId === confirmId && m.id !== confirmation.id && m.content,
			)?.content;
		}, 20_000);
	const restartStarted = (docker: ReturnType<typeof fakeDocker>, n: number) =>
		double.waitFor(() => docker.calls().filter((c) => c[0] === "restart").length >= n || undefined, 15_000);

	it("waits for a restart running when SIGTERM comes, answers the user, records it and exits 0", async () => {
		const docker = fakeDocker(sshd.binDir, "", undefined, { restartSeconds: 20 });
		const bot = await start(mkdtempSync(join(tmpdir(), "opsbot-restart-stop-")));
		const { confirmation } = await confirmRestart(await postAlert(bot, "ApiDownSigterm"));
		await restartStarted(docker, 1);

		// A rollout 2 s into the restart; the container takes 20 s to stop, more than the usual 15 s drain.
		await new Promise((resolve) => setTimeout(resolve, 2_000));
		bot.process.child.kill("SIGTERM");
		const code = await bot.process.exited;

		expect(code).toBe(0);
		expect(double.messages.get(confirmation.id)?.content).toBe("🔁 Restarted `api` on `127.0.0.1`.");
		expect((await bot.actionLog.recent(1, { userId: admin.id }))[0]).toMatchObject({
			action: "alert.restart",
			target: "production/api",
			result: "ok",
		});
		expect(bot.logs().map((l) => l.msg)).toContain("stopped");
	}, 60_000);

	it("records and answers a restart as interrupted when a second SIGTERM cuts the wait short, and exits 1", async () => {
		const docker = fakeDocker(sshd.binDir, "", undefined, { restartSeconds: 20 });
		const bot = await start(mkdtempSync(join(tmpdir(), "opsbot-restart-stop-")));
		const { confirmation } = await confirmRestart(await postAlert(bot, "ApiDownTwice"));
		await restartStarted(docker, 1);

		bot.process.child.kill("SIGTERM");
		await bot.waitForLog((l) => l.msg === "shutting down: finishing replies in flight");
		bot.process.child.kill("SIGTERM");
		const code = await bot.process.exited;

		expect(code).toBe(1);
		expect(double.messages.get(confirmation.id)?.content).toBe(
			"opsbot was stopped while restarting `api` on `127.0.0.1`, before the restart finished, so it cannot tell " +
				"whether it did. Check the container before restarting it again.",
		);
		expect((await bot.actionLog.recent(1, { userId: admin.id }))[0]).toMatchObject({
			action: "alert.restart",
			target: "production/api",
			result: "interrupted: opsbot stopped before the restart finished",
		});
	}, 60_000);

	async function killedMidRestart(env: Record<string, string>, name: string) {
		const stateDir = mkdtempSync(join(tmpdir(), "opsbot-restart-kill-"));
		let docker = fakeDocker(sshd.binDir, "", undefined, { restartSeconds: 30 });
		const first = await start(stateDir, env);
		const alertMessage = await postAlert(first, name, env.STATE_DATABASE_URL);
		await confirmRestart(alertMessage);
		await restartStarted(docker, 1);
		await first.kill();

		docker = fakeDocker(sshd.binDir, "");
		const second = await start(stateDir, env);
		try {
			const answer = await restartAnswer(await confirmRestart(alertMessage));
			return { answer, docker, second };
		} finally {
			await second.stop();
		}
	}

	it("after kill -9 mid-restart, a new process restarts that container at once (SQLite state)", async () => {
		const { answer, docker, second } = await killedMidRestart({}, "ApiDownKillSqlite");

		expect(answer).toBe("🔁 Restarted `api` on `127.0.0.1`.");
		expect(docker.calls()).toEqual([["restart", "api"]]);
		const record = (await second.actionLog.recent(1, { userId: admin.id }))[0];
		expect(record).toMatchObject({ action: "alert.restart", target: "production/api", result: "ok" });
		// Taken over because the killed process is gone, not after its heartbeat went stale.
		expect(record?.details?.tookOverFrom).toMatchObject({
			holder: expect.stringContaining('"pid"'),
			why: "process gone",
		});
	}, 90_000);

	it("after kill -9 mid-restart, a new process restarts that container at once (PostgreSQL state)", async () => {
		const { answer, docker } = await killedMidRestart({ STATE_DATABASE_URL: stateUrl }, "ApiDownKillPostgres");

		expect(answer).toBe("🔁 Restarted `api` on `127.0.0.1`.");
		expect(docker.calls()).toEqual([["restart", "api"]]);
		const client = new pg.Client({ connectionString: stateUrl });
		await client.connect();
		const { rows } = await client.query<{ result: string; details: { tookOverFrom?: unknown } }>(
			"SELECT result, details FROM opsbot_state.actions WHERE action = 'alert.restart' AND user_id = $1 " +
				"ORDER BY id DESC LIMIT 1",
			[admin.id],
		);
		await client.end();
		expect(rows[0]?.result).toBe("ok");
		expect(rows[0]?.details.tookOverFrom).toMatchObject({
			holder: expect.stringContaining('"pid"'),
			why: "process gone",
		});
	}, 90_000);
});
