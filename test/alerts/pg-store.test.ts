import pg from "pg";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { openPostgresAlertStore, postgresAlertStore } from "../../src/alerts/pg-store.ts";
import { openStateDatabase, STATE_STATEMENT_TIMEOUT_MS, statePoolConfig } from "../../src/state/postgres.ts";
import { payload, storeContract } from "../support/alert-fixtures.ts";
import { countPgWire } from "../support/pg-wire.ts";
import { freshStateDatabase } from "./state-database.ts";

const targets = [{ channel: "1" }];

// Each contract case gets a fresh database of its own.
storeContract("PostgreSQL", async () => {
	const url = await freshStateDatabase();
	const log = pino({ level: "silent" });
	return { store: await openPostgresAlertStore(url, log), reopen: () => openPostgresAlertStore(url, log) };
});

describe("PostgreSQL alert store shared by two replicas", () => {
	it("hands each item to one replica only, and gives a leased item to nobody else", async () => {
		const url = await freshStateDatabase();
		const log = pino({ level: "silent" });
		const [a, b] = await Promise.all([openPostgresAlertStore(url, log), openPostgresAlertStore(url, log)]);
		await a.accept(payload(1, { groupKey: "g1" }), [{ channel: "1" }]);
		await b.accept(payload(1, { groupKey: "g2" }), [{ channel: "1" }]);
		await b.accept(payload(1, { groupKey: "g2" }), [{ channel: "1" }]); // an HA duplicate through the other replica

		const [first, second] = await Promise.all([a.next("1"), b.next("1")]);
		const third = await a.next("1");

		expect(first && second).toBeTruthy();
		expect(first?.groupId).not.toBe(second?.groupId);
		expect(third).toBeUndefined();
		expect(await a.pending()).toBe(2);
		await Promise.all([a.close(), b.close()]);
	});
});

describe("PostgreSQL alert store limits", () => {
	it("sets statement_timeout on every connection of its pool", async () => {
		const url = await freshStateDatabase();
		const pool = new pg.Pool(statePoolConfig(url));

		const shown = await Promise.all([
			pool.query<{ statement_timeout: string }>("SHOW statement_timeout"),
			pool.query<{ statement_timeout: string }>("SHOW statement_timeout"),
		]);

		expect(STATE_STATEMENT_TIMEOUT_MS).toBe(5_000);
		expect(shown.map((r) => r.rows[0]?.statement_timeout)).toEqual(["5s", "5s"]);
		await pool.end();
	});

	it("gives up on a statement stuck behind a lock after statement_timeout instead of hanging", async () => {
		const url = await freshStateDatabase();
		const store = await openPostgresAlertStore(url, pino({ level: "silent" }), { statementTimeoutMs: 300 });
		await store.accept(payload(1), [{ channel: "1" }]);
		const item = (await store.next("1"))!;
		const locker = new pg.Client({ connectionString: url });
		await locker.connect();
		await locker.query("BEGIN");
		await locker.query("SELECT * FROM opsbot_state.groups FOR UPDATE");

		const started = Date.now();
		const failure = await store
			.setAck(item.groupId, { userId: "7", username: "alice", at: 1 })
			.then(() => undefined)
			.catch((err: unknown) => err as Error & { code?: string });
		const took = Date.now() - started;

		expect(failure).toBeInstanceOf(Error);
		expect(failure?.code).toBe("57014"); // query_canceled: "canceling statement due to statement timeout"
		expect(took).toBeLessThan(3_000);
		await locker.query("ROLLBACK");
		await locker.end();
		await store.close();
	});
});

describe("PostgreSQL group commit", () => {
	it("acknowledges webhooks while delivery, buttons and the log hold every connection of the shared pool", async () => {
		const db = openStateDatabase(await freshStateDatabase(), pino({ level: "silent" }));
		const store = await postgresAlertStore(db);
		let open!: () => void;
		const gate = new Promise<void>((resolve) => (open = resolve));
		let holding = 0;
		const busy = Array.from({ length: statePoolConfig("").max! }, () =>
			db.tx(async () => {
				holding++;
				await gate;
			}),
		);
		await vi.waitFor(() => expect(holding).toBe(statePoolConfig("").max));

		const results = await Promise.all([1, 2, 3].map((n) => store.accept(payload(n, { groupKey: `g${n}` }), targets)));

		expect(results).toEqual([1, 2, 3].map(() => ({ queued: 1, duplicates: 0 })));
		open();
		await Promise.all(busy);
		expect(await store.pending()).toBe(3);
		await store.close();
		await db.close();
	});

	it("writes a batch of any size in two round trips: BEGIN with the reads, then the write with COMMIT", async () => {
		const wire = countPgWire();
		const store = await openPostgresAlertStore(await freshStateDatabase(), pino({ level: "silent" }));
		await store.accept(payload(1, { groupKey: "warm" }), targets); // connections open, schema migrated
		const counted = async (accepts: () => Promise<unknown>) => {
			const before = { ...wire };
			await accepts();
			return {
				transactions: wire.begins - before.begins,
				roundTrips: wire.roundTrips - before.roundTrips,
				statements: wire.statements - before.statements,
			};
		};

		const one = await counted(() => store.accept(payload(1, { groupKey: "g0" }), targets));
		// New groups and updates of existing ones, in one batch.
		const many = await counted(() =>
			Promise.all(Array.from({ length: 40 }, (_, i) => store.accept(payload(2, { groupKey: `g${i % 20}` }), targets))),
		);

		expect(one).toEqual({ transactions: 1, roundTrips: 2, statements: 6 });
		expect(many).toEqual({ transactions: 1, roundTrips: 2, statements: 6 });
		// warm, g0's first post and its update, 19 new groups; the second of each pair was a duplicate.
		expect(await store.pending()).toBe(22);
		await store.close();
	});
});
