import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiscordAPIError } from "discord.js";
import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { startDelivery } from "../../src/alerts/delivery.ts";
import { listedFacts } from "../../src/alerts/episodes.ts";
import { renderStormOver, renderStormSummary } from "../../src/alerts/render.ts";
import type { DiscordSender, OutgoingMessage } from "../../src/alerts/rest-sender.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import type { FiringGroup } from "../../src/alerts/store.ts";
import { createChannelPacer, stormView } from "../../src/alerts/storm.ts";
import { messageProblems } from "../discord-double/limits.ts";
import { payload, withoutMessages } from "../support/alert-fixtures.ts";

const GUILD = "100000000000000001";
const CHANNEL = "400000000000000001";
const BUDGET = { count: 5, windowMs: 200 };

function capturingLog() {
	const lines: Record<string, unknown>[] = [];
	const log = pino(
		{ level: "debug" },
		{ write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
	);
	return { log, lines };
}

function openStore(path = join(mkdtempSync(join(tmpdir(), "opsbot-storm-")), "alerts.sqlite")) {
	return openAlertStore(path);
}

const group = (name: string, severity = "warning", alerts = 2, status: "firing" | "resolved" = "firing") =>
	payload(
		alerts,
		{ groupKey: name, groupLabels: { alertname: name }, commonLabels: { alertname: name, severity } },
		status,
	);
const titleOf = (m: OutgoingMessage) => String(("embeds" in m ? m.embeds[0]?.title : m.embed.title) ?? "");
const isSummary = (m: OutgoingMessage) => titleOf(m).includes("Alert storm");

/** A Discord that keeps messages per channel (enforce_nonce included), answers after a few ms and fails as told. */
function fakeDiscord(fail: (call: { kind: "post" | "edit"; message: OutgoingMessage }) => unknown = () => undefined) {
	const messages = new Map<string, { channel: string; message: OutgoingMessage; edits: number }>();
	const calls: { kind: "post" | "edit"; channel: string; id: string; title: string; start: number; end: number }[] = [];
	const nonces = new Map<string, string>();
	let next = 1;
	const answer = () => new Promise((resolve) => setTimeout(resolve, 2));
	const sender: DiscordSender = {
		...withoutMessages,
		async post(channel, message, nonce) {
			const start = Date.now();
			await answer();
			const err = fail({ kind: "post", message });
			if (err) throw err;
			const earlier = nonces.get(`${channel}:${nonce}`);
			const id = earlier && messages.has(earlier) ? earlier : String(next++);
			if (id !== earlier) messages.set(id, { channel, message, edits: 0 });
			nonces.set(`${channel}:${nonce}`, id);
			calls.push({ kind: "post", channel, id, title: titleOf(message), start, end: Date.now() });
			return { id, attachments: [] };
		},
		async edit(channel, id, message) {
			const start = Date.now();
			await answer();
			const err = fail({ kind: "edit", message });
			if (err) throw err;
			const stored = messages.get(id);
			if (!stored) return "gone" as const; // Discord's 10008, as the REST sender reports it
			stored.message = message;
			stored.edits++;
			calls.push({ kind: "edit", channel, id, title: titleOf(message), start, end: Date.now() });
			return { id, attachments: [] };
		},
	};
	const inChannel = (channel: string) => [...messages.entries()].filter(([, m]) => m.channel === channel);
	/** Each group's own messages, by name. */
	const groupMessages = (channel: string, name: string) =>
		inChannel(channel).filter(([, m]) => titleOf(m.message).split(" · ")[1] === name);
	const summaries = (channel: string) => inChannel(channel).filter(([, m]) => isSummary(m.message));
	return { sender, messages, calls, groupMessages, summaries };
}

/** Fails if any channel made a write before the answer to its write `count` earlier was `windowMs` old. */
function expectPaced(calls: readonly { channel: string; start: number; end: number }[], budget = BUDGET): void {
	for (const channel of new Set(calls.map((c) => c.channel))) {
		const own = calls.filter((c) => c.channel === channel).sort((a, b) => a.start - b.start);
		for (let i = budget.count; i < own.length; i++)
			expect(own[i]!.start - own[i - budget.count]!.end, `write ${i} in ${channel}`).toBeGreaterThanOrEqual(
				budget.windowMs,
			);
	}
}

type DeliveryOptions = Parameters<typeof startDelivery>[0];
/** Delivery to the fake Discord at the test budget: polled every 20 ms, a storm once a backlog waits 200 ms. */
const stormDelivery = (store: DeliveryOptions["store"], sender: DiscordSender, extra: Partial<DeliveryOptions> = {}) =>
	startDelivery({
		store,
		sender,
		log: pino({ level: "silent" }),
		pollMs: 20,
		budget: BUDGET,
		stormAfterMs: 200,
		...extra,
	});

function firing(
	n: number,
	options: { posted?: (i: number) => boolean; severity?: (i: number) => string } = {},
): FiringGroup[] {
	return Array.from({ length: n }, (_, i) => ({
		groupId: `g${i}`,
		firstFiringAt: 1_764_000_000_000 + i * 1_000,
		messageId: options.posted?.(i) ? `1${String(i).padStart(18, "0")}` : null,
		facts: listedFacts(group(`Group${i}`, options.severity?.(i) ?? "warning", 1 + (i % 3))),
	}));
}

describe("storm summary rendering", () => {
	it("lists every firing group, severity first then newest, with its count and a link once its message exists", () => {
		const groups = firing(4, {
			posted: (i) => i === 1,
			severity: (i) => (i === 0 ? "critical" : i === 3 ? "info" : "warning"),
		});

		const view = stormView(groups, {
			guildId: GUILD,
			channel: CHANNEL,
			startedAt: 1_764_000_000_000,
			seen: new Set(["gone"]),
		});
		const { message, listed } = renderStormSummary(view);

		expect(listed).toEqual(["g0", "g2", "g1", "g3"]);
		expect(message.embeds[0]!.title).toBe("🌩️ Alert storm: 4 groups firing (1 critical)");
		expect(message.embeds[0]!.description).toBe(
			[
				"Posting 4 groups at Discord's pace, critical first, since <t:1764000000:t>; this list stays current.",
				"",
				"**Severity:** 🔴 1 critical · 🟠 2 warning · 🔵 1 info",
				"**Posted:** 1 of 4 · 1 resolved since the storm began",
				"",
				"🔴 **Group0** · 1 firing · message to follow",
				"🟠 **Group2** · 3 firing · message to follow",
				`🟠 [**Group1**](https://discord.com/channels/${GUILD}/${CHANNEL}/1000000000000000001) · 2 firing`,
				"🔵 **Group3** · 1 firing · message to follow",
			].join("\n"),
		);
		expect(message.files).toEqual([]);
		expect(message.allowedMentions).toEqual({ parse: [], roles: [] });
	});

	it(
		"stays within Discord's limits at any size: counts first, the first 15 groups with links, the rest in the " +
			"attached full list",
		() => {
			for (const n of [1, 50, 400, 5_000]) {
				const view = stormView(firing(n, { posted: (i) => i % 2 === 0 }), {
					guildId: GUILD,
					channel: CHANNEL,
					startedAt: 1_764_000_000_000,
					seen: new Set(),
				});

				const { message, listed } = renderStormSummary(view);
				const total = message.embeds.reduce((sum, e) => sum + (e.title?.length ?? 0) + (e.description?.length ?? 0), 0);

				expect(messageProblems(message as unknown as Record<string, unknown>), `${n} groups`).toEqual([]);
				expect(total).toBeLessThanOrEqual(6_000);
				expect(message.embeds).toHaveLength(1);
				if (n > 15) {
					expect(listed).toHaveLength(n); // 15 in the embed, every one in the attached storm.txt
					expect(message.embeds[0]!.description).toContain(`**Alerts:** Group0 1 · Group1 1 · Group10 1`);
					expect(message.embeds[0]!.description).toContain(`… and ${n - 15} more (full list attached: storm.txt)`);
					expect(message.embeds[0]!.description).toContain(
						`[**Group${n - 2}**](https://discord.com/channels/${GUILD}/${CHANNEL}/`,
					);
					const file = message.files[0]!.data.toString("utf8");
					expect(file.match(/^\[WARNING\] Group\d+ · \d firing since /gm)).toHaveLength(n);
					expect(file).toContain(`https://discord.com/channels/${GUILD}/${CHANNEL}/1000000000000000000`);
				} else expect(listed).toHaveLength(n);
			}
		},
	);

	it("says what is missing when the full list cannot be attached", () => {
		const view = stormView(firing(400), { channel: CHANNEL, startedAt: 0, seen: new Set() });

		const { message, listed } = renderStormSummary(view, { withoutAttachments: true });

		expect(message.files).toEqual([]);
		expect(listed).toHaveLength(15);
		expect(message.embeds.at(-1)!.description).toMatch(/… and \d+ more \(the full list could not be attached\)$/);
	});

	it("turns into a short record once the backlog drained: how many groups, how long, what still fires", () => {
		const view = stormView(firing(2, { posted: () => true }), {
			guildId: GUILD,
			channel: CHANNEL,
			startedAt: 1_764_000_000_000,
			seen: new Set(["g0", "g1", "a", "b", "c"]),
		});

		const over = renderStormOver(view, 1_764_000_000_000 + 4 * 60_000);
		const calm = renderStormOver(
			stormView([], { channel: CHANNEL, startedAt: 1_764_000_000_000, seen: new Set(["a"]) }),
			1_764_000_060_000,
		);

		expect(over.embeds[0]).toMatchObject({ title: "🌤️ Alert storm over: 2 groups still firing", color: 0xf39c12 });
		expect(over.embeds[0]!.description).toBe(
			[
				"5 alert groups fired here from <t:1764000000:t> to <t:1764000240:t> (4 min). Each has its own message " +
					"above, now up to date.",
				"",
				`🟠 [**Group1**](https://discord.com/channels/${GUILD}/${CHANNEL}/1000000000000000001) · 2 firing`,
				`🟠 [**Group0**](https://discord.com/channels/${GUILD}/${CHANNEL}/1000000000000000000) · 1 firing`,
			].join("\n"),
		);
		expect(calm.embeds[0]).toMatchObject({ title: "✅ Alert storm over", color: 0x2ecc71 });
		expect(over.files).toEqual([]);
	});
});

describe("channel pacer", () => {
	it(
		"lets `count` writes into a window measured from Discord's answers, and learns the budget and empty " +
			"buckets from Discord's headers",
		() => {
			const pacer = createChannelPacer({ count: 2, windowMs: 1_000 }, 0);
			const answered = [pacer.begin("a"), pacer.begin("a")];

			const whileInFlight = pacer.delay("a");
			for (const done of answered) done();
			const now = Date.now();
			const afterAnswers = pacer.delay("a", now);
			const otherChannel = pacer.delay("b", now);
			pacer.learn("b", { limit: 5, remaining: 0, resetAfterMs: 3_000 }, now);
			pacer.learn("d", { limit: 50, remaining: 49, resetAfterMs: 1_000 }, now);

			expect(whileInFlight).toBeGreaterThan(0);
			expect(afterAnswers).toBeGreaterThan(900);
			expect(pacer.capacity("a", 5_000, now)).toBe(10);
			expect(pacer.capacity("c", 5_000, now)).toBe(12);
			expect(pacer.delay("a", now + 1_001)).toBe(0);
			expect(otherChannel).toBe(0);
			expect(pacer.delay("b", now)).toBe(3_000);
			expect(pacer.capacity("b", 5_000, now)).toBe(5 + 8);
			expect(pacer.capacity("d", 5_000, now)).toBe(50 + 250);
		},
	);
});

describe("alert delivery in a storm", () => {
	it(
		"posts one summary, sends every group once (critical and first-firing first, within the budget), then " +
			"records the storm as over",
		async () => {
			const store = openStore();
			const discord = fakeDiscord();
			const names = Array.from({ length: 30 }, (_, i) => `Group${i}`);
			for (const [i, name] of names.entries())
				await store.accept(group(name, i % 10 === 5 ? "critical" : "warning"), [{ channel: CHANNEL }]);

			const delivery = stormDelivery(store, discord.sender, { guildId: GUILD });
			await new Promise((resolve) => setTimeout(resolve, 300));
			await store.accept(group("Group3", "warning", 5), [{ channel: CHANNEL }]); // an update while it waits
			await delivery.drained();
			await delivery.stop();

			const posts = discord.calls.filter((c) => c.kind === "post");
			expect(posts[0]!.title).toMatch(/^🌩️ Alert storm: 30 groups firing \(3 critical\)$/);
			expect(posts.slice(1, 4).map((c) => c.title)).toEqual([
				"🔴 CRITICAL · Group5",
				"🔴 CRITICAL · Group15",
				"🔴 CRITICAL · Group25",
			]);
			for (const name of names) expect(discord.groupMessages(CHANNEL, name), name).toHaveLength(1);
			expect(discord.groupMessages(CHANNEL, "Group3")[0]![1].message).toMatchObject({
				embed: { title: "🟠 WARNING · Group3", description: expect.stringContaining("5 of 5 firing") },
			});
			expect(discord.summaries(CHANNEL)).toHaveLength(1);
			expect(titleOf(discord.summaries(CHANNEL)[0]![1].message)).toBe("🌤️ Alert storm over: 30 groups still firing");
			expect(discord.calls.filter((c) => c.kind === "edit" && c.id === posts[0]!.id).length).toBeGreaterThanOrEqual(1);
			expectPaced(discord.calls);
			expect(await store.stormSummary(CHANNEL)).toMatchObject({ state: "over", messageId: posts[0]!.id });
			expect((await store.stormSummary(CHANNEL))!.groups).toHaveLength(30);
			expect(await store.pending()).toBe(0);
		},
	);

	it("sends a few groups without a summary when the channel can post them within seconds", async () => {
		const store = openStore();
		const discord = fakeDiscord();
		for (let i = 0; i < 6; i++) await store.accept(group(`Few${i}`), [{ channel: CHANNEL }]);

		const delivery = stormDelivery(store, discord.sender);
		await delivery.drained();
		await delivery.stop();

		expect(discord.summaries(CHANNEL)).toEqual([]);
		expect(discord.calls).toHaveLength(6);
		expect(await store.stormSummary(CHANNEL)).toBeUndefined();
	});

	it("edits the same summary after a restart instead of posting a second one", async () => {
		const path = join(mkdtempSync(join(tmpdir(), "opsbot-storm-")), "alerts.sqlite");
		const before = openStore(path);
		const discord = fakeDiscord();
		for (let i = 0; i < 25; i++) await before.accept(group(`Again${i}`), [{ channel: CHANNEL }]);
		const first = stormDelivery(before, discord.sender, { guildId: GUILD });
		await vi.waitFor(() => expect(discord.calls.length).toBeGreaterThanOrEqual(4), { timeout: 5_000, interval: 10 });
		await first.stop();
		await before.close();
		const stoppedAt = Date.now();

		const after = openStore(path);
		const second = stormDelivery(after, discord.sender, { guildId: GUILD });
		await second.drained();
		await second.stop();

		const [summaryId] = discord.summaries(CHANNEL).map(([id]) => id);
		expect(discord.summaries(CHANNEL)).toHaveLength(1);
		expect(
			discord.calls.filter((c) => c.id === summaryId && c.kind === "edit" && c.start >= stoppedAt).length,
		).toBeGreaterThanOrEqual(1);
		for (let i = 0; i < 25; i++) expect(discord.groupMessages(CHANNEL, `Again${i}`)).toHaveLength(1);
		expect(await after.stormSummary(CHANNEL)).toMatchObject({ state: "over", messageId: summaryId });
	});

	it("posts the summary again when someone deleted it", async () => {
		const store = openStore();
		const discord = fakeDiscord();
		for (let i = 0; i < 20; i++) await store.accept(group(`Deleted${i}`), [{ channel: CHANNEL }]);
		const delivery = stormDelivery(store, discord.sender);
		await vi.waitFor(() => expect(discord.summaries(CHANNEL).length).toBeGreaterThan(0), {
			timeout: 5_000,
			interval: 5,
		});
		const [deleted] = discord.summaries(CHANNEL).map(([id]) => id);
		discord.messages.delete(deleted!);
		await store.accept(group("Deleted0", "warning", 7), [{ channel: CHANNEL }]); // something for the summary to show

		await delivery.drained();
		await delivery.stop();

		expect(discord.summaries(CHANNEL)).toHaveLength(1);
		expect(discord.summaries(CHANNEL)[0]![0]).not.toBe(deleted);
		expect(titleOf(discord.summaries(CHANNEL)[0]![1].message)).toMatch(/^🌤️ Alert storm over/);
	});

	it("goes on with every group's own message when Discord refuses the summary", async () => {
		const store = openStore();
		const { log, lines } = capturingLog();
		const refused = new DiscordAPIError({ code: 50035, message: "Invalid Form Body" }, 50035, 400, "POST", "/x", {
			body: undefined,
			files: undefined,
		});
		const discord = fakeDiscord(({ message }) => (isSummary(message) ? refused : undefined));
		for (let i = 0; i < 20; i++) await store.accept(group(`Refused${i}`), [{ channel: CHANNEL }]);

		const delivery = stormDelivery(store, discord.sender, { log });
		await delivery.drained();
		await delivery.stop();

		for (let i = 0; i < 20; i++) expect(discord.groupMessages(CHANNEL, `Refused${i}`)).toHaveLength(1);
		expect(discord.summaries(CHANNEL)).toEqual([]);
		expect(
			lines.filter((l) => l.msg === "the storm summary could not be sent; the groups' own messages go on without it"),
		).toHaveLength(1);
		expect(await store.stormSummary(CHANNEL)).toMatchObject({ state: "over", messageId: null });
	});

	it("keeps each channel's budget and summary apart in storms over several channels", async () => {
		const store = openStore();
		const discord = fakeDiscord();
		const channels = ["400000000000000001", "400000000000000002", "400000000000000003"];
		for (const channel of channels) for (let i = 0; i < 15; i++) await store.accept(group(`Spread${i}`), [{ channel }]);

		const delivery = stormDelivery(store, discord.sender);
		await delivery.drained();
		await delivery.stop();

		expectPaced(discord.calls);
		for (const channel of channels) {
			expect(discord.summaries(channel)).toHaveLength(1);
			for (let i = 0; i < 15; i++) expect(discord.groupMessages(channel, `Spread${i}`)).toHaveLength(1);
		}
		// Independent budgets: every channel made its first writes before any of them made its sixth.
		const sixth = Math.min(...channels.map((c) => discord.calls.filter((x) => x.channel === c)[5]!.start));
		for (const channel of channels)
			expect(discord.calls.filter((x) => x.channel === channel)[4]!.start).toBeLessThan(sixth);
	});
});
