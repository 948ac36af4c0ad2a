import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiscordAPIError } from "discord.js";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { MAX_LOCAL_ATTEMPTS, startDelivery, type DiscordSender } from "../../src/alerts/delivery.ts";
import { classifySendError } from "../../src/discord/send-failure.ts";
import type { AlertMessage } from "../../src/alerts/render.ts";
import { openAlertStore } from "../../src/alerts/store.ts";
import { payload } from "../support/alert-fixtures.ts";

function capturingLog() {
	const lines: Record<string, unknown>[] = [];
	const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
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
		tries: 0,
		async post(_channel: string, message: AlertMessage) {
			self.tries++;
			const err = fail(message);
			if (err) throw err;
			posted.push(message);
			return String(posted.length);
		},
		async edit(_channel: string, _id: string, message: AlertMessage) {
			await self.post(_channel, message);
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
		expect(lines.some((l) => l.level === 50 && l.msg === "alert attachments could not be sent; sending the message without them")).toBe(true);
		expect(await store.pending()).toBe(0);
	});

	it("drops the chart with a note, keeping the image reference out, when Discord refuses the upload", async () => {
		const store = openStore();
		const { log } = capturingLog();
		const tooLarge = new DiscordAPIError({ code: 40005, message: "Request entity too large" }, 40005, 413, "POST", "/channels/1/messages", { body: undefined, files: undefined });
		const discord = sender((m) => (m.files.length > 0 ? tooLarge : undefined));
		await store.accept(payload(2), [{ channel: "1" }]);

		const delivery = startDelivery({ store, sender: discord, log, pollMs: 20, chart: async () => Buffer.from("not really a png") });
		await delivery.drained();
		await delivery.stop();

		expect(discord.posted).toHaveLength(1);
		expect(discord.posted[0]!.embed.image).toBeUndefined();
		expect(discord.posted[0]!.embed.description).toContain("⚠️ The chart could not be attached.");
	});

	it("logs a local failure as an error and gives up after a bounded number of attempts instead of retrying for ever", async () => {
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
		expect(lines.filter((l) => l.msg === "alert delivery failed inside opsbot (a bug, not Discord); will retry").every((l) => l.level === 50)).toBe(true);
		expect(lines.some((l) => l.level === 50 && l.msg === "alert delivery kept failing inside opsbot (a bug); dropping the message")).toBe(true);
	});

	it("tells Discord's refusals, outages and network errors from opsbot's own bugs", () => {
		const refused = new DiscordAPIError({ code: 50035, message: "Invalid Form Body" }, 50035, 400, "POST", "/x", { body: undefined, files: undefined });
		const outage = new DiscordAPIError({ code: 0, message: "Server error" }, 0, 503, "POST", "/x", { body: undefined, files: undefined });
		const network = Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" });
		const refusedConnection = new Error("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }) });
		const timeout = Object.assign(new Error("This operation was aborted"), { name: "AbortError" });

		expect([refused, outage, network, refusedConnection, timeout, new TypeError("x"), "a string"].map(classifySendError)).toEqual(["refused", "transient", "transient", "transient", "transient", "local", "local"]);
	});
});
