import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { actionLogOf } from "../support/bot.ts";
import { freePort } from "../support/proc.ts";

/**
 * The README's quick start, command by command as it is written there, in a new directory against the
 * Discord double: init, the two .env lines, deploy-commands, npm start, /health, doctor, test-alert.
 * The only additions are DISCORD_API_URL (to reach the double instead of discord.com) and moving the
 * webhook off the fixed port 9095, which another test run on this machine may hold.
 */

const REPO = resolve(".");
const readme = readFileSync("README.md", "utf8");
const quickStart = readme.slice(readme.indexOf("\n## Quick start\n"), readme.indexOf("\n## Adding your systems\n"));

/** The quick start's fenced blocks in order: `sh` blocks are commands, the bare block is what goes into .env. */
function blocks(): { lang: string; lines: string[] }[] {
	return [...quickStart.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({
		lang: m[1] ?? "",
		lines: (m[2] ?? "").split("\n").filter((l) => l.trim() !== ""),
	}));
}

describe("the README's quick start, followed to the letter", () => {
	const GUILD = "100000000000000001";
	const CHANNEL = "400000000000000001";
	const ROLE = "300000000000000001";
	const TOKEN = "quickstart-bot-token";
	let double: DiscordDouble;
	let api: Server;
	let dir: string;
	const started: ChildProcess[] = [];

	beforeAll(async () => {
		double = await startDiscordDouble({
			token: TOKEN,
			guild: { id: GUILD, channels: [{ id: CHANNEL, name: "ops" }], roles: [{ id: ROLE, name: "oncall" }] },
		});
		api = createServer((_, res) => res.end("ok"));
		await new Promise<void>((done) => api.listen(0, "127.0.0.1", done));
		dir = mkdtempSync(join(tmpdir(), "opsbot-quickstart-"));
	});
	afterAll(async () => {
		for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
		await double?.close();
		await new Promise((done) => api?.close(done));
	});

	it("reaches a /health answer and a test alert in the channel, resolved", { timeout: 240_000 }, async () => {
		const values: Record<string, string> = {
			GUILD_ID: GUILD,
			CHANNEL_ID: CHANNEL,
			ROLE_ID: ROLE,
			HEALTH_URL: `http://127.0.0.1:${(api.address() as AddressInfo).port}/health`,
			BOT_TOKEN: TOKEN,
			APPLICATION_ID: double.applicationId,
		};
		const fill = (line: string) =>
			line.replace(/<([A-Z_]+)>/g, (whole, name: string) => {
				expect(values[name], `the quick start's placeholder ${whole} has a value in this test`).toBeDefined();
				return values[name]!;
			});
		const env = { PATH: process.env.PATH ?? "", DISCORD_API_URL: double.apiUrl };
		const spawnIn = (argv: string[]) => {
			const child = spawn(process.execPath, argv, { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
			started.push(child);
			let output = "";
			child.stdout?.on("data", (c: Buffer) => (output += c.toString()));
			child.stderr?.on("data", (c: Buffer) => (output += c.toString()));
			const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
			return { child, output: () => output, exited };
		};
		// The command as a user types it, mapped to this checkout (npx opsbot = bin/opsbot.js, npm start = src/main.ts).
		const argvOf = (command: string): string[] | "installed" => {
			const words = command.trim().split(/\s+/);
			if (command.trim() === "npm install") return "installed";
			if (command.trim() === "npm start") return [join(REPO, "src/main.ts")];
			if (words[0] === "npx" && words[1] === "opsbot") return [join(REPO, "bin/opsbot.js"), ...words.slice(2)];
			if (words[0] === "node" && words[1] === "deploy-commands.ts")
				return [join(REPO, "deploy-commands.ts"), ...words.slice(2)];
			throw new Error(`the quick start runs a command this test does not know: ${command}`);
		};

		const steps = blocks();
		expect(steps.map((b) => b.lang)).toEqual(["sh", "", "sh", "sh"]);
		type Step = { kind: "run"; line: string } | { kind: "env"; lines: string[] };
		const commands = steps.flatMap((b): Step[] =>
			b.lang === "sh"
				? b.lines.map((line) => ({ kind: "run" as const, line: fill(line) }))
				: [{ kind: "env" as const, lines: b.lines.map(fill) }],
		);
		let bot: ReturnType<typeof spawnIn> | undefined;
		let testAlert: ReturnType<typeof spawnIn> | undefined;
		for (const step of commands) {
			if (step.kind === "env") {
				// "open .env and paste the two values": each line replaces the empty one init wrote.
				let dotenv = readFileSync(join(dir, ".env"), "utf8");
				for (const line of step.lines) {
					const name = line.split("=")[0]!;
					expect(dotenv).toContain(`\n${name}=\n`);
					dotenv = dotenv.replace(`\n${name}=\n`, `\n${line}\n`);
				}
				writeFileSync(join(dir, ".env"), dotenv);
				continue;
			}
			const argv = argvOf(step.line);
			if (argv === "installed") {
				expect(existsSync(join(REPO, "node_modules/discord.js")), "npm install has been run in this checkout").toBe(
					true,
				);
				continue;
			}
			if (step.line.includes("init")) {
				const run = spawnIn(argv);
				expect(await run.exited, run.output()).toBe(0);
				const config = join(dir, "opsbot.yaml");
				writeFileSync(config, readFileSync(config, "utf8").replace("port: 9095", `port: ${await freePort()}`));
			} else if (step.line === "npm start") {
				bot = spawnIn(argv);
				await double
					.waitFor(
						() => bot!.output().includes("connected to Discord") && bot!.output().includes("alert receiver listening"),
						30_000,
					)
					.catch(() => {
						throw new Error(`npm start did not connect:\n${bot!.output()}`);
					});
				// "Type /health in the channel: opsbot answers with your check."
				const health = await double.sendInteraction({
					kind: "command",
					name: "health",
					channelId: CHANNEL,
					user: { roles: [] },
				});
				await health.response(10_000);
				const answer = await double.waitFor(() => {
					const m = double.originalMessage(health.id);
					return m && m.embeds.length > 0 ? m : undefined;
				}, 15_000);
				// With one environment /health answers with the summary of all: the check ran and passed.
				expect(JSON.stringify(answer.embeds[0])).toMatch(/Health.*production.*1 \/ 1 checks ok/s);
				expect(answer.flags & 64, "public in the ops channel").toBe(0);
			} else if (step.line.includes("test-alert")) {
				testAlert = spawnIn(argv);
				const posted = await double
					.waitFor(() => double.channelMessages(CHANNEL).find((m) => JSON.stringify(m.embeds).includes("TEST")), 30_000)
					.catch(() => {
						throw new Error(`no test alert in the channel:\n${testAlert!.output()}\n${bot?.output().slice(-3_000)}`);
					});
				expect(JSON.stringify(posted.embeds)).toContain("nothing is wrong");
				// Ctrl-C, as a person who has seen it would: the group resolves at once instead of in a minute.
				testAlert.child.kill("SIGINT");
				expect(await testAlert.exited, testAlert.output()).toBe(0);
				const resolved = await double.waitFor(() => {
					const m = double.messages.get(posted.id);
					return m && m.edits > 0 && /resolved/i.test(JSON.stringify(m.embeds)) ? m : undefined;
				}, 30_000);
				// Only the Timeline button (the episode's history for the postmortem) stays on a resolved card.
				expect(JSON.stringify(resolved.components).match(/"alert:[a-z]+/g)).toEqual(['"alert:timeline']);
			} else {
				const run = spawnIn(argv);
				const code = await run.exited;
				expect(code, `${step.line}:\n${run.output()}`).toBe(0);
				if (step.line.startsWith("node deploy-commands.ts"))
					expect((double.commands.guild.get(GUILD) ?? []).map((c) => c.name)).toContain("health");
			}
		}
		expect(bot, "the quick start starts the bot").toBeDefined();
		expect(testAlert, "the quick start sends a test alert").toBeDefined();
		const actions = await actionLogOf(join(dir, "data")).recent(10, { action: "alert.test" });
		expect(actions.map((a) => a.details?.step)).toEqual(["resolved", "firing"]);
		bot!.child.kill("SIGTERM");
		expect(await bot!.exited).toBe(0);
	});
});
