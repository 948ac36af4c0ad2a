import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { getHeapStatistics } from "node:v8";
import { type LineChart, renderChart } from "../src/render/chart.ts";
import { poolLineChart } from "../src/render/pool-chart.ts";
import { type BenchRow, percentile, round } from "./types.ts";

const SEQUENTIAL = 200;
const STORM = 50;
const END = Date.UTC(2026, 10, 24, 14, 0);
const HOUR = 3_600_000;

/** An hour of `n` series every 30 s, as a `sum by (instance)` alert returns it. */
function alertChart(n: number): LineChart {
	let state = 7;
	const next = () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
	const series = Array.from({ length: n }, (_, k) => ({
		name: `instance=api-${k + 1}.prod.example.com:9100`,
		points: Array.from({ length: 121 }, (_, i) => ({
			x: END - HOUR + i * 30_000,
			y: 0.4 + (k % 17) * 0.35 + Math.sin(i / 9 + k) * 0.3 + next() * 0.2,
		})),
	}));
	return {
		title: `HighErrorRate — ${n} series`,
		detail: 'sum by (instance) (rate(http_requests_total{status=~"5.."}[5m])) > 1',
		series,
		range: { start: END - HOUR, end: END },
		unit: "/s",
		gapMs: 45_000,
	};
}

function poolChart(): LineChart {
	const samples = Array.from({ length: 361 }, (_, i) => ({
		at: END - 6 * HOUR + i * 60_000,
		used: Math.round(40 + 22 * Math.sin(i / 45)),
	}));
	return poolLineChart("production", { source: "Prometheus", samples }, 97, { warnPercent: 70, criticalPercent: 90 });
}

const rssOf = (pid: number | "self") => {
	try {
		return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
	} catch {
		return 0;
	}
};
/** This process and the chart renderer process it forked. */
const rss = () =>
	rssOf("self") +
	readFileSync(`/proc/self/task/${process.pid}/children`, "utf8")
		.trim()
		.split(/\s+/)
		.filter(Boolean)
		.reduce((sum, pid) => sum + rssOf(Number(pid)), 0);

async function timed(chart: LineChart, runs: number): Promise<{ wall: number[]; cpuMs: number; bytes: number }> {
	const wall: number[] = [];
	let bytes = 0;
	const cpu = process.cpuUsage();
	for (let i = 0; i < runs; i++) {
		const started = performance.now();
		bytes = (await renderChart(chart)).length;
		wall.push(performance.now() - started);
	}
	const used = process.cpuUsage(cpu);
	return { wall: wall.sort((a, b) => a - b), cpuMs: (used.user + used.system) / 1_000 / runs, bytes };
}

/** Runs in a fresh process, so its RSS is the chart path's alone; prints the rows as JSON. */
async function measure(): Promise<BenchRow[]> {
	const base = rss();
	const coldStart = performance.now();
	await renderChart(alertChart(14));
	const cold = performance.now() - coldStart;
	const afterFirst = rss();
	let peak = afterFirst;
	const sampler = setInterval(() => (peak = Math.max(peak, rss())), 5);
	const alert = await timed(alertChart(14), SEQUENTIAL);
	const afterSequential = rss();
	const heap = getHeapStatistics().total_heap_size / 1024 / 1024;
	const pool = await timed(poolChart(), SEQUENTIAL);
	const wide = await timed(alertChart(500), 20);
	const stormStart = performance.now();
	await Promise.all(Array.from({ length: STORM }, () => renderChart(alertChart(14))));
	const storm = performance.now() - stormStart;
	clearInterval(sampler);
	const row = (metric: string, value: number, unit: string, note?: string): BenchRow => ({
		bench: "charts",
		metric,
		value: round(value),
		unit,
		...(note ? { note } : {}),
	});
	return [
		row(
			"alert chart (14 series, 121 points each), p50",
			percentile(alert.wall, 50),
			"ms",
			`${SEQUENTIAL} sequential; SVG layout + resvg (wasm) in its own process`,
		),
		row("alert chart, p95", percentile(alert.wall, 95), "ms"),
		row(
			"alert chart, CPU per chart",
			alert.cpuMs,
			"ms",
			"this process only (the renderer process's CPU is not counted)",
		),
		row("alert chart PNG", alert.bytes / 1024, "KiB", "1200 px wide"),
		row("alert chart (500 series: 8 lines + band), p50", percentile(wide.wall, 50), "ms", "20 sequential"),
		row("pool chart (361 samples + limit), p50", percentile(pool.wall, 50), "ms", `${SEQUENTIAL} sequential`),
		row("pool chart PNG", pool.bytes / 1024, "KiB"),
		row(`${STORM} alert charts at once, total`, storm, "ms", "a storm: queued, drawn one at a time off the event loop"),
		row("first chart (loads resvg and the font)", cold, "ms"),
		row(
			"RSS added by the first chart",
			afterFirst - base,
			"MiB",
			`this process + renderer: ${round(base)} -> ${round(afterFirst)} MiB`,
		),
		row(
			`RSS added after ${SEQUENTIAL} alert charts`,
			afterSequential - base,
			"MiB",
			`V8 heap committed then: ${round(heap)} MiB (its young generation grows with the churn)`,
		),
		row(
			"peak RSS added over all renders",
			peak - base,
			"MiB",
			`${SEQUENTIAL * 2 + 20 + STORM} charts, one drawn at a time; peak ${round(peak)} MiB`,
		),
	];
}

/** Charts: render time, CPU, PNG size and RSS of the alert and pool charts, measured in a child process. */
export async function run(): Promise<BenchRow[]> {
	const out = execFileSync(process.execPath, [import.meta.filename, "--child"], {
		encoding: "utf8",
		maxBuffer: 1 << 20,
	});
	return JSON.parse(out) as BenchRow[];
}

if (process.argv[1] === import.meta.filename && process.argv[2] === "--child")
	process.stdout.write(JSON.stringify(await measure()));
