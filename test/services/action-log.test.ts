import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Config } from "../../src/config.ts";
import { type ActionRecord, createSqliteActionLog } from "../../src/services/action-log.ts";
import { openState } from "../../src/state/index.ts";
import { openSqliteDatabase } from "../../src/state/sqlite.ts";

// The action log's contract on both backends is in test/state/state-contract.test.ts;
// these are the SQLite table's own cases.
const fresh = () => mkdtempSync(join(tmpdir(), "opsbot-actions-"));
const log = pino({ level: "silent" });
const embedded = (stateDir: string) => openState({ env: {}, ops: { stateDir } } as unknown as Config, log);
const entry = (i: number, action = "pool.terminate", userId = "1") => ({
	actor: { userId, username: `user ${i} é` },
	action,
	target: `target ${i}`,
	result: "ok",
	at: new Date(1_700_000_000_000 + i * 1_000),
});
const targets = (records: readonly ActionRecord[]) => records.map((r) => r.target);

describe("the action log in the state file", () => {
	it("fails only the record that failed; the ones around it are kept, in order", async () => {
		const db = openSqliteDatabase(":memory:");
		const log = createSqliteActionLog(() => db);
		await log.record(entry(1));

		const results = await Promise.allSettled([
			log.record(entry(2)),
			log.record({ ...entry(3), details: { loop: 1n } as never }),
			log.record(entry(4)),
		]);

		expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
		expect(targets(await log.recent(10))).toEqual(["target 4", "target 2", "target 1"]);
	});

	it("gives back what was recorded: the time to the millisecond, names, details", async () => {
		const db = openSqliteDatabase(":memory:");
		const same = createSqliteActionLog(() => db);
		await same.record({ ...entry(7), details: { exitCode: 1, stderr: "no such container ✗" } });
		await same.record(entry(8, "alert.ack", "2"));

		expect(await same.recent(1, { action: "pool.terminate" })).toEqual([
			{
				at: "2023-11-14T22:13:27.000Z",
				actor: { userId: "1", username: "user 7 é" },
				action: "pool.terminate",
				target: "target 7",
				result: "ok",
				details: { exitCode: 1, stderr: "no such container ✗" },
			},
		]);
		expect(targets(await same.recent(5, { userId: "2", action: "alert.ack" }))).toEqual(["target 8"]);
		expect(await same.recent(5, { userId: "1", action: "alert.ack" })).toEqual([]);
		expect(await same.recent(0)).toEqual([]);
	});

	it("keeps the newest records beyond its bound, pruning the oldest as it goes", async () => {
		const db = openSqliteDatabase(":memory:");
		const log = createSqliteActionLog(() => db, { keep: 10 });
		for (let i = 0; i < 250; i++) await log.record(entry(i));

		const kept = await log.recent(1_000);
		// Pruned at the 1st, 101st and 201st record: what is left is the newest 10 as of the 201st, and those after.
		expect(kept).toHaveLength(59);
		expect(kept[0]?.target).toBe("target 249");
		expect(kept.at(-1)?.target).toBe("target 191");
	});

	it("recovers when the state directory could not be created at first", async () => {
		const blocker = join(fresh(), "state");
		writeFileSync(blocker, "a file where the directory should be");
		const state = await embedded(blocker);

		await expect(state.actions.record(entry(1))).rejects.toThrow();
		rmSync(blocker);
		await state.actions.record(entry(2));
		await state.actions.record(entry(3));

		expect(targets(await state.actions.recent(10))).toEqual(["target 3", "target 2"]);
		expect(statSync(join(blocker, "opsbot.sqlite")).mode & 0o777).toBe(0o600);
		await state.close();
	});

	it("has nothing to show where opsbot never ran, and creates no state file to say so", async () => {
		const stateDir = join(fresh(), "none");
		const state = await embedded(stateDir);

		expect(await state.actions.recent(10)).toEqual([]);
		await state.close();
		expect(existsSync(stateDir)).toBe(false);
	});
});
