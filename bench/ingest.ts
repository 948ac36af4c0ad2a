import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import pg from "pg";
import { Pool } from "undici";
import { type DiscordDouble, startDiscordDouble } from "../test/discord-double/index.ts";
import { startTestBot, type TestBot } from "../test/support/bot.ts";
import { startPostgres } from "../test/support/postgres.ts";
import { type BenchRow, percentile, round } from "./types.ts";

const CHANNEL = "400000000000000001";
/** Webhooks per second, open loop; INGEST_RATES=500,2000 to choose others. */
const RATES = process.env.INGEST_RATES ? process.env.INGEST_RATES.split(",").map(Number) : [500, 1_000];
const SECONDS = 5;
const WARMUP_RATE = 200;
const WARMUP_SECONDS = 2;
/**
 * Connections of the generator's keep-alive pool, and its in-flight cap: a request due while this many are out "could
 * not be sent".
 */
const CONNECTIONS = 100;
const STORM_GROUPS = 50;
const STORM_ALERTS = 100;

/** An AlertManager-shaped body: `alerts` alerts of one group, with the labels and annotations a real rule carries. */
export function body(group: string, alerts: number, status: "firing" | "resolved" = "firing"): string {
	const startsAt = new Date(Date.now() - 60_000).toISOString();
	return JSON.stringify({
		version: "4",
		groupKey: `{}/{severity=~"warning|critical"}:{alertname="${group}"}`,
		truncatedAlerts: 0,
		status,
		receiver: "opsbot",
		groupLabels: { alertname: group },
		commonLabels: { alertname: group, severity: "warning", job: "node" },
		commonAnnotations: { summary: `${group} is unhappy`, runbook_url: "https://runbooks.local/disk" },
		externalURL: "http://alertmanager.local:9093",
		alerts: Array.from({ length: alerts }, (_, i) => ({
			status,
			labels: {
				alertname: group,
				severity: "warning",
				job: "node",
				instance: `host-${i}.prod.local:9100`,
				mountpoint: "/var/lib/docker",
			},
			annotations: {
				summary: `${group} is unhappy`,
				description: `Filesystem on host-${i} has less than 10% space left (currently 7.3%).`,
			},
			startsAt,
			endsAt: status === "resolved" ? new Date().toISOString() : "0001-01-01T00:00:00Z",
			generatorURL:
				"http://prometheus.local:9090/graph?g0.expr=" +
				"node_filesystem_avail_bytes+%2F+node_filesystem_size_bytes+%3C+0.1&g0.tab=1",
			fingerprint: `${group}-${i}`.slice(0, 64),
		})),
	});
}

interface LoadJob {
	readonly url: string;
	readonly token: string;
	readonly rate: number;
	readonly seconds: number;
	/** Distinguishes the groups of one run from another's, so every webhook is news to the store. */
	readonly tag: string;
}

interface LoadResult {
	readonly latencies: number[];
	readonly non2xx: number;
	readonly errors: number;
	readonly notSent: number;
	readonly sent: number;
}

/**
 * Open loop over an undici Pool (keep-alive, CONNECTIONS sockets): request i is due at start + i/rate
 * whatever happened to the others, and its latency runs from when it was due (so a stalled server
 * shows as latency, not as fewer requests). 250 groups take turns, each turn with a different alert
 * count, so no webhook is a duplicate of an earlier one.
 */
async function generate(job: LoadJob): Promise<LoadResult> {
	const origin = new URL(job.url).origin;
	const pool = new Pool(origin, { connections: CONNECTIONS, pipelining: 1, keepAliveTimeout: 30_000 });
	const headers = { "content-type": "application/json", authorization: `Bearer ${job.token}` };
	const total = job.rate * job.seconds;
	const bodies = Array.from({ length: total }, (_, i) => body(`${job.tag}${i % 250}`, 1 + (Math.floor(i / 250) % 7)));
	const latencies: number[] = [];
	let non2xx = 0;
	let errors = 0;
	let notSent = 0;
	let inFlight = 0;
	let next = 0;
	const pending: Promise<void>[] = [];
	const started = performance.now();
	const send = (i: number, due: number) => {
		inFlight++;
		pending.push(
			pool
				.request({ origin, path: "/alerts", method: "POST", headers, body: bodies[i] })
				.then(async (res) => {
					await res.body.dump();
					latencies.push(performance.now() - due);
					if (res.statusCode < 200 || res.statusCode > 299) non2xx++;
				})
				.catch(() => void errors++)
				.finally(() => void inFlight--),
		);
	};
	while (next < total) {
		const now = performance.now();
		for (; next < total && started + (next * 1_000) / job.rate <= now; next++) {
			if (inFlight >= CONNECTIONS) notSent++;
			else send(next, started + (next * 1_000) / job.rate);
		}
		await new Promise((resolve) => setTimeout(resolve, 1));
	}
	await Promise.all(pending);
	await pool.close();
	return { latencies: latencies.sort((a, b) => a - b), non2xx, errors, notSent, sent: total - notSent };
}

// The generator runs in its own thread: the Discord double (this thread) must not delay its clock.
if (!isMainThread && (workerData as { ingestLoad?: LoadJob } | null)?.ingestLoad) {
	void generate((workerData as { ingestLoad: LoadJob }).ingestLoad).then((result) => parentPort?.postMessage(result));
}

function runLoad(job: LoadJob): Promise<LoadResult> {
	return new Promise((resolve, reject) => {
		const worker = new Worker(new URL(import.meta.url), { workerData: { ingestLoad: job } });
		worker.once("message", (result: LoadResult) => {
			resolve(result);
			void worker.terminate();
		});
		worker.once("error", reject);
	});
}

/** CPU time (user + system) the process has used so far, in ms (clock ticks of 10 ms). */
const cpuOf = (pid: number) => {
	const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
	return (Number(fields[11]) + Number(fields[12])) * 10;
};
/**
 * A /proc/PID/status memory line in bytes: VmRSS, or its parts RssAnon (heaps, JIT code, wasm) and RssFile (mostly the
 * node binary's own pages).
 */
const statusBytes = (pid: number, key: "VmRSS" | "RssAnon" | "RssFile") =>
	Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
const rssOf = (pid: number) => statusBytes(pid, "VmRSS");
const mib = (bytes: number) => round(bytes / 1024 / 1024);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a Discord double and `npm start`'s process against it, runs `work`, stops both. */
async function withBot<T>(
	env: Record<string, string>,
	work: (bot: TestBot, double: DiscordDouble) => Promise<T>,
): Promise<T> {
	const double = await startDiscordDouble(DOUBLE);
	try {
		const passed = {
			NODE_OPTIONS: process.env.INGEST_BOT_NODE_OPTIONS,
			NODE_COMPILE_CACHE: process.env.INGEST_BOT_COMPILE_CACHE,
		};
		const bot = await startTestBot(double, OPS(double), {
			...env,
			...Object.fromEntries(Object.entries(passed).filter((e): e is [string, string] => Boolean(e[1]))),
		});
		try {
			return await work(bot, double);
		} finally {
			await bot.stop();
		}
	} finally {
		await double.close();
	}
}

/**
 * One open-loop run against a fresh process (so runs do not inherit each other's backlog), after a
 * warm-up at WARMUP_RATE. Delivery goes on at Discord's pace meanwhile, as it would in production.
 */
async function loadRows(label: string, rate: number, env: Record<string, string>, note: string): Promise<BenchRow[]> {
	return withBot(env, async (bot) => {
		const url = `${bot.webhookUrl}/alerts`;
		const token = env.WEBHOOK_TOKEN!;
		await runLoad({ url, token, rate: WARMUP_RATE, seconds: WARMUP_SECONDS, tag: "Warm" });
		await sleep(1_000);
		const pid = bot.process.child.pid!;
		const cpuBefore = cpuOf(pid);
		const r = await runLoad({ url, token, rate, seconds: SECONDS, tag: `Load${rate}` });
		const cpu = cpuOf(pid) - cpuBefore;
		const bench = `ingest ${label}`;
		return [
			{
				bench,
				metric: `ack p50 at ${rate}/s`,
				value: round(percentile(r.latencies, 50)),
				unit: "ms",
				note: `${rate * SECONDS} webhooks over ${SECONDS} s, open loop, ${note}`,
			},
			{ bench, metric: `ack p99 at ${rate}/s`, value: round(percentile(r.latencies, 99)), unit: "ms" },
			{ bench, metric: `ack max at ${rate}/s`, value: round(r.latencies.at(-1) ?? Number.NaN), unit: "ms" },
			{ bench, metric: `non-2xx / errors at ${rate}/s`, value: `${r.non2xx} / ${r.errors}`, unit: "" },
			{
				bench,
				metric: `could not be sent at ${rate}/s`,
				value: r.notSent,
				unit: "",
				note: `due while ${CONNECTIONS} were in flight`,
			},
			{
				bench,
				metric: `bot CPU per webhook at ${rate}/s`,
				value: round(cpu / r.sent),
				unit: "ms",
				note: "user + system time of the process during the run / webhooks sent",
			},
			{ bench, metric: `bot RSS after ${rate}/s`, value: mib(rssOf(pid)), unit: "MiB" },
		];
	});
}

/**
 * How long the storm's delivery is watched for its RSS peak at most (at 1 post/s per channel, 50 groups take about a
 * minute).
 */
const STORM_WATCH_MS = 90_000;

/**
 * The storm of issue 12 (50 groups x 100 alerts to one channel, three growing notifications then resolved): the bot's
 * RSS before and during it.
 */
async function memoryRows(env: Record<string, string>): Promise<BenchRow[]> {
	return withBot(env, async (bot, double) => {
		const pid = bot.process.child.pid!;
		await sleep(3_000);
		const idle = rssOf(pid);
		const idleParts = { anon: statusBytes(pid, "RssAnon"), file: statusBytes(pid, "RssFile") };
		let peak = idle;
		const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 50);
		const origin = bot.webhookUrl!;
		const pool = new Pool(origin, { connections: STORM_GROUPS });
		const post = async (text: string) => {
			const res = await pool.request({
				origin,
				path: "/alerts",
				method: "POST",
				headers: { "content-type": "application/json", authorization: `Bearer ${env.WEBHOOK_TOKEN}` },
				body: text,
			});
			await res.body.dump();
			if (res.statusCode !== 202) throw new Error(`webhook answered ${res.statusCode}`);
		};
		let done: boolean;
		try {
			for (const share of [0.3, 0.6, 1])
				await Promise.all(
					Array.from({ length: STORM_GROUPS }, (_, g) => post(body(`Storm${g}`, Math.round(STORM_ALERTS * share)))),
				);
			await Promise.all(
				Array.from({ length: STORM_GROUPS }, (_, g) => post(body(`Storm${g}`, STORM_ALERTS, "resolved"))),
			);
			const resolved = () =>
				double
					.channelMessages(CHANNEL)
					.filter((m) => /^✅ Resolved: Storm\d+$/.test(String((m.embeds[0] as { title?: string } | undefined)?.title)))
					.length;
			done = await double
				.waitFor(() => resolved() >= STORM_GROUPS, STORM_WATCH_MS)
				.then(
					() => true,
					() => false,
				);
		} finally {
			clearInterval(sampler);
			await pool.close();
		}
		return [
			{
				bench: "ingest",
				metric: "bot RSS at idle",
				value: mib(idle),
				unit: "MiB",
				note: "npm start's process, 3 s after ready, /proc VmRSS",
			},
			{
				bench: "ingest",
				metric: "of which file-backed",
				value: mib(idleParts.file),
				unit: "MiB",
				note:
					"RssFile: pages of the node binary (code, ICU and snapshot data) and shared libraries; a bare `node " +
					"-e` has ~32 MiB of them",
			},
			{
				bench: "ingest",
				metric: "of which anonymous",
				value: mib(idleParts.anon),
				unit: "MiB",
				note: "RssAnon: V8 heaps, compiled code, WebAssembly memory (undici's llhttp, Node's TypeScript stripper), malloc",
			},
			{
				bench: "ingest",
				metric: "bot RSS peak, 50x100 storm",
				value: mib(peak),
				unit: "MiB",
				note:
					`${STORM_GROUPS} groups x ${STORM_ALERTS} alerts, 3 growing updates then resolved; sampled every 50 ` +
					`ms ${done ? "until every group showed resolved" : `for ${STORM_WATCH_MS / 1_000} s of delivery`}`,
			},
		];
	});
}

// Discord's per-channel pace (5 messages per 5 s), so delivery does what it would against Discord.
const DOUBLE = {
	guild: { channels: [{ id: CHANNEL, name: "alerts" }] },
	channelRateLimit: { count: 5, windowMs: 5_000 },
};

const OPS = (double: DiscordDouble) =>
	`discord: { guildId: "${double.guildId}" }\nenvironments: { production: {} }\n` +
	`stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-ingest-"))}\nalerts:\n  listen: { host: 127.0.0.1, port: 0 }\n` +
	`  defaultChannel: "${CHANNEL}"\n`;

/** Makes a test server (fsync off) really sync its WAL at each commit, as a production server does. */
export async function syncWal(admin: pg.Client): Promise<void> {
	await admin.query("ALTER SYSTEM SET fsync = on");
	await admin.query("ALTER SYSTEM SET synchronous_commit = on");
	await admin.query("ALTER SYSTEM SET full_page_writes = on");
	await admin.query("SELECT pg_reload_conf()");
}

/**
 * Webhook ingest of `npm start`'s process at the production log level (info: a line per webhook):
 * ack latency under an open-loop load at 500/s and 1,000/s with the embedded SQLite store and with
 * the PostgreSQL store, and its RSS at idle and in a storm. INGEST_BOT_NODE_OPTIONS and
 * INGEST_BOT_COMPILE_CACHE reach the bot's process as NODE_OPTIONS and NODE_COMPILE_CACHE (e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof`, or `--max-semi-space-size=2`); INGEST_RATES=500,2000 picks
 * the rates; INGEST_SKIP_STORM=1, INGEST_SKIP_SQLITE=1 and INGEST_SKIP_POSTGRES=1 skip those parts.
 */
export async function run(): Promise<BenchRow[]> {
	const env = { WEBHOOK_TOKEN: randomBytes(24).toString("hex"), LOG_LEVEL: "info" };
	const rows: BenchRow[] = [];
	if (process.env.INGEST_SKIP_STORM !== "1") rows.push(...(await memoryRows(env)));
	if (process.env.INGEST_SKIP_SQLITE !== "1")
		for (const rate of RATES) rows.push(...(await loadRows("sqlite", rate, env, "SQLite store")));
	if (process.env.INGEST_SKIP_POSTGRES === "1") return rows;

	const postgres = await startPostgres();
	try {
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await syncWal(admin);
		for (const rate of RATES) await admin.query(`CREATE DATABASE opsbot_state_${rate}`);
		await admin.end();
		for (const rate of RATES)
			rows.push(
				...(await loadRows(
					"postgres",
					rate,
					{ ...env, STATE_DATABASE_URL: postgres.superuserUrl.replace(/\/appdb$/, `/opsbot_state_${rate}`) },
					"PostgreSQL 15 store, fsync on",
				)),
			);
	} finally {
		await postgres.stop();
	}
	return rows;
}
