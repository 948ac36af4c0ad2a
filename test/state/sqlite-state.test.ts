import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { PendingStore } from "../../src/state/contracts.ts";
import { createSqliteRestartLock, RESTART_HEARTBEAT_MS, thisProcessHolder } from "../../src/state/restart-lock.ts";
import { openStateFile } from "../support/pending.ts";

const path = () => join(mkdtempSync(join(tmpdir(), "opsbot-state-file-")), "state.sqlite");

async function putMany(store: PendingStore<string>, userId: string, count: number): Promise<string[]> {
	const tokens: string[] = [];
	for (let i = 0; i < count; i++) tokens.push(await store.put(userId, `${userId}-${i}`));
	return tokens;
}
const live = (store: PendingStore<string>, tokens: readonly string[], userId: string) =>
	Promise.all(tokens.map(async (t) => (await store.peek(t, userId)).ok));

describe("embedded state file", () => {
	it("keeps confirmations and paging state across a restart of the process, with their Dates and bigints", async () => {
		const file = path();
		const before = openStateFile(file);
		const token = await before
			.pending<{ start: Date; ns: bigint }>("logs", 60_000)
			.put("alice", { start: new Date(1_000), ns: 5n });
		before.close();

		const after = openStateFile(file);
		const found = await after.pending<{ start: Date; ns: bigint }>("logs", 60_000).take(token, "alice");
		after.close();

		expect(found).toEqual({ ok: true, value: { start: new Date(1_000), ns: 5n } });
	});

	it("takes an entry once, refuses other users, expires, and keeps kinds apart", async () => {
		let t = 0;
		const file = openStateFile(path(), () => t);
		const store = file.pending<string>("confirmation", 1_000);
		const other = file.pending<string>("audit", 1_000);
		const token = await store.put("alice", "x");
		const late = await store.put("alice", "y");

		expect(await store.take(token, "bob")).toEqual({ ok: false, reason: "other-user" });
		expect(await other.peek(token, "alice")).toEqual({ ok: false, reason: "unknown" });
		expect(await store.take(token, "alice")).toEqual({ ok: true, value: "x" });
		expect(await store.take(token, "alice")).toEqual({ ok: false, reason: "unknown" });
		t = 1_000;
		expect(await store.take(late, "alice")).toEqual({ ok: false, reason: "expired" });
		file.close();
	});

	it("caps each user, and when full evicts the oldest entry of whoever holds the most", async () => {
		const file = openStateFile(path());
		const capped = file.pending<string>("a", 60_000, { maxPerUser: 3 });
		const full = file.pending<string>("b", 60_000, { maxPerUser: 5, maxEntries: 10 });

		const tokens = await putMany(capped, "mallory", 5);
		const a = await putMany(full, "a", 5);
		const b = await putMany(full, "b", 3);
		const c = await putMany(full, "c", 2);
		const d = await full.put("d", "d-0");

		expect(await live(capped, tokens, "mallory")).toEqual([false, false, true, true, true]);
		expect(await live(full, a, "a")).toEqual([false, true, true, true, true]);
		expect(
			[...(await live(full, b, "b")), ...(await live(full, c, "c")), ...(await live(full, [d], "d"))].every(Boolean),
		).toBe(true);
		file.close();
	});

	it("keeps the restart cooldown across a restart of the process", async () => {
		let t = 0;
		const file = path();
		const before = openStateFile(file, () => t);
		expect(await before.restarts.acquire("prod/api", 1_000)).toEqual({ ok: true });
		expect(await before.restarts.acquire("prod/api", 1_000)).toEqual({ ok: false, reason: "running" });
		t = 10;
		await before.restarts.release("prod/api");
		before.close();

		const after = openStateFile(file, () => t);
		t = 500;
		const inCooldown = await after.restarts.acquire("prod/api", 1_000);
		t = 1_010;
		const later = await after.restarts.acquire("prod/api", 1_000);
		after.close();

		expect(inCooldown).toEqual({ ok: false, reason: "cooldown", lastAt: 10 });
		expect(later).toEqual({ ok: true });
	});

	afterEach(() => {
		vi.useRealTimers();
	});

	it("takes over at once the claim of a process that died mid-restart, with no cooldown (D4)", async () => {
		let t = 1_000_000;
		const file = path();
		const state = openStateFile(file, () => t);
		expect(await state.restarts.acquire("prod/api", 600_000)).toEqual({ ok: true }); // creates the table
		const deadPid = spawnSync(process.execPath, ["-e", ""]).pid!;
		const dead = JSON.stringify({ ...JSON.parse(thisProcessHolder()), pid: deadPid, instance: "killed" });
		const raw = new DatabaseSync(file);
		raw.prepare("UPDATE restarts SET holder = ?, heartbeat_at = ?, last_at = ? WHERE key = 'prod/api'").run(dead, t, t);
		raw.close();
		t += 1_000;

		const claim = await state.restarts.acquire("prod/api", 600_000);
		state.close();

		expect(claim).toEqual({ ok: true, tookOver: { holder: dead, startedAt: 1_000_000, why: "process gone" } });
	});

	it("keeps a claim its holder renews during a long restart; takes it over 10 s after renewals stop (D4)", async () => {
		vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
		let t = 1_000_000;
		const file = path();
		const state = openStateFile(file, () => t);
		const other = new DatabaseSync(file);
		const otherProcess = createSqliteRestartLock(
			() => other,
			() => t,
			JSON.stringify({ host: "replica-b", pid: 1, instance: "b" }),
		);
		expect(await state.restarts.acquire("prod/api", 600_000)).toEqual({ ok: true });

		// 60 s into the restart, renewed every 2 s: still running.
		for (let i = 0; i < 30; i++) {
			t += RESTART_HEARTBEAT_MS;
			await vi.advanceTimersByTimeAsync(RESTART_HEARTBEAT_MS);
		}
		const renewed = await otherProcess.acquire("prod/api", 600_000);
		// The holder dies (its renewals stop): refused 9 s later, taken over at 10 s.
		vi.clearAllTimers();
		t += 9_000;
		const soon = await otherProcess.acquire("prod/api", 600_000);
		t += 1_000;
		const later = await otherProcess.acquire("prod/api", 600_000);
		other.close();
		state.close();

		expect(renewed).toEqual({ ok: false, reason: "running" });
		expect(soon).toEqual({ ok: false, reason: "running" });
		expect(later).toMatchObject({ ok: true, tookOver: { holder: thisProcessHolder(), why: "no heartbeat" } });
	});
});
