import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { Pool } from "undici";
import { type DiscordDouble, startDiscordDouble } from "../test/discord-double/index.ts";
import { startTestBot, type TestBot } from "../test/support/bot.ts";
import { startPostgres } from "../test/support/postgres.ts";
import { cpuOf, statFields } from "./proc-stat.ts";
import { type BenchRow, percentile, round } from "./types.ts";
import { body, CONNECTIONS, runLoad } from "./webhook-load.ts";

const CHANNEL = "400000000000000001";
/** Webhooks per second, open loop; INGEST_RATES=500,2000 to choose others. */
const RATES = process.env.INGEST_RATES ? process.env.INGEST_RATES.split(",").map(Number) : [500, 1_000];
const SECONDS = 5;
const WARMUP_RATE = 200;
const WARMUP_SECONDS = 2;
const STORM_GROUPS = 50;
const STORM_ALERTS = 100;

/**
 * CPU time (ms) a PostgreSQL server has used so far: its postmaster, the children it reaped (their time is
 * in its cutime and cstime) and the children alive now (backends, WAL writer, checkpointer...).
 */
async function serverCpu(superuserUrl: string): Promise<number> {
	const client = new pg.Client({ connectionString: superuserUrl });
	await client.connect();
	try {
		const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
		const postmaster = Number(statFields(rows[0]!.pid)[1]);
		const own = statFields(postmaster);
		let ms = (Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])) * 10;
		for (const entry of readdirSync("/proc"))
			if (/^\d+$/.test(entry))
				try {
					if (Number(statFields(Number(entry))[1]) === postmaster) ms += cpuOf(Number(entry));
				} catch {
					// ended meanwhile: its time is in the postmaster's cutime from now on
				}
		return ms;
	} finally {
		await client.end();
	}
}
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
async function loadRows(
	label: string,
	rate: number,
	env: Record<string, string>,
	note: string,
	serverCpuNow?: () => Promise<number>,
): Promise<BenchRow[]> {
	return withBot(env, async (bot) => {
		const url = `${bot.webhookUrl}/alerts`;
		const token = env.WEBHOOK_TOKEN!;
		await runLoad({ url, token, rate: WARMUP_RATE, seconds: WARMUP_SECONDS, tag: "Warm" });
		await sleep(1_000);
		const pid = bot.process.child.pid!;
		const [cpuBefore, serverBefore, benchBefore] = [cpuOf(pid), await serverCpuNow?.(), process.cpuUsage()];
		const r = await runLoad({ url, token, rate, seconds: SECONDS, tag: `Load${rate}` });
		const cpu = cpuOf(pid) - cpuBefore;
		const benchCpu = process.cpuUsage(benchBefore);
		const serverAfter = await serverCpuNow?.();
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
			...(serverBefore === undefined || serverAfter === undefined
				? []
				: [
						{
							bench,
							metric: `PostgreSQL CPU per webhook at ${rate}/s`,
							value: round((serverAfter - serverBefore) / r.sent),
							unit: "ms",
							note: "user + system time of the server's processes (postmaster, backends, WAL writer...) / webhooks sent",
						},
					]),
			{
				bench,
				metric: `bench's own CPU per webhook at ${rate}/s`,
				value: round((benchCpu.user + benchCpu.system) / 1_000 / r.sent),
				unit: "ms",
				note: "the load generator's thread and the Discord double, on the same two cores",
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
					() => serverCpu(postgres.superuserUrl),
				)),
			);
	} finally {
		await postgres.stop();
	}
	return rows;
}
