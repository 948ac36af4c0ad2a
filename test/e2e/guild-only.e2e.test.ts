import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, snowflake, startDiscordDouble } from "../discord-double/index.ts";
import { actionLogOf, stateEnvFor } from "../support/bot.ts";
import { type MainProcess, spawnMain } from "../support/main-process.ts";

const REFUSAL = "opsbot only works in its own server.";
const EPHEMERAL = 64;

describe("opsbot serves only its configured server (node src/main.ts)", () => {
	let double: DiscordDouble;
	let main: MainProcess;
	let stateEnv: Record<string, string>;
	const stateDir = mkdtempSync(join(tmpdir(), "opsbot-guild-only-"));
	const health = { kind: "command" as const, name: "health", options: [{ name: "env", type: 3, value: "local" }] };

	beforeAll(async () => {
		double = await startDiscordDouble();
		stateEnv = await stateEnvFor(stateDir);
		main = spawnMain(
			`discord: { guildId: "${double.guildId}" }
access: { commands: { health: [everyone] } }
environments:
  local:
    http: [{ name: nothing, url: "http://127.0.0.1:1/", timeoutMs: 500 }]
stateDir: "${stateDir}"
`,
			{
				DISCORD_TOKEN: "double-token",
				DISCORD_APPLICATION_ID: double.applicationId,
				DISCORD_API_URL: double.apiUrl,
				...stateEnv,
			},
		);
		await double.waitFor(() => main.output().includes("connected to Discord"), 15_000);
	});
	afterAll(async () => {
		main.child.kill("SIGKILL");
		await main.exited;
		await double.close();
	});

	it("refuses /health from another server, ephemerally, and runs no check", async () => {
		const sent = await double.sendInteraction({ ...health, guildId: snowflake() });

		const response = await sent.response();
		// A barrier instead of a second's wait: a /health from opsbot's own server, answered in full;
		// a follow-up to the refused one, had it been sent, would have arrived by then.
		const barrier = await double.sendInteraction(health);
		await double.waitFor(() => double.originalMessage(barrier.id)?.embeds.length || undefined, 20_000);

		expect(response.type).toBe(4);
		expect(response.data).toMatchObject({ content: REFUSAL, flags: EPHEMERAL });
		expect(double.originalMessage(sent.id)?.embeds).toEqual([]);
		expect(double.requests.filter((r) => r.path.startsWith("/webhooks/") && r.path.includes(sent.token))).toEqual([]);
	});

	it("refuses /health from a DM, plainly", async () => {
		const sent = await double.sendInteraction({ ...health, guildId: null });

		const response = await sent.response();

		expect(response.type).toBe(4);
		expect(response.data?.content).toBe(REFUSAL);
		expect(Number(response.data?.flags ?? 0) & EPHEMERAL).toBe(0);
		expect(double.originalMessage(sent.id)?.embeds).toEqual([]);
	});

	it("offers no autocomplete choices outside its server", async () => {
		const sent = await double.sendInteraction({
			kind: "autocomplete",
			name: "health",
			options: [{ name: "env", type: 3, value: "lo", focused: true }],
			guildId: null,
		});

		const response = await sent.response();

		expect(response).toMatchObject({ type: 8, data: { choices: [] } });
	});

	it("logs and records each refusal in the action log", async () => {
		const records = await double.waitFor(async () => {
			const recorded = (await actionLogOf(stateDir, stateEnv).recent(10)).reverse();
			return recorded.length >= 2 ? recorded : undefined;
		});

		expect(records).toEqual([
			expect.objectContaining({
				action: "outside-guild",
				target: "/health",
				result: expect.stringMatching(/^refused: sent from guild \d+$/),
			}),
			expect.objectContaining({ action: "outside-guild", target: "/health", result: "refused: sent from a DM" }),
		]);
		expect(main.output()).toContain("refused an interaction from outside opsbot's server");
	});

	it("still answers /health in its own server", async () => {
		const sent = await double.sendInteraction(health);

		await sent.response();
		const message = await double.waitFor(() =>
			double.originalMessage(sent.id)?.embeds.length ? double.originalMessage(sent.id) : undefined,
		);

		expect(message.embeds[0]).toMatchObject({ title: "Health of local: down" });
	});
});
