import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { DiscordAPIError } from "discord.js";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { MAX_LOCAL_ATTEMPTS, startDelivery } from "../../src/alerts/delivery.ts";
import type { AlertMessage } from "../../src/alerts/render.ts";
import type { DiscordSender } from "../../src/alerts/rest-sender.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import { classifySendError } from "../../src/discord/send-failure.ts";
import { payload, withoutMessages } from "../support/alert-fixtures.ts";

function capturingLog() {
	const lines: Record<string, unknown>[] = [];
	const log = pino(
		{ level: "debug" },
		{ write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
	);
	return { log, lines };
}

function openStore() {
	return openAlertStore(join(mkdtempSync(join(tmpdir(), "opsbot-delivery-")), "alerts.sqlite"));
}

/** A sender that fails as told and keeps what it accepted. */
function sender(fail: (message: AlertMessage) => unknown): DiscordSender & { posted: AlertMessage[]; tries: number } {
	const posted: AlertMessage[] = [];
	const self = {
		posted,
		...withoutMessages,
		tries: 0,
		async post(_channel: string, message: AlertMessage) {
			self.tries++;
			const err = fail(message);
			if (err) throw err;
			posted.push(message);
			return { id: String(posted.length), attachments: [] };
		},
		async edit(_channel: string, _id: string, message: AlertMessage) {
			return self.post(_channel, message);
		},
	};
	return self;
}

describe("alert delivery when sending fails", () => {
	it("sends the alert without its attachments, saying so, when they cannot be sent", async () => {
		const store = openStore();
		const { log, lines } = capturingLog();
		const discord = sender((m) => (m.files.length > 0 ? new TypeError("action is not a function") : undefined));
		await store.accept(payload(30), [{ channel: "1" }]);

		const delivery = startDelivery({ store, sender: discord, log, pollMs: 20 });
		await delivery.drained();
		await delivery.stop();

		expect(discord.posted).toHaveLength(1);
		expect(discord.posted[0]!.files).toEqual([]);
		expect(discord.posted[0]!.embed.description).toContain("more (the full list could not be attached)");
		expect(discord.posted[0]!.embed.title).toBe("🟠 WARNING · DiskFilling");
		expect(
			lines.some(
				(l) => l.level === 50 && l.msg === "alert attachments could not be sent; sending the message without them",
			),
		).toBe(true);
		expect(await store.pending()).toBe(0);
	});

	it("drops the chart with a note, keeping the image reference out, when Discord refuses the upload", async () => {
		const store = openStore();
		const { log } = capturingLog();
		const tooLarge = new DiscordAPIError(
			{ code: 40005, message: "Request entity too large" },
			40005,
			413,
			"POST",
			"/channels/1/messages",
			{ body: undefined, files: undefined },
		);
		const discord = sender((m) => (m.files.length > 0 ? tooLarge : undefined));
		await store.accept(payload(2), [{ channel: "1" }]);

		const delivery = startDelivery({
			store,
			sender: discord,
			log,
			pollMs: 20,
			chart: async () => Buffer.from("not really a png"),
		});
		await delivery.drained();
		await delivery.stop();

		expect(discord.posted).toHaveLength(1);
		expect(discord.posted[0]!.embed.image).toBeUndefined();
		expect(discord.posted[0]!.embed.description).toContain("⚠️ The chart could not be attached.");
	});

	it(
		"logs a local failure as an error and gives up after a " +
			"bounded number of attempts instead of retrying for ever",
		async () => {
			const store = openStore();
			const { log, lines } = capturingLog();
			const discord = sender(() => new TypeError("a bug"));
			await store.accept(payload(2), [{ channel: "1" }]);
			const delivery = startDelivery({ store, sender: discord, log, pollMs: 10 });

			// Backoff makes later attempts wait; move each retry due now so the test sees them all.
			for (let i = 0; i < 200 && (await store.pending()) > 0; i++) {
				const due = await store.next("1", Date.now() + 120_000);
				if (due) await store.retryLater(due, Date.now() - 1);
				await new Promise((resolve) => setTimeout(resolve, 20));
			}
			await delivery.stop();

			expect(await store.pending()).toBe(0);
			expect(discord.tries).toBeLessThanOrEqual(MAX_LOCAL_ATTEMPTS + 2);
			expect(
				lines
					.filter((l) => l.msg === "alert delivery failed inside opsbot (a bug, not Discord); will retry")
					.every((l) => l.level === 50),
			).toBe(true);
			expect(
				lines.some(
					(l) => l.level === 50 && l.msg === "alert delivery kept failing inside opsbot (a bug); dropping the message",
				),
			).toBe(true);
		},
	);

	it("tells Discord's refusals, outages and network errors from opsbot's own bugs", () => {
		const refused = new DiscordAPIError({ code: 50035, message: "Invalid Form Body" }, 50035, 400, "POST", "/x", {
			body: undefined,
			files: undefined,
		});
		const outage = new DiscordAPIError({ code: 0, message: "Server error" }, 0, 503, "POST", "/x", {
			body: undefined,
			files: undefined,
		});
		const network = Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" });
		const refusedConnection = new Error("fetch failed", {
			cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
		});
		const timeout = Object.assign(new Error("This operation was aborted"), { name: "AbortError" });

		expect(
			[refused, outage, network, refusedConnection, timeout, new TypeError("x"), "a string"].map(classifySendError),
		).toEqual(["refused", "transient", "transient", "transient", "transient", "local", "local"]);
	});
});

describe("alert delivery when the store fails after Discord took the message", () => {
	it("records the message later instead of reposting it, and stops the channel until the store can write", async () => {
		const store = openStore();
		const { log, lines } = capturingLog();
		const discord = sender(() => undefined);
		let storeDown = true;
		const failing = {
			...store,
			delivered: (...args: Parameters<typeof store.delivered>) =>
				storeDown
					? Promise.reject(Object.assign(new Error("database or disk is full"), { errcode: 13 }))
					: store.delivered(...args),
			writable: async () => !storeDown,
		};
		const stops: [string, boolean][] = [];
		await store.accept(payload(2), [{ channel: "1" }]);
		const delivery = startDelivery({
			store: failing,
			sender: discord,
			log,
			pollMs: 10,
			onPause: (channel, stopped) => stops.push([channel, stopped]),
		});

		await vi.waitFor(
			() =>
				expect(
					lines.filter(
						(l) => l.msg === "the alert store still cannot be written; delivery in this channel stays stopped",
					).length,
				).toBeGreaterThan(0),
			{ timeout: 10_000 },
		);
		expect(discord.tries).toBe(1);
		storeDown = false;
		await delivery.drained();
		await delivery.stop();

		expect(discord.tries).toBe(1);
		expect(await store.pending()).toBe(0);
		expect(stops).toEqual([
			["1", true],
			["1", false],
		]);
		expect(
			lines.filter(
				(l) =>
					l.level === 50 &&
					String(l.msg).startsWith("alert delivery stopped in this channel: the alert store cannot be written"),
			),
		).toHaveLength(1);
	});
});

describe("alert delivery after a post it never heard of", () => {
	it("edits the message Discord hands back for the nonce when it shows an older version, and records it", async () => {
		const store = openStore();
		const { log } = capturingLog();
		const writes: string[] = [];
		// A holder that died after Discord took its post: the nonce brings back that message, as it was.
		const discord: DiscordSender = {
			...withoutMessages,
			async post(_channel, message) {
				writes.push(`post ${message.content}`);
				return { id: "earlier", attachments: [], stale: true };
			},
			async edit(_channel, id, message) {
				writes.push(`edit ${id} ${message.content}`);
				return { id, attachments: [] };
			},
		};
		await store.accept(payload(3), [{ channel: "1" }]);

		const delivery = startDelivery({ store, sender: discord, log, pollMs: 10 });
		await delivery.drained();
		await delivery.stop();

		const [group] = await store.listGroups("", 1);
		expect(writes).toEqual([
			"post 🟠 DiskFilling: Disk filling up (3 of 3)",
			"edit earlier 🟠 DiskFilling: Disk filling up (3 of 3)",
		]);
		expect(group?.messageId).toBe("earlier");
		expect(await store.pending()).toBe(0);
	});
});

describe("alert charts", () => {
	it("lets go of a chart's PNG once Discord has it as the message's attachment", async () => {
		setFlagsFromString("--expose-gc");
		const collect = runInNewContext("gc") as () => void;
		const store = openStore();
		const { log } = capturingLog();
		const discord: DiscordSender = {
			...withoutMessages,
			async post(_channel, message) {
				return { id: "m1", attachments: message.files.map((f, i) => ({ id: `a${i}`, filename: f.name })) };
			},
			async edit(_channel, _id, message) {
				return { id: "m1", attachments: [...(message.kept ?? [])] };
			},
		};
		let png: WeakRef<Buffer> | undefined;
		const delivery = startDelivery({
			store,
			sender: discord,
			log,
			pollMs: 10,
			chart: async () => {
				const drawn = Buffer.alloc(100_000, 1);
				png = new WeakRef(drawn);
				return drawn;
			},
		});
		await store.accept(payload(2), [{ channel: "1" }]);
		await delivery.drained();
		const { messageId } = (await store.listGroups("", 1))[0]!;
		await new Promise((resolve) => setImmediate(resolve));
		collect();

		expect(messageId).toBe("m1");
		expect(png).toBeDefined();
		expect(png?.deref()).toBeUndefined();
		await delivery.stop();
	});

	it("draws a group's chart once per episode and keeps the attachment on later edits", async () => {
		const store = openStore();
		const { log } = capturingLog();
		const sent: { kind: string; files: string[]; kept: string[] }[] = [];
		const discord: DiscordSender = {
			...withoutMessages,
			async post(_channel, message) {
				sent.push({ kind: "post", files: message.files.map((f) => f.name), kept: [] });
				return { id: "m1", attachments: message.files.map((f, i) => ({ id: `a${i}`, filename: f.name })) };
			},
			async edit(_channel, _id, message) {
				sent.push({
					kind: "edit",
					files: message.files.map((f) => f.name),
					kept: (message.kept ?? []).map((a) => a.id),
				});
				return {
					id: "m1",
					attachments: [...(message.kept ?? []), ...message.files.map((f, i) => ({ id: `b${i}`, filename: f.name }))],
				};
			},
		};
		let drawn = 0;
		const delivery = startDelivery({
			store,
			sender: discord,
			log,
			pollMs: 10,
			chart: async () => {
				drawn++;
				return Buffer.from("png");
			},
		});
		await store.accept(payload(2), [{ channel: "1" }]);
		await delivery.drained();
		const { groupId } = (await store.listGroups("", 1))[0]!;
		await store.setAck(groupId, { userId: "1", username: "olivia", at: Date.now() });
		await delivery.drained();
		await store.setAck(groupId, null);
		await delivery.drained();
		await delivery.stop();

		expect(drawn).toBe(1);
		expect(sent).toEqual([
			{ kind: "post", files: ["chart.png"], kept: [] },
			{ kind: "edit", files: [], kept: ["a0"] },
			{ kind: "edit", files: [], kept: ["a0"] },
		]);
	});
});
