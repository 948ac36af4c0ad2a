import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runOpsbotCli, unwrapped } from "./support/cli.ts";
import { startSshd, type TestSshd } from "./support/sshd.ts";

const dir = mkdtempSync(join(tmpdir(), "opsbot-cli-report-"));

async function closedPort(): Promise<number> {
	const server = createServer();
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const port = (server.address() as AddressInfo).port;
	await new Promise((resolve) => server.close(resolve));
	return port;
}

/** `npx opsbot ARGS` as a child process, with when its last output came and when it exited (performance.now()). */
function runTimed(
	args: readonly string[],
	env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; lastOutputAt: number; exitedAt: number }> {
	return new Promise((resolve) => {
		const child = spawn(process.execPath, ["bin/opsbot.js", ...args], {
			env: { PATH: process.env.PATH ?? "", ...env },
		});
		let stdout = "";
		let lastOutputAt = 0;
		child.stdout.on("data", (chunk: Buffer) => {
			stdout += chunk.toString("utf8");
			lastOutputAt = performance.now();
		});
		child.on("exit", (code) => resolve({ code, stdout, lastOutputAt, exitedAt: performance.now() }));
	});
}

describe("the CLI's report is all a person sees in the terminal", () => {
	let sshd: TestSshd;
	beforeAll(async () => {
		sshd = await startSshd();
	});
	afterAll(async () => {
		await sshd?.stop();
	});

	it("prints `opsbot pool` with PostgreSQL and PgBouncer down without JSON logs or stack traces above it", async () => {
		const config = join(dir, "pool-down.yaml");
		writeFileSync(
			config,
			`discord: { guildId: "100000000000000001" }\nenvironments:\n  production:\n` +
				`    postgres: { urlEnv: APP_DB_URL }\n    pgbouncer: { adminUrlEnv: PGB_URL }\n`,
		);

		const result = await runOpsbotCli(["pool"], {
			OPSBOT_CONFIG: config,
			APP_DB_URL: `postgres://opsbot@127.0.0.1:${await closedPort()}/app`,
			PGB_URL: `postgres://pgb@127.0.0.1:${await closedPort()}/pgbouncer`,
		});

		expect(result.code).toBe(2);
		expect(result.stdout).toMatch(/^\[CRIT\] Connections on production: PostgreSQL unreachable\n/);
		expect(result.stdout).not.toContain("current");
		const stderrLines = result.stderr.trimEnd().split("\n");
		expect(stderrLines.length).toBeGreaterThan(0);
		for (const line of stderrLines)
			expect(line).toMatch(/^opsbot warning: pool: (postgres|pgbouncer) read failed \(.*\)$/);
		expect(result.stderr).not.toMatch(/[{}]|\n\s+at /);
	});

	it("fits `opsbot health` into 80 columns, wrapping long lines under their label without losing a word", async () => {
		const port = await closedPort();
		const checks = Array.from(
			{ length: 8 },
			(_, i) =>
				`      - { name: payments-api-replica-${i}, url: "http://127.0.0.1:${port}/health/deep?verbose=true", ` +
				`timeoutMs: 1000 }`,
		);
		const config = join(dir, "wide.yaml");
		writeFileSync(
			config,
			`discord: { guildId: "100000000000000001" }\nenvironments:\n  production:\n    http:\n${checks.join("\n")}\n`,
		);

		const summary = await runOpsbotCli(["health"], { OPSBOT_CONFIG: config });
		const one = await runOpsbotCli(["health", "--env", "production"], { OPSBOT_CONFIG: config });

		expect(summary.code).toBe(2);
		for (const out of [summary.stdout, one.stdout])
			for (const line of out.trimEnd().split("\n")) expect([...line].length, line).toBeLessThanOrEqual(80);
		expect(unwrapped(summary.stdout)).toContain(
			`production  ${Array.from({ length: 8 }, (_, i) => `payments-api-replica-${i} down`).join(", ")}\n`,
		);
		expect(unwrapped(one.stdout)).toMatch(/\n {2}CRIT {2}payments-api-replica-0 http · \d+ ms — connection refused\n/);
	});

	it("exits as soon as `opsbot health` has printed, when the SSH host refuses the connection or the key", async () => {
		const yaml = (port: number, hostKey: string) =>
			`discord: { guildId: "100000000000000001" }\nenvironments:\n  prod:\n` +
			`    ssh: { host: 127.0.0.1, port: ${port}, user: root, keyFileEnv: SSH_KEY, hostKey: "${hostKey}", ` +
			`containers: [api] }\n`;
		writeFileSync(join(dir, "ssh-refused.yaml"), yaml(await closedPort(), sshd.hostKey));
		writeFileSync(join(dir, "ssh-wrong-key.yaml"), yaml(sshd.port, sshd.hostKey));
		const otherKey = join(dir, "other_key");
		const keygen = spawn("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", otherKey]);
		await new Promise((resolve) => keygen.on("exit", resolve));

		const refused = await runTimed(["health", "--env", "prod"], {
			OPSBOT_CONFIG: join(dir, "ssh-refused.yaml"),
			SSH_KEY: sshd.privateKeyPath,
		});
		const wrongKey = await runTimed(["health", "--env", "prod"], {
			OPSBOT_CONFIG: join(dir, "ssh-wrong-key.yaml"),
			SSH_KEY: otherKey,
		});

		expect(refused.code).toBe(2);
		expect(refused.stdout).toContain("containers · ");
		expect(refused.stdout).toContain("— connection refused\n");
		expect(wrongKey.code).toBe(2);
		expect(wrongKey.stdout).toContain("— SSH key refused\n");
		// The SSH timeout is 10 s: a timer or socket left open would keep the process that long.
		expect(refused.exitedAt - refused.lastOutputAt).toBeLessThan(3_000);
		expect(wrongKey.exitedAt - wrongKey.lastOutputAt).toBeLessThan(3_000);
	});
});
