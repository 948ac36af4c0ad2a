import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REST, Routes } from "discord.js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type Delivery, startDelivery } from "../../src/alerts/delivery.ts";
import { messageNonce } from "../../src/alerts/message-outbox.ts";
import { messageBody, restSender } from "../../src/alerts/rest-sender.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import type { AlertStore } from "../../src/alerts/store.ts";
import { discordAgent } from "../../src/discord/client.ts";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";

const CHANNEL = "400000000000000001";
const ROLE = "500000000000000001";
const USER = "600000000000000001";
const FAST_BUDGET = { count: 50, windowMs: 1_000 };

function capturingLog() {
	const lines: Record<string, unknown>[] = [];
	const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
	return { log, lines };
}

describe("message outbox delivery (through the REST client to the Discord double)", () => {
	let double: DiscordDouble;
	let rest: REST;
	beforeAll(async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
		rest = new REST({ api: double.apiUrl, agent: discordAgent(), retries: 0 }).setToken("double-token");
	});
	afterAll(async () => {
		await double.close();
	});

	async function deliver(store: AlertStore, log = pino({ level: "silent" })): Promise<Delivery> {
		const delivery = startDelivery({ store, sender: restSender(rest), log, pollMs: 20, budget: FAST_BUDGET });
		await delivery.drained();
		return delivery;
	}
	const openStore = () => openAlertStore(join(mkdtempSync(join(tmpdir(), "opsbot-message-delivery-")), "a.sqlite"));
	const postsTo = (channel: string) =>
		double.requests.filter((r) => r.method === "POST" && r.path === `/channels/${channel}/messages`);

	it("posts a reply once, pinging exactly the roles and users it names, and records the message's id", async () => {
		const card = (await rest.post(Routes.channelMessages(CHANNEL), { body: { content: "the card" } })) as {
			id: string;
		};
		const store = openStore();
		const before = postsTo(CHANNEL).length;
		await store.enqueueMessage({
			kind: "post",
			key: "escalation:g1:1:1",
			target: { channel: CHANNEL, replyTo: card.id },
			content: `<@&${ROLE}> <@${USER}> @everyone still firing after 15 minutes`,
			mentions: { roles: [ROLE], users: [USER] },
		});

		const delivery = await deliver(store);
		await delivery.stop();

		const sent = postsTo(CHANNEL).slice(before);
		expect(sent).toHaveLength(1);
		expect(sent[0]!.body).toMatchObject({
			allowed_mentions: { parse: [], roles: [ROLE], users: [USER], replied_user: false },
			message_reference: { message_id: card.id, channel_id: CHANNEL },
			nonce: messageNonce("escalation:g1:1:1"),
			enforce_nonce: true,
		});
		const outcome = await store.messageOutcome("escalation:g1:1:1");
		expect(outcome).toMatchObject({ state: "sent" });
		const posted = double.channelMessages(CHANNEL).find((m) => m.id === (outcome as { id: string }).id);
		expect(posted?.content).toBe(`<@&${ROLE}> <@${USER}> @everyone still firing after 15 minutes`);
		expect(await store.pending()).toBe(0);
		await store.close();
	});

	it("starts a thread on a message and posts into it; a second start of that thread finds it", async () => {
		const card = (await rest.post(Routes.channelMessages(CHANNEL), { body: { content: "card" } })) as { id: string };
		const store = openStore();
		await store.enqueueMessage({
			kind: "thread",
			key: "thread:g2:1",
			channel: CHANNEL,
			messageId: card.id,
			name: "g2",
		});
		await (await deliver(store)).stop();
		const thread = await store.messageOutcome("thread:g2:1");
		// The same thread asked for again under another key (as after a crash that lost the first outcome).
		await store.enqueueMessage({
			kind: "thread",
			key: "thread:g2:1:again",
			channel: CHANNEL,
			messageId: card.id,
			name: "g2",
		});
		await store.enqueueMessage({
			kind: "post",
			key: "thread-post:g2",
			target: { thread: card.id },
			content: "resolved",
		});
		await (await deliver(store)).stop();

		expect(thread).toMatchObject({ state: "sent", id: card.id });
		expect(await store.messageOutcome("thread:g2:1:again")).toMatchObject({ state: "sent", id: card.id });
		const inThread = double.channelMessages(card.id);
		expect(inThread.map((m) => m.content)).toEqual(["resolved"]);
		expect(await store.messageOutcome("thread-post:g2")).toMatchObject({ state: "sent", id: inThread[0]!.id });
		await store.close();
	});

	it("posts a file with a queued post as Discord's multipart files[n], once under its nonce", async () => {
		const card = (await rest.post(Routes.channelMessages(CHANNEL), { body: { content: "card" } })) as { id: string };
		const store = openStore();
		const text = `${Array.from({ length: 400 }, (_, i) => `line ${i + 1} ✓ \`x\``).join("\n")}\n`;
		const message = {
			kind: "post",
			key: "thread-event:42",
			target: { thread: card.id },
			content: "restarted (output cut)",
			files: [{ name: "restart-output.txt", text }],
		} as const;
		await rest.post(Routes.threads(CHANNEL, card.id), { body: { name: "t", auto_archive_duration: 1440 } });
		await store.enqueueMessage(message);

		await (await deliver(store)).stop();
		// The same post again (as after a kill -9 before its outcome was saved): Discord hands back the first.
		const again = await restSender(rest).postMessage(
			card.id,
			messageBody(message),
			messageNonce(message.key),
			message.files,
		);

		const outcome = await store.messageOutcome("thread-event:42");
		expect(outcome).toMatchObject({ state: "sent", id: again.id });
		const posted = double.channelMessages(card.id);
		expect(posted).toHaveLength(1);
		expect(posted[0]!.content).toBe("restarted (output cut)");
		expect(posted[0]!.files.map((f) => [f.field, f.name, f.data.toString("utf8")])).toEqual([
			["files[0]", "restart-output.txt", text],
		]);
		expect(posted[0]!.attachments).toMatchObject([{ filename: "restart-output.txt" }]);
		const sent = postsTo(card.id);
		expect(sent.map((r) => r.body)).toMatchObject([
			{
				attachments: [{ id: 0, filename: "restart-output.txt" }],
				nonce: messageNonce(message.key),
				enforce_nonce: true,
			},
			{
				attachments: [{ id: 0, filename: "restart-output.txt" }],
				nonce: messageNonce(message.key),
				enforce_nonce: true,
			},
		]);
		expect(double.takeViolations()).toEqual([]);
		await store.close();
	});

	it("posts the text without its file when Discord refuses the file (no Attach Files permission)", async () => {
		const store = openStore();
		const { log, lines } = capturingLog();
		double.failNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages`, status: 403, withFiles: true });
		await store.enqueueMessage({
			kind: "post",
			key: "file-refused",
			target: { channel: CHANNEL },
			content: "restarted; output attached",
			files: [{ name: "restart-output.txt", text: "all of it\n" }],
		});

		await (await deliver(store, log)).stop();

		const outcome = await store.messageOutcome("file-refused");
		expect(outcome).toMatchObject({ state: "sent" });
		const posted = double.channelMessages(CHANNEL).find((m) => m.id === (outcome as { id: string }).id);
		expect(posted?.content).toBe("restarted; output attached");
		expect(posted?.files).toEqual([]);
		expect(
			lines.filter((l) => l.msg === "a queued message's files could not be sent; sending it without them"),
		).toEqual([expect.objectContaining({ key: "file-refused", files: ["restart-output.txt"], failure: "refused" })]);
		await store.close();
	});

	it("gives up a message Discord refuses for good, with a log line and the reason in its outcome", async () => {
		const store = openStore();
		const { log, lines } = capturingLog();
		await store.enqueueMessage({ kind: "post", key: "gone", target: { channel: "400000000000000999" }, content: "hi" });
		await store.enqueueMessage({
			kind: "post",
			key: "reply-to-deleted",
			target: { channel: CHANNEL, replyTo: "400000000000000998" },
			content: "hi",
		});

		await (await deliver(store, log)).stop();

		expect(await store.messageOutcome("gone")).toMatchObject({
			state: "failed",
			reason: "Discord answered 404: Unknown Channel (code 10003)",
		});
		expect(await store.messageOutcome("reply-to-deleted")).toMatchObject({
			state: "failed",
			reason:
				"Discord answered 400: Invalid Form Body message_reference[REPLIES_UNKNOWN_MESSAGE]: Unknown message (code 50035)",
		});
		const given = lines.filter((l) => l.msg === "a queued message could not be sent; giving it up");
		expect(given.map((l) => l.key).sort()).toEqual(["gone", "reply-to-deleted"]);
		expect(await store.pending()).toBe(0);
		await store.close();
	});

	it("retries a message Discord failed to take (5xx) and posts it once", async () => {
		const store = openStore();
		const before = double.channelMessages(CHANNEL).length;
		double.failNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages`, status: 503, count: 1 });
		await store.enqueueMessage({ kind: "post", key: "retry-me", target: { channel: CHANNEL }, content: "retry me" });

		const delivery = await deliver(store);
		// The retry waits out its backoff (about a second), not due while it does.
		await vi.waitFor(async () => expect(await store.messageOutcome("retry-me")).toMatchObject({ state: "sent" }), {
			timeout: 10_000,
			interval: 100,
		});
		await delivery.stop();

		expect(double.requests.filter((r) => r.path === `/channels/${CHANNEL}/messages` && r.status === 503)).toHaveLength(
			1,
		);
		expect(
			double
				.channelMessages(CHANNEL)
				.slice(before)
				.map((m) => m.content),
		).toEqual(["retry me"]);
		await store.close();
	});

	it("posts a message queued while delivery runs at once: the store tells delivery, no poll needed", async () => {
		const store = openStore();
		// A poll this rare never comes within the wait below: only the store's announcement can start the post.
		const delivery = startDelivery({
			store,
			sender: restSender(rest),
			log: pino({ level: "silent" }),
			pollMs: 600_000,
		});
		await delivery.drained();
		await store.enqueueMessage({ kind: "post", key: "announced", target: { channel: CHANNEL }, content: "announced" });

		await vi.waitFor(async () => expect(await store.messageOutcome("announced")).toMatchObject({ state: "sent" }), {
			timeout: 10_000,
			interval: 50,
		});
		await delivery.stop();
		expect(double.channelMessages(CHANNEL).filter((m) => m.content === "announced")).toHaveLength(1);
		await store.close();
	});

	it("reports an edit of a message that is not there as gone (Discord's 10008), not as an error", async () => {
		const sender = restSender(rest);
		const card = {
			content: "x",
			embed: { title: "t" },
			files: [],
			allowedMentions: { parse: [] as [], roles: [] },
			components: [],
		};

		expect(await sender.edit(CHANNEL, "400000000000000997", card)).toBe("gone");
		await expect(sender.edit("400000000000000999", "400000000000000997", card)).rejects.toThrow(/Unknown Channel/);
	});

	it("posts a message repeated with its nonce (as after a kill -9) once: Discord hands back the first", async () => {
		const sender = restSender(rest);
		const body = {
			content: "once",
			embeds: [],
			components: [],
			allowed_mentions: { parse: [] as [], roles: [], users: [], replied_user: false },
		};
		const first = await sender.postMessage(CHANNEL, body, messageNonce("once"));
		const second = await sender.postMessage(CHANNEL, body, messageNonce("once"));

		expect(second.id).toBe(first.id);
		expect(double.channelMessages(CHANNEL).filter((m) => m.content === "once")).toHaveLength(1);
	});
});
