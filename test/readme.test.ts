import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { spawnMain } from "./support/main-process.ts";
import { requireBinary } from "./support/proc.ts";

const readme = readFileSync("README.md", "utf8");

/** The first fenced block after `marker` in the README (indented blocks included), without its fence lines. */
function blockAfter(marker: string): string {
	const start = readme.indexOf(marker);
	expect(start, `README has "${marker}"`).toBeGreaterThanOrEqual(0);
	const open = readme.indexOf("\n", readme.indexOf("```", start));
	const close = readme.lastIndexOf("\n", readme.indexOf("```", open));
	return readme.slice(open + 1, close + 1);
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

	it("shows the configuration errors exactly as npm start prints them, with exit code 78", async () => {
		const sample = blockAfter("A bad config lists every problem")
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

	it("names in .env.example every secret the README says comes from the environment", () => {
		const example = readFileSync(".env.example", "utf8");
		for (const name of ["DISCORD_TOKEN", "DISCORD_APPLICATION_ID", "WEBHOOK_TOKEN", "STATE_DATABASE_URL", "OPSBOT_CONFIG"]) {
			expect(readme).toContain(name);
			expect(example).toContain(name);
		}
	});
});
