import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RENDERER_IDLE_MS } from "../src/render/chart.ts";
import { type DiscordDouble, startDiscordDouble } from "../test/discord-double/index.ts";
import { startTestBot } from "../test/support/bot.ts";
import { startPrometheus } from "../test/support/prometheus.ts";
import { ownMessages } from "../test/support/storm.ts";
import { type BenchRow, round } from "./types.ts";

const CHANNEL = "400000000000000001";
const GROUPS = 40;
const SERIES = 2_000;
const EXPR = "storm_load > 0.99";

/** A process's resident memory (MiB): all of it, and the part no other process maps (anonymous and shmem pages). */
interface Resident {
	readonly rss: number;
	readonly own: number;
}

function residentOf(pid: number): Resident | undefined {
	try {
		const status = readFileSync(`/proc/${pid}/status`, "utf8");
		const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
		return { rss: kib("VmRSS") / 1024, own: (kib("RssAnon") + kib("RssShmem")) / 1024 };
	} catch {
		return undefined; // it exited between listing and reading
	}
}

/**
 * The shipped process's memory through a storm of alert charts: opsbot (`node src/main.ts`) with
 * a real Prometheus scraping a 2,000-series exporter, the Discord double taking the messages. One
 * alert group first (the renderer process starts), then 40 groups at once, each with a chart of a
 * 2,000-series expression (the groups posted before the storm summary takes over get one; none is
 * drawn during the storm); then quiet until the renderer's idle time has passed. The compile cache
 * is warmed by a first start, as the image does at build.
 *
 * Sampled every 50 ms from /proc/<pid>/status, from the first alert to the end: the bot's RSS, and
 * the bot with its renderer child counted two ways. "RSS sum" adds both RSS; it counts twice the
 * pages of the node binary and its libraries both map from the page cache (~45 MiB). "Bot RSS +
 * renderer's own" adds only the renderer's anonymous pages (its heap, resvg's wasm code and memory):
 * what starting the renderer costs the machine.
 */
export async function run(): Promise<BenchRow[]> {
	const body =
		`# TYPE storm_load gauge\n` +
		`${Array.from({ length: SERIES }, (_, i) => `storm_load{shard="s${i + 1}"} ${(i + 1) / SERIES}`).join("\n")}\n`;
	const exporter = createServer((_req, res) =>
		res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body),
	);
	await new Promise<void>((resolve) => exporter.listen(0, "127.0.0.1", resolve));
	const prometheus = await startPrometheus({
		targets: { storm: [`127.0.0.1:${(exporter.address() as AddressInfo).port}`] },
	});
	const token = randomBytes(24).toString("hex");
	const opsYaml = (double: DiscordDouble) =>
		`discord: { guildId: "${double.guildId}" }\n` +
		`environments: { production: { prometheus: { url: "${prometheus.url}" } } }\nalerts:\n` +
		`  listen: { host: 127.0.0.1, port: 0 }\n  defaultChannel: "${CHANNEL}"\n`;
	const env = {
		WEBHOOK_TOKEN: token,
		LOG_LEVEL: "info",
		NODE_COMPILE_CACHE: mkdtempSync(join(tmpdir(), "opsbot-bench-cache-")),
	};
	const guild = { channels: [{ id: CHANNEL, name: "alerts" }] };
	// The first start writes the compile cache that the measured one reads.
	const warming = await startDiscordDouble({ guild });
	await (await startTestBot(warming, opsYaml(warming), env)).stop();
	await warming.close();
	const double = await startDiscordDouble({ guild });
	const bot = await startTestBot(double, opsYaml(double), env);
	const pid = bot.process.child.pid as number;
	const children = () => {
		try {
			return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
		} catch {
			return [];
		}
	};
	const renderersSeen = new Set<number>();
	/** The bot's RSS, the sum of the bot's and its renderer's RSS, and the bot's RSS with the renderer's own pages. */
	const measure = () => {
		const botRss = residentOf(pid)?.rss ?? 0;
		const pids = children();
		for (const child of pids) renderersSeen.add(child);
		const renderers = pids.map(residentOf).filter((r) => r !== undefined);
		return {
			bot: botRss,
			sum: botRss + renderers.reduce((sum, r) => sum + r.rss, 0),
			once: botRss + renderers.reduce((sum, r) => sum + r.own, 0),
			renderer: renderers.reduce((sum, r) => sum + r.rss, 0),
			rendererOwn: renderers.reduce((sum, r) => sum + r.own, 0),
		};
	};
	type Measure = ReturnType<typeof measure>;
	const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
	const charts = () =>
		double.channelMessages(CHANNEL).filter((m) => m.files.some((f) => f.name === "chart.png")).length;
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
		const idle = measure();
		const peak = { ...idle };
		sampler = setInterval(() => {
			const now = measure();
			for (const key of Object.keys(peak) as (keyof Measure)[]) peak[key] = Math.max(peak[key], now[key]);
		}, 50);
		await post("ChartFirst");
		await waitFor("the first chart", () => charts() >= 1);
		await sleep(2_000);
		const afterFirst = measure();
		const stormStarted = performance.now();
		await Promise.all(groups.map(post));
		// Every group has its own message, and its chart (added by an edit when drawn after the post);
		// a chart Prometheus could not give in 5 s goes without: counted below.
		await waitFor(
			`${GROUPS} groups posted`,
			() => groups.every((group) => ownMessages(double, CHANNEL, group).length > 0),
			300_000,
		);
		await waitFor(`${GROUPS + 1} charts`, () => charts() === GROUPS + 1, 60_000).catch(() => undefined);
		const stormSeconds = (performance.now() - stormStarted) / 1_000;
		await sleep(2_000);
		const afterStorm = measure();
		// The renderer ends RENDERER_IDLE_MS after its last chart.
		await waitFor("the renderer's end", () => children().length === 0, RENDERER_IDLE_MS + 60_000);
		await sleep(5_000);
		clearInterval(sampler);
		const afterIdle = measure();
		const row = (metric: string, value: number, unit: string, note?: string): BenchRow => ({
			bench: "chart-storm",
			metric,
			value: round(value),
			unit,
			...(note ? { note } : {}),
		});
		const pair = (m: Measure) => `RSS sum ${round(m.sum)} MiB; bot RSS + renderer's own ${round(m.once)} MiB`;
		return [
			row(
				"bot RSS idle (connected, no chart yet)",
				idle.bot,
				"MiB",
				"node src/main.ts, Prometheus and alerts configured",
			),
			row(
				"bot RSS after the first alert chart",
				afterFirst.bot,
				"MiB",
				`renderer RSS ${round(afterFirst.renderer)} MiB, its own ${round(afterFirst.rendererOwn)} MiB; ${pair(afterFirst)}`,
			),
			row(
				`bot RSS peak, ${GROUPS} alert groups at once and after`,
				peak.bot,
				"MiB",
				`each of a ${SERIES}-series expression`,
			),
			row("bot + renderer peak, RSS sum", peak.sum, "MiB", `renderer RSS peak ${round(peak.renderer)} MiB`),
			row(
				"bot + renderer peak, bot RSS + renderer's own",
				peak.once,
				"MiB",
				`renderer's own peak ${round(peak.rendererOwn)} MiB`,
			),
			row("storm: every group posted with its chart after", stormSeconds, "s", `${charts()} messages with chart.png`),
			row("bot RSS 2 s after the storm", afterStorm.bot, "MiB", pair(afterStorm)),
			row(
				"bot RSS 5 s after the renderer ended",
				afterIdle.bot,
				"MiB",
				`renderer processes started: ${renderersSeen.size}, left: ${children().length}`,
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
