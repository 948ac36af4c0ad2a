import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { QueuedPost } from "../../src/alerts/message-outbox.ts";
import { openPostgresAlertStore } from "../../src/alerts/pg-store.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import type { AlertStore } from "../../src/alerts/store.ts";
import { payload } from "../support/alert-fixtures.ts";
import { freshStateDatabase } from "./state-database.ts";

const CHANNEL = "400000000000000001";
const THREAD = "400000000000000777";
const ROLE = "500000000000000001";

const post = (key: string, extra: Partial<QueuedPost> = {}): QueuedPost => ({
	kind: "post",
	key,
	target: { channel: CHANNEL },
	content: `<@&${ROLE}> still firing`,
	mentions: { roles: [ROLE] },
	...extra,
});

type Open = () => Promise<{ store: AlertStore; reopen: () => Promise<AlertStore> }>;

function messageOutboxContract(name: string, open: Open): void {
	describe(`message outbox (${name})`, () => {
		it("queues a key once: the same key again is a no-op, even after a restart", async () => {
			const { store, reopen } = await open();

			expect(await store.enqueueMessage(post("escalation:g1:1:1"))).toBe(true);
			expect(await store.enqueueMessage(post("escalation:g1:1:1", { content: "another text" }))).toBe(false);
			await store.close();
			const again = await reopen();
			expect(await again.enqueueMessage(post("escalation:g1:1:1"))).toBe(false);

			expect(await again.pending()).toBe(1);
			const item = (await again.nextMessage(CHANNEL))!;
			expect(item).toMatchObject({ key: "escalation:g1:1:1", channel: CHANNEL, attempts: 0 });
			expect(item.message).toEqual(post("escalation:g1:1:1"));
			await again.messageSent(item, "900000000000000001", 1_000);
			expect(await again.nextMessage(CHANNEL)).toBeUndefined();
			expect(await again.enqueueMessage(post("escalation:g1:1:1"))).toBe(false);
			expect(await again.messageOutcome("escalation:g1:1:1")).toEqual({
				state: "sent",
				id: "900000000000000001",
				at: 1_000,
			});
			expect(await again.pending()).toBe(0);
			await again.close();
		});

		it("counts queued messages in the channel's backlog, its due channels and /metrics' outbox depth", async () => {
			const { store } = await open();
			await store.accept(payload(1), [{ channel: CHANNEL }], 500);
			await store.enqueueMessage(post("a"), 1_000);
			await store.enqueueMessage({ ...post("b"), target: { thread: THREAD } }, 2_000);

			expect(await store.backlog(CHANNEL, 1_500)).toEqual({
				pending: 2,
				due: 2,
				unposted: 1,
				nextDueAt: 500,
				messagesDue: 1,
			});
			expect(await store.backlog(THREAD, 1_500)).toEqual({
				pending: 1,
				due: 0,
				unposted: 0,
				nextDueAt: 2_000,
				messagesDue: 0,
			});
			expect((await store.dueChannels(1_500)).sort()).toEqual([CHANNEL]);
			expect((await store.dueChannels(2_000)).sort()).toEqual([CHANNEL, THREAD]);
			const outbox = (await store.stats()).outbox;
			expect([...outbox].sort((x, y) => x.channel.localeCompare(y.channel))).toEqual([
				{ channel: CHANNEL, depth: 2, oldestAt: 500 },
				{ channel: THREAD, depth: 1, oldestAt: 2_000 },
			]);
			expect(await store.pending()).toBe(3);
			await store.close();
		});

		it("hands out a channel's messages oldest first, holds one back until its retry, and records a refusal", async () => {
			const { store } = await open();
			await store.enqueueMessage(post("first"), 1_000);
			await store.enqueueMessage(post("second"), 1_001);
			await store.enqueueMessage({ ...post("elsewhere"), target: { thread: THREAD } }, 1_002);

			const first = (await store.nextMessage(CHANNEL, 2_000))!;
			expect(first.key).toBe("first");
			await store.retryMessageLater(first, 10_000);
			const second = (await store.nextMessage(CHANNEL, 2_000))!;
			expect(second.key).toBe("second");
			await store.messageFailed(second, "Discord answered 403: Missing Permissions (code 50013)", 2_500);
			expect(await store.nextMessage(CHANNEL, 3_000)).toBeUndefined();
			expect(await store.messageOutcome("first")).toEqual({ state: "queued", attempts: 1 });
			expect(await store.messageOutcome("second")).toEqual({
				state: "failed",
				reason: "Discord answered 403: Missing Permissions (code 50013)",
				at: 2_500,
			});
			expect(await store.messageOutcome("never queued")).toBeUndefined();
			const retried = (await store.nextMessage(CHANNEL, 10_000))!;
			expect(retried).toMatchObject({ key: "first", attempts: 1 });
			expect((await store.nextMessage(THREAD, 10_000))?.key).toBe("elsewhere");
			await store.close();
		});

		it("keeps a thread start and its thread's id under its key", async () => {
			const { store } = await open();
			const thread = {
				kind: "thread",
				key: "thread:g1:1",
				channel: CHANNEL,
				messageId: "900000000000000042",
				name: "DiskFilling",
			} as const;
			expect(await store.enqueueMessage(thread)).toBe(true);
			const item = (await store.nextMessage(CHANNEL))!;
			expect(item.message).toEqual(thread);
			await store.messageSent(item, "900000000000000042", 7);
			expect(await store.messageOutcome("thread:g1:1")).toEqual({ state: "sent", id: "900000000000000042", at: 7 });
			await store.close();
		});

		it("keeps a post's text files with it, whole, up to the 64 KiB bound", async () => {
			const { store, reopen } = await open();
			// Multi-byte text up to the byte bound: 21,845 three-byte characters and a newline are 65,536 bytes.
			const text = `${"€".repeat(21_845)}\n`;
			const withFiles = post("restart:g1:1", {
				files: [
					{ name: "restart-output.txt", text },
					{ name: "b.txt", text: "line 1\n\tline 2 `x` <@&1>\n" },
				],
			});
			await expect(store.enqueueMessage(withFiles)).rejects.toThrow(/at most 65536 bytes/);
			const withinBound = { ...withFiles, files: [withFiles.files![0]!] };
			expect(await store.enqueueMessage(withinBound)).toBe(true);
			await store.close();
			const again = await reopen();
			expect((await again.nextMessage(CHANNEL))!.message).toEqual(withinBound);
			await again.close();
		});

		it("refuses a message Discord would refuse, saying why, and stores nothing", async () => {
			const { store } = await open();
			const bad: [QueuedPost, RegExp][] = [
				[post(""), /key must be 1-200 characters/],
				[post("x".repeat(201)), /key must be 1-200 characters/],
				[post("k1", { content: "", embeds: [] }), /needs content, an embed or a file/],
				[post("k2", { content: "x".repeat(2_001) }), /at most 2000 characters/],
				[post("k3", { target: { channel: "general" } }), /target must be Discord ids/],
				[post("k4", { mentions: { users: ["@everyone"] } }), /mentioned roles and users must be Discord ids/],
				[post("k5", { mentions: { roles: Array.from({ length: 101 }, () => ROLE) } }), /at most 100/],
				[post("k6", { files: [{ name: "../etc/passwd", text: "x" }] }), /file name must be 1-100 letters/],
				[post("k7", { files: [{ name: "a.txt", text: "x".repeat(64 * 1024 + 1) }] }), /at most 65536 bytes/],
				// 22,000 three-byte characters: 22,000 UTF-16 units but 66,000 bytes of UTF-8.
				[post("k8", { files: [{ name: "a.txt", text: "€".repeat(22_000) }] }), /at most 65536 bytes/],
				[post("k9", { files: [{ name: "a.txt", text: "a\u0000b" }] }), /must not contain NUL/],
				[
					post("k10", { files: Array.from({ length: 11 }, (_, i) => ({ name: `f${i}.txt`, text: "x" })) }),
					/at most 10 files/,
				],
				[
					post("k11", {
						files: [
							{ name: "a.txt", text: "x" },
							{ name: "a.txt", text: "y" },
						],
					}),
					/names must differ/,
				],
			];
			for (const [message, error] of bad) await expect(store.enqueueMessage(message)).rejects.toThrow(error);
			await expect(
				store.enqueueMessage({ kind: "thread", key: "t", channel: CHANNEL, messageId: "1", name: "n" }),
			).rejects.toThrow(/channel and message must be Discord ids/);
			expect(await store.pending()).toBe(0);
			await store.close();
		});
	});
}

messageOutboxContract("SQLite", async () => {
	const path = join(mkdtempSync(join(tmpdir(), "opsbot-messages-")), "alerts.sqlite");
	return { store: openAlertStore(path), reopen: async () => openAlertStore(path) };
});

messageOutboxContract("PostgreSQL", async () => {
	const url = await freshStateDatabase("opsbot_messages");
	const log = pino({ level: "silent" });
	return { store: await openPostgresAlertStore(url, log), reopen: () => openPostgresAlertStore(url, log) };
});

describe("message outbox shared by two replicas (PostgreSQL)", () => {
	it("leases a message to one replica: the other neither gets it nor queues its key again", async () => {
		const url = await freshStateDatabase("opsbot_messages");
		const log = pino({ level: "silent" });
		const [a, b] = await Promise.all([openPostgresAlertStore(url, log), openPostgresAlertStore(url, log)]);
		const queued = await Promise.all([a.enqueueMessage(post("dms:1")), b.enqueueMessage(post("dms:1"))]);

		const [first, second] = await Promise.all([a.nextMessage(CHANNEL), b.nextMessage(CHANNEL)]);

		expect(queued.sort()).toEqual([false, true]);
		expect([first, second].filter(Boolean)).toHaveLength(1);
		expect(await a.pending()).toBe(1);
		await Promise.all([a.close(), b.close()]);
	});
});
