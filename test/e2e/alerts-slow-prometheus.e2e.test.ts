import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import { firingWebhook } from "../support/alert-fixtures.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { embedTitle as title } from "../support/cards.ts";
import { type GatedProxy, startGatedProxy } from "../support/gated-proxy.ts";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.ts";

const CHANNEL = "400000000000000001";
const ONCALL = "300000000000000001";
const oncall = { id: "200000000000000011", username: "olivia", roles: [ONCALL] };
const token = randomBytes(24).toString("hex");
const NAMES = ["SlowChartA", "SlowChartB", "SlowChartC", "SlowChartD"];

// D3: every alert message waited for its chart (up to 5 s each), and every edit drew and uploaded it again.
describe("alert messages with a slow Prometheus: the card first, the chart by an edit, drawn once per episode", () => {
	let double: DiscordDouble;
	let bot: TestBot;
	let prometheus: TestPrometheus;
	let proxy: GatedProxy;

	beforeAll(async () => {
		prometheus = await startPrometheus();
		// Range queries (the charts) wait until the test lets them through; everything else goes straight on.
		proxy = await startGatedProxy(prometheus.url, (path) => path === "/api/v1/query_range");
		double = await startDiscordDouble({
			guild: { channels: [{ id: CHANNEL, name: "alerts" }], roles: [{ id: ONCALL, name: "oncall" }] },
		});
		bot = await startTestBot(
			double,
			`discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}" } }
access:
  actions: { alert.ack: [oncall] }
environments: { production: { prometheus: { url: "${proxy.url}", timeoutMs: 30000 } } }
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
`,
			{ WEBHOOK_TOKEN: token },
		);
		// A fresh Prometheus scrapes for the first time only a few seconds after start; a chart asked for
		// before that has no series and is never drawn. (vi.waitFor awaits the probe; the double's waitFor
		// takes a synchronous one, and a pending Promise passed it at once.)
		const scraped = async () =>
			((await (await fetch(`${prometheus.url}/api/v1/query?query=up`)).json()) as { data: { result: unknown[] } }).data
				.result;
		await vi.waitFor(async () => expect(await scraped()).not.toEqual([]), { timeout: 20_000, interval: 200 });
	});
	afterAll(async () => {
		await bot?.stop();
		await proxy?.stop();
		await prometheus?.stop();
		await double?.close();
	});

	const card = (name: string) => double.channelMessages(CHANNEL).find((m) => title(m).includes(name));
	const rangeQueries = () => proxy.requests.filter((r) => r.path.startsWith("/api/v1/query_range"));
	const chartUploads = () =>
		double.requests.filter(
			(r) => r.path.startsWith(`/channels/${CHANNEL}/messages`) && r.files.some((f) => f.name === "chart.png"),
		);
	const hasChart = (m: StoredMessage | undefined) =>
		Boolean(
			m?.files.some((f) => f.name === "chart.png") &&
				(m.embeds[0] as { image?: { url?: string } }).image?.url === "attachment://chart.png",
		);
	const post = (body: unknown) =>
		fetch(`${bot.webhookUrl}/alerts`, {
			method: "POST",
			headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
			body: JSON.stringify(body),
		});

	it(
		"posts every card while Prometheus has not answered, adds each chart by an edit, and draws it no more on " +
			"Ack, Unack or an update",
		async () => {
			const generatorURL = `${prometheus.url}/graph?g0.expr=up&g0.tab=1`;
			const answers = await Promise.all(
				NAMES.map((name) =>
					post({
						...firingWebhook(name, { severity: "critical", generatorURL }),
						commonLabels: { alertname: name, severity: "critical", env: "production" },
					}),
				),
			);
			expect(answers.map((a) => a.status)).toEqual(NAMES.map(() => 202));

			// Every card is posted while no range query has been answered (before: 5 s each, waiting for its chart).
			const cards = await double.waitFor(
				() => (NAMES.every((name) => card(name)) ? NAMES.map((name) => card(name)!) : undefined),
				20_000,
			);
			expect(rangeQueries().filter((r) => r.answeredAt !== undefined)).toEqual([]);
			expect(cards.filter((m) => hasChart(m)).map(title)).toEqual([]);

			proxy.open();
			// Each chart arrives by an edit of the card already posted: one upload per group, and its range queries
			// (a chart takes several: the top series and a summary of the rest) each sent once per group. The four
			// groups share one expression, so every distinct query was sent exactly four times.
			await double.waitFor(() => NAMES.every((name) => hasChart(card(name))), 20_000);
			expect(double.channelMessages(CHANNEL)).toHaveLength(NAMES.length);
			const sentTimes = new Map<string | undefined, number>();
			for (const { query } of rangeQueries()) sentTimes.set(query, (sentTimes.get(query) ?? 0) + 1);
			expect(sentTimes.size).toBeGreaterThan(0);
			expect(sentTimes.has(undefined)).toBe(false);
			expect([...sentTimes.values()]).toEqual([...sentTimes.keys()].map(() => NAMES.length));
			expect(chartUploads().map((r) => r.method)).toEqual(NAMES.map(() => "PATCH"));
			const queries = rangeQueries().length;
			const uploads = chartUploads().length;

			// Ack, Unack and a changed webhook: three edits that keep the chart already attached.
			const message = card("SlowChartA")!;
			const edits = () =>
				double.requests.filter((r) => r.method === "PATCH" && r.path === `/channels/${CHANNEL}/messages/${message.id}`)
					.length;
			const before = edits();
			const description = () =>
				String((double.messages.get(message.id)!.embeds[0] as { description?: string }).description);
			const ack = JSON.stringify(message.components).match(/alert:ack:[0-9a-f]{32}/)![0];
			await (
				await double.sendInteraction({ kind: "button", customId: ack, messageId: message.id, user: oncall })
			).response();
			await double.waitFor(() => description().includes("acknowledged by"), 10_000);
			const unack = JSON.stringify(double.messages.get(message.id)!.components).match(/alert:unack:[0-9a-f]{32}/)![0];
			await (
				await double.sendInteraction({ kind: "button", customId: unack, messageId: message.id, user: oncall })
			).response();
			await double.waitFor(() => !description().includes("acknowledged by"), 10_000);
			const update = firingWebhook("SlowChartA", { severity: "critical", generatorURL });
			const second = {
				...update.alerts[0]!,
				labels: { ...update.alerts[0]!.labels, instance: "eu-west-1" },
				fingerprint: randomBytes(8).toString("hex"),
			};
			expect(
				(
					await post({
						...update,
						alerts: [...update.alerts, second],
						commonLabels: { alertname: "SlowChartA", severity: "critical", env: "production" },
					})
				).status,
			).toBe(202);
			await double.waitFor(() => description().includes("2 of 2 firing"), 10_000);

			expect(edits() - before).toBeGreaterThanOrEqual(3);
			expect(rangeQueries()).toHaveLength(queries);
			expect(chartUploads()).toHaveLength(uploads);
			expect(hasChart(double.messages.get(message.id))).toBe(true);
		},
	);
});
