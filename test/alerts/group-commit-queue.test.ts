import { afterEach, describe, expect, it, vi } from "vitest";
import { groupCommit } from "../../src/alerts/group-commit.ts";

/** A commit that records its batches and answers each job with its double, settled when the test says. */
function recorder(options: { failWhen?: (batch: readonly number[]) => Error | undefined } = {}) {
	const batches: number[][] = [];
	let inFlight = 0;
	let most = 0;
	const gates: (() => void)[] = [];
	let gated = false;
	const commit = async (batch: readonly number[]) => {
		batches.push([...batch]);
		inFlight++;
		most = Math.max(most, inFlight);
		try {
			if (gated) await new Promise<void>((open) => gates.push(open));
			const err = options.failWhen?.(batch);
			if (err) throw err;
			return batch.map((n) => n * 2);
		} finally {
			inFlight--;
		}
	};
	return {
		commit,
		batches,
		most: () => most,
		hold: () => void (gated = true),
		release: () => {
			gated = false;
			for (const open of gates.splice(0)) open();
		},
		waiting: () => gates.length,
	};
}

const faulty = Object.assign(new Error("job 3 is refused"), { code: "22P02" });
const away = Object.assign(new Error("server went away"), { code: "57P01" });

afterEach(() => {
	vi.useRealTimers();
});

describe("groupCommit", () => {
	it("writes the jobs of one turn in one commit and answers each caller with its own result", async () => {
		const r = recorder();
		const queue = groupCommit({ commit: r.commit, retryAlone: () => false });

		const results = await Promise.all([1, 2, 3, 4].map((n) => queue.add(n)));

		expect(results).toEqual([2, 4, 6, 8]);
		expect(r.batches).toEqual([[1, 2, 3, 4]]);
	});

	it("runs one commit at a time: jobs arriving meanwhile wait and are written together after it", async () => {
		const r = recorder();
		const queue = groupCommit({ commit: r.commit, retryAlone: () => false });
		r.hold();
		const first = queue.add(1);
		await vi.waitFor(() => expect(r.waiting()).toBe(1));

		const later = [2, 3, 4].map((n) => queue.add(n));
		await new Promise((resolve) => setImmediate(resolve));
		expect(r.batches).toEqual([[1]]);
		r.release();

		expect(await Promise.all([first, ...later])).toEqual([2, 4, 6, 8]);
		expect(r.batches).toEqual([[1], [2, 3, 4]]);
		expect(r.most()).toBe(1);
	});

	it("splits a queue longer than maxBatch into batches of at most that many, a full one started at once", async () => {
		vi.useFakeTimers();
		const r = recorder();
		const queue = groupCommit({ commit: r.commit, retryAlone: () => false, windowMs: 60_000, maxBatch: 2 });

		const results = Promise.all([1, 2, 3, 4, 5].map((n) => queue.add(n)));
		await vi.advanceTimersByTimeAsync(0);

		// A full batch does not wait for the window, and what queued behind it follows when it is done.
		expect(r.batches).toEqual([[1, 2], [3, 4], [5]]);
		expect(await results).toEqual([2, 4, 6, 8, 10]);
	});

	it("with a window, gathers the jobs that arrive within it into one commit", async () => {
		vi.useFakeTimers();
		const r = recorder();
		const queue = groupCommit({ commit: r.commit, retryAlone: () => false, windowMs: 3 });

		const a = queue.add(1);
		await vi.advanceTimersByTimeAsync(2);
		const b = queue.add(2);
		expect(r.batches).toEqual([]);
		await vi.advanceTimersByTimeAsync(1);

		expect(await Promise.all([a, b])).toEqual([2, 4]);
		expect(r.batches).toEqual([[1, 2]]);
	});

	it("retries each job of a failed batch alone when the error may be one job's, so only that job fails", async () => {
		const r = recorder({ failWhen: (batch) => (batch.includes(3) ? faulty : undefined) });
		const queue = groupCommit({ commit: r.commit, retryAlone: (err) => err === faulty });

		const settled = await Promise.allSettled([1, 2, 3, 4].map((n) => queue.add(n)));

		expect(settled).toEqual([
			{ status: "fulfilled", value: 2 },
			{ status: "fulfilled", value: 4 },
			{ status: "rejected", reason: faulty },
			{ status: "fulfilled", value: 8 },
		]);
		expect(r.batches).toEqual([[1, 2, 3, 4], [1], [2], [3], [4]]);
	});

	it("fails every job of the batch at once when the error is not one job's (the server is away)", async () => {
		const r = recorder({ failWhen: () => away });
		const queue = groupCommit({ commit: r.commit, retryAlone: (err) => err === faulty });

		const settled = await Promise.allSettled([1, 2, 3].map((n) => queue.add(n)));

		expect(settled).toEqual([1, 2, 3].map(() => ({ status: "rejected", reason: away })));
		expect(r.batches).toEqual([[1, 2, 3]]);
	});

	it("commits a job added by a caller the previous commit just answered, however late in that turn", async () => {
		// However many promise hops the caller takes, its next job is committed: none is stranded between the
		// commit loop's last look at the queue and its end.
		for (const hops of [0, 1, 2, 3, 4, 5, 6, 8]) {
			const r = recorder();
			const queue = groupCommit({ commit: r.commit, retryAlone: () => false });
			let answered: Promise<unknown> = queue.add(1);
			for (let i = 0; i < hops; i++) answered = answered.then(() => undefined);
			const second = answered.then(() => queue.add(2));

			await vi.waitFor(() => expect(r.batches).toEqual([[1], [2]]));
			expect(await second).toBe(4);
		}
	});

	it("drain() commits what waits for the window at once and waits for the commit in flight", async () => {
		vi.useFakeTimers();
		const r = recorder();
		const queue = groupCommit({ commit: r.commit, retryAlone: () => false, windowMs: 60_000 });
		let answered = 0;
		for (const n of [1, 2]) void queue.add(n).then(() => answered++);

		await queue.drain();

		expect(r.batches).toEqual([[1, 2]]);
		expect(answered).toBe(2);
	});
});
