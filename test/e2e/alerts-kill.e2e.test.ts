import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { payload } from "../support/alert-fixtures.ts";
import { stateEnvFor } from "../support/bot.ts";
import { type MainProcess, spawnMain } from "../support/main-process.ts";
import { freePort } from "../support/proc.ts";

describe("npm start killed with SIGKILL in the middle of an alert storm", () => {
	let double: DiscordDouble;
	let main: MainProcess | undefined;
	beforeAll(async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: "400000000000000001", name: "alerts" }] } });
	});
	afterAll(async () => {
		main?.child.kill("SIGKILL");
		await double.close();
	});

	// A bound, not a wait (each wait below ends on its condition): on the PostgreSQL state the restarted process
	// first waits out the killed one's gateway lease (15 s), so delivery resumes ~14 s later than on SQLite.
	it("delivers every group exactly once after the restart", { timeout: 90_000 }, async () => {
		const token = randomBytes(24).toString("hex");
		const port = await freePort();
		const stateDir = mkdtempSync(join(tmpdir(), "opsbot-kill-"));
		const ops =
			`discord: { guildId: "${double.guildId}" }\nenvironments: { production: {} }\nstateDir: ${stateDir}\n` +
			`alerts:\n  listen: { host: 127.0.0.1, port: ${port} }\n  defaultChannel: "400000000000000001"\n`;
		const env = {
			DISCORD_TOKEN: "double-token",
			DISCORD_APPLICATION_ID: double.applicationId,
			DISCORD_API_URL: double.apiUrl,
			WEBHOOK_TOKEN: token,
			...(await stateEnvFor(stateDir)),
		};
		const groups = Array.from({ length: 40 }, (_, i) => `Kill${i}`);
		// Discord is slow to accept: the storm is still being delivered when the process dies.
		double.failNext({
			method: "POST",
			pathPrefix: "/channels/400000000000000001/messages",
			status: 429,
			retryAfterSeconds: 0.3,
			count: 30,
		});

		main = spawnMain(ops, env);
		await double.waitFor(() => main!.output().includes("alert receiver listening"), 20_000);
		const statuses = await Promise.all(
			groups.map((g) =>
				fetch(`http://127.0.0.1:${port}/alerts`, {
					method: "POST",
					headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
					body: JSON.stringify(
						payload(3, {
							groupKey: g,
							groupLabels: { alertname: g },
							commonLabels: { alertname: g, severity: "warning" },
						}),
					),
				}).then((r) => r.status),
			),
		);
		await double.waitFor(() => double.channelMessages("400000000000000001").length >= 3, 20_000);
		main.child.kill("SIGKILL");
		await main.exited;
		const beforeRestart = double.channelMessages("400000000000000001").length;
		double.clearFaults();

		main = spawnMain(ops, env);
		const titles = () =>
			double.channelMessages("400000000000000001").map((m) => String((m.embeds[0] as { title?: string }).title));
		await double.waitFor(() => groups.every((g) => titles().some((t) => t === `🟠 WARNING · ${g}`)), 60_000);

		expect(statuses.every((s) => s === 202)).toBe(true);
		expect(beforeRestart).toBeLessThan(groups.length);
		for (const g of groups) expect(titles().filter((t) => t === `🟠 WARNING · ${g}`)).toHaveLength(1);
	});
});
