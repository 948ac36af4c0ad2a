import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Config } from "../../src/config.ts";
import { openState, type State } from "../../src/state/index.ts";
import { POSTGRES_MIGRATIONS } from "../../src/state/postgres.ts";
import { SQLITE_MIGRATIONS } from "../../src/state/sqlite.ts";
import { freshStateDatabase } from "../alerts/state-database.ts";

// Written by the opsbot before the state layer, with its own code (fixtures/generate-legacy.ts).
const FIXTURES = join(import.meta.dirname, "fixtures", "legacy");
// The action log as the opsbot before its table wrote it: rotated once, torn by a crash
// (fixtures/generate-actions-jsonl.ts).
const ACTIONS = join(import.meta.dirname, "fixtures", "actions-jsonl");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const tokens = JSON.parse(fixture("tokens.json")) as { sqlite: string; postgres: string };
const CHANNEL = "400000000000000001";
const OLIVIA = "200000000000000011";
const log = pino({ level: "silent" });
const configOf = (stateDir: string, url?: string) =>
	({
		env: url ? { STATE_DATABASE_URL: url } : {},
		ops: { stateDir, replicas: { leaseSeconds: 15, renewSeconds: 5 } },
	}) as unknown as Config;

/** Everything the earlier opsbot stored, as the state layer finds it. */
async function expectEverythingFound(state: State, token: string): Promise<void> {
	const groups = await state.alerts!.listGroups("", 100);
	expect(groups.map((g) => [g.payload.groupLabels.alertname, g.status, g.messageId, g.ack?.username ?? null])).toEqual(
		expect.arrayContaining([
			["DiskFilling", "firing", "900000000000000001", null],
			["Backups", "resolved", "900000000000000002", null],
			["PostgresDown", "firing", null, "olivia"],
		]),
	);
	expect(groups).toHaveLength(3);
	// PostgresDown's message was never posted: its outbox rows are still there, and it goes first.
	expect(await state.alerts!.pending()).toBe(2);
	const next = await state.alerts!.next(CHANNEL);
	expect(next).toMatchObject({ payload: { groupLabels: { alertname: "PostgresDown" } }, ack: { username: "olivia" } });

	const confirmation = await state.pending("confirmation", 60_000).take(token, OLIVIA);
	expect(confirmation).toEqual({
		ok: true,
		value: { kind: "alert.restart", environment: "production", container: "api", groupId: "g", episode: 1 },
	});
	// The released claim's cooldown is still counted from when it ended …
	expect(await state.restarts.acquire("production/api", 100 * 365 * 24 * 60 * 60_000)).toMatchObject({
		ok: false,
		reason: "cooldown",
	});
	// … and the claim still held is found: refused as running, or taken over from its (dead) holder by name.
	const held = await state.restarts.acquire("production/worker", 0);
	if (held.ok) expect(held.tookOver?.holder).toContain("e2019d292daa");
	else expect(held).toEqual({ ok: false, reason: "running" });

	expect(await state.actions.recent(10)).toEqual([
		{
			at: "2023-11-14T22:13:20.000Z",
			actor: { userId: OLIVIA, username: "olivia" },
			action: "alert.ack",
			target: "DiskFilling",
			result: "ok",
		},
	]);
}

describe("state written by the opsbot before the state layer", () => {
	it("is found whole in the SQLite state: alerts.sqlite becomes opsbot.sqlite, state.sqlite is copied in", async () => {
		const stateDir = mkdtempSync(join(tmpdir(), "opsbot-forward-"));
		for (const name of ["alerts", "state"]) {
			const db = new DatabaseSync(join(stateDir, `${name}.sqlite`));
			db.exec(fixture(`${name}.sqlite.sql`));
			db.close();
		}
		copyFileSync(join(FIXTURES, "actions.jsonl"), join(stateDir, "actions.jsonl"));

		const state = await openState(configOf(stateDir), log, { alerts: true });
		await expectEverythingFound(state, tokens.sqlite);
		await state.close();

		expect(
			["opsbot.sqlite", "alerts.sqlite", "state.sqlite", "state.sqlite.imported"].map((f) =>
				existsSync(join(stateDir, f)),
			),
		).toEqual([true, false, false, true]);
		expect(["actions.jsonl", "actions.jsonl.imported"].map((f) => existsSync(join(stateDir, f)))).toEqual([
			false,
			true,
		]);
		const version = new DatabaseSync(join(stateDir, "opsbot.sqlite"), { readOnly: true });
		expect(version.prepare("SELECT max(version) AS v FROM schema_version").get()).toEqual({
			v: SQLITE_MIGRATIONS.length,
		});
		version.close();
		// Opened again, nothing is imported twice.
		const again = await openState(configOf(stateDir), log, { alerts: true });
		expect(await again.alerts!.listGroups("", 100)).toHaveLength(3);
		await again.close();
	});

	it("keeps every action-log row of actions.jsonl and its rotations, skipping the line a crash tore", async () => {
		const stateDir = mkdtempSync(join(tmpdir(), "opsbot-forward-"));
		for (const name of ["actions.jsonl", "actions.jsonl.1"]) copyFileSync(join(ACTIONS, name), join(stateDir, name));
		const lines: Record<string, unknown>[] = [];
		const logged = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });

		const state = await openState(configOf(stateDir), logged);
		const records = await state.actions.recent(100);
		await state.close();

		// The seven whole records, newest first across both files; the torn eighth is not one.
		expect(records.map((r) => [r.at.slice(11, 16), r.actor.username, r.action, r.target, r.result])).toEqual([
			["22:19", "zoë", "pool.terminate", "staging: 1 session", "ok"],
			["22:18", "ops", "alert.test", "400000000000000001", "ok"],
			["22:17", "olivia", "alert.ack", "PostgresDown", "ok"],
			["22:16", "zoë", "alert.silence", "Backups", "ok"],
			["22:15", "olivia", "alert.restart", "prod-host/api", "failed"],
			["22:14", "zoë", "pool.terminate", "production: 3 sessions", "refused"],
			["22:13", "olivia", "alert.ack", "DiskFilling", "ok"],
		]);
		expect(records[4]?.details).toEqual({ exitCode: 1, stderr: "no such container" });
		expect(lines.filter((l) => l.level === 40)).toEqual([
			expect.objectContaining({ file: "actions.jsonl", line: 3, lastLine: true, msg: expect.stringContaining("torn") }),
		]);
		expect(lines).toContainEqual(expect.objectContaining({ rows: 7, msg: expect.stringContaining("imported") }));
		expect(
			readdirSync(stateDir)
				.filter((f) => f.startsWith("actions"))
				.sort(),
		).toEqual(["actions.jsonl.1.imported", "actions.jsonl.imported"]);
	});

	it("finds a whole record an old opsbot appended after the torn line, and imports a file only once", async () => {
		const stateDir = mkdtempSync(join(tmpdir(), "opsbot-forward-"));
		// Restarted after the crash, the old opsbot appended its next record to the torn line.
		const after = { actor: { userId: "1", username: "u" }, action: "alert.ack", target: "After", result: "ok" };
		const appended = JSON.stringify({ ...after, at: "2023-11-14T23:00:00.000Z" });
		const live = `${readFileSync(join(ACTIONS, "actions.jsonl"), "utf8")}${appended}\n`;
		writeFileSync(join(stateDir, "actions.jsonl"), live);

		const first = await openState(configOf(stateDir), log);
		expect((await first.actions.recent(100)).map((r) => r.target)).toEqual([
			"After",
			"staging: 1 session",
			"400000000000000001",
		]);
		await first.close();
		// As if the process died after the import's commit but before its renames: the same file again.
		writeFileSync(join(stateDir, "actions.jsonl"), live);
		const again = await openState(configOf(stateDir), log);
		expect(await again.actions.recent(100)).toHaveLength(3);
		await again.close();
		expect(
			readdirSync(stateDir)
				.filter((f) => f.startsWith("actions"))
				.sort(),
		).toEqual(["actions.jsonl.imported", "actions.jsonl.imported.2"]);
	});

	it("is found whole in the PostgreSQL state: schema opsbot_state migrates forward", async () => {
		const url = await freshStateDatabase("opsbot_forward");
		const client = new pg.Client({ connectionString: url });
		await client.connect();
		await client.query(fixture("postgres.sql"));
		await client.end();

		const state = await openState(configOf(mkdtempSync(join(tmpdir(), "opsbot-forward-")), url), log, {
			alerts: true,
		});
		await expectEverythingFound(state, tokens.postgres);
		await state.close();

		const check = new pg.Client({ connectionString: url });
		await check.connect();
		expect((await check.query("SELECT max(version) AS v FROM opsbot_state.schema_version")).rows).toEqual([
			{ v: POSTGRES_MIGRATIONS.length },
		]);
		await check.end();
	});
});
