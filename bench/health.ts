import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { createHealthService } from "../src/services/health.ts";
import { percentile, round, type BenchRow } from "./types.ts";

const HANG_TIMEOUT_MS = 2_000;
const RUNS = 5;

async function listen(server: Server): Promise<string> {
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** /health fan-out: 12 checks, one hanging behind a 2 s timeout; the total should be the timeout, not a sum. */
async function fanOut(): Promise<BenchRow[]> {
	const fast = createServer((_, res) => setTimeout(() => res.end("ok"), 20));
	const hanging = createServer(() => undefined);
	const fastUrl = await listen(fast);
	const hangingUrl = await listen(hanging);
	const http = [
		...Array.from({ length: 11 }, (_, i) => ({ name: `svc-${i}`, url: `${fastUrl}/${i}`, expectStatus: 200, timeoutMs: 1_000, tlsWarnDays: 14 })),
		{ name: "stuck", url: hangingUrl, expectStatus: 200, timeoutMs: HANG_TIMEOUT_MS, tlsWarnDays: 14 },
	];
	const service = createHealthService({ environments: { bench: { http } }, databases: { get: () => undefined }, secret: () => undefined, log: pino({ level: "silent" }) });
	const totals: number[] = [];
	for (let i = 0; i < RUNS; i++) totals.push((await service.check("bench")).durationMs);
	hanging.closeAllConnections();
	fast.closeAllConnections();
	await Promise.all([new Promise((r) => fast.close(r)), new Promise((r) => hanging.close(r))]);
	totals.sort((a, b) => a - b);
	return [
		{ bench: "health", metric: "fan-out total, 12 checks (1 hanging), median", value: round(percentile(totals, 50)), unit: "ms", note: `timeout ${HANG_TIMEOUT_MS} ms, sum of timeouts ${11_000 + HANG_TIMEOUT_MS} ms, ${RUNS} runs` },
		{ bench: "health", metric: "fan-out total, worst run", value: round(totals.at(-1) ?? Number.NaN), unit: "ms", note: `overshoot ${round((totals.at(-1) ?? 0) - HANG_TIMEOUT_MS)} ms past the timeout` },
	];
}

/** Runs every /health benchmark. */
export async function run(): Promise<BenchRow[]> {
	return [...(await fanOut())];
}
