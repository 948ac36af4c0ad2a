import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { openPostgresAlertStore } from "../../src/alerts/pg-store.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import { type AlertStore, groupId } from "../../src/alerts/store.ts";
import { payload } from "../support/alert-fixtures.ts";
import { freshStateDatabase } from "./state-database.ts";

const T0 = Date.parse("2026-12-06T09:00:00Z");
const MIN = 60_000;
const policy = { regroupMs: 15 * MIN };
const targets = [{ channel: "1" }];
const id = groupId("opsbot", '{}:{alertname="DiskFilling"}', "1");

/** Delivers whatever is due in channel 1 as message `messageId`, and returns what was delivered. */
async function deliver(store: AlertStore, messageId: string, now: number) {
	const item = await store.next("1", now);
	if (!item) throw new Error("nothing due");
	await store.delivered(item, item.messageId ?? messageId);
	return item;
}

describe.each([
	[
		"SQLite",
		async () => openAlertStore(join(mkdtempSync(join(tmpdir(), "opsbot-flap-")), "alerts.sqlite"), { policy }),
	],
	[
		"PostgreSQL",
		async () => openPostgresAlertStore(await freshStateDatabase("opsbot_flap"), pino({ level: "silent" }), { policy }),
	],
] as const)("flapping in the %s store (alerts.regroupMinutes)", (_name, open) => {
	it("re-opens the same card when a group fires again within the window, counting flaps, keeping the ack", async () => {
		const store = await open();
		await store.accept(payload(1), targets, T0);
		await deliver(store, "m1", T0);
		await store.setAck(id, { userId: "2", username: "alice", at: T0 + MIN });
		await store.accept(payload(1, {}, "resolved"), targets, T0 + 2 * MIN);
		await deliver(store, "m1", T0 + 2 * MIN);

		await store.accept(payload(1), targets, T0 + 10 * MIN);
		const item = await deliver(store, "m2", T0 + 10 * MIN);
		await store.accept(payload(1, {}, "resolved"), targets, T0 + 11 * MIN);
		await store.accept(payload(1), targets, T0 + 12 * MIN);
		const again = await deliver(store, "m3", T0 + 12 * MIN);

		expect(item).toMatchObject({ episode: 1, messageId: "m1", flaps: [T0 + 10 * MIN], previousMessageId: null });
		expect(again).toMatchObject({ episode: 1, messageId: "m1", flaps: [T0 + 10 * MIN, T0 + 12 * MIN] });
		expect(await store.group(id)).toMatchObject({
			episode: 1,
			status: "firing",
			messageId: "m1",
			ack: { userId: "2" },
		});
		await store.close();
	});

	it("starts a new episode after the window, whose card links the last episode's message on every edit", async () => {
		const store = await open();
		await store.accept(payload(1), targets, T0);
		await deliver(store, "m1", T0);
		await store.accept(payload(1, {}, "resolved"), targets, T0 + MIN);
		await deliver(store, "m1", T0 + MIN);

		await store.accept(payload(1), targets, T0 + 17 * MIN);
		const first = await deliver(store, "m2", T0 + 17 * MIN);
		await store.accept(payload(2), targets, T0 + 18 * MIN);
		const edit = await deliver(store, "m-unused", T0 + 18 * MIN);

		expect(first).toMatchObject({ episode: 2, messageId: null, flaps: [], previousMessageId: "m1" });
		expect(edit).toMatchObject({ episode: 2, messageId: "m2", previousMessageId: "m1" });
		await store.close();
	});

	it("counts a group resolved by reconciliation from then: firing again soon re-opens its card", async () => {
		const store = await open();
		await store.accept(payload(1), targets, T0);
		await deliver(store, "m1", T0);
		const group = await store.group(id);
		expect(await store.resolveGroup(id, group!.signature, T0 + MIN, true)).toBe(true);
		await deliver(store, "m1", T0 + MIN);

		await store.accept(payload(1), targets, T0 + 5 * MIN);

		expect(await store.next("1", T0 + 5 * MIN)).toMatchObject({ episode: 1, flaps: [T0 + 5 * MIN] });
		await store.close();
	});
});
