import { describe, expect, it } from "vitest";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import type { AlertStore } from "../../src/alerts/store.ts";

const ZERO = "0001-01-01T00:00:00Z";

/** A webhook body for one group of `n` alerts, with long texts to test limits. */
export function payload(n: number, overrides: Partial<WebhookPayload> = {}, status: "firing" | "resolved" = "firing"): WebhookPayload {
	return WebhookPayload.parse({
		version: "4",
		groupKey: '{}:{alertname="DiskFilling"}',
		status,
		receiver: "opsbot",
		groupLabels: { alertname: "DiskFilling" },
		commonLabels: { alertname: "DiskFilling", severity: "warning" },
		commonAnnotations: { summary: "Disk filling up", description: "x".repeat(3_000) },
		externalURL: "http://alertmanager.local:9093",
		alerts: Array.from({ length: n }, (_, i) => ({ status, labels: { alertname: "DiskFilling", severity: "warning", instance: `node-${i}-${"y".repeat(80)}` }, annotations: { summary: "z".repeat(500) }, startsAt: "2026-11-24T12:00:00Z", endsAt: status === "resolved" ? "2026-11-24T12:10:00Z" : ZERO, generatorURL: "http://prom:9090/graph?g0.expr=node_filesystem_avail_bytes+%3C+1e9&g0.tab=1", fingerprint: `f${i.toString(16).padStart(15, "0")}` })),
		...overrides,
	});
}

/** The same behaviour is required of every store implementation. */
export function storeContract(name: string, open: () => Promise<{ store: AlertStore; reopen: () => Promise<AlertStore> }>): void {
	describe(`alert store (${name})`, () => {
		const targets = [{ channel: "1" }];

		it("ignores retries and HA duplicates, coalesces updates, and opens a new episode after a resolve", async () => {
			const { store } = await open();

			expect(await store.accept(payload(2), targets)).toEqual({ queued: 1, duplicates: 0 });
			expect(await store.accept(payload(2), targets)).toEqual({ queued: 0, duplicates: 1 });
			await store.accept(payload(3), targets);
			const first = (await store.next("1"))!;
			expect(first.payload.alerts).toHaveLength(3); // the newest of the two pending updates
			await store.delivered(first, "m1");
			await store.accept(payload(3, {}, "resolved"), targets);
			const resolve = (await store.next("1"))!;
			await store.delivered(resolve, "m1");
			await store.accept(payload(1), targets);
			const again = (await store.next("1"))!;

			expect(resolve).toMatchObject({ messageId: "m1", episode: 1 });
			expect(again).toMatchObject({ messageId: null, episode: 2 });
			expect(again.nonce).not.toBe(first.nonce);
			await store.close();
		});

		it("keeps acknowledgements and silences per episode, and queues a re-render for each change", async () => {
			const { store } = await open();
			await store.accept(payload(1), targets);
			const first = (await store.next("1"))!;
			await store.delivered(first, "m1");
			const id = first.groupId;

			await store.setAck(id, { userId: "7", username: "alice", at: 1 });
			await store.setSilence(id, { id: "s-1", username: "alice", until: 2 });
			const rerender = (await store.next("1"))!;
			const state = await store.group(id);
			await store.delivered(rerender, "m1");
			await store.accept(payload(1, {}, "resolved"), targets);
			await store.delivered((await store.next("1"))!, "m1");
			await store.accept(payload(2), targets);
			const reopened = await store.group(id);

			expect(rerender).toMatchObject({ messageId: "m1", ack: { username: "alice" }, silence: { id: "s-1" } });
			expect(state).toMatchObject({ messageId: "m1", episode: 1, ack: { userId: "7" }, silence: { until: 2 } });
			expect(reopened).toMatchObject({ episode: 2, messageId: null, ack: null, silence: null });
			expect(await store.group("no-such-group")).toBeUndefined();
			await store.close();
		});

		it("keeps what was not delivered across a restart, and retries later", async () => {
			const { store: before, reopen } = await open();
			await before.accept(payload(1), targets);
			await before.accept(payload(1, { groupKey: "other" }), targets);
			await before.close();

			const after = await reopen();
			const item = (await after.next("1"))!;
			await after.retryLater(item, Date.now() + 60_000);

			expect(await after.pending()).toBe(2);
			expect(await after.writable()).toBe(true);
			expect((await after.next("1"))?.groupId).not.toBe(item.groupId);
			await after.close();
		});
	});
}

