import { randomBytes } from "node:crypto";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { firingWebhook } from "../support/alert-fixtures.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { openStateFile } from "../support/pending.ts";

const CHANNEL = "400000000000000001";
const ONCALL = "300000000000000001";
const token = randomBytes(24).toString("hex");
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

// D14: under the usual umask 022 the state directory was 0755 and every SQLite file 0644.
describe("state files are private to opsbot's user", () => {
	let double: DiscordDouble;
	let bot: TestBot;
	let stateDir: string;
	let umask: number;

	beforeAll(async () => {
		umask = process.umask(0o022);
		double = await startDiscordDouble({
			guild: { channels: [{ id: CHANNEL, name: "alerts" }], roles: [{ id: ONCALL, name: "oncall" }] },
		});
		// A stateDir that does not exist yet, so opsbot creates it (as it would on a fresh volume).
		stateDir = join(mkdtempSync(join(tmpdir(), "opsbot-modes-")), "state", "opsbot");
		bot = await startTestBot(
			double,
			`discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}" } }
access:
  actions: { alert.ack: [oncall] }
environments: { production: { prometheus: { url: "http://127.0.0.1:9" } } }
stateDir: ${stateDir}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
`,
			{ WEBHOOK_TOKEN: token },
			{ embedded: true },
		);
	});
	afterAll(async () => {
		await bot?.stop();
		await double?.close();
		process.umask(umask);
	});

	it(
		"creates stateDir 0700 and the alert store, its WAL and shared memory, with the action log in it, 0600 " +
			"under umask 022",
		async () => {
			const answer = await fetch(`${bot.webhookUrl}/alerts`, {
				method: "POST",
				headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
				body: JSON.stringify(firingWebhook("PrivateFiles")),
			});
			expect(answer.status).toBe(202);
			const message = await double.waitFor(() => double.channelMessages(CHANNEL)[0], 20_000);
			const ack = JSON.stringify(message.components).match(/alert:ack:[0-9a-f]{32}/)![0];
			await (
				await double.sendInteraction({
					kind: "button",
					customId: ack,
					messageId: message.id,
					user: { id: "200000000000000011", username: "olivia", roles: [ONCALL] },
				})
			).response();
			await double.waitFor(async () => (await bot.actionLog.recent(1)).length > 0, 10_000);

			const files = ["opsbot.sqlite", "opsbot.sqlite-wal", "opsbot.sqlite-shm"];
			expect({
				stateDir: mode(stateDir),
				...Object.fromEntries(files.map((f) => [f, mode(join(stateDir, f))])),
			}).toEqual({ stateDir: "700", ...Object.fromEntries(files.map((f) => [f, "600"])) });
		},
	);

	it("creates the embedded state file and its journals 0600 under umask 022", async () => {
		const dir = join(mkdtempSync(join(tmpdir(), "opsbot-modes-")), "fresh");
		const file = openStateFile(join(dir, "opsbot.sqlite"));
		await file.pending<string>("logs", 60_000).put("alice", "a search");

		const modes = Object.fromEntries(
			["opsbot.sqlite", "opsbot.sqlite-wal", "opsbot.sqlite-shm"].map((f) => [f, mode(join(dir, f))]),
		);
		file.close();

		expect({ dir: mode(dir), ...modes }).toEqual({
			dir: "700",
			"opsbot.sqlite": "600",
			"opsbot.sqlite-wal": "600",
			"opsbot.sqlite-shm": "600",
		});
	});
});
