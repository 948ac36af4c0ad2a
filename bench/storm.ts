import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type StoredMessage, startDiscordDouble } from "../test/discord-double/index.ts";
import { startTestBot } from "../test/support/bot.ts";
import { type BenchRow, percentile, round } from "./types.ts";

const CHANNEL = "400000000000000001";
const GROUPS = 50;
const ALERTS = 100;
/** When each notification of every group is sent (s after the first): three growing updates, then resolved. */
const ROUNDS = [
	{ at: 0, alerts: 30, status: "firing" },
	{ at: 5, alerts: 60, status: "firing" },
	{ at: 10, alerts: ALERTS, status: "firing" },
	{ at: 20, alerts: ALERTS, status: "resolved" },
] as const;
const POLL_MS = 250;
const TIMEOUT_MS = 300_000;

const names = Array.from({ length: GROUPS }, (_, g) => `Storm${String(g).padStart(2, "0")}`);

function payload(group: string, alerts: number, status: "firing" | "resolved", startsAt: string) {
	return JSON.stringify({
		version: "4",
		groupKey: `{}:{alertname="${group}"}`,
		status,
		receiver: "opsbot",
		groupLabels: { alertname: group },
		commonLabels: { alertname: group, severity: Number(group.slice(5)) % 10 === 0 ? "critical" : "warning" },
		commonAnnotations: { summary: `${group} is unhappy` },
		externalURL: "http://alertmanager.local:9093",
		alerts: Array.from({ length: alerts }, (_, i) => ({
			status,
			labels: { alertname: group, instance: `host-${i}` },
			annotations: {},
			startsAt,
			endsAt: status === "resolved" ? new Date().toISOString() : "0001-01-01T00:00:00Z",
			generatorURL: "",
			fingerprint: `${group}-${i}`,
		})),
	});
}

const title = (m: StoredMessage) => String((m.embeds[0] as { title?: unknown } | undefined)?.title ?? "");
const text = (m: StoredMessage) =>
	m.embeds
		.map((e) =>
			[
				e.title,
				e.description,
				...((e.fields as { name: string; value: string }[] | undefined) ?? []).flatMap((f) => [f.name, f.value]),
			].join("\n"),
		)
		.join("\n");
/** A group's own message: "🔥 Storm07 — 30 firing" or "✅ Resolved: Storm07". */
const ownMessageOf = (name: string) => (m: StoredMessage) =>
	title(m).startsWith(`🔥 ${name} `) || title(m) === `✅ Resolved: ${name}`;
const isOwnMessage = (m: StoredMessage) => /^(🔥 Storm\d\d |✅ Resolved: Storm\d\d$)/.test(title(m));

/**
 * The storm view as a person in the channel sees it: 50 groups of up to 100 alerts to one channel,
 * each notified three times as it grows and then resolved, into a Discord double that enforces
 * Discord's per-channel limit (5 message writes per 5 s, 429 with retry_after). Every 250 ms it reads
 * the channel: is each group shown firing, in its own message or in a summary?
 */
export async function run(): Promise<BenchRow[]> {
	const token = randomBytes(24).toString("hex");
	const double = await startDiscordDouble({
		guild: { channels: [{ id: CHANNEL, name: "alerts" }] },
		channelRateLimit: { count: 5, windowMs: 5_000 },
	});
	const bot = await startTestBot(
		double,
		`discord: { guildId: "${double.guildId}" }\nenvironments: { production: {} }\n` +
			`stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-storm-"))}\nalerts:\n  listen: { host: 127.0.0.1, port: 0 }\n` +
			`  defaultChannel: "${CHANNEL}"\n`,
		{ WEBHOOK_TOKEN: token, LOG_LEVEL: "info" },
	);
	const url = `${bot.webhookUrl}/alerts`;
	const post = async (body: string) => {
		const res = await fetch(url, {
			method: "POST",
			headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
			body,
		});
		await res.arrayBuffer();
		if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
	};
	const firstWebhookAt = new Map<string, number>();
	const visibleFiringAt = new Map<string, number>();
	const ownMessageAt = new Map<string, number>();
	const firstSeenResolved = new Set<string>();
	try {
		const started = performance.now();
		const startsAt = new Date().toISOString();
		const sending = (async () => {
			for (const round of ROUNDS) {
				await new Promise((resolve) =>
					setTimeout(resolve, Math.max(0, started + round.at * 1_000 - performance.now())),
				);
				await Promise.all(
					names.map(async (name) => {
						if (!firstWebhookAt.has(name)) firstWebhookAt.set(name, performance.now());
						await post(payload(name, round.alerts, round.status, startsAt));
					}),
				);
			}
		})();

		// What a person would see, every 250 ms, until every group's own message shows it resolved,
		// any summary says the storm is over, and Discord has heard nothing for 2 s.
		let quietSince = performance.now();
		let seenRequests = 0;
		let sent = false;
		void sending.then(() => (sent = true));
		for (;;) {
			const now = performance.now();
			const messages = double.channelMessages(CHANNEL);
			const summaries = messages.filter((m) => !isOwnMessage(m));
			const summaryText = summaries.map(text).join("\n");
			for (const name of names) {
				if (!firstWebhookAt.has(name)) continue;
				const own = messages.filter(ownMessageOf(name));
				if (own.length > 0 && !ownMessageAt.has(name)) ownMessageAt.set(name, now);
				const ownFiring = own.some((m) => title(m).startsWith("🔥"));
				const inSummary = new RegExp(`\\b${name}\\b`).test(summaryText);
				if (!visibleFiringAt.has(name)) {
					if (ownFiring || inSummary) visibleFiringAt.set(name, now);
					else if (own.length > 0) firstSeenResolved.add(name);
				}
			}
			if (double.requests.length !== seenRequests) {
				seenRequests = double.requests.length;
				quietSince = now;
			}
			const allResolved = names.every((name) => messages.some((m) => title(m) === `✅ Resolved: ${name}`));
			const summaryOver = summaries.every((m) => /over/i.test(title(m)));
			if (sent && allResolved && summaryOver && now - quietSince > 2_000) break;
			if (now - started > TIMEOUT_MS) throw new Error(`storm not drained after ${TIMEOUT_MS / 1_000} s`);
			await new Promise((resolve) => setTimeout(resolve, POLL_MS));
		}
		await sending;
		const drainSeconds = (quietSince - started) / 1_000;

		const messages = double.channelMessages(CHANNEL);
		const writes = double.requests.filter(
			(r) => r.path.startsWith(`/channels/${CHANNEL}/messages`) && r.method !== "GET",
		);
		const summaries = messages.filter((m) => !isOwnMessage(m));
		const summaryIds = new Set(summaries.map((m) => m.id));
		const own = names.map((name) => messages.filter(ownMessageOf(name)));
		const latency = (at: Map<string, number>) =>
			names
				.map((n) => ((at.get(n) ?? Number.POSITIVE_INFINITY) - (firstWebhookAt.get(n) ?? 0)) / 1_000)
				.sort((a, b) => a - b);
		const visible = latency(visibleFiringAt);
		const ownLatency = latency(ownMessageAt);
		const alertsNote = `${GROUPS} groups x ${ALERTS} alerts, one channel, 5 writes / 5 s`;
		// A group never seen firing has no latency: say how many, not "Infinity".
		const seconds = (v: number, of: readonly number[]) =>
			Number.isFinite(v) ? round(v) : `never for ${of.filter((x) => !Number.isFinite(x)).length}`;
		return [
			{
				bench: "storm",
				metric: "groups lost (no message of their own)",
				value: own.filter((m) => m.length === 0).length,
				unit: "groups",
				note: alertsNote,
			},
			{
				bench: "storm",
				metric: "groups with several messages",
				value: own.filter((m) => m.length > 1).length,
				unit: "groups",
			},
			{
				bench: "storm",
				metric: "groups visibly resolved at the end",
				value: names.filter((name) => messages.some((m) => title(m) === `✅ Resolved: ${name}`)).length,
				unit: "groups",
			},
			{
				bench: "storm",
				metric: "visibly firing after first webhook, p50",
				value: seconds(percentile(visible, 50), visible),
				unit: "s",
				note: "own message or summary, read every 250 ms",
			},
			{
				bench: "storm",
				metric: "visibly firing after first webhook, max",
				value: seconds(visible.at(-1) ?? Number.NaN, visible),
				unit: "s",
				note: "target <= 10 s for all 50",
			},
			{ bench: "storm", metric: "groups first shown already resolved", value: firstSeenResolved.size, unit: "groups" },
			{
				bench: "storm",
				metric: "own message after first webhook, p50",
				value: round(percentile(ownLatency, 50)),
				unit: "s",
			},
			{
				bench: "storm",
				metric: "own message after first webhook, max",
				value: round(ownLatency.at(-1) ?? Number.NaN),
				unit: "s",
			},
			{
				bench: "storm",
				metric: "Discord 429s received",
				value: double.requests.filter((r) => r.status === 429).length,
				unit: "",
			},
			{
				bench: "storm",
				metric: "Discord message writes",
				value: writes.length,
				unit: "calls",
				note: `${GROUPS * ROUNDS.length} webhooks`,
			},
			{
				bench: "storm",
				metric: "summary messages / summary edits",
				value:
					`${summaries.length} / ` +
					`${writes.filter((r) => r.method === "PATCH" && summaryIds.has(r.path.split("/").at(-1) ?? "")).length}`,
				unit: "",
			},
			{
				bench: "storm",
				metric: "everything up to date after",
				value: round(drainSeconds),
				unit: "s",
				note: "first webhook -> last Discord call",
			},
		];
	} finally {
		await bot.stop();
		await double.close();
	}
}
