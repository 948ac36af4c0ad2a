import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runOpsbotCli, runOpsbotInProcess } from "./support/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "opsbot-cli-"));

// In-process: these cases test what the CLI decides and prints. The first case runs the process
// (bin/opsbot.js) for the journey's boundary: the exit status and the flushed output.
const opsbot = runOpsbotInProcess;

describe("opsbot CLI", () => {
	let server: Server;
	let base: string;
	let configPath: string;

	beforeAll(async () => {
		server = createServer((req, res) => {
			res.statusCode = req.url === "/teapot" ? 418 : 200;
			res.end("ok");
		});
		await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
		base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
		const closed = createServer();
		await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
		const closedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
		await new Promise((resolve) => closed.close(resolve));
		configPath = join(dir, "opsbot.yaml");
		writeFileSync(
			configPath,
			`discord: { guildId: "100000000000000001" }
environments:
  good:
    http: [{ name: api, url: "${base}/ok" }]
  bad:
    http:
      - { name: api, url: "${base}/ok" }
      - { name: gone, url: "${closedUrl}/", timeoutMs: 1000 }
`,
		);
	});
	afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

	it("prints a readable report and exits 0 when healthy", async () => {
		const result = await runOpsbotCli(["health", "--env", "good"], { OPSBOT_CONFIG: configPath });

		expect(result.code).toBe(0);
		expect(result.stdout).toMatch(/^\[OK\] Health of good: all good\n/);
		expect(result.stdout).toMatch(/ {2}OK {4}api {2}http · \d+ ms — HTTP 200\n/);
	});

	it("exits 2 when something is down, and --json prints the raw results", async () => {
		const result = await opsbot(["health", "--env", "bad", "--json"], { OPSBOT_CONFIG: configPath });

		expect(result.code).toBe(2);
		const snapshots = JSON.parse(result.stdout) as {
			environment: string;
			checks: { name: string; state: string; detail: string }[];
		}[];
		expect(snapshots[0]?.checks).toEqual([
			expect.objectContaining({ name: "api", state: "ok" }),
			expect.objectContaining({ name: "gone", state: "down", detail: "connection refused" }),
		]);
	});

	it("summarises every environment without --env", async () => {
		const result = await opsbot(["health"], { OPSBOT_CONFIG: configPath });

		expect(result.code).toBe(2);
		expect(result.stdout).toContain("OK    good  1 / 1 checks ok");
		expect(result.stdout).toContain("CRIT  bad   gone down");
	});

	it("exits 78 with every config problem and 64 on bad usage", async () => {
		const badConfig = join(dir, "bad.yaml");
		writeFileSync(badConfig, "discord: {}\nenvironments: {}\n");

		const config = await opsbot(["health"], { OPSBOT_CONFIG: badConfig });
		const usage = await opsbot(["health", "--bogus"], { OPSBOT_CONFIG: configPath });
		const unknownEnv = await opsbot(["health", "--env", "nowhere"], { OPSBOT_CONFIG: configPath });

		expect(config.code).toBe(78);
		expect(config.stderr).toContain("discord.guildId: required");
		expect(config.stderr).toContain("environments: at least one environment is required");
		expect(usage.code).toBe(64);
		expect(usage.stderr).toContain("Usage: opsbot health");
		expect(unknownEnv.code).toBe(64);
		expect(unknownEnv.stderr).toContain("Unknown environment nowhere. Known: good, bad.");
		// Error words are typed text: the terminal gets the name as it is, never Discord's backticks.
		expect(unknownEnv.stderr).not.toContain("`");
	});

	it("runs without WEBHOOK_TOKEN or Discord secrets when the ops file has an alerts section", async () => {
		const withAlerts = join(dir, "alerts.yaml");
		writeFileSync(
			withAlerts,
			`discord: { guildId: "100000000000000001" }
environments:
  good:
    http: [{ name: api, url: "${base}/ok" }]
alerts: { defaultChannel: "100000000000000020" }
`,
		);

		const result = await opsbot(["health", "--env", "good"], { OPSBOT_CONFIG: withAlerts });

		expect(result.stderr).toBe("");
		expect(result.code).toBe(0);
		expect(result.stdout).toMatch(/^\[OK\] Health of good: all good\n/);
	});

	it("answers an environment named like an Object.prototype key as unknown, with the usage code", async () => {
		const proto = await opsbot(["health", "--env", "__proto__"], { OPSBOT_CONFIG: configPath });
		const ctor = await opsbot(["pool", "--env", "constructor"], { OPSBOT_CONFIG: configPath });

		expect(proto.code).toBe(64);
		expect(proto.stderr).toContain("Unknown environment __proto__. Known: good, bad.");
		expect(proto.stderr).not.toContain("TypeError");
		expect(ctor.code).toBe(64);
		expect(ctor.stderr).toContain("Unknown environment constructor. Known: good, bad.");
	});

	it("exits 69 (unavailable) when the PostgreSQL a lookup needs is down, as README's exit-code table says", async () => {
		const closed = createServer();
		await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
		const port = (closed.address() as AddressInfo).port;
		await new Promise((resolve) => closed.close(resolve));
		const config = join(dir, "pg-down.yaml");
		writeFileSync(
			config,
			`discord: { guildId: "100000000000000001" }\nenvironments:\n  production:\n    postgres: { urlEnv: APP_DB_URL }\n`,
		);

		const result = await opsbot(["whodeleted", "User", "42"], {
			OPSBOT_CONFIG: config,
			APP_DB_URL: `postgres://opsbot@127.0.0.1:${port}/app`,
		});

		expect(result.stderr).toContain("The PostgreSQL of production is not reachable (connection refused)");
		expect(result.code).toBe(69);
	});
});
