import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
	amtool,
	postAlerts,
	readSilence,
	readSilences,
	startAlertManager,
	type TestAlertManager,
} from "./support/alertmanager.ts";
import { actionLogOf } from "./support/bot.ts";
import { runOpsbotCli, runOpsbotInProcess, unwrapped } from "./support/cli.ts";

const GUILD = "100000000000000001";

describe("opsbot silence and opsbot maintenance against a real AlertManager", () => {
	let alertmanager: TestAlertManager;
	let config: string;
	let stateDir: string;
	// What the CLI decides and prints, run in this process; the exit statuses of the last case go
	// through `npx opsbot` as a user runs it (a process per run cost ~0.6 s of CPU each).
	const opsbot = (...args: string[]) => runOpsbotInProcess(args, { OPSBOT_CONFIG: config });

	beforeAll(async () => {
		alertmanager = await startAlertManager();
		const dir = mkdtempSync(join(tmpdir(), "opsbot-cli-silences-"));
		stateDir = join(dir, "state");
		config = join(dir, "opsbot.yaml");
		writeFileSync(
			config,
			`discord: { guildId: "${GUILD}" }
environments:
  production: { alertmanager: { url: "${alertmanager.url}" } }
  staging: { alertmanager: { url: "${alertmanager.url}" } }
  down: { alertmanager: { url: "http://127.0.0.1:9", timeoutMs: 500 } }
defaultEnvironment: production
alerts: { defaultChannel: "400000000000000001", silences: { maxDuration: 1d } }
stateDir: ${JSON.stringify(stateDir)}
`,
		);
		await postAlerts(alertmanager.url, [
			{ labels: { alertname: "ApiErrors", env: "production", service: "api" } },
			{ labels: { alertname: "ApiErrors", env: "staging", service: "api" } },
		]);
	});
	afterAll(async () => {
		await alertmanager?.stop();
	});

	it("previews with --dry-run, creates, lists, extends in place and expires, each in the action log", async () => {
		const dry = await opsbot(
			"silence",
			"create",
			"--matchers",
			'service="api"',
			"--duration",
			"2h",
			"--comment",
			"deploy",
			"--dry-run",
		);
		const none = (await readSilences(alertmanager.url)).filter((s) => s.comment === "deploy");
		const created = await opsbot(
			"silence",
			"create",
			"--matchers",
			'service="api", env="production"',
			"--duration",
			"2h",
			"--comment",
			"deploy",
			"--json",
		);
		const { id } = JSON.parse(created.stdout) as { id: string };
		const listed = await opsbot("silence", "list", "--env", "production");
		const before = await readSilence(alertmanager.url, id);
		const extended = await opsbot("silence", "extend", id, "--by", "1h");
		const after = await readSilence(alertmanager.url, id);
		const expired = await opsbot("silence", "expire", id);

		expect(dry.code).toBe(0);
		expect(unwrapped(dry.stdout)).toContain("[WARN] Silence preview · production: mutes 2 alerts now");
		expect(unwrapped(dry.stdout)).toContain("It also reaches staging.");
		expect(none).toEqual([]);
		expect(created.code).toBe(0);
		expect(before.createdBy).toMatch(/ via opsbot CLI$/);
		expect(unwrapped(listed.stdout)).toContain(id);
		expect(unwrapped(listed.stdout)).toContain('{service="api", env="production"} — deploy');
		expect(extended.code).toBe(0);
		expect(unwrapped(extended.stdout)).toContain("Same silence, updated in place: no gap.");
		expect(after.id).toBe(id);
		expect(Date.parse(after.endsAt) - Date.parse(before.endsAt)).toBe(3_600_000);
		expect(expired.code).toBe(0);
		expect((await readSilence(alertmanager.url, id)).status.state).toBe("expired");
		const log = (await actionLogOf(stateDir).recent(100)).reverse() as {
			action: string;
			result: string;
			details?: { silenceId?: string };
		}[];
		expect(log.map((r) => [r.action, r.result, r.details?.silenceId])).toEqual([
			["alert.silence", "ok", id],
			["silence.extend", "ok", id],
			["silence.expire", "ok", id],
		]);
	});

	it("refuses match-everything and too-long silences with the Discord words, exit 64, making nothing", async () => {
		const count = (await readSilences(alertmanager.url)).length;

		const everything = await opsbot(
			"silence",
			"create",
			"--matchers",
			'alertname=~".*"',
			"--duration",
			"1h",
			"--comment",
			"x",
		);
		const tooLong = await opsbot(
			"silence",
			"create",
			"--matchers",
			'service="api"',
			"--duration",
			"2d",
			"--comment",
			"x",
		);
		const noComment = await opsbot("silence", "create", "--matchers", 'service="api"', "--duration", "1h");

		expect([everything.code, tooLong.code, noComment.code]).toEqual([64, 64, 64]);
		expect(everything.stderr).toContain("so this silence would mute every alert");
		expect(tooLong.stderr).toContain("A silence made through opsbot lasts at most 24 h (alerts.silences.maxDuration).");
		expect(noComment.stderr).toContain("Say why in the comment");
		expect((await readSilences(alertmanager.url)).length).toBe(count);
	});

	it("lists a silence made with amtool, says who made it and that it was made outside opsbot", async () => {
		const id = await amtool(alertmanager.url, [
			"silence",
			"add",
			"--author=carol",
			"--comment=db work",
			"--duration=1h",
			"service=db",
		]);

		const listed = await opsbot("silence", "list", "--json");
		const found = (
			JSON.parse(listed.stdout) as { silences: { id: string; tool: string; createdBy: string }[] }
		).silences.find((s) => s.id === id);

		expect(found).toMatchObject({ createdBy: "carol", tool: "outside opsbot" });
	});

	it("opens a maintenance window for a deploy script: pending, env and service matchers", async () => {
		const run = await opsbot(
			"maintenance",
			"--env",
			"staging",
			"--service",
			"worker",
			"--start",
			"+1h",
			"--duration",
			"30m",
			"--comment",
			"release 42",
			"--json",
		);
		const { id } = JSON.parse(run.stdout) as { id: string };
		const made = await readSilence(alertmanager.url, id);

		expect(run.code).toBe(0);
		expect(made.status.state).toBe("pending");
		expect(made.matchers.map((m) => `${m.name}=${m.value}`)).toEqual(["env=staging", "service=worker"]);
		expect(Date.parse(made.endsAt) - Date.parse(made.startsAt)).toBe(30 * 60_000);
	});

	it("says AlertManager is unavailable with exit 69 when it does not answer, and 78 for a bad maxDuration", async () => {
		const down = await runOpsbotCli(["silence", "list", "--env", "down"], { OPSBOT_CONFIG: config });
		const bad = join(mkdtempSync(join(tmpdir(), "opsbot-cli-silences-bad-")), "opsbot.yaml");
		writeFileSync(bad, readFileSync(config, "utf8").replace("maxDuration: 1d", "maxDuration: forever"));
		const badConfig = await runOpsbotCli(["silence", "list"], { OPSBOT_CONFIG: bad });

		expect(down.code).toBe(69);
		expect(down.stderr).toContain("AlertManager is unavailable");
		expect(down.stderr).toContain("no silences could be listed");
		expect(badConfig.code).toBe(78);
		expect(badConfig.stderr).toContain("alerts.silences.maxDuration");
	});
});
