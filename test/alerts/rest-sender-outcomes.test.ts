import { createServer } from "node:net";
import { REST } from "discord.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordSender, type OutgoingMessage, restSender, withOutcomes } from "../../src/alerts/rest-sender.ts";
import { discordAgent } from "../../src/discord/client.ts";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { withoutMessages } from "../support/alert-fixtures.ts";

const CHANNEL = "400000000000000001";
const NO_CHANNEL = "400000000000000999";
const NO_MESSAGE = "400000000000000997";

const card = (text: string, files: OutgoingMessage["files"] = []): OutgoingMessage => ({
	content: text,
	embed: { title: text },
	files,
	allowedMentions: { parse: [], roles: [] },
	components: [],
});
const body = (text: string) => ({
	content: text,
	embeds: [],
	components: [],
	allowed_mentions: { parse: [] as [], roles: [], users: [], replied_user: false },
});

/** A port nothing listens on: taken from the system, then closed. */
async function closedPort(): Promise<number> {
	const server = createServer();
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as { port: number };
	await new Promise((resolve) => server.close(resolve));
	return port;
}

describe("the REST sender's outcomes (through discord.js to the Discord double)", () => {
	let double: DiscordDouble;
	let rest: REST;
	beforeAll(async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
		rest = new REST({ api: double.apiUrl, agent: discordAgent(), retries: 0 }).setToken("double-token");
	});
	afterAll(async () => {
		await double.close();
	});

	it("reports a post as posted with Discord's id, an edit as edited, an edit of a deleted message as gone", async () => {
		const sender = withOutcomes(restSender(rest));

		const posted = await sender.post(CHANNEL, card("first"), "outcome-post");
		expect(posted).toMatchObject({ kind: "posted" });
		const id = posted.kind === "posted" ? posted.message.id : "";
		expect(double.channelMessages(CHANNEL).find((m) => m.id === id)?.content).toBe("first");

		expect(await sender.edit(CHANNEL, id, card("second"))).toMatchObject({ kind: "edited", message: { id } });
		expect(double.channelMessages(CHANNEL).find((m) => m.id === id)?.content).toBe("second");
		expect(await sender.edit(CHANNEL, NO_MESSAGE, card("third"))).toEqual({ kind: "gone" });
	});

	it("marks a post stale when Discord hands back an earlier post of its nonce that shows something else", async () => {
		const sender = withOutcomes(restSender(rest));
		const first = await sender.post(CHANNEL, card("2 of 2 firing"), "outcome-nonce");
		const repeated = await sender.post(CHANNEL, card("2 of 2 firing"), "outcome-nonce");
		const newer = await sender.post(CHANNEL, card("3 of 3 firing"), "outcome-nonce");

		expect(first).toMatchObject({ kind: "posted" });
		const id = first.kind === "posted" ? first.message.id : "";
		expect(first.kind === "posted" && first.message.stale).toBeFalsy();
		expect(repeated).toEqual(first);
		expect(newer).toEqual({ kind: "posted", message: { id, attachments: [], stale: true } });
		expect(
			double
				.channelMessages(CHANNEL)
				.filter((m) => m.id === id)
				.map((m) => m.content),
		).toEqual(["2 of 2 firing"]);
	});

	it("reports a thread start as posted with the thread's id, also when the thread exists already", async () => {
		const sender = withOutcomes(restSender(rest));
		const posted = await sender.postMessage(CHANNEL, body("thread starter"), "outcome-thread");
		const starter = posted.kind === "posted" ? posted.message.id : "";

		const first = await sender.startThread(CHANNEL, starter, "incident", 1440);
		const again = await sender.startThread(CHANNEL, starter, "incident", 1440);

		expect(first).toEqual({ kind: "posted", message: { id: starter, attachments: [] } });
		expect(again).toEqual(first);
	});

	it("reports a permanent 4xx as refused, with the status and Discord's code and message", async () => {
		const sender = withOutcomes(restSender(rest));
		double.failNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages`, status: 403 });

		expect(await sender.post(CHANNEL, card("forbidden"), "outcome-403")).toMatchObject({
			kind: "refused",
			status: 403,
			code: 50013,
			discordMessage: "Missing Permissions",
			reason: "Discord answered 403: Missing Permissions (code 50013)",
		});
		expect(await sender.edit(NO_CHANNEL, NO_MESSAGE, card("nowhere"))).toMatchObject({
			kind: "refused",
			status: 404,
			code: 10003,
			discordMessage: "Unknown Channel",
		});
	});

	it("reports an upload Discord refuses as refused (413, code 40005)", async () => {
		const sender = withOutcomes(restSender(rest));
		double.failNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages`, status: 413, withFiles: true });

		const outcome = await sender.post(CHANNEL, card("big", [{ name: "a.txt", data: Buffer.from("x") }]), "big");

		expect(outcome).toMatchObject({ kind: "refused", status: 413, code: 40005 });
	});

	it("reports a 5xx as retry after, with no delay of Discord's: the caller backs off", async () => {
		const sender = withOutcomes(restSender(rest));
		double.failNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages`, status: 503 });

		expect(await sender.postMessage(CHANNEL, body("outage"), "outcome-503")).toMatchObject({
			kind: "retry after",
			afterMs: undefined,
			reason: "Discord answered 503",
		});
	});

	it("reports a 429 handed back by discord.js as retry after, with Discord's Retry-After", async () => {
		const rejecting = new REST({
			api: double.apiUrl,
			agent: discordAgent(),
			retries: 0,
			rejectOnRateLimit: () => true,
		}).setToken("double-token");
		const sender = withOutcomes(restSender(rejecting));
		double.failNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages`, status: 429, retryAfterSeconds: 3 });

		const outcome = await sender.post(CHANNEL, card("limited"), "outcome-429");

		expect(outcome).toMatchObject({ kind: "retry after", reason: "Discord answered 429" });
		// discord.js adds its clock offset to the header's seconds.
		expect(outcome.kind === "retry after" ? outcome.afterMs : undefined).toBeGreaterThanOrEqual(2_000);
	});

	it("reports a network failure (nothing listening) as retry after", async () => {
		const port = await closedPort();
		const unreachable = new REST({ api: `http://127.0.0.1:${port}/api`, agent: discordAgent(), retries: 0 });
		const sender = withOutcomes(restSender(unreachable.setToken("double-token")));

		expect(await sender.post(CHANNEL, card("unreachable"), "outcome-network")).toMatchObject({
			kind: "retry after",
			afterMs: undefined,
		});
	});

	it("reports a failure inside opsbot (not an answer of Discord's) as failed inside", async () => {
		const broken: DiscordSender = {
			...withoutMessages,
			post: () => Promise.reject(new TypeError("action is not a function")),
			edit: () => Promise.reject(new TypeError("action is not a function")),
		};

		expect(await withOutcomes(broken).post(CHANNEL, card("x"), "n")).toMatchObject({
			kind: "failed inside",
			reason: "action is not a function",
		});
	});
});
