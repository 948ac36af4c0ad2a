import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runOpsbotCli, runOpsbotInProcess } from "./support/cli.ts";

// The action log an opsbot before the action-log table left: rotated once, its last line torn.
const OLD_LOG = join(import.meta.dirname, "state", "fixtures", "actions-jsonl");

/** An ops file whose stateDir is `stateDir`; returns its path. */
function opsFile(stateDir: string): string {
	const config = join(mkdtempSync(join(tmpdir(), "opsbot-cli-actions-")), "opsbot.yaml");
	writeFileSync(
		config,
		`discord: { guildId: "100000000000000001" }\nenvironments: { production: {} }\n` +
			`stateDir: ${JSON.stringify(stateDir)}\n`,
	);
	return config;
}

describe("opsbot actions reads the action log through the state layer", () => {
	it("shows an old actions.jsonl, imported into the state file on first read", async () => {
		const stateDir = mkdtempSync(join(tmpdir(), "opsbot-cli-actions-state-"));
		for (const name of ["actions.jsonl", "actions.jsonl.1"]) copyFileSync(join(OLD_LOG, name), join(stateDir, name));

		const run = await runOpsbotCli(["actions", "--action", "pool.terminate", "--json"], {
			OPSBOT_CONFIG: opsFile(stateDir),
		});

		expect(run.code, run.stderr).toBe(0);
		const records = JSON.parse(run.stdout) as { target: string; result: string }[];
		expect(records.map((r) => [r.target, r.result])).toEqual([
			["staging: 1 session", "ok"],
			["production: 3 sessions", "refused"],
		]);
		expect(readdirSync(stateDir).sort()).toEqual(
			expect.arrayContaining(["actions.jsonl.1.imported", "actions.jsonl.imported", "opsbot.sqlite"]),
		);
		expect(existsSync(join(stateDir, "actions.jsonl"))).toBe(false);
	});

	it("has nothing to show where opsbot never ran, and creates no state there", async () => {
		const stateDir = join(mkdtempSync(join(tmpdir(), "opsbot-cli-actions-state-")), "data");
		mkdirSync(stateDir);

		const run = await runOpsbotInProcess(["actions", "--json"], { OPSBOT_CONFIG: opsFile(stateDir) });

		expect(run.code, run.stderr).toBe(0);
		expect(JSON.parse(run.stdout)).toEqual([]);
		expect(readdirSync(stateDir)).toEqual([]);
	});
});
