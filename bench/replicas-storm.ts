import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../test/discord-double/index.ts";
import { type MainProcess, spawnMain } from "../test/support/main-process.ts";
import { startPostgres } from "../test/support/postgres.ts";
import { freePort } from "../test/support/proc.ts";
import { type BenchRow, round } from "./types.ts";

const CHANNEL = "400000000000000001";
const GROUPS = 50;
const ALERTS = 100;
/** AlertManager's next notification of each group after the kill: this many of its alerts resolved. */
const RESOLVED_LATER = 10;
/** The holder is killed once this many groups have their message (and the summary is up). */
const KILL_AFTER_POSTED = 15;
const POLL_MS = 100;
/** A storm over with Discord quiet this long will not change any more. */
const QUIET_MS = 20_000;
const TIMEOUT_MS = 300_000;
const BENCH = "replicas-storm";

const names = Array.from({ length: GROUPS }, (_, g) => `Rs${String(g).padStart(2, "0")}`);

/** A notification of `group`: ALERTS alerts, the last `resolved` of them resolved. */
function payload(group: string, resolved: number, startsAt: string): string {
	return JSON.stringify({
		version: "4",
		groupKey: `{}:{alertname="${group}"}`,
		status: "firing",
		receiver: "opsbot",
		groupLabels: { alertname: group },
		commonLabels: { alertname: group, severity: "warning" },
		commonAnnotations: { summary: `${group} is unhappy` },
		externalURL: "http://alertmanager.local:9093",
		alerts: Array.from({ length: ALERTS }, (_, i) => {
			const done = i >= ALERTS - resolved;
			return {
				status: done ? "resolved" : "firing",
				labels: { alertname: group, instance: `host-${i}` },
				annotations: {},
				startsAt,
				endsAt: done ? new Date().toISOString() : "0001-01-01T00:00:00Z",
				generatorURL: "",
				fingerprint: `${group}-${i}`,
			};
		}),
	});
}

const title = (m: StoredMessage) => String((m.embeds[0] as { title?: unknown } | undefined)?.title ?? "");
/** A group's card: "🟠 WARNING · Rs07". */
const cardsOf = (double: DiscordDouble, name: string) =>
	double.channelMessages(CHANNEL).filter((m) => title(m).split(" · ")[1] === name);
const summaries = (double: DiscordDouble) =>
	double.channelMessages(CHANNEL).filter((m) => /Alert storm/.test(title(m)));
const at = (process: MainProcess, msg: string) => {
	const line = process.logs().find((l) => l.msg === msg);
	return line ? Number(line.time) : undefined;
};

async function until(probe: () => boolean, timeoutMs: number, what: string): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!probe()) {
		if (Date.now() > deadline) throw new Error(`${BENCH}: ${what} not within ${timeoutMs / 1_000} s`);
		await new Promise((resolve) => setTimeout(resolve, POLL_MS));
	}
}

/**
 * Issue 21's storm into replicas: two `node src/main.ts` on one PostgreSQL state database, the gateway
 * lease at its defaults (15 s, renewed every 5 s), a Discord double at Discord's pace (5 message writes
 * per 5 s per channel). 50 groups of 100 alerts, their webhooks split between the replicas; once the
 * summary is up and 15 groups have their card, the holder is killed with SIGKILL while Discord holds
 * its next post (Discord takes it, the holder never hears so). AlertManager's next notification of
 * every group (10 of its alerts resolved) then goes to the survivor, which must take the gateway and
 * delivery over and finish the storm: each card once and up to date, one summary ending "over", no 429.
 */
export async function run(): Promise<BenchRow[]> {
	const token = randomBytes(24).toString("hex");
	const postgres = await startPostgres();
	const double = await startDiscordDouble({
		guild: { channels: [{ id: CHANNEL, name: "alerts" }] },
		channelRateLimit: { count: 5, windowMs: 5_000 },
	});
	const replicas: { process: MainProcess; url: string }[] = [];
	try {
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await admin.query("CREATE DATABASE opsbot_replicas_storm");
		await admin.end();
		const stateUrl = postgres.superuserUrl.replace(/\/appdb$/, "/opsbot_replicas_storm");
		for (const _ of [0, 1]) {
			const port = await freePort();
			const ops = `discord: { guildId: "${double.guildId}" }
environments: { production: {} }
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-replstorm-"))}
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
`;
			const main = spawnMain(ops, {
				LOG_LEVEL: "info",
				DISCORD_TOKEN: "double-token",
				DISCORD_APPLICATION_ID: double.applicationId,
				DISCORD_API_URL: double.apiUrl,
				STATE_DATABASE_URL: stateUrl,
				WEBHOOK_TOKEN: token,
			});
			replicas.push({ process: main, url: `http://127.0.0.1:${port}/alerts` });
			await until(
				() =>
					at(main, "alert receiver listening") !== undefined &&
					(at(main, "connected to Discord") ?? at(main, "standing by: another replica holds the Discord gateway")) !==
						undefined,
				30_000,
				"a replica's start",
			);
		}
		const [holder, standby] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
		if (at(holder.process, "connected to Discord") === undefined) throw new Error(`${BENCH}: the first is no holder`);

		const startsAt = new Date().toISOString();
		let refusedAtDeadReplica = 0;
		/** Posts to `first`; when it cannot be reached (killed), to the other, as AlertManager retries. */
		const notify = async (name: string, resolved: number, first: (typeof replicas)[0]) => {
			for (const target of first === holder ? [holder, standby] : [standby, holder]) {
				try {
					const res = await fetch(target.url, {
						method: "POST",
						headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
						body: payload(name, resolved, startsAt),
					});
					await res.arrayBuffer();
					if (res.status === 202) return;
					throw new Error(`webhook answered ${res.status}`);
				} catch (err) {
					if (target === standby) throw err;
					refusedAtDeadReplica++;
				}
			}
		};

		const started = performance.now();
		await Promise.all(names.map((name, i) => notify(name, 0, i % 2 === 0 ? holder : standby)));
		const posted = () => names.filter((n) => cardsOf(double, n).length > 0).length;
		await until(() => summaries(double).length > 0 && posted() >= KILL_AFTER_POSTED, TIMEOUT_MS, "mid-storm");
		const held = double.holdNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages` });
		await held.held;
		holder.process.child.kill("SIGKILL");
		await holder.process.exited;
		const killedAt = Date.now();
		const killedAtPerf = performance.now();
		const postedBeforeKill = posted();
		const requestsBeforeKill = double.requests.length;
		held.release();

		// The next notification of every group, split as before: the dead replica's share goes to the survivor.
		await Promise.all(names.map((name, i) => notify(name, RESOLVED_LATER, i % 2 === 0 ? holder : standby)));
		const upToDate = (n: string) =>
			cardsOf(double, n).some((m) => m.content.endsWith(`(${ALERTS - RESOLVED_LATER} of ${ALERTS})`));
		const over = () =>
			summaries(double).length > 0 && summaries(double).every((m) => /Alert storm over/.test(title(m)));
		// Until the storm is fully shown, or over with Discord quiet for a while (a card left out of date).
		let quietSince = performance.now();
		let seen = double.requests.length;
		const quiet = (ms: number) => {
			if (double.requests.length !== seen) [seen, quietSince] = [double.requests.length, performance.now()];
			return performance.now() - quietSince >= ms;
		};
		await until(
			() => (names.every(upToDate) && over()) || (over() && quiet(QUIET_MS)),
			TIMEOUT_MS,
			"the storm's end after the kill",
		);
		const shownAt = names.every(upToDate) ? performance.now() : undefined;
		// A barrier in time: anything still queued (a duplicate, a second summary) would be written by now.
		quietSince = performance.now();
		await until(() => quiet(6_000), TIMEOUT_MS, "Discord quiet");

		const tookOver = at(standby.process, "delivering alerts: this replica holds the gateway lease");
		// After the held post (the dead holder's, recorded once released): the survivor's first message write.
		const firstWriteAfter = double.requests
			.slice(requestsBeforeKill + 1)
			.find((r) => r.path.startsWith(`/channels/${CHANNEL}/messages`) && r.method !== "GET");
		const writes = double.requests.filter(
			(r) => r.path.startsWith(`/channels/${CHANNEL}/messages`) && r.method !== "GET",
		);
		const cards = names.map((n) => cardsOf(double, n));
		const note = `${GROUPS} groups x ${ALERTS} alerts split over 2 replicas, 5 writes / 5 s, lease 15 s / 5 s`;
		return [
			{
				bench: BENCH,
				metric: "Discord 429s",
				value: double.requests.filter((r) => r.status === 429).length,
				unit: "",
				note,
			},
			{
				bench: BENCH,
				metric: "groups lost (no card)",
				value: cards.filter((c) => c.length === 0).length,
				unit: "groups",
			},
			{
				bench: BENCH,
				metric: "groups doubled (several cards)",
				value: cards.filter((c) => c.length > 1).length,
				unit: "groups",
			},
			{
				bench: BENCH,
				metric: "cards not showing the last notification",
				value: names.filter((n) => !upToDate(n)).length,
				unit: "groups",
			},
			{
				bench: BENCH,
				metric: "summary messages",
				value: summaries(double).length,
				unit: "",
				note: summaries(double).map(title).join(" | "),
			},
			{
				bench: BENCH,
				metric: "groups with a card when the holder was killed",
				value: postedBeforeKill,
				unit: "groups",
				note: "plus one post Discord took that the holder never heard of",
			},
			{ bench: BENCH, metric: "webhooks refused by the dead replica, resent", value: refusedAtDeadReplica, unit: "" },
			{
				bench: BENCH,
				metric: "kill -9 -> survivor delivers",
				value: tookOver === undefined ? "never" : round((tookOver - killedAt) / 1_000),
				unit: "s",
				note: "its log 'delivering alerts: this replica holds the gateway lease'",
			},
			{
				bench: BENCH,
				metric: "kill -9 -> survivor's first Discord write",
				value: firstWriteAfter ? round((firstWriteAfter.at - killedAt) / 1_000) : "never",
				unit: "s",
			},
			{
				bench: BENCH,
				metric: "kill -9 -> storm fully shown",
				value: shownAt === undefined ? "never" : round((shownAt - killedAtPerf) / 1_000),
				unit: "s",
				note: "every card up to date, the summary 'over'",
			},
			{
				bench: BENCH,
				metric: "first webhook -> storm fully shown",
				value: shownAt === undefined ? "never" : round((shownAt - started) / 1_000),
				unit: "s",
			},
			{
				bench: BENCH,
				metric: "Discord message writes",
				value: writes.length,
				unit: "calls",
				note: `${GROUPS * 2} webhooks`,
			},
		];
	} finally {
		for (const r of replicas)
			if (r.process.child.exitCode === null && r.process.child.signalCode === null) {
				r.process.child.kill("SIGTERM");
				await r.process.exited;
			}
		await double.close();
		await postgres.stop();
	}
}
