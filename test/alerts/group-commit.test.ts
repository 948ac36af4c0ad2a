import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { openPostgresAlertStore } from "../../src/alerts/pg-store.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import type { AlertStore } from "../../src/alerts/store.ts";
import { payload } from "../support/alert-fixtures.ts";
import { freshStateDatabase } from "./state-database.ts";

const targets = [{ channel: "1" }];

function sqlitePath(): string {
	return join(mkdtempSync(join(tmpdir(), "opsbot-group-commit-")), "alerts.sqlite");
}

const postgresUrl = () => freshStateDatabase("opsbot_group_commit");

/** Everything a caller can see of the outbox: the items of a channel, delivered one by one. */
async function drain(
	store: AlertStore,
	channel = "1",
): Promise<{ groupId: string; episode: number; alerts: number; status: string }[]> {
	const seen = [];
	for (let item = await store.next(channel); item; item = await store.next(channel)) {
		seen.push({
			groupId: item.groupId,
			episode: item.episode,
			alerts: item.payload.alerts.length,
			status: item.payload.status,
		});
		await store.delivered(item, `m-${item.groupId}-${item.episode}`);
	}
	return seen;
}

const group = (key: string, n = 1, status: "firing" | "resolved" = "firing") =>
	payload(n, { groupKey: key, commonAnnotations: {} }, status);

function groupCommitContract(name: string, open: () => Promise<AlertStore>): void {
	describe(`group commit (${name})`, () => {
		it("answers each of many concurrent webhooks for itself, and stores each new one exactly once", async () => {
			const store = await open();
			const bodies = Array.from({ length: 200 }, (_, i) => group(`g${i}`, 1 + (i % 3)));

			const results = await Promise.all([...bodies, ...bodies.slice(0, 50)].map((b) => store.accept(b, targets)));

			expect(results.slice(0, 200)).toEqual(bodies.map(() => ({ queued: 1, duplicates: 0 })));
			expect(results.slice(200)).toEqual(bodies.slice(0, 50).map(() => ({ queued: 0, duplicates: 1 })));
			expect(await store.pending()).toBe(200);
			const delivered = await drain(store);
			expect(delivered).toHaveLength(200);
			expect(new Set(delivered.map((d) => d.groupId)).size).toBe(200);
			await store.close();
		});

		it("decides webhooks of one group committed together in arrival order, as one by one", async () => {
			const store = await open();

			const results = await Promise.all(
				[group("g", 2), group("g", 2), group("g", 3), group("g", 3, "resolved"), group("g", 1)].map((b) =>
					store.accept(b, targets),
				),
			);
			const delivered = await drain(store);
			const state = await store.group(delivered[0]!.groupId);

			expect(results).toEqual([
				{ queued: 1, duplicates: 0 },
				{ queued: 0, duplicates: 1 },
				{ queued: 1, duplicates: 0 },
				{ queued: 1, duplicates: 0 },
				{ queued: 1, duplicates: 0 },
			]);
			// Episode 1 coalesces to its newest payload (the resolve); the group firing again is episode 2.
			expect(delivered.sort((x, y) => x.episode - y.episode)).toEqual([
				{ groupId: delivered[0]!.groupId, episode: 1, alerts: 3, status: "resolved" },
				{ groupId: delivered[0]!.groupId, episode: 2, alerts: 1, status: "firing" },
			]);
			expect(state).toMatchObject({ episode: 2, status: "firing", ack: null });
			await store.close();
		});

		it("clears an acknowledgement when a group committed with others opens a new episode", async () => {
			const store = await open();
			await store.accept(group("g", 1), targets);
			const first = (await store.next("1"))!;
			await store.delivered(first, "m1");
			await store.setAck(first.groupId, { userId: "7", username: "alice", at: 1 });
			await store.delivered((await store.next("1"))!, "m1");

			await Promise.all(
				[group("g", 1, "resolved"), group("other", 1), group("g", 2)].map((b) => store.accept(b, targets)),
			);

			expect(await store.group(first.groupId)).toMatchObject({
				episode: 2,
				status: "firing",
				ack: null,
				messageId: null,
			});
			await store.close();
		});

		it(
			"keeps at most two undelivered rows per episode however many updates arrive, and sends the newest after " +
				"the one in flight",
			async () => {
				const store = await open();
				await store.accept(group("g", 1), targets);
				const inFlight = (await store.next("1"))!;

				for (const n of [2, 3, 4]) await store.accept(group("g", n), targets);
				await Promise.all([5, 6, 7].map((n) => store.accept(group("g", n), targets)));
				const undelivered = await store.pending();
				await store.delivered(inFlight, "m1");
				const newest = (await store.next("1"))!;
				await store.delivered(newest, "m1");

				expect(undelivered).toBe(2);
				expect(newest).toMatchObject({ messageId: "m1", episode: 1 });
				expect(newest.payload.alerts).toHaveLength(7);
				expect(await store.next("1")).toBeUndefined();
				expect(await store.pending()).toBe(0);
				await store.close();
			},
		);

		it("writes each webhook to every channel its route names", async () => {
			const store = await open();

			await Promise.all([
				store.accept(group("a"), [{ channel: "1" }, { channel: "2", mentionRole: "9" }]),
				store.accept(group("b"), [{ channel: "2" }]),
			]);

			expect((await drain(store, "1")).length).toBe(1);
			expect((await drain(store, "2")).length).toBe(2);
			await store.close();
		});

		it("has written every webhook it answered before close() returns", async () => {
			const store = await open();
			const accepted = Promise.all(Array.from({ length: 20 }, (_, i) => store.accept(group(`g${i}`), targets)));

			await store.close();

			expect(await accepted).toHaveLength(20);
		});
	});
}

groupCommitContract("SQLite", async () => openAlertStore(sqlitePath()));
groupCommitContract("PostgreSQL", async () => openPostgresAlertStore(await postgresUrl(), pino({ level: "silent" })));

describe("group commit (SQLite) when one webhook cannot be stored", () => {
	it("fails that webhook alone with SQLite's error and stores the ones committed with it", async () => {
		const path = sqlitePath();
		const seed = openAlertStore(path);
		await seed.accept(group("seed"), targets);
		await seed.close();
		const db = new DatabaseSync(path);
		const { page_count: pages } = db.prepare("PRAGMA page_count").get() as { page_count: number };
		db.close();
		const store = openAlertStore(path, { maxPageCount: pages + 4 });

		const results = await Promise.allSettled([
			store.accept(group("small-1"), targets),
			store.accept(payload(80, { groupKey: "huge" }), targets),
			store.accept(group("small-2"), targets),
		]);

		expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
		expect(((results[1] as PromiseRejectedResult).reason as Error).message).toBe("database or disk is full");
		expect(await store.pending()).toBe(3);
		await store.close();
	});
});

describe("group commit (PostgreSQL) with two replicas and refused payloads", () => {
	it("fails only the webhook PostgreSQL refuses, and stores the ones committed with it", async () => {
		const store = await openPostgresAlertStore(await postgresUrl(), pino({ level: "silent" }));
		// JSONB cannot hold U+0000. The webhook schema replaces it (webhook-nul.test.ts); a payload handed to
		// the store without the schema still shows how one refused payload fails alone.
		const refused = { ...payload(1, { groupKey: "nul" }), commonLabels: { alertname: "a\u0000b" } };

		const results = await Promise.allSettled([
			store.accept(group("ok-1"), targets),
			store.accept(refused, targets),
			store.accept(group("ok-2"), targets),
		]);

		expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
		expect(((results[1] as PromiseRejectedResult).reason as { code?: string }).code).toBe("22P05");
		expect(await store.pending()).toBe(2);
		await store.close();
	});

	it("counts a webhook sent to both replicas at once (AlertManager HA) once, whatever both batches share", async () => {
		const url = await postgresUrl();
		const log = pino({ level: "silent" });
		const [a, b] = await Promise.all([openPostgresAlertStore(url, log), openPostgresAlertStore(url, log)]);
		const bodies = Array.from({ length: 60 }, (_, i) => group(`g${i}`, 2));

		// Opposite orders: each replica's batch locks the shared groups, in id order, so neither deadlocks.
		const [viaA, viaB] = await Promise.all([
			Promise.all(bodies.map((x) => a.accept(x, targets))),
			Promise.all([...bodies].reverse().map((x) => b.accept(x, targets))),
		]);

		const total = [...viaA, ...viaB].reduce(
			(sum, r) => ({ queued: sum.queued + r.queued, duplicates: sum.duplicates + r.duplicates }),
			{ queued: 0, duplicates: 0 },
		);
		expect(total).toEqual({ queued: 60, duplicates: 60 });
		expect(await a.pending()).toBe(60);
		await Promise.all([a.close(), b.close()]);
	});
});
