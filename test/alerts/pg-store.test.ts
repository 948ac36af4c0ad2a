import pg from "pg";
import { pino } from "pino";
import { describe, expect, inject, it } from "vitest";
import { openPostgresAlertStore } from "../../src/alerts/pg-store.ts";
import { payload, storeContract } from "../support/alert-fixtures.ts";

// Each contract case gets a fresh database of its own: opsbot's state never shares the application's.
let n = 0;
storeContract("PostgreSQL", async () => {
	const postgres = inject("postgres");
	const database = `opsbot_state_${process.pid}_${n++}`;
	const admin = new pg.Client({ connectionString: postgres.superuserUrl });
	await admin.connect();
	await admin.query(`CREATE DATABASE ${database}`);
	await admin.end();
	const url = postgres.superuserUrl.replace(/\/appdb$/, `/${database}`);
	const log = pino({ level: "silent" });
	return { store: await openPostgresAlertStore(url, log), reopen: () => openPostgresAlertStore(url, log) };
});

describe("PostgreSQL alert store shared by two replicas", () => {
	it("hands each item to one replica only, and gives a leased item to nobody else", async () => {
		const postgres = inject("postgres");
		const database = `opsbot_state_${process.pid}_replicas`;
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await admin.query(`CREATE DATABASE ${database}`);
		await admin.end();
		const url = postgres.superuserUrl.replace(/\/appdb$/, `/${database}`);
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
