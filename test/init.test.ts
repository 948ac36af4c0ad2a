import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseEnv } from "node:util";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import { minimalConfig } from "../src/init.ts";

const BIN = resolve("bin/opsbot.js");

/** `npx opsbot ARGS` run in `cwd`, as a user runs it in a new directory (no terminal: stdin is not a TTY). */
function opsbot(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
	return new Promise((done) => {
		execFile(
			process.execPath,
			[BIN, ...args],
			{ cwd, env: { PATH: process.env.PATH ?? "" }, timeout: 20_000 },
			(err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
		);
	});
}

const FLAGS = [
	"--guild",
	"100000000000000001",
	"--channel",
	"100000000000000010",
	"--role",
	"100000000000000100",
	"--env",
	"production",
	"--url",
	"https://www.example.com/",
];
const discordSecrets = { DISCORD_TOKEN: "a-token-for-the-test", DISCORD_APPLICATION_ID: "100000000000000002" };

describe("the minimal config", () => {
	it("opsbot.minimal.yaml is what init writes, with placeholder ids", () => {
		expect(readFileSync("opsbot.minimal.yaml", "utf8")).toBe(
			minimalConfig({
				guild: "100000000000000001",
				channel: "100000000000000010",
				role: "100000000000000100",
				env: "production",
				url: "https://www.example.com/",
			}),
		);
	});

	it("starts the bot with only the Discord token, application id and webhook token", () => {
		const config = loadConfig(
			{ OPSBOT_CONFIG: "opsbot.minimal.yaml", ...discordSecrets, WEBHOOK_TOKEN: "w".repeat(32) },
			"bot",
		);

		expect(Object.keys(config.ops.environments)).toEqual(["production"]);
		expect(config.ops.environments.production?.http).toHaveLength(1);
		expect(config.ops.alerts?.defaultChannel).toBe("100000000000000010");
	});
});

describe("opsbot init", () => {
	it("writes an opsbot.yaml and a .env that load once the Discord secrets are pasted in", async () => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-init-"));

		const run = await opsbot(["init", ...FLAGS], dir);

		expect(run.code, run.stderr).toBe(0);
		expect(run.stdout).toContain("node deploy-commands.ts --guild 100000000000000001");
		const env = parseEnv(readFileSync(join(dir, ".env"), "utf8"));
		expect(env.DISCORD_TOKEN).toBe("");
		expect(env.WEBHOOK_TOKEN?.length).toBeGreaterThanOrEqual(16);
		expect(statSync(join(dir, ".env")).mode & 0o077).toBe(0);
		const config = loadConfig({ ...env, ...discordSecrets, OPSBOT_CONFIG: join(dir, "opsbot.yaml") }, "bot");
		expect(config.ops.discord).toMatchObject({
			guildId: "100000000000000001",
			opsChannels: ["100000000000000010"],
			roles: { oncall: "100000000000000100" },
		});
		expect(config.ops.environments.production?.http[0]?.url).toBe("https://www.example.com/");
		expect(config.ops.alerts?.routes[0]?.mentionRole).toBe("100000000000000100");
	});

	it("refuses to overwrite an existing opsbot.yaml or .env and changes neither", async () => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-init-"));
		writeFileSync(join(dir, ".env"), "DISCORD_TOKEN=mine\n");

		const run = await opsbot(["init", ...FLAGS], dir);

		expect(run.code).toBe(64);
		expect(run.stderr).toContain(".env already exists");
		expect(readFileSync(join(dir, ".env"), "utf8")).toBe("DISCORD_TOKEN=mine\n");
		expect(() => statSync(join(dir, "opsbot.yaml"))).toThrow();
	});

	it("without a terminal, names each missing or malformed flag and writes nothing", async () => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-init-"));

		const run = await opsbot(["init", "--guild", "1234", "--env", "production"], dir);

		expect(run.code).toBe(64);
		expect(run.stderr).toContain("--guild: a Discord id is 17-20 digits");
		for (const flag of ["--channel", "--role", "--url"]) expect(run.stderr).toContain(`${flag}: required`);
		expect(() => statSync(join(dir, "opsbot.yaml"))).toThrow();
	});
});

describe("opsbot init in a terminal", () => {
	/** Runs init under a pseudo-terminal (util-linux `script`), answering each question once it is asked. */
	function answerInTerminal(
		cwd: string,
		answers: readonly [prompt: string, answer: string][],
	): Promise<{ code: number | null; screen: string }> {
		return new Promise((done) => {
			const child = spawn(
				"/usr/bin/script",
				["-qfec", `${process.execPath} ${BIN} init --env production`, "/dev/null"],
				{ cwd, env: { PATH: process.env.PATH ?? "", TERM: "dumb" }, stdio: ["pipe", "pipe", "pipe"] },
			);
			let screen = "";
			let next = 0;
			const answered = new Map<string, number>();
			child.stdout.on("data", (chunk: Buffer) => {
				screen += chunk.toString();
				// Answer each question once its prompt is on screen one more time than it has been answered.
				for (let entry = answers[next]; entry; entry = answers[next]) {
					const [prompt, answer] = entry;
					const times = answered.get(prompt) ?? 0;
					if (screen.split(prompt).length - 1 <= times) break;
					answered.set(prompt, times + 1);
					next++;
					child.stdin.write(`${answer}\r`);
				}
			});
			child.once("exit", (code) => done({ code, screen }));
		});
	}

	it("asks for what the flags leave out, again after a wrong answer, and writes a config that loads", {
		timeout: 60_000,
	}, async () => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-init-tty-"));

		const run = await answerInTerminal(dir, [
			["Server id", "1234"],
			["Server id", "100000000000000001"],
			["Channel id", "100000000000000010"],
			["On-call role id", "100000000000000100"],
			["An http(s) URL", "https://www.example.com/"],
		]);

		expect(run.code, run.screen).toBe(0);
		expect(run.screen).toContain("a Discord id is 17-20 digits");
		expect(run.screen).not.toContain("Environment name");
		const env = parseEnv(readFileSync(join(dir, ".env"), "utf8"));
		const config = loadConfig({ ...env, ...discordSecrets, OPSBOT_CONFIG: join(dir, "opsbot.yaml") }, "bot");
		expect(config.ops.discord.guildId).toBe("100000000000000001");
		expect(config.ops.alerts?.routes[0]?.mentionRole).toBe("100000000000000100");
	});
});
