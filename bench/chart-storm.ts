import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { RENDERER_IDLE_MS } from "../src/render/chart.ts";
import { startDiscordDouble } from "../test/discord-double/index.ts";
import { startTestBot } from "../test/support/bot.ts";
import { startPrometheus } from "../test/support/prometheus.ts";
import { type BenchRow, round } from "./types.ts";

const CHANNEL = "400000000000000001";
const GROUPS = 40;
const SERIES = 2_000;
const EXPR = "storm_load > 0.99";

/**
 * The shipped process's memory through a storm of alert charts: opsbot (`node src/main.ts`) with
 * a real Prometheus scraping a 2,000-series exporter, the Discord double taking the messages. One
 * alert group first (the renderer thread starts), then 40 groups at once, each message with a
 * chart of a 2,000-series expression; then quiet until the renderer's idle time has passed.
 * RSS is the bot process's own (/proc/<pid>/status), sampled every 50 ms.
 */
export async function run(): Promise<BenchRow[]> {
	const body = `# TYPE storm_load gauge\n${Array.from({ length: SERIES }, (_, i) => `storm_load{shard="s${i + 1}"} ${(i + 1) / SERIES}`).join("\n")}\n`;
	const exporter = createServer((_req, res) =>
		res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body),
	);
	await new Promise<void>((resolve) => exporter.listen(0, "127.0.0.1", resolve));
	const prometheus = await startPrometheus({
		targets: { storm: [`127.0.0.1:${(exporter.address() as AddressInfo).port}`] },
	});
	const double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
	const token = randomBytes(24).toString("hex");
	const bot = await startTestBot(
		double,
		`discord: { guildId: "${double.guildId}" }\nenvironments: { production: { prometheus: { url: "${prometheus.url}" } } }\nalerts:\n  listen: { host: 127.0.0.1, port: 0 }\n  defaultChannel: "${CHANNEL}"\n`,
		{ WEBHOOK_TOKEN: token, LOG_LEVEL: "info" },
	);
	const pid = bot.process.child.pid as number;
	const rssOf = (of: number) => {
		try {
			return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${of}/status`, "utf8"))?.[1] ?? 0) / 1024;
		} catch {
			return 0; // it exited between listing and reading
		}
	};
	const children = () => {
		try {
			return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
		} catch {
			return [];
		}
	};
	const rss = () => rssOf(pid);
	/** The bot and its chart renderer process together. */
	const total = () => rss() + children().reduce((sum, child) => sum + rssOf(child), 0);
	const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
	const charts = () =>
		double.channelMessages(CHANNEL).filter((m) => m.files.some((f) => f.name === "chart.png")).length;
	const posted = (group: string) =>
		double.channelMessages(CHANNEL).some((m) => JSON.stringify(m.embeds).includes(group));
	const groups = Array.from({ length: GROUPS }, (_, g) => `ChartStorm${String(g).padStart(2, "0")}`);
	let sampler: NodeJS.Timeout | undefined;
	const waitFor = async (what: string, done: () => boolean, ms = 120_000) => {
		const deadline = Date.now() + ms;
		while (!done()) {
			if (Date.now() > deadline) throw new Error(`chart-storm: ${what} not reached in ${ms / 1_000} s`);
			await sleep(100);
		}
	};
	const post = async (group: string) => {
		const alerts = Array.from({ length: 10 }, (_, i) => ({
			status: "firing",
			labels: { alertname: group, shard: `s${SERIES - i}` },
			annotations: {},
			startsAt: new Date().toISOString(),
			endsAt: "0001-01-01T00:00:00Z",
			generatorURL: `http://prometheus.local/graph?g0.expr=${encodeURIComponent(EXPR)}`,
			fingerprint: `${group}-${i}`,
		}));
		const payload = {
			version: "4",
			groupKey: `{}:{alertname="${group}"}`,
			status: "firing",
			receiver: "opsbot",
			groupLabels: { alertname: group },
			commonLabels: { alertname: group },
			commonAnnotations: { summary: `${group}` },
			externalURL: "http://alertmanager.local:9093",
			alerts,
		};
		const res = await fetch(`${bot.webhookUrl}/alerts`, {
			method: "POST",
			headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
			body: JSON.stringify(payload),
		});
		await res.arrayBuffer();
		if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
	};
	try {
		// Series 6 s old, so the chart's ranking at the window's end finds them.
		for (let tries = 0; ; tries++) {
			const answer = (await (
				await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent("count(storm_load offset 6s)")}`)
			).json()) as { data: { result: { value: [number, string] }[] } };
			if (Number(answer.data.result[0]?.value[1]) === SERIES) break;
			if (tries > 200) throw new Error("Prometheus never scraped the exporter");
			await sleep(200);
		}
		await sleep(3_000);
		const idle = rss();
		const idleTotal = total();
		await post("ChartFirst");
		await waitFor("the first chart", () => charts() >= 1);
		await sleep(2_000);
		const afterFirst = rss();
		const afterFirstTotal = total();
		let peak = afterFirst;
		let peakTotal = afterFirstTotal;
		sampler = setInterval(() => {
			peak = Math.max(peak, rss());
			peakTotal = Math.max(peakTotal, total());
		}, 50);
		const stormStarted = performance.now();
		await Promise.all(groups.map(post));
		// Every group posted (a chart Prometheus could not give in 5 s goes without: counted below).
		await waitFor(`${GROUPS} groups posted`, () => groups.every(posted), 300_000);
		const stormSeconds = (performance.now() - stormStarted) / 1_000;
		await sleep(2_000);
		clearInterval(sampler);
		const afterStorm = rss();
		const afterStormTotal = total();
		// The renderer thread ends RENDERER_IDLE_MS after its last chart.
		await sleep(RENDERER_IDLE_MS + 5_000);
		const afterIdle = rss();
		const afterIdleTotal = total();
		const renderers = children().length;
		const row = (metric: string, value: number, unit: string, note?: string): BenchRow => ({
			bench: "chart-storm",
			metric,
			value: round(value),
			unit,
			...(note ? { note } : {}),
		});
		const both = (value: number) => `bot + renderer process: ${round(value)} MiB`;
		return [
			row(
				"RSS idle (connected, no chart yet)",
				idle,
				"MiB",
				`node src/main.ts, Prometheus configured; ${both(idleTotal)}`,
			),
			row("RSS after the first alert chart", afterFirst, "MiB", `renderer process started; ${both(afterFirstTotal)}`),
			row(
				`RSS peak during ${GROUPS} alert groups with charts`,
				peak,
				"MiB",
				`each of a ${SERIES}-series expression; ${both(peakTotal)}`,
			),
			row("storm: all charts posted after", stormSeconds, "s", `${charts()} messages with chart.png`),
			row("RSS 2 s after the storm", afterStorm, "MiB", both(afterStormTotal)),
			row(
				`RSS ${(RENDERER_IDLE_MS + 5_000) / 1_000} s later`,
				afterIdle,
				"MiB",
				`renderer processes left: ${renderers}; ${both(afterIdleTotal)}`,
			),
		];
	} finally {
		clearInterval(sampler);
		await bot.stop();
		await double.close();
		await prometheus.stop();
		await new Promise((resolve) => exporter.close(resolve));
	}
}
