import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { startDiscordDouble } from "../test/discord-double/index.ts";
import { startTestBot } from "../test/support/bot.ts";
import { spawnMain } from "../test/support/main-process.ts";
import { healthService } from "../test/support/services.ts";
import { type BenchRow, percentile, round } from "./types.ts";

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
		...Array.from({ length: 11 }, (_, i) => ({
			name: `svc-${i}`,
			url: `${fastUrl}/${i}`,
			expectStatus: 200,
			timeoutMs: 1_000,
			tlsWarnDays: 14,
		})),
		{ name: "stuck", url: hangingUrl, expectStatus: 200, timeoutMs: HANG_TIMEOUT_MS, tlsWarnDays: 14 },
	];
	const service = healthService({
		environments: { bench: { http } },
		databases: { get: () => undefined },
		secret: () => undefined,
		log: pino({ level: "silent" }),
	});
	const totals: number[] = [];
	for (let i = 0; i < RUNS; i++) totals.push((await service.check("bench")).durationMs);
	hanging.closeAllConnections();
	fast.closeAllConnections();
	await Promise.all([new Promise((r) => fast.close(r)), new Promise((r) => hanging.close(r))]);
	totals.sort((a, b) => a - b);
	return [
		{
			bench: "health",
			metric: "fan-out total, 12 checks (1 hanging), median",
			value: round(percentile(totals, 50)),
			unit: "ms",
			note: `timeout ${HANG_TIMEOUT_MS} ms, sum of timeouts ${11_000 + HANG_TIMEOUT_MS} ms, ${RUNS} runs`,
		},
		{
			bench: "health",
			metric: "fan-out total, worst run",
			value: round(totals.at(-1) ?? Number.NaN),
			unit: "ms",
			note: `overshoot ${round((totals.at(-1) ?? 0) - HANG_TIMEOUT_MS)} ms past the timeout`,
		},
	];
}

const INTERACTIONS = 500;

/** Interaction to first response (the deferral) through the Discord double and the real discord.js client. */
async function interactionLatency(): Promise<BenchRow[]> {
	const fast = createServer((_, res) => res.end("ok"));
	const url = await listen(fast);
	const double = await startDiscordDouble();
	const bot = await startTestBot(
		double,
		`discord: { guildId: "${double.guildId}" }\naccess: { commands: { health: [everyone] } }\nenvironments:\n` +
			`  local:\n    http: [{ name: api, url: "${url}/" }]\n`,
	);
	const firstResponse: number[] = [];
	const finalReply: number[] = [];
	for (let i = 0; i < INTERACTIONS; i++) {
		const started = performance.now();
		const sent = await double.sendInteraction({
			kind: "command",
			name: "health",
			options: [{ name: "env", type: 3, value: "local" }],
		});
		await sent.response();
		firstResponse.push(performance.now() - started);
		await double.waitFor(() => (double.originalMessage(sent.id)?.embeds.length ?? 0) > 0, 5_000);
		finalReply.push(performance.now() - started);
	}
	await bot.stop();
	await double.close();
	fast.close();
	firstResponse.sort((a, b) => a - b);
	finalReply.sort((a, b) => a - b);
	return [
		{
			bench: "health",
			metric: "interaction -> first response (defer), p50",
			value: round(percentile(firstResponse, 50)),
			unit: "ms",
			note: `${INTERACTIONS} sequential /health interactions via the double`,
		},
		{
			bench: "health",
			metric: "interaction -> first response (defer), p99",
			value: round(percentile(firstResponse, 99)),
			unit: "ms",
			note: "Discord's deadline: 3000 ms",
		},
		{
			bench: "health",
			metric: "interaction -> final embed, p50",
			value: round(percentile(finalReply, 50)),
			unit: "ms",
			note: "one local HTTP check",
		},
		{
			bench: "health",
			metric: "interaction -> final embed, p99",
			value: round(percentile(finalReply, 99)),
			unit: "ms",
		},
	];
}

/** Resident memory of the idle bot (npm start's process) after it has logged in. */
async function idleRss(): Promise<BenchRow[]> {
	const double = await startDiscordDouble();
	const main = spawnMain(`discord: { guildId: "${double.guildId}" }\nenvironments:\n  local: {}\n`, {
		DISCORD_TOKEN: "double-token",
		DISCORD_APPLICATION_ID: double.applicationId,
		DISCORD_API_URL: double.apiUrl,
	});
	await double.waitFor(() => main.output().includes("connected to Discord"), 20_000);
	await new Promise((resolve) => setTimeout(resolve, 3_000)); // let start-up garbage settle
	const status = readFileSync(`/proc/${main.child.pid}/status`, "utf8");
	const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
	main.child.kill("SIGTERM");
	await main.exited;
	await double.close();
	return [
		{
			bench: "health",
			metric: "RSS of the idle bot after login",
			value: round(rssKb / 1024),
			unit: "MiB",
			note: "node src/main.ts, 3 s after ready",
		},
	];
}

/** Runs every /health benchmark. */
export async function run(): Promise<BenchRow[]> {
	return [...(await fanOut()), ...(await interactionLatency()), ...(await idleRss())];
}
