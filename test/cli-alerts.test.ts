import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pino } from "pino";
import { describe, expect, inject, it } from "vitest";
import { openPostgresAlertStore } from "../src/alerts/pg-store.ts";
import { openAlertStore } from "../src/alerts/sqlite-store.ts";
import { type AlertStore, groupId } from "../src/alerts/store.ts";
import { payload } from "./support/alert-fixtures.ts";
import { runOpsbotCli, runOpsbotInProcess, unwrapped } from "./support/cli.ts";

const GUILD = "100000000000000001";
const CHANNEL = "400000000000000001";
const AT = Date.parse("2026-11-24T12:00:00Z");
// Still silenced whenever the test runs: the CLI compares with the clock.
const SILENCED_UNTIL = Date.now() + 24 * 3_600_000;

// Listing a store is tested in-process; "says there are none" runs the process (bin/opsbot.js).
const opsbot = runOpsbotInProcess;

/** An ops file whose state lives in a directory of its own. */
function opsFile(): { path: string; stateDir: string } {
	const dir = mkdtempSync(join(tmpdir(), "opsbot-cli-alerts-"));
	const path = join(dir, "opsbot.yaml");
	writeFileSync(
		path,
		`discord: { guildId: "${GUILD}" }\nenvironments:\n` +
			`  production: { http: [{ name: api, url: "http://127.0.0.1:9/" }] }\n` +
			`alerts: { defaultChannel: "${CHANNEL}" }\nstateDir: ${JSON.stringify(join(dir, "state"))}\n`,
	);
	return { path, stateDir: join(dir, "state") };
}

const group = (name: string, severity: string, alerts: number, status: "firing" | "resolved" = "firing") =>
	payload(
		alerts,
		{ groupKey: name, groupLabels: { alertname: name }, commonLabels: { alertname: name, severity } },
		status,
	);
const idOf = (name: string) => groupId("opsbot", name, CHANNEL);

/** Four groups as the relay leaves them: acknowledged, silenced, resolved, and one whose message is not posted yet. */
async function fill(store: AlertStore): Promise<void> {
	const targets = [{ channel: CHANNEL }];
	await store.accept(group("PostgresDown", "critical", 2), targets, AT);
	await store.accept(group("ApiErrors", "warning", 3), targets, AT);
	await store.accept(group("DiskFilling", "warning", 1), targets, AT);
	let n = 0;
	for (let item = await store.next(CHANNEL, AT); item; item = await store.next(CHANNEL, AT))
		await store.delivered(item, `50000000000000000${++n}`);
	await store.accept(group("DiskFilling", "warning", 1, "resolved"), targets, AT + 60_000);
	await store.accept(group("Backups_late", "info", 1), targets, AT + 120_000);
	await store.setAck(idOf("PostgresDown"), { userId: "200000000000000002", username: "alice", at: AT + 5 * 60_000 });
	await store.setSilence(idOf("ApiErrors"), { id: "silence-1", username: "bob", until: SILENCED_UNTIL });
	await store.close();
}

async function expectListed(env: Record<string, string>): Promise<void> {
	const text = await opsbot(["alerts"], env);
	const json = await opsbot(["alerts", "--json"], env);

	expect(text.stderr).toBe("");
	expect(text.code).toBe(0);
	const until = new Date(SILENCED_UNTIL).toISOString();
	const untilShown = `${until.slice(0, 16).replace("T", " ")} UTC`;
	// Words as printed; the terminal view wraps them at 80 columns.
	expect(unwrapped(text.stdout)).toBe(
		[
			"[CRIT] Alert groups: 3 firing (1 critical), 1 resolved",
			`  CRIT  PostgresDown  ACKED · 2 of 2 alerts firing · acknowledged by alice at 2026-11-24 12:05 UTC · ` +
				`message (https://discord.com/channels/${GUILD}/${CHANNEL}/500000000000000001)`,
			`  WARN  ApiErrors     SILENCED · 3 of 3 alerts firing · silenced by bob until ${untilShown} · message ` +
				`(https://discord.com/channels/${GUILD}/${CHANNEL}/500000000000000002)`,
			`  WARN  Backups_late  INFO · 1 of 1 alert firing · not acknowledged · no message yet in #${CHANNEL}`,
			`  OK    DiskFilling   RESOLVED · 0 of 1 alert firing · message ` +
				`(https://discord.com/channels/${GUILD}/${CHANNEL}/500000000000000003)`,
			"",
		].join("\n"),
	);
	expect(json.code).toBe(0);
	const groups = JSON.parse(json.stdout) as unknown[];
	expect(groups).toHaveLength(4);
	expect(groups[0]).toEqual({
		groupId: idOf("PostgresDown"),
		name: "PostgresDown",
		channel: CHANNEL,
		status: "firing",
		severity: "critical",
		environment: null,
		firingAlerts: 2,
		alerts: 2,
		ack: { userId: "200000000000000002", username: "alice", at: "2026-11-24T12:05:00.000Z" },
		silence: null,
		messageId: "500000000000000001",
		messageUrl: `https://discord.com/channels/${GUILD}/${CHANNEL}/500000000000000001`,
	});
	expect(groups[1]).toMatchObject({
		name: "ApiErrors",
		ack: null,
		silence: { id: "silence-1", username: "bob", until, active: true },
	});
	expect(groups[2]).toMatchObject({ name: "Backups_late", severity: "info", messageId: null, messageUrl: null });
	expect(groups[3]).toMatchObject({ name: "DiskFilling", status: "resolved", firingAlerts: 0 });
}

describe("opsbot alerts", () => {
	it(
		"lists the groups in the SQLite store with their state, acknowledgement, silence and message link; --json " +
			"gives exact values",
		async () => {
			const ops = opsFile();
			await fill(openAlertStore(join(ops.stateDir, "opsbot.sqlite")));

			await expectListed({ OPSBOT_CONFIG: ops.path });
		},
	);

	it("lists the groups in opsbot's PostgreSQL state database when STATE_DATABASE_URL is set", async () => {
		const postgres = inject("postgres");
		const database = `opsbot_state_${process.pid}_cli`;
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await admin.query(`CREATE DATABASE ${database}`);
		await admin.end();
		const url = postgres.superuserUrl.replace(/\/appdb$/, `/${database}`);
		await fill(await openPostgresAlertStore(url, pino({ level: "silent" })));

		await expectListed({ OPSBOT_CONFIG: opsFile().path, STATE_DATABASE_URL: url });
	});

	it("says there are none, without creating a store, where the relay never ran", async () => {
		const ops = opsFile();

		const [result, json] = await Promise.all([
			runOpsbotCli(["alerts"], { OPSBOT_CONFIG: ops.path }),
			runOpsbotCli(["alerts", "--json"], { OPSBOT_CONFIG: ops.path }),
		]);

		expect(result.code).toBe(0);
		expect(result.stdout).toBe("[OK] No alert groups\nopsbot holds no alert groups.\n");
		expect(JSON.parse(json.stdout)).toEqual([]);
		expect(existsSync(join(ops.stateDir, "opsbot.sqlite"))).toBe(false);
	});
});
