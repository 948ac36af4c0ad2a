import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDiscordDouble } from "../test/discord-double/index.ts";
import { startTestBot } from "../test/support/bot.ts";
import { percentile, round, type BenchRow } from "./types.ts";

const STEADY_RATE = 50; // requests per second
const STEADY_SECONDS = 10;
const BURST = 2_000;
const STORM_ALERTS = 5_000;
const STORM_GROUPS = 50;

function payload(group: string, alerts: number, status: "firing" | "resolved" = "firing") {
	return JSON.stringify({
		version: "4",
		groupKey: `{}:{alertname="${group}"}`,
		status,
		receiver: "opsbot",
		groupLabels: { alertname: group },
		commonLabels: { alertname: group, severity: "warning" },
		commonAnnotations: { summary: `${group} is unhappy` },
		externalURL: "http://alertmanager.local:9093",
		alerts: Array.from({ length: alerts }, (_, i) => ({ status, labels: { alertname: group, severity: "warning", instance: `host-${i}` }, annotations: {}, startsAt: new Date().toISOString(), endsAt: "0001-01-01T00:00:00Z", generatorURL: "", fingerprint: `${group}-${i}`.slice(0, 64) })),
	});
}

/** Alert relay: webhook ack latency at a steady rate, acceptance throughput, and a 5,000-alert storm. */
export async function run(): Promise<BenchRow[]> {
	const token = randomBytes(24).toString("hex");
	const double = await startDiscordDouble({ guild: { channels: [{ id: "400000000000000001", name: "alerts" }] } });
	const bot = await startTestBot(
		double,
		`discord: { guildId: "${double.guildId}" }\nenvironments: { production: {} }\nstateDir: ${mkdtempSync(join(tmpdir(), "opsbot-bench-"))}\nalerts:\n  listen: { host: 127.0.0.1, port: 0 }\n  defaultChannel: "400000000000000001"\n`,
		{ WEBHOOK_TOKEN: token, LOG_LEVEL: "silent" },
	);
	const url = `${bot.webhookUrl}/alerts`;
	// The bot is its own process (npm start): "drained" is the double seeing no more calls for a while.
	const QUIET_MS = 1_500;
	const drained = async () => {
		for (let seen = -1; seen !== double.requests.length; ) {
			seen = double.requests.length;
			await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
		}
	};
	const botRss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${bot.process.child.pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
	const post = async (body: string) => {
		const started = performance.now();
		const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body });
		await res.arrayBuffer();
		if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
		return performance.now() - started;
	};
	const idleRss = botRss();
	let peakRss = idleRss;
	const rssSampler = setInterval(() => (peakRss = Math.max(peakRss, botRss())), 50);
	try {
		// Steady rate: one request every 20 ms, each a small group (as AlertManager sends them).
		const steady: Promise<number>[] = [];
		for (let i = 0; i < STEADY_RATE * STEADY_SECONDS; i++) {
			steady.push(post(payload(`Steady${i % 100}`, 1 + (i % 5))));
			await new Promise((resolve) => setTimeout(resolve, 1_000 / STEADY_RATE));
		}
		const latencies = (await Promise.all(steady)).sort((a, b) => a - b);
		await drained();

		// Throughput: as fast as 16 concurrent senders can go.
		const burstStarted = performance.now();
		let next = 0;
		await Promise.all(Array.from({ length: 16 }, async () => {
			while (next < BURST) await post(payload(`Burst${next++ % 200}`, 3));
		}));
		const burstSeconds = (performance.now() - burstStarted) / 1000;
		await drained();

		// Storm: 5,000 alerts in 50 groups, each group notified three times as it grows, with Discord pushing back.
		const before = double.requests.length;
		double.failNext({ method: "POST", pathPrefix: "/channels/400000000000000001/messages", status: 429, retryAfterSeconds: 0.25, count: 10 });
		double.failNext({ method: "PATCH", pathPrefix: "/channels/400000000000000001/messages", status: 429, retryAfterSeconds: 0.25, count: 10 });
		const stormStarted = performance.now();
		const perGroup = STORM_ALERTS / STORM_GROUPS;
		for (const share of [0.3, 0.6, 1]) {
			await Promise.all(Array.from({ length: STORM_GROUPS }, (_, g) => post(payload(`Storm${g}`, Math.round(perGroup * share)))));
		}
		await drained();
		const drainSeconds = (performance.now() - stormStarted - QUIET_MS) / 1000;
		const stormRequests = double.requests.slice(before).filter((r) => r.path.startsWith("/channels/400000000000000001/messages"));
		const messages = double.channelMessages("400000000000000001").filter((m) => /Storm\d+/.test(String((m.embeds[0] as { title?: string })?.title)));
		return [
			{ bench: "alerts", metric: "webhook ack latency, p50", value: round(percentile(latencies, 50)), unit: "ms", note: `${STEADY_RATE} req/s for ${STEADY_SECONDS} s, 202 after the SQLite commit` },
			{ bench: "alerts", metric: "webhook ack latency, p99", value: round(percentile(latencies, 99)), unit: "ms" },
			{ bench: "alerts", metric: "webhooks accepted per second", value: round(BURST / burstSeconds), unit: "req/s", note: `${BURST} requests, 16 concurrent senders, 3 alerts each` },
			{ bench: "alerts", metric: "storm: Discord API calls", value: stormRequests.length, unit: "calls", note: `${STORM_ALERTS} alerts, ${STORM_GROUPS} groups x 3 notifications = ${STORM_GROUPS * 3} webhooks` },
			{ bench: "alerts", metric: "storm: messages posted", value: messages.length, unit: "msgs", note: "one per group" },
			{ bench: "alerts", metric: "storm: 429s received", value: stormRequests.filter((r) => r.status === 429).length, unit: "", note: "injected by the double, waited out by discord.js" },
			{ bench: "alerts", metric: "storm: time to drain", value: round(drainSeconds), unit: "s" },
			{ bench: "alerts", metric: "bot RSS at idle (after start)", value: round(idleRss / 1024 / 1024), unit: "MiB", note: "npm start's process, read from /proc" },
			{ bench: "alerts", metric: "bot peak RSS", value: round(peakRss / 1024 / 1024), unit: "MiB" },
		];
	} finally {
		clearInterval(rssSampler);
		await bot.stop();
		await double.close();
	}
}
