import { describe, expect, it } from "vitest";
import type { PendingStore } from "../../src/state/contracts.ts";
import { createPendingStore } from "../support/pending.ts";

async function putMany(store: PendingStore<string>, userId: string, count: number): Promise<string[]> {
	const tokens: string[] = [];
	for (let i = 0; i < count; i++) tokens.push(await store.put(userId, `${userId}-${i}`));
	return tokens;
}

async function live(store: PendingStore<string>, tokens: readonly string[], userId: string): Promise<boolean[]> {
	return Promise.all(tokens.map(async (t) => (await store.peek(t, userId)).ok));
}

describe("pending store bounds", () => {
	it("keeps another user's confirmation while one user floods the button", async () => {
		const store = createPendingStore<string>(60_000);
		const alice = await store.put("alice", "alice's confirmation");

		const flood = await putMany(store, "mallory", 1_500);

		expect(await store.take(alice, "alice")).toEqual({ ok: true, value: "alice's confirmation" });
		expect(await store.peek(flood.at(-1)!, "mallory")).toEqual({ ok: true, value: "mallory-1499" });
	});

	it("caps each user at their own limit, evicting that user's oldest entries", async () => {
		const store = createPendingStore<string>(60_000, { maxPerUser: 3 });

		const tokens = await putMany(store, "mallory", 5);

		expect(await live(store, tokens, "mallory")).toEqual([false, false, true, true, true]);
		expect(await store.peek(tokens[0]!, "mallory")).toEqual({ ok: false, reason: "unknown" });
	});

	it("when full, evicts the oldest entry of the user holding the most, not of the one putting", async () => {
		const store = createPendingStore<string>(60_000, { maxPerUser: 5, maxEntries: 10 });
		const a = await putMany(store, "a", 5);
		const b = await putMany(store, "b", 3);
		const c = await putMany(store, "c", 2);

		const d = await store.put("d", "d-0");

		expect(await store.peek(a[0]!, "a")).toEqual({ ok: false, reason: "unknown" });
		expect((await live(store, a.slice(1), "a")).every(Boolean)).toBe(true);
		expect([...(await live(store, b, "b")), ...(await live(store, c, "c"))].every(Boolean)).toBe(true);
		expect((await store.peek(d, "d")).ok).toBe(true);
	});

	it("with one shared cap only, a flood evicts the flooding user's own entries first", async () => {
		const store = createPendingStore<string>(60_000, { maxPerUser: 10, maxEntries: 10 });
		const alice = await putMany(store, "alice", 2);

		const flood = await putMany(store, "mallory", 50);

		expect((await live(store, alice, "alice")).every(Boolean)).toBe(true);
		const alive = await live(store, flood, "mallory");
		expect(flood.filter((_, i) => alive[i])).toEqual(flood.slice(-8));
	});

	it("frees a user's room when entries are taken or expire", async () => {
		let t = 0;
		const store = createPendingStore<string>(1_000, { now: () => t, maxPerUser: 2 });
		const [first, second] = await putMany(store, "alice", 2);

		expect((await store.take(first!, "alice")).ok).toBe(true);
		const third = await store.put("alice", "third");
		expect((await store.peek(second!, "alice")).ok).toBe(true);

		t = 1_000;
		expect(await store.take(third, "alice")).toEqual({ ok: false, reason: "expired" });
		const [fourth, fifth] = await putMany(store, "alice", 2);
		expect((await store.peek(fourth!, "alice")).ok).toBe(true);
		expect((await store.peek(fifth!, "alice")).ok).toBe(true);
	});

	it("refuses an entry to anyone but its owner", async () => {
		const store = createPendingStore<string>(60_000);
		const token = await store.put("alice", "x");

		expect(await store.take(token, "bob")).toEqual({ ok: false, reason: "other-user" });
		expect(await store.take(token, "alice")).toEqual({ ok: true, value: "x" });
		expect(await store.take(token, "alice")).toEqual({ ok: false, reason: "unknown" });
	});
});
