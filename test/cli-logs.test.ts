import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../src/cli.ts";
import { runOpsbotCli, runOpsbotInProcess } from "./support/cli.ts";
import { freshTenant, type TestLoki } from "./support/loki.ts";
import { freePort } from "./support/proc.ts";
import { sharedLoki } from "./support/shared-loki.ts";

const dir = mkdtempSync(join(tmpdir(), "opsbot-cli-logs-"));
const MINUTE = 60_000_000_000n;

// The first case runs the process (bin/opsbot.js); the others test what the CLI prints, in-process.
const opsbotProcess = (args: string[], config: string) => runOpsbotCli(args, { OPSBOT_CONFIG: config }, 30_000);
const opsbot = (args: string[], config: string) => runOpsbotInProcess(args, { OPSBOT_CONFIG: config });

describe("opsbot logs against a real Loki", () => {
	let loki: TestLoki;
	let config: string;
	const tenant = freshTenant("cli");
	const now = BigInt(Date.now()) * 1_000_000n;
	const tricky = 'copied `C:\\temp\\new` to "D:\\backup" ```done```';

	beforeAll(async () => {
		loki = await sharedLoki();
		await loki.push(tenant, { service: "api" }, [
			{ ns: now - 3n * MINUTE, line: tricky },
			{
				ns: now - 2n * MINUTE,
				line: JSON.stringify({ level: "error", msg: "payment failed", correlation_id: "c-42" }),
			},
			{ ns: now - MINUTE, line: "unrelated\twith a tab and an \u001b[31mescape" },
		]);
		await loki.push(tenant, { service: "worker" }, [
			{ ns: now - 2n * MINUTE, line: "worker picked up c-42" },
			{ ns: now - MINUTE, line: "worker picked up c-420" },
		]);
		config = join(dir, "opsbot.yaml");
		writeFileSync(
			config,
			`discord: { guildId: "100000000000000001" }
environments:
  production:
    loki: { url: "${loki.url}", tenant: ${tenant} }
  gone:
    loki: { url: "http://127.0.0.1:${await freePort()}", tenant: team-a, timeoutMs: 1000 }
`,
		);
	});

	it("prints the LogQL exactly as it ran, log lines with backticks and backslashes unchanged (defect 5)", async () => {
		const result = await opsbotProcess(
			["logs", "--service", "api", "--contains", "C:\\temp\\new", "--since", "1h"],
			config,
		);

		expect(result.code).toBe(0);
		const out = result.stdout.split("\n");
		expect(out[0]).toBe("[INFO] Logs of api on production");
		expect(out[2]).toMatch(
			/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z {2}copied `C:\\temp\\new` to "D:\\backup" ```done```$/,
		);
		const logql = out.find((l) => l.startsWith("LogQL: "))!.slice("LogQL: ".length);
		expect(logql).toBe('{service="api"} |= "C:\\\\temp\\\\new"');
		// What is shown is what ran: the printed LogQL finds the same line in Loki.
		const params = new URLSearchParams({ query: logql, start: (now - 60n * MINUTE).toString(), end: now.toString() });
		const direct = (await (
			await fetch(`${loki.url}/loki/api/v1/query_range?${params}`, { headers: { "x-scope-orgid": tenant } })
		).json()) as { data: { result: { values: [string, string][] }[] } };
		expect(direct.data.result.flatMap((s) => s.values.map((v) => v[1]))).toEqual([tricky]);
	});

	it("keeps one log line per terminal line and shows control characters as escapes", async () => {
		const result = await opsbot(["logs", "--service", "api", "--contains", "unrelated", "--since", "1h"], config);

		expect(result.stdout).toContain("  unrelated\twith a tab and an \\x1b[31mescape\n");
		expect(result.stdout).not.toContain("\u001b");
	});

	it("searches every service by correlation id alone, matching the id exactly (defect 12)", async () => {
		const result = await opsbot(["logs", "--correlation", "c-42", "--since", "1h", "--json"], config);

		expect(result.code).toBe(0);
		const data = JSON.parse(result.stdout) as {
			query: string;
			tenant: string;
			entries: { ns: string; line: string; labels: Record<string, string> }[];
		};
		expect(data.query.startsWith('{service=~".+"} |= "c-42"')).toBe(true);
		expect(data.tenant).toBe(tenant);
		expect(data.entries.map((e) => [e.labels.service, e.line]).sort()).toEqual([
			["api", JSON.stringify({ level: "error", msg: "payment failed", correlation_id: "c-42" })],
			["worker", "worker picked up c-42"],
		]);
		expect(data.entries[0]!.ns).toMatch(/^\d{19}$/);
	});

	it("exits 69 (unavailable) when Loki does not answer, and 64 for what the user must change (defect 11)", async () => {
		const down = await opsbot(["logs", "--service", "api", "--env", "gone"], config);
		const regex = await opsbot(["logs", "--query", '{service="api"} |~ "(a"', "--since", "1h"], config);
		const usage = await opsbot(["logs", "--since", "1h"], config);

		expect(down.code).toBe(69);
		expect(down.stderr).toBe("Loki is not reachable (connection refused). Check Loki with /health.\n");
		expect(regex.code).toBe(64);
		// The query is printed as typed (no backticks around it); the backticks after are Loki's own words.
		expect(regex.stderr).toContain('Loki cannot use the regular expression in |~ "(a": missing closing ): `(a`.');
		expect(usage.code).toBe(64);
		expect(usage.stderr).toContain("Pick a service, or give a correlation id");
	});

	it("documents every exit code in the reference the README links to", () => {
		const reference = readFileSync("docs/reference.md", "utf8");

		expect(readFileSync("README.md", "utf8")).toContain("(docs/reference.md)");
		for (const [name, code] of Object.entries(EXIT))
			expect(reference, `exit code ${code} (${name})`).toMatch(new RegExp(`\\|\\s*${code}\\s*\\|`));
	});
});
