import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

/** `node src/main.ts` with `opsYaml` and throwaway secrets: its exit code and what it printed. */
function start(opsYaml: string): Promise<{ code: number | null; output: string }> {
	const dir = mkdtempSync(join(tmpdir(), "opsbot-escalation-config-"));
	writeFileSync(join(dir, "opsbot.yaml"), opsYaml);
	return new Promise((done) => {
		const child = spawn(process.execPath, [resolve("src/main.ts")], {
			cwd: dir,
			env: {
				PATH: process.env.PATH ?? "",
				DISCORD_TOKEN: randomBytes(12).toString("hex"),
				DISCORD_APPLICATION_ID: "100000000000000900",
				WEBHOOK_TOKEN: randomBytes(16).toString("hex"),
			},
			stdio: ["ignore", "pipe", "pipe"],
		});
		let output = "";
		child.stdout.on("data", (c: Buffer) => (output += c.toString()));
		child.stderr.on("data", (c: Buffer) => (output += c.toString()));
		child.once("exit", (code) => done({ code, output }));
	});
}

const config = (alerts: string) => `discord: { guildId: "100000000000000001", roles: { leads: "300000000000000007" } }
environments: { production: {} }
alerts:
  defaultChannel: "400000000000000001"
${alerts}`;

describe("escalation and acknowledgement settings: bad ones stop the bot with exit 78 and say where", () => {
	it("refuses negative or zero minutes and an escalation on a route without a channel, all at once", async () => {
		const run = await start(
			config(`  ackTimeoutMinutes: -5
  routes:
    - match: { team: db }
      channel: "400000000000000002"
      escalation: { afterMinutes: 0, mention: [managers, "role:300000000000000008"] }
    - match: { team: web }
      escalation: { afterMinutes: 10, mention: [leads], repeatMinutes: -1 }
`),
		);

		expect(run.code).toBe(78);
		expect(run.output).toContain("alerts.ackTimeoutMinutes: must be more than 0 minutes");
		expect(run.output).toContain("alerts.routes.0.escalation.afterMinutes: must be more than 0 minutes");
		expect(run.output).toContain("alerts.routes.1.channel: required");
		expect(run.output).toContain("alerts.routes.1.escalation.repeatMinutes: must be more than 0 minutes");
	});

	it("names a mention target that is no role under discord.roles", async () => {
		const run = await start(
			config(`  routes:
    - match: { team: db }
      channel: "400000000000000002"
      escalation: { afterMinutes: 10, mention: [leads, managers] }
`),
		);

		expect(run.code).toBe(78);
		expect(run.output).toContain(
			'alerts.routes.0.escalation.mention.1: unknown role "managers" (define it under discord.roles, or write ' +
				"role:<id> or user:<id>)",
		);
	});

	it("never takes @everyone (or any @ text) as a target", async () => {
		const run = await start(
			config(`  routes:
    - match: { team: db }
      channel: "400000000000000002"
      escalation: { afterMinutes: 10, mention: ["@everyone"] }
`),
		);

		expect(run.code).toBe(78);
		expect(run.output).toContain(
			"alerts.routes.0.escalation.mention.0: expected a role named under discord.roles, role:<id> or user:<id>",
		);
	});
});
