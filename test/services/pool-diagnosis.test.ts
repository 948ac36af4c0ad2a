import { describe, expect, it } from "vitest";
import { othersInPool, type PgBouncerPool } from "../../src/services/pgbouncer.ts";
import type { PgBouncerUsage, PoolSnapshot, Session } from "../../src/services/pool.ts";
import { diagnosePool, groupCount, isBlocked, isIdle, isIdleInTransaction } from "../../src/services/pool-diagnosis.ts";

const thresholds = { warnPercent: 70, criticalPercent: 90, idleMinutes: 5, idleInTransactionMinutes: 1 };

let nextPid = 100;
function sessions(count: number, over: Partial<Session> = {}): Session[] {
	return Array.from({ length: count }, () => ({
		pid: nextPid++,
		backendStart: "2026-11-20 08:00:00+00",
		database: "appdb",
		user: "app",
		application: "gunicorn",
		clientAddr: "192.0.2.10",
		state: "active",
		stateSeconds: 1,
		blockedBy: [],
		...over,
	}));
}

function snapshot(list: readonly Session[], pgbouncer?: PoolSnapshot["pgbouncer"]): PoolSnapshot {
	return {
		environment: "production",
		takenAt: new Date("2026-11-20T09:00:00Z"),
		postgres: {
			database: "appdb",
			maxConnections: 103,
			reserved: 3,
			usable: 100,
			used: list.length,
			sessions: list,
			ownSessions: 0,
		},
		...(pgbouncer ? { pgbouncer } : {}),
	};
}

const pool = (over: Partial<PgBouncerPool>): PgBouncerPool => ({
	database: "appdb",
	user: "app",
	clientsActive: 1,
	clientsWaiting: 0,
	serversActive: 1,
	serversIdle: 0,
	maxWaitSeconds: 0,
	poolMode: "transaction",
	...over,
});
const bouncer = (pools: PgBouncerPool[]): PgBouncerUsage => ({ pools, ownClients: 0, stats: [] });

describe("session classification", () => {
	it("tells idle, idle in transaction (aborted or not) and blocked sessions apart", () => {
		const [idle, inTx, aborted, blocked] = [
			...sessions(1, { state: "idle" }),
			...sessions(1, { state: "idle in transaction" }),
			...sessions(1, { state: "idle in transaction (aborted)" }),
			...sessions(1, { blockedBy: [7] }),
		];

		expect([idle, inTx, aborted, blocked].map((s) => [isIdle(s!), isIdleInTransaction(s!), isBlocked(s!)])).toEqual([
			[true, false, false],
			[false, true, false],
			[false, true, false],
			[false, false, true],
		]);
	});

	it("counts per key in the order keys first appear", () => {
		expect([...groupCount(["b", "a", "b"], (x) => x).entries()]).toEqual([
			["b", 2],
			["a", 1],
		]);
	});
});

describe("pool severity", () => {
	it("follows the thresholds on the share of usable connections used", () => {
		expect(diagnosePool(snapshot(sessions(69)), thresholds)).toMatchObject({ severity: "ok", percent: 69 });
		expect(diagnosePool(snapshot(sessions(70)), thresholds)).toMatchObject({ severity: "warn", percent: 70 });
		expect(diagnosePool(snapshot(sessions(90)), thresholds)).toMatchObject({ severity: "critical", percent: 90 });
	});

	it("warns about a transaction left open for a minute, not for 59 seconds", () => {
		expect(
			diagnosePool(snapshot(sessions(1, { state: "idle in transaction", stateSeconds: 59 })), thresholds).severity,
		).toBe("ok");
		expect(
			diagnosePool(snapshot(sessions(1, { state: "idle in transaction", stateSeconds: 60 })), thresholds).severity,
		).toBe("warn");
	});

	it("warns when clients have waited in PgBouncer for a second, or PgBouncer cannot be read", () => {
		expect(
			diagnosePool(snapshot(sessions(1), bouncer([pool({ clientsWaiting: 2, maxWaitSeconds: 0.5 })])), thresholds)
				.severity,
		).toBe("ok");
		expect(
			diagnosePool(snapshot(sessions(1), bouncer([pool({ clientsWaiting: 2, maxWaitSeconds: 1 })])), thresholds)
				.severity,
		).toBe("warn");
		expect(diagnosePool(snapshot(sessions(1), { error: "connection refused" }), thresholds).severity).toBe("warn");
	});

	it("is critical with no percentage, groups or cause when PostgreSQL cannot be read", () => {
		const diagnosis = diagnosePool(
			{
				environment: "production",
				takenAt: new Date(0),
				postgres: { error: "timed out" },
				pgbouncer: bouncer([pool({ clientsWaiting: 3, maxWaitSeconds: 5 })]),
			},
			thresholds,
		);

		expect(diagnosis).toEqual({
			severity: "critical",
			byState: [],
			bySource: [],
			idle: [],
			idleInTransaction: [],
			blocked: [],
		});
	});
});

describe("the likely cause", () => {
	it("names the application holding stale idle connections first, if it holds 5+ and a fifth of those used", () => {
		const list = [
			...sessions(5, { application: "", state: "idle", stateSeconds: 301 }),
			...sessions(2, { state: "idle in transaction", stateSeconds: 600 }),
			...sessions(10),
		];

		expect(diagnosePool(snapshot(list), thresholds).cause).toEqual({
			kind: "stale-idle",
			count: 5,
			application: "",
			olderThanMinutes: 5,
		});
		expect(diagnosePool(snapshot([...list, ...sessions(9)]), thresholds).cause).toMatchObject({
			kind: "idle-in-transaction",
			count: 2,
		});
	});

	it("names sessions idle in transaction for over a minute, with the longest", () => {
		const longest = sessions(1, { application: "worker", state: "idle in transaction (aborted)", stateSeconds: 900 });

		const cause = diagnosePool(
			snapshot([
				...sessions(1, { state: "idle in transaction", stateSeconds: 61 }),
				...longest,
				...sessions(1, { state: "idle in transaction", stateSeconds: 30 }),
			]),
			thresholds,
		).cause;

		expect(cause).toEqual({ kind: "idle-in-transaction", count: 2, longest: longest[0], olderThanMinutes: 1 });
	});

	it("names blocked sessions and each blocking pid once", () => {
		const cause = diagnosePool(
			snapshot([...sessions(2, { blockedBy: [7, 8] }), ...sessions(1, { blockedBy: [9] })]),
			thresholds,
		).cause;

		expect(cause).toEqual({ kind: "blocked", count: 3, blockers: [7, 8, 9] });
	});

	it("names clients waiting in PgBouncer, with the pool that waited longest", () => {
		const worst = pool({ database: "reports", clientsWaiting: 1, maxWaitSeconds: 3 });

		const cause = diagnosePool(
			snapshot(sessions(1), bouncer([pool({ clientsWaiting: 4, maxWaitSeconds: 0.2 }), worst])),
			thresholds,
		).cause;

		expect(cause).toEqual({ kind: "pgbouncer-waiting", clients: 5, worst });
	});

	it("names nothing when nothing explains trouble", () => {
		expect(diagnosePool(snapshot(sessions(80)), thresholds).cause).toBeUndefined();
	});
});

describe("the End button on offer", () => {
	const idleInTransaction = (seconds: number, over: Partial<Session> = {}) =>
		sessions(1, { state: "idle in transaction", stateSeconds: seconds, ...over });

	it("offers to end the sessions idle in transaction when they are the cause, counting those past the limit", () => {
		const list = [
			...idleInTransaction(61),
			...idleInTransaction(900, { state: "idle in transaction (aborted)" }),
			...idleInTransaction(30),
			...sessions(3, { state: "idle", stateSeconds: 3_600 }),
		];

		expect(diagnosePool(snapshot(list), thresholds).offer).toEqual({
			sessions: "idle-in-transaction",
			olderThanMinutes: 1,
			count: 2,
		});
	});

	it("offers to end idle connections older than idleMinutes otherwise, and nothing when none qualifies", () => {
		expect(
			diagnosePool(
				snapshot([
					...sessions(2, { state: "idle", stateSeconds: 301 }),
					...sessions(1, { state: "idle", stateSeconds: 20 }),
				]),
				thresholds,
			).offer,
		).toEqual({ sessions: "idle", olderThanMinutes: 5, count: 2 });
		expect(
			diagnosePool(snapshot([...sessions(80, { state: "idle", stateSeconds: 20 }), ...sessions(5)]), thresholds).offer,
		).toBeUndefined();
	});

	it("counts only sessions of opsbot's own database, the only ones it may end", () => {
		const list = [...idleInTransaction(120, { database: "other" }), ...idleInTransaction(120)];

		expect(diagnosePool(snapshot(list), thresholds).offer).toEqual({
			sessions: "idle-in-transaction",
			olderThanMinutes: 1,
			count: 1,
		});
		expect(diagnosePool(snapshot(idleInTransaction(120, { database: "other" })), thresholds).offer).toBeUndefined();
	});

	it("warns about a blocked session even when few connections are used", () => {
		expect(diagnosePool(snapshot([...sessions(10), ...sessions(1, { blockedBy: [4242] })]), thresholds).severity).toBe(
			"warn",
		);
	});
});

describe("session groups", () => {
	it("counts per state and per application and address, most first, and lists idle sessions longest first", () => {
		const [short, long] = [
			sessions(1, { state: "idle", stateSeconds: 10, application: "cron", clientAddr: "198.51.100.7" }),
			sessions(1, { state: "idle", stateSeconds: 90 }),
		];

		const diagnosis = diagnosePool(snapshot([...short, ...sessions(2), ...long]), thresholds);

		expect(diagnosis.byState).toEqual([
			{ state: "idle", count: 2 },
			{ state: "active", count: 2 },
		]);
		expect(diagnosis.bySource).toEqual([
			{ application: "gunicorn", clientAddr: "192.0.2.10", count: 3 },
			{ application: "cron", clientAddr: "198.51.100.7", count: 1 },
		]);
		expect(diagnosis.idle).toEqual([long[0], short[0]]);
	});
});

describe("PgBouncer's clients without opsbot's own", () => {
	// [case, the pool's clients by SHOW POOLS, opsbot's own by SHOW CLIENTS, the others]
	it.each([
		["as listed: 3 others active, 1 other and 1 own waiting", [3, 2], [0, 1], [3, 1]],
		[
			"its first query waited for the server connection PgBouncer opened, and was active by SHOW POOLS",
			[1, 0],
			[0, 1],
			[0, 0],
		],
		["idle (active) in SHOW CLIENTS, then waiting for a server in SHOW POOLS", [0, 1], [1, 0], [0, 0]],
		["two of its own active, no one else", [0, 0], [2, 0], [0, 0]],
	])(
		"takes out opsbot's own clients: %s",
		(_case, [active, waiting], [ownActive, ownWaiting], [others, othersWaiting]) => {
			expect(
				othersInPool(
					{ clientsActive: active!, clientsWaiting: waiting! },
					{ active: ownActive!, waiting: ownWaiting! },
				),
			).toEqual({ clientsActive: others, clientsWaiting: othersWaiting });
		},
	);
});
