import {
	appendFileSync,
	existsSync,
	mkdirSync,
	mkdtempSync,
	readFileSync,
	rmSync,
	statSync,
	truncateSync,
	writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type ActionRecord, createFileActionLog } from "../../src/services/action-log.ts";

const fresh = () => mkdtempSync(join(tmpdir(), "opsbot-actions-"));
const entry = (i: number, action = "pool.terminate", userId = "1") => ({
	actor: { userId, username: `user ${i} é` },
	action,
	target: `target ${i}`,
	result: "ok",
	at: new Date(1_700_000_000_000 + i * 1_000),
});
const line = (i: number, action?: string, userId?: string) =>
	`${JSON.stringify({ ...entry(i, action, userId), at: entry(i).at.toISOString() })}\n`;
const targets = (records: readonly ActionRecord[]) => records.map((r) => r.target);

describe("file action log", () => {
	it("fails only the append that failed; the next record is written", async () => {
		const dir = fresh();
		const path = join(dir, "actions.jsonl");
		mkdirSync(path); // a directory where the file should be: appendFile fails with EISDIR
		const log = createFileActionLog(path);

		await expect(log.record(entry(1))).rejects.toThrow();
		rmSync(path, { recursive: true });
		await log.record(entry(2));

		expect(targets(await log.recent(10))).toEqual(["target 2"]);
	});

	it("recovers when the state directory could not be created at first", async () => {
		const dir = fresh();
		const blocker = join(dir, "state");
		writeFileSync(blocker, "a file where the directory should be");
		const log = createFileActionLog(join(blocker, "actions.jsonl"));

		await expect(log.record(entry(1))).rejects.toThrow();
		rmSync(blocker);
		await log.record(entry(2));
		await log.record(entry(3));

		expect(targets(await log.recent(10))).toEqual(["target 3", "target 2"]);
	});

	it("keeps appends in order when one in the middle fails", async () => {
		const dir = fresh();
		const path = join(dir, "actions.jsonl");
		const log = createFileActionLog(path);
		await log.record(entry(1));

		const results = await Promise.allSettled([
			log.record(entry(2)),
			log.record({ ...entry(3), details: { loop: 1n } as never }),
			log.record(entry(4)),
		]);

		expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
		expect(targets(await log.recent(10))).toEqual(["target 4", "target 2", "target 1"]);
	});

	it("rotates the file at its size bound and reads on into the rotated files", async () => {
		const dir = fresh();
		const path = join(dir, "actions.jsonl");
		const maxBytes = Buffer.byteLength(line(10)) * 4;
		const log = createFileActionLog(path, { maxBytes, keep: 2 });

		for (let i = 10; i < 30; i++) await log.record(entry(i));

		expect(statSync(path).size).toBeLessThanOrEqual(maxBytes);
		expect(statSync(`${path}.1`).size).toBeLessThanOrEqual(maxBytes);
		expect(existsSync(`${path}.2`)).toBe(true);
		expect(existsSync(`${path}.3`)).toBe(false);
		expect(statSync(path).mode & 0o777).toBe(0o600);
		const all = await log.recent(100);
		expect(all.length).toBe(12);
		expect(targets(all)).toEqual(Array.from({ length: 12 }, (_, i) => `target ${29 - i}`));
		expect(targets(await log.recent(6))).toEqual([
			"target 29",
			"target 28",
			"target 27",
			"target 26",
			"target 25",
			"target 24",
		]);
	});

	it("finds filtered records in the rotated file when the live one has none", async () => {
		const dir = fresh();
		const path = join(dir, "actions.jsonl");
		const log = createFileActionLog(path, { maxBytes: Buffer.byteLength(line(10)) * 3 });
		await log.record(entry(10, "alert.restart", "7"));
		for (let i = 11; i < 16; i++) await log.record(entry(i));

		expect(readFileSync(path, "utf8")).not.toContain("alert.restart");
		expect(targets(await log.recent(5, { action: "alert.restart" }))).toEqual(["target 10"]);
		expect(targets(await log.recent(5, { userId: "7" }))).toEqual(["target 10"]);
	});

	it("reads only the end of a file far larger than what it returns", async () => {
		const dir = fresh();
		const path = join(dir, "actions.jsonl");
		writeFileSync(path, "");
		// 3 GiB of (sparse) bytes before the records: reading the whole file would take long and fail
		// (Node cannot read a file over 2 GiB into one string).
		truncateSync(path, 3 * 1024 ** 3);
		appendFileSync(path, "\n");
		for (let i = 0; i < 200; i++) appendFileSync(path, line(i, i % 2 === 0 ? "alert.ack" : "pool.terminate"));
		const log = createFileActionLog(path, { chunkBytes: 4 * 1024 });

		const started = performance.now();
		const latest = await log.recent(10);
		const acks = await log.recent(5, { action: "alert.ack" });
		rmSync(dir, { recursive: true });

		expect(targets(latest)).toEqual(Array.from({ length: 10 }, (_, i) => `target ${199 - i}`));
		expect(targets(acks)).toEqual(["target 198", "target 196", "target 194", "target 192", "target 190"]);
		expect(performance.now() - started).toBeLessThan(2_000);
	});

	it("splits lines correctly across chunk boundaries, multi-byte characters included", async () => {
		const dir = fresh();
		const path = join(dir, "actions.jsonl");
		writeFileSync(path, `${line(1)}${line(2)}\n\n${line(3)}`);
		const log = createFileActionLog(path, { chunkBytes: 7 });

		expect(targets(await log.recent(10))).toEqual(["target 3", "target 2", "target 1"]);
		expect((await log.recent(1))[0]?.actor.username).toBe("user 3 é");
	});

	it("skips a torn last line and a line far longer than any record", async () => {
		const dir = fresh();
		const path = join(dir, "actions.jsonl");
		writeFileSync(path, `${line(1)}${"x".repeat(3 * 1024 * 1024)}\n${line(2)}{"torn":`);
		const log = createFileActionLog(path, { chunkBytes: 4 * 1024 });

		expect(targets(await log.recent(10))).toEqual(["target 2", "target 1"]);
	});

	it("has nothing to show before the first record", async () => {
		expect(await createFileActionLog(join(fresh(), "none", "actions.jsonl")).recent(10)).toEqual([]);
	});
});
