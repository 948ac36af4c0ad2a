import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import type { AlertStore, OutboxItem } from "../../src/alerts/store.ts";

const ZERO = "0001-01-01T00:00:00Z";

/**
 * A firing webhook for one group, as AlertManager sends it; `labels` are added to the alert's and the group's common
 * labels.
 */
export function firingWebhook(
	alertname: string,
	extra: { severity?: string; description?: string; generatorURL?: string; labels?: Record<string, string> } = {},
) {
	const labels = { alertname, severity: extra.severity ?? "warning", ...extra.labels };
	return {
		version: "4",
		groupKey: `{}:{alertname="${alertname}"}`,
		status: "firing",
		receiver: "opsbot",
		groupLabels: { alertname },
		commonLabels: { ...labels },
		commonAnnotations: extra.description ? { description: extra.description } : {},
		externalURL: "http://alertmanager.local:9093",
		alerts: [
			{
				status: "firing",
				labels,
				annotations: extra.description ? { description: extra.description } : {},
				startsAt: new Date().toISOString(),
				endsAt: ZERO,
				generatorURL: extra.generatorURL ?? "",
				fingerprint: randomBytes(8).toString("hex"),
			},
		],
	};
}

/** A webhook body for one group of `n` alerts, with long texts to test limits. */
export function payload(
	n: number,
	overrides: Partial<WebhookPayload> = {},
	status: "firing" | "resolved" = "firing",
): WebhookPayload {
	return WebhookPayload.parse({
		version: "4",
		groupKey: '{}:{alertname="DiskFilling"}',
		status,
		receiver: "opsbot",
		groupLabels: { alertname: "DiskFilling" },
		commonLabels: { alertname: "DiskFilling", severity: "warning" },
		commonAnnotations: { summary: "Disk filling up", description: "x".repeat(3_000) },
		externalURL: "http://alertmanager.local:9093",
		alerts: Array.from({ length: n }, (_, i) => ({
			status,
			labels: { alertname: "DiskFilling", severity: "warning", instance: `node-${i}-${"y".repeat(80)}` },
			annotations: { summary: "z".repeat(500) },
			startsAt: "2026-11-24T12:00:00Z",
			endsAt: status === "resolved" ? "2026-11-24T12:10:00Z" : ZERO,
			generatorURL: "http://prom:9090/graph?g0.expr=node_filesystem_avail_bytes+%3C+1e9&g0.tab=1",
			fingerprint: `f${i.toString(16).padStart(15, "0")}`,
		})),
		...overrides,
	});
}

/** The same behaviour is required of every store implementation. */
export function storeContract(
	name: string,
	open: () => Promise<{ store: AlertStore; reopen: () => Promise<AlertStore> }>,
): void {
	describe(`alert store (${name})`, () => {
		const targets = [{ channel: "1" }];

		it("announces each commit that queued something for Discord, and nothing else", async () => {
			const { store } = await open();
			let heard = 0;
			const unsubscribe = store.onQueued(() => heard++);

			await store.accept(payload(2), targets);
			const afterAccept = heard;
			await store.accept(payload(2), targets); // a duplicate queues nothing
			const afterDuplicate = heard;
			const group = (await store.listGroups("", 10))[0]!;
			await store.setAck(group.groupId, { userId: "7", username: "alice", at: 1 });
			const afterAck = heard;
			const message = { kind: "post", key: "k", target: { channel: "400000000000000001" }, content: "hi" } as const;
			await store.enqueueMessage(message);
			const afterMessage = heard;
			await store.enqueueMessage(message); // its key again: nothing queued
			const afterSameKey = heard;
			unsubscribe();
			await store.accept(payload(3), targets);

			expect([afterAccept, afterDuplicate, afterAck, afterMessage, afterSameKey, heard]).toEqual([1, 1, 2, 3, 3, 3]);
			await store.close();
		});

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

		it("gives a payload back with its labels in the order AlertManager sent them (sorted by name)", async () => {
			const { store } = await open();
			// Names of different lengths in AlertManager's order; PostgreSQL's jsonb keeps the shortest first.
			const labels = { alertname: "ApiErrors", env: "production", instance: "a", service: "api" };
			const annotations = { description: "d", runbook: "r", summary: "s" };
			const sent = payload(1, {
				groupKey: '{}:{alertname="ApiErrors"}',
				groupLabels: { alertname: "ApiErrors", env: "production" },
				commonLabels: labels,
				commonAnnotations: annotations,
			});
			sent.alerts[0] = { ...sent.alerts[0]!, labels, annotations };
			await store.accept(sent, targets);
			const keys = (p: WebhookPayload) =>
				[p.groupLabels, p.commonLabels, p.commonAnnotations, p.alerts[0]!.labels, p.alerts[0]!.annotations].map(
					Object.keys,
				);
			const expected = keys(sent);

			expect(keys((await store.next("1"))!.payload)).toEqual(expected);
			expect(keys((await store.listGroups("", 10))[0]!.payload)).toEqual(expected);
			await store.close();
		});

		it("counts groups by status and queued messages per channel, with the oldest's time, for /metrics", async () => {
			const { store } = await open();
			const before = Date.now();

			await store.accept(payload(2, { groupKey: "a" }), [{ channel: "1" }]);
			await store.accept(payload(2, { groupKey: "b" }), [{ channel: "1" }, { channel: "2" }]);
			await store.delivered((await store.next("2"))!, "m2");
			await store.accept(payload(2, { groupKey: "c" }, "resolved"), [{ channel: "2" }]);
			const stats = await store.stats();

			expect(Object.fromEntries(stats.groups.map((g) => [g.status, g.count]))).toEqual({ firing: 3, resolved: 1 });
			const one = stats.outbox.find((o) => o.channel === "1");
			expect(one?.depth).toBe(2);
			expect(one?.oldestAt).toBeGreaterThanOrEqual(before);
			expect(stats.outbox.find((o) => o.channel === "2")?.depth).toBe(1);
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

		it("lets one of two acknowledges made at once from the same read win, across two instances", async () => {
			const { store, reopen } = await open();
			const other = await reopen(); // a second replica on the same database
			await store.accept(payload(1), targets);
			await store.delivered((await store.next("1"))!, "m1");
			const id = (await store.listGroups("", 10))[0]!.groupId;
			const read = (await store.group(id))!.ack; // both presses saw no acknowledgement
			const alice = { userId: "7", username: "alice", at: 1_000 };
			const bob = { userId: "8", username: "bob", at: 1_001 };

			const won = await Promise.all([store.setAck(id, alice, read), other.setAck(id, bob, read)]);
			const holder = (await store.group(id))!.ack;
			const winner = won[0] ? alice : bob;
			const rerenders = await store.pending();
			// A takeover only over the acknowledgement it was shown: a stale one changes nothing.
			const staleTakeover = await other.setAck(id, { ...bob, at: 2_000 }, winner === alice ? bob : alice);
			const takeover = await other.setAck(id, { ...bob, at: 3_000 }, winner);
			const cleared = await store.setAck(id, null, { userId: "8", at: 3_000 });

			expect(won.filter(Boolean)).toHaveLength(1);
			expect(holder).toEqual(winner);
			expect(rerenders).toBe(1); // the winner's re-render only
			expect([staleTakeover, takeover, cleared]).toEqual([false, true, true]);
			expect((await store.group(id))!.ack).toBeNull();
			expect(await store.setAck("no-such-group", alice, null)).toBe(false);
			await Promise.all([store.close(), other.close()]);
		});

		it("sends firing groups with no message first, critical before the rest, then updates and resolutions", async () => {
			const { store } = await open();
			const group = (name: string, severity: string, status: "firing" | "resolved" = "firing") =>
				payload(
					1,
					{ groupKey: name, groupLabels: { alertname: name }, commonLabels: { alertname: name, severity } },
					status,
				);
			await store.accept(group("Posted", "critical"), targets);
			await store.delivered((await store.next("1"))!, "m-posted");
			await store.accept(group("Posted", "critical", "resolved"), targets); // a resolution: last
			await store.accept(group("Early", "warning"), targets);
			await store.accept(group("GoneQuiet", "critical", "firing"), targets);
			// resolved before its first post: with the resolutions
			await store.accept(group("GoneQuiet", "critical", "resolved"), targets);
			await store.accept(group("Late", "critical"), targets);

			const order: string[] = [];
			for (let item = await store.next("1"); item; item = await store.next("1")) {
				order.push(String(item.payload.groupLabels.alertname));
				await store.delivered(item, `m-${order.length}`);
			}

			expect(order).toEqual(["Late", "Early", "Posted", "GoneQuiet"]);
			await store.close();
		});

		it("lists a firing group for a storm summary as its latest webhook says, every firing alert counted", async () => {
			const { store } = await open();
			// More alerts than the history tracks one by one (TRACKED_ALERTS), some of them resolved.
			const sent = payload(250, {
				groupKey: "big",
				groupLabels: { alertname: "DiskFull" },
				commonLabels: { alertname: "DiskFull", severity: "Critical", env: "production" },
			});
			sent.alerts = sent.alerts.map((a, i) => (i % 10 === 0 ? { ...a, status: "resolved" as const } : a));
			await store.accept(sent, targets);
			await store.accept(payload(1, { groupKey: "other", groupLabels: {}, commonLabels: {} }), targets);

			const listed = (await store.firingGroups("1")).map((g) => g.facts);

			expect(listed).toEqual(
				expect.arrayContaining([
					{ name: "DiskFull", severity: "critical", environment: "production", firing: 225 },
					{ name: "DiskFilling", severity: null, environment: null, firing: 1 },
				]),
			);
			expect(listed).toHaveLength(2);
			await store.close();
		});

		it("counts a channel's backlog in episodes and lists its firing groups with their messages", async () => {
			const { store } = await open();
			const group = (name: string, n = 1) =>
				payload(n, {
					groupKey: name,
					groupLabels: { alertname: name },
					commonLabels: { alertname: name, severity: "warning" },
				});
			await store.accept(group("A"), targets);
			await store.delivered((await store.next("1"))!, "m-a");
			await store.accept(group("A", 2), targets); // an update of a posted group
			await store.accept(group("B"), targets);
			await store.accept(group("B", 2), targets); // coalesces with B's first
			await store.accept(group("C"), targets);
			await store.accept(group("Elsewhere"), [{ channel: "2" }]);
			const c = (await store.firingGroups("1")).find((g) => g.facts.name === "C")!;
			await store.retryLater({ groupId: c.groupId, episode: 1 } as OutboxItem, Date.now() + 60_000);

			const backlog = await store.backlog("1");
			const firing = await store.firingGroups("1");

			expect(backlog).toMatchObject({ pending: 3, due: 2, unposted: 2 });
			expect(backlog.nextDueAt).toBeLessThanOrEqual(Date.now());
			expect(firing.map((g) => [g.facts.name, g.messageId, g.facts.firing]).sort()).toEqual([
				["A", "m-a", 2],
				["B", null, 2],
				["C", null, 1],
			]);
			expect(await store.backlog("3")).toEqual({ pending: 0, due: 0, unposted: 0, nextDueAt: null, messagesDue: 0 });
			await store.close();
		});

		it("keeps a channel's storm summary across a restart, and lists the channels whose storm is not over", async () => {
			const { store: before, reopen } = await open();
			expect(await before.stormSummary("1")).toBeUndefined();
			await before.saveStormSummary({
				channel: "1",
				state: "active",
				messageId: null,
				nonce: "n-1",
				startedAt: 1_000,
				endedAt: null,
				groups: [],
			});
			await before.saveStormSummary({
				channel: "1",
				state: "active",
				messageId: "s-1",
				nonce: "n-1",
				startedAt: 1_000,
				endedAt: null,
				groups: ["g1", "g2"],
			});
			await before.saveStormSummary({
				channel: "2",
				state: "over",
				messageId: "s-2",
				nonce: "n-2",
				startedAt: 500,
				endedAt: 900,
				groups: ["g3"],
			});
			await before.close();

			const after = await reopen();

			expect(await after.stormSummary("1")).toEqual({
				channel: "1",
				state: "active",
				messageId: "s-1",
				nonce: "n-1",
				startedAt: 1_000,
				endedAt: null,
				groups: ["g1", "g2"],
			});
			expect(await after.stormSummary("2")).toMatchObject({ state: "over", endedAt: 900 });
			expect(await after.stormChannels()).toEqual(["1"]);
			await after.close();
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

		it(
			"remembers the message's chart attachment for its episode, " +
				"and queues a re-render of the current episode only",
			async () => {
				const { store } = await open();
				await store.accept(payload(1), targets);
				const first = (await store.next("1"))!;
				await store.delivered(first, "m1", "chart-1");
				await store.refresh(first.groupId, first.episode);
				const refreshed = (await store.next("1"))!;
				await store.delivered(refreshed, "m1", "chart-1");
				await store.accept(payload(1, {}, "resolved"), targets);
				await store.delivered((await store.next("1"))!, "m1", null);
				await store.accept(payload(2), targets);
				const next = (await store.next("1"))!;
				await store.refresh(first.groupId, first.episode);

				expect(first.chartAttachment).toBeNull();
				expect(refreshed).toMatchObject({ episode: first.episode, messageId: "m1", chartAttachment: "chart-1" });
				expect(next).toMatchObject({ episode: first.episode + 1, messageId: null, chartAttachment: null });
				expect(await store.pending()).toBe(1);
				await store.close();
			},
		);
	});
}

/** The message outbox's half of a DiscordSender, for card-only tests: any use is a test bug, told loudly. */
export const withoutMessages = {
	postMessage: () => Promise.reject(new Error("this test queues no outbox messages")),
	startThread: () => Promise.reject(new Error("this test queues no outbox messages")),
};
