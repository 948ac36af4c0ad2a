import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { spawnMain } from "./support/main-process.ts";
import { requireBinary } from "./support/proc.ts";

const readme = readFileSync("README.md", "utf8");
const configurationDoc = readFileSync("docs/configuration.md", "utf8");

/** The first fenced block after `marker` in `text` (indented blocks included), without its fence lines. */
function blockAfter(marker: string, text = readme): string {
	const start = text.indexOf(marker);
	expect(start, `the document has "${marker}"`).toBeGreaterThanOrEqual(0);
	const open = text.indexOf("\n", text.indexOf("```", start));
	const close = text.lastIndexOf("\n", text.indexOf("```", open));
	return text.slice(open + 1, close + 1);
}

describe("the README's samples are what the product does", () => {
	it("gives an alertmanager.yml that AlertManager's own checker accepts", () => {
		requireBinary("/usr/bin/amtool", "amtool", "prometheus-alertmanager");
		const dir = mkdtempSync(join(tmpdir(), "opsbot-readme-"));
		const yaml = blockAfter("Then in `alertmanager.yml`").replace("/etc/alertmanager/opsbot-token", join(dir, "token"));
		writeFileSync(join(dir, "token"), "x".repeat(32));
		writeFileSync(join(dir, "alertmanager.yml"), yaml);

		const out = execFileSync("/usr/bin/amtool", ["check-config", join(dir, "alertmanager.yml")], { encoding: "utf8" });

		expect(out).toContain("SUCCESS");
		expect(yaml).toContain("send_resolved: true");
	});

	it("shows (docs/configuration.md) the configuration errors as npm start prints them, with exit code 78", async () => {
		const sample = blockAfter("A bad config lists every problem", configurationDoc)
			.split("\n")
			.map((l) => l.trim())
			.filter(Boolean);
		const main = spawnMain(
			`discord: { guildId: "100000000000000001", roles: { oncall: "300000000000000001" } }
access: { commands: { pool: [oncall, ghosts] } }
environments:
  production: { postgres: { urlEnv: PROD_DATABASE_URL } }
  staging: { postgres: { urlEnv: STAGING_DATABASE_URL } }
`,
			{ DISCORD_TOKEN: "not-a-real-token", DISCORD_APPLICATION_ID: "100000000000000002" },
		);

		const code = await main.exited;

		expect(code).toBe(78);
		expect(sample[0]).toBe("Invalid configuration:");
		for (const line of sample) expect(main.output()).toContain(line);
	});

	it("links only to docs and pictures that exist", () => {
		const targets = [...readme.matchAll(/\]\(((?:docs\/)[^)#]+)/g)].map((m) => m[1]!);
		expect(targets.length).toBeGreaterThan(5);
		for (const target of targets) expect(existsSync(target), target).toBe(true);
	});

	it("stays a short path: about 1,500 words at most, quick start before the systems, Developing near the end", () => {
		expect(readme.split(/\s+/).filter(Boolean).length).toBeLessThanOrEqual(1_500);
		const order = ["## Quick start", "## Adding your systems", "## Reference", "## Developing"].map((h) =>
			readme.indexOf(`\n${h}\n`),
		);
		expect(order.every((at) => at > 0)).toBe(true);
		expect([...order].sort((a, b) => a - b)).toEqual(order);
	});

	it("names in .env.example every secret the README says comes from the environment", () => {
		const example = readFileSync(".env.example", "utf8");
		for (const name of [
			"DISCORD_TOKEN",
			"DISCORD_APPLICATION_ID",
			"WEBHOOK_TOKEN",
			"STATE_DATABASE_URL",
			"OPSBOT_CONFIG",
		]) {
			expect(readme).toContain(name);
			expect(example).toContain(name);
		}
	});
});
