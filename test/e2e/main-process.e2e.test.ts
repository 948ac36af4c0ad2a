import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { spawnMain } from "../support/main-process.ts";

describe("npm start (src/main.ts) as a process", () => {
	let double: DiscordDouble;
	beforeAll(async () => {
		double = await startDiscordDouble();
	});
	afterAll(() => double.close());

	it("logs into Discord, answers /health, and on SIGTERM finishes and exits 0", async () => {
		const main = spawnMain(
			`discord: { guildId: "${double.guildId}" }
access: { commands: { health: [everyone] } }
environments:
  local:
    http: [{ name: nothing, url: "http://127.0.0.1:1/", timeoutMs: 500 }]
`,
			{ DISCORD_TOKEN: "double-token", DISCORD_APPLICATION_ID: double.applicationId, DISCORD_API_URL: double.apiUrl },
		);
		try {
			await double.waitFor(() => double.identified() >= 1, 15_000);
			await double.waitFor(() => main.output().includes("connected to Discord"), 15_000);

			const sent = await double.sendInteraction({
				kind: "command",
				name: "health",
				options: [{ name: "env", type: 3, value: "local" }],
			});
			await sent.response();
			const message = await double.waitFor(() =>
				double.originalMessage(sent.id)?.embeds.length ? double.originalMessage(sent.id) : undefined,
			);
			main.child.kill("SIGTERM");
			const code = await main.exited;

			expect(message.embeds[0]).toMatchObject({ title: "Health of local: down" });
			expect(code).toBe(0);
			expect(main.output()).toContain('"msg":"stopped"');
			expect(main.output()).not.toContain("double-token");
		} finally {
			main.child.kill("SIGKILL");
		}
	});

	it("exits 78 on a bad config before making any connection, naming each problem and no secret", async () => {
		const before = double.requests.length;
		const main = spawnMain("discord: { guildId: nope }\nenvironments:\n  prod:\n    postgres: {}\n", {
			DISCORD_TOKEN: "secret-token-value",
			DISCORD_API_URL: double.apiUrl,
		});

		const code = await main.exited;

		expect(code).toBe(78);
		expect(main.output()).toContain("discord.guildId: expected a Discord id");
		expect(main.output()).toContain("environments.prod.postgres.urlEnv: required");
		expect(main.output()).not.toContain("secret-token-value");
		expect(double.requests.length).toBe(before);
	});
});
