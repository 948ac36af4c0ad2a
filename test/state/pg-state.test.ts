import { spawnSync } from "node:child_process";
import pg from "pg";
import { pino } from "pino";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createPostgresActionLog } from "../../src/services/action-log.ts";
import { decodeState, encodeState } from "../../src/state/json.ts";
import { createPostgresPendingStore } from "../../src/state/pending.ts";
import { openStateDatabase, type StateDatabase } from "../../src/state/postgres.ts";
import { createPostgresRestartLock, thisProcessHolder } from "../../src/state/restart-lock.ts";

const log = pino({ level: "silent" });
const opened: StateDatabase[] = [];
let n = 0;

/** Two handles on one fresh database: two replicas. */
async function replicas(): Promise<[StateDatabase, StateDatabase]> {
	const postgres = inject("postgres");
	const database = `opsbot_shared_${process.pid}_${n++}`;
	const admin = new pg.Client({ connectionString: postgres.superuserUrl });
	await admin.connect();
	await admin.query(`CREATE DATABASE ${database}`);
	await admin.end();
	const url = postgres.superuserUrl.replace(/\/appdb$/, `/${database}`);
	const pair: [StateDatabase, StateDatabase] = [openStateDatabase(url, log), openStateDatabase(url, log)];
	opened.push(...pair);
	return pair;
}

afterAll(async () => {
	await Promise.all(opened.map((db) => db.close()));
});

describe("state JSON", () => {
	it("brings Dates, bigints and undefined array slots back as they were", () => {
		const value = {
			request: { start: new Date(1_700_000_000_123), before: { ns: 1_700_000_000_123_456_789n, id: "x" } },
			cursors: [undefined, { at: "2026-01-01", id: "7" }],
		};

		const back = decodeState<typeof value>(encodeState(value));

		expect(back).toEqual(value);
		expect(back.request.start).toBeInstanceOf(Date);
		expect(typeof back.request.before.ns).toBe("bigint");
		expect(back.cursors).toHaveLength(2);
	});
});

describe("PostgreSQL pending store", () => {
	it("gives a confirmation made on one replica to exactly one of many takes across replicas", async () => {
		const [a, b] = await replicas();
		const storeA = createPostgresPendingStore<{ n: number }>(a, "confirmation", 60_000);
		const storeB = createPostgresPendingStore<{ n: number }>(b, "confirmation", 60_000);
		const token = await storeA.put("alice", { n: 1 });

		const results = await Promise.all(
			Array.from({ length: 10 }, (_, i) => (i % 2 ? storeA : storeB).take(token, "alice")),
		);

		expect(results.filter((r) => r.ok)).toEqual([{ ok: true, value: { n: 1 } }]);
	});

	it(
		"brings /logs and /audit paging state back through jsonb " +
			"with its Dates, bigint cursors and empty first cursor",
		async () => {
			const [a, b] = await replicas();
			const logs = {
				title: "Logs of api on production",
				request: {
					environment: "production",
					service: "api",
					start: new Date("2026-11-25T10:00:00.123Z"),
					end: new Date("2026-11-25T11:00:00Z"),
					limit: 50,
					before: { ns: 1_764_064_800_123_456_789n, id: "a1" },
				},
			};
			const audit = {
				environment: "production",
				filters: { since: new Date("2026-11-18T00:00:00Z"), until: new Date("2026-11-25T00:00:00Z"), failedOnly: true },
				cursors: [undefined, { at: "2026-11-24T10:00:00.000Z", id: "42" }],
			};

			const logsToken = await createPostgresPendingStore<typeof logs>(a, "logs", 60_000).put("alice", logs);
			const auditToken = await createPostgresPendingStore<typeof audit>(a, "audit", 60_000).put("alice", audit);
			const logsBack = await createPostgresPendingStore<typeof logs>(b, "logs", 60_000).peek(logsToken, "alice");
			const auditBack = await createPostgresPendingStore<typeof audit>(b, "audit", 60_000).peek(auditToken, "alice");

			expect(logsBack).toEqual({ ok: true, value: logs });
			expect(auditBack).toEqual({ ok: true, value: audit });
			expect(logsBack.ok && logsBack.value.request.start).toBeInstanceOf(Date);
			expect(logsBack.ok && typeof logsBack.value.request.before.ns).toBe("bigint");
		},
	);

	it("refuses another user, reports expiry, and keeps kinds apart", async () => {
		const [a] = await replicas();
		const store = createPostgresPendingStore<string>(a, "confirmation", 60_000);
		const short = createPostgresPendingStore<string>(a, "audit", 1);
		const token = await store.put("alice", "x");
		const gone = await short.put("alice", "y");
		await new Promise((r) => setTimeout(r, 20));

		expect(await store.take(token, "bob")).toEqual({ ok: false, reason: "other-user" });
		expect(await short.peek(token, "alice")).toEqual({ ok: false, reason: "unknown" });
		expect(await short.take(gone, "alice")).toEqual({ ok: false, reason: "expired" });
		expect(await store.take(token, "alice")).toEqual({ ok: true, value: "x" });
		expect(await store.take(token, "alice")).toEqual({ ok: false, reason: "unknown" });
	});

	it("caps each user, evicting their oldest, and shares updates between replicas", async () => {
		const [a, b] = await replicas();
		const storeA = createPostgresPendingStore<{ page: number }>(a, "audit", 60_000, { maxPerUser: 3 });
		const storeB = createPostgresPendingStore<{ page: number }>(b, "audit", 60_000, { maxPerUser: 3 });
		const tokens: string[] = [];
		for (let i = 0; i < 5; i++) tokens.push(await (i % 2 ? storeA : storeB).put("mallory", { page: i }));

		await storeA.update(tokens[4]!, "mallory", { page: 9 });

		expect(await Promise.all(tokens.map(async (t) => (await storeB.peek(t, "mallory")).ok))).toEqual([
			false,
			false,
			true,
			true,
			true,
		]);
		expect(await storeB.peek(tokens[4]!, "mallory")).toEqual({ ok: true, value: { page: 9 } });
	});
});

describe("PostgreSQL pending store, when full", () => {
	it("evicts the oldest entry of the user holding the most, not of the one putting", async () => {
		const [a] = await replicas();
		const store = createPostgresPendingStore<string>(a, "confirmation", 60_000, { maxPerUser: 5, maxEntries: 10 });
		const put = async (userId: string, count: number) => {
			const tokens: string[] = [];
			for (let i = 0; i < count; i++) tokens.push(await store.put(userId, `${userId}-${i}`));
			return tokens;
		};
		const alive = (tokens: string[], userId: string) =>
			Promise.all(tokens.map(async (t) => (await store.peek(t, userId)).ok));
		const heavy = await put("a", 5);
		const others = [...(await put("b", 3)), ...(await put("c", 2))];

		const d = await store.put("d", "d-0");

		expect(await alive(heavy, "a")).toEqual([false, true, true, true, true]);
		expect((await store.peek(d, "d")).ok).toBe(true);
		expect(
			(
				await Promise.all(others.map(async (t) => (await store.peek(t, "b")).ok || (await store.peek(t, "c")).ok))
			).every(Boolean),
		).toBe(true);
	});
});

describe("restart lock", () => {
	it("lets exactly one of many replicas claim a container, then holds the cooldown", async () => {
		const [a, b] = await replicas();
		const locks = [createPostgresRestartLock(a), createPostgresRestartLock(b)];

		const claims = await Promise.all(Array.from({ length: 8 }, (_, i) => locks[i % 2]!.acquire("prod/api", 60_000)));
		await locks[1]!.release("prod/api");
		const after = await locks[0]!.acquire("prod/api", 60_000);
		const other = await locks[0]!.acquire("prod/worker", 60_000);

		expect(claims.filter((c) => c.ok)).toHaveLength(1);
		expect(claims.filter((c) => !c.ok && c.reason === "running")).toHaveLength(7);
		expect(after).toMatchObject({ ok: false, reason: "cooldown" });
		expect(other).toEqual({ ok: true });
	});

	it("takes over at once a claim whose process is gone from this host, exactly once among replicas (D4)", async () => {
		const [a, b] = await replicas();
		const deadPid = spawnSync(process.execPath, ["-e", ""]).pid!;
		const dead = JSON.stringify({ ...JSON.parse(thisProcessHolder()), pid: deadPid, instance: "killed" });
		await createPostgresRestartLock(a).acquire("prod/api", 60_000); // creates the table
		await a.query(
			"UPDATE opsbot_state.restarts SET running = true, holder = $1, heartbeat_at = clock_timestamp(), " +
				"last_at = clock_timestamp() WHERE key = 'prod/api'",
			[dead],
		);
		const locks = [
			createPostgresRestartLock(a, JSON.stringify({ host: "replica-a", pid: 1, instance: "a" })),
			createPostgresRestartLock(b, JSON.stringify({ host: "replica-b", pid: 1, instance: "b" })),
		];

		const claims = await Promise.all(Array.from({ length: 8 }, (_, i) => locks[i % 2]!.acquire("prod/api", 60_000)));

		expect(claims.filter((c) => c.ok)).toEqual([
			{ ok: true, tookOver: { holder: dead, startedAt: expect.any(Number), why: "process gone" } },
		]);
		expect(claims.filter((c) => !c.ok && c.reason === "running")).toHaveLength(7);
		await Promise.all(locks.map((l) => l.release("prod/api")));
	});

	it("takes over another host's claim once it is not renewed for 10 s, and a live holder's never (D4)", async () => {
		const [a, b] = await replicas();
		const elsewhere = createPostgresRestartLock(a, JSON.stringify({ host: "replica-a", pid: 1, instance: "a" }));
		const here = createPostgresRestartLock(b, JSON.stringify({ host: "replica-b", pid: 1, instance: "b" }));
		expect(await elsewhere.acquire("prod/api", 60_000)).toEqual({ ok: true });
		const renewedAgo = (seconds: number) =>
			a.query(
				"UPDATE opsbot_state.restarts SET heartbeat_at = clock_timestamp() - make_interval(secs => $1) " +
					"WHERE key = 'prod/api'",
				[seconds],
			);

		await renewedAgo(8);
		const whileRenewed = await here.acquire("prod/api", 60_000);
		await renewedAgo(11);
		const afterSilence = await here.acquire("prod/api", 60_000);
		await elsewhere.release("prod/api"); // the old holder coming back late ends nothing of the new claim
		const stillHeld = await elsewhere.acquire("prod/api", 0);

		expect(whileRenewed).toEqual({ ok: false, reason: "running" });
		expect(afterSilence).toMatchObject({ ok: true, tookOver: { why: "no heartbeat" } });
		expect(stillHeld).toEqual({ ok: false, reason: "running" });
		await here.release("prod/api");
	});
});

describe("PostgreSQL action log", () => {
	it("returns every replica's records newest first, filtered and bounded", async () => {
		const [a, b] = await replicas();
		const logA = createPostgresActionLog(a);
		const logB = createPostgresActionLog(b);
		const actor = (userId: string) => ({ userId, username: `u${userId}` });
		await logA.record({ actor: actor("1"), action: "alert.ack", target: "g1", result: "ok", at: new Date(1_000) });
		await logB.record({
			actor: actor("2"),
			action: "alert.restart",
			target: "prod/api",
			result: "ok",
			details: { groupId: "g1" },
		});
		await logA.record({ actor: actor("1"), action: "alert.restart", target: "prod/api", result: "refused: cooldown" });

		const all = await logB.recent(10);
		const restarts = await logA.recent(10, { action: "alert.restart" });
		const mine = await logA.recent(1, { userId: "1" });

		expect(all.map((r) => r.result)).toEqual(["refused: cooldown", "ok", "ok"]);
		expect(all[1]).toMatchObject({
			actor: actor("2"),
			action: "alert.restart",
			target: "prod/api",
			details: { groupId: "g1" },
		});
		expect(all[2]!.at).toBe(new Date(1_000).toISOString());
		expect(restarts).toHaveLength(2);
		expect(mine).toEqual([expect.objectContaining({ result: "refused: cooldown" })]);
	});
});
