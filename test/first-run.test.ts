import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { initialDotEnv } from "../src/init.ts";

/** `npm start` (node src/main.ts) in `dir` with nothing but PATH set: what a newcomer's first run prints. */
function npmStart(dir: string): Promise<{ code: number | null; output: string }> {
	return new Promise((done) => {
		const child = spawn(process.execPath, [resolve("src/main.ts")], {
			cwd: dir,
			env: { PATH: process.env.PATH ?? "" },
			stdio: ["ignore", "pipe", "pipe"],
		});
		let output = "";
		child.stdout.on("data", (c: Buffer) => (output += c.toString()));
		child.stderr.on("data", (c: Buffer) => (output += c.toString()));
		child.once("exit", (code) => done({ code, output }));
	});
}

describe("npm start on a first run", () => {
	it("with no config at all, says how to start: init, the minimal example, the README's quick start", async () => {
		const run = await npmStart(mkdtempSync(join(tmpdir(), "opsbot-first-")));

		expect(run.code).toBe(78);
		expect(run.output).toContain(
			"./opsbot.yaml: ops config file not found. To start: `npx opsbot init` writes it (and .env) from your " +
				"server's ids, or copy opsbot.minimal.yaml to opsbot.yaml and put your ids in; the README's Quick start has " +
				"every step.",
		);
	});

	it("with init's files before the Discord secrets are pasted, names both and where to find them, at once", async () => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-first-"));
		copyFileSync("opsbot.minimal.yaml", join(dir, "opsbot.yaml"));
		writeFileSync(join(dir, ".env"), initialDotEnv("w".repeat(32)));

		const run = await npmStart(dir);

		expect(run.code).toBe(78);
		expect(run.output).toBe(
			[
				"Invalid configuration:",
				"  - env.DISCORD_TOKEN: required to start the bot: paste it into .env from " +
					"https://discord.com/developers/applications (Bot > Reset Token)",
				"  - env.DISCORD_APPLICATION_ID: required to start the bot: paste it into .env from " +
					"https://discord.com/developers/applications (General Information > Application ID)",
				"",
			].join("\n"),
		);
	});

	it("with an unquoted Discord id, says to quote it and why, and still checks the rest of the file", async () => {
		const dir = mkdtempSync(join(tmpdir(), "opsbot-first-"));
		writeFileSync(
			join(dir, "opsbot.yaml"),
			"discord: { guildId: 100000000000000001 }\nenvironments: { production: { http: [{ name: web, url: not-a-url " +
				"}] } }\n",
		);
		writeFileSync(join(dir, ".env"), "DISCORD_TOKEN=t\nDISCORD_APPLICATION_ID=\nWEBHOOK_TOKEN=short\n");

		const run = await npmStart(dir);

		expect(run.code).toBe(78);
		expect(run.output).toContain(
			'discord.guildId: write it in quotes ("1234..."): YAML reads an unquoted number as a number, and a Discord ' +
				"id loses its last digits",
		);
		expect(run.output).toContain("environments.production.http.0.url: expected an http(s) URL");
		expect(run.output).toContain("env.WEBHOOK_TOKEN: must be at least 16 characters (e.g. `openssl rand -base64 24`)");
		expect(run.output).toContain("env.DISCORD_APPLICATION_ID: required to start the bot");
		expect(run.output).not.toContain("short");
	});
});
