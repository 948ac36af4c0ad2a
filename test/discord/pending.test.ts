import { describe, expect, it } from "vitest";
import { createPendingStore } from "../../src/discord/pending.ts";

function putMany(store: { put(userId: string, value: string): string }, userId: string, count: number): string[] {
	return Array.from({ length: count }, (_, i) => store.put(userId, `${userId}-${i}`));
}

describe("pending store bounds", () => {
	it("keeps another user's confirmation while one user floods the button", () => {
		const store = createPendingStore<string>(60_000);
		const alice = store.put("alice", "alice's confirmation");

		const flood = putMany(store, "mallory", 1_500);

		expect(store.take(alice, "alice")).toEqual({ ok: true, value: "alice's confirmation" });
		expect(store.peek(flood.at(-1)!, "mallory")).toEqual({ ok: true, value: "mallory-1499" });
	});

	it("caps each user at their own limit, evicting that user's oldest entries", () => {
		const store = createPendingStore<string>(60_000, { maxPerUser: 3 });

		const tokens = putMany(store, "mallory", 5);

		expect(tokens.map((t) => store.peek(t, "mallory").ok)).toEqual([false, false, true, true, true]);
		expect(store.peek(tokens[0]!, "mallory")).toEqual({ ok: false, reason: "unknown" });
	});

	it("when full, evicts the oldest entry of the user holding the most, not of the one putting", () => {
		const store = createPendingStore<string>(60_000, { maxPerUser: 5, maxEntries: 10 });
		const a = putMany(store, "a", 5);
		const b = putMany(store, "b", 3);
		const c = putMany(store, "c", 2);

		const d = store.put("d", "d-0");

		expect(store.peek(a[0]!, "a")).toEqual({ ok: false, reason: "unknown" });
		expect(a.slice(1).every((t) => store.peek(t, "a").ok)).toBe(true);
		expect([...b.map((t) => store.peek(t, "b").ok), ...c.map((t) => store.peek(t, "c").ok)].every(Boolean)).toBe(true);
		expect(store.peek(d, "d").ok).toBe(true);
	});

	it("with one shared cap only, a flood evicts the flooding user's own entries first", () => {
		const store = createPendingStore<string>(60_000, { maxPerUser: 10, maxEntries: 10 });
		const alice = putMany(store, "alice", 2);

		const flood = putMany(store, "mallory", 50);

		expect(alice.every((t) => store.peek(t, "alice").ok)).toBe(true);
		expect(flood.filter((t) => store.peek(t, "mallory").ok)).toEqual(flood.slice(-8));
	});

	it("frees a user's room when entries are taken or expire", () => {
		let t = 0;
		const store = createPendingStore<string>(1_000, { now: () => t, maxPerUser: 2 });
		const [first, second] = putMany(store, "alice", 2);

		expect(store.take(first!, "alice").ok).toBe(true);
		const third = store.put("alice", "third");
		expect(store.peek(second!, "alice").ok).toBe(true);

		t = 1_000;
		expect(store.take(third, "alice")).toEqual({ ok: false, reason: "expired" });
		const [fourth, fifth] = putMany(store, "alice", 2);
		expect(store.peek(fourth!, "alice").ok).toBe(true);
		expect(store.peek(fifth!, "alice").ok).toBe(true);
	});

	it("refuses an entry to anyone but its owner", () => {
		const store = createPendingStore<string>(60_000);
		const token = store.put("alice", "x");

		expect(store.take(token, "bob")).toEqual({ ok: false, reason: "other-user" });
		expect(store.take(token, "alice")).toEqual({ ok: true, value: "x" });
		expect(store.take(token, "alice")).toEqual({ ok: false, reason: "unknown" });
	});
});
