import { logsFile, logsReport } from "../src/commands/logs.ts";
import { reportToEmbed } from "../src/render/report.ts";
import type { LogResult } from "../src/services/logs.ts";
import { type BenchRow, percentile, round } from "./types.ts";

const LINES = 5_000;
const RUNS = 50;

/** Rendering 5,000 log lines into the Discord page and the download file: time and memory. */
export async function run(): Promise<BenchRow[]> {
	const start = BigInt(Date.now() - 3_600_000) * 1_000_000n;
	const entries = Array.from({ length: LINES }, (_, i) => ({
		ns: start + BigInt(LINES - i) * 700_000_000n,
		line:
			i % 3 === 0
				? `plain line ${i} with some text about request /api/things/${i}`
				: JSON.stringify({
						level: i % 7 === 0 ? "error" : "info",
						message: `handled request ${i}`,
						correlation_id: `c-${i}`,
						user_id: i % 500,
						path: `/api/things/${i}`,
						duration_ms: i % 97,
					}),
		labels: { service: "api" },
		id: i.toString(16).padStart(16, "0"),
	}));
	const result: LogResult = {
		source: "loki",
		query: '{service="api"} |= "request"',
		startNs: start,
		endNs: start + 3_600_000_000_000n,
		direction: "backward",
		entries,
		more: true,
	};
	const page: number[] = [];
	const file: number[] = [];
	globalThis.gc?.();
	const before = process.memoryUsage();
	let peakHeap = before.heapUsed;
	let bytes = 0;
	for (let i = 0; i < RUNS; i++) {
		let t = performance.now();
		reportToEmbed(logsReport(result, "Logs of api on production")).toJSON();
		page.push(performance.now() - t);
		t = performance.now();
		bytes = Buffer.byteLength(logsFile(result));
		file.push(performance.now() - t);
		peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
	}
	page.sort((a, b) => a - b);
	file.sort((a, b) => a - b);
	return [
		{
			bench: "logs",
			metric: "5,000 lines -> Discord page (embed), p50",
			value: round(percentile(page, 50)),
			unit: "ms",
			note: `${RUNS} runs`,
		},
		{
			bench: "logs",
			metric: "5,000 lines -> Discord page (embed), p95",
			value: round(percentile(page, 95)),
			unit: "ms",
		},
		{
			bench: "logs",
			metric: "5,000 lines -> download file, p50",
			value: round(percentile(file, 50)),
			unit: "ms",
			note: `${round(bytes / 1024)} KiB file`,
		},
		{ bench: "logs", metric: "5,000 lines -> download file, p95", value: round(percentile(file, 95)), unit: "ms" },
		{
			bench: "logs",
			metric: "heap growth while rendering",
			value: round((peakHeap - before.heapUsed) / 1024 / 1024),
			unit: "MiB",
			note: "peak heapUsed minus before",
		},
	];
}
