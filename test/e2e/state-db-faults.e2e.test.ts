import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { freshStateDatabase } from "../alerts/state-database.ts";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { payload } from "../support/alert-fixtures.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { ownMessages, title } from "../support/storm.ts";

const CHANNEL = "400000000000000001";

/**
 * The shipped process on a PostgreSQL state database (STATE_DATABASE_URL) whose connections a DBA keeps terminating.
 */
describe("the state database drops connections under webhook load", () => {
	const postgres = inject("postgres");
	let double: DiscordDouble;
	let bot: TestBot;
	let token: string;
	let stateDatabase: string;

	beforeAll(async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
		token = randomBytes(24).toString("hex");
		const stateUrl = await freshStateDatabase("opsbot_state_faults");
		stateDatabase = new URL(stateUrl).pathname.slice(1);
		const ops =
			`discord: { guildId: "${double.guildId}" }\nenvironments: { production: {} }\nalerts:\n` +
			`  listen: { host: 127.0.0.1, port: 0 }\n  defaultChannel: "${CHANNEL}"\n`;
		bot = await startTestBot(double, ops, { WEBHOOK_TOKEN: token, STATE_DATABASE_URL: stateUrl, LOG_LEVEL: "info" });
	});
	const post = async (group: string) => {
		const body = JSON.stringify(
			payload(1, {
				groupKey: group,
				groupLabels: { alertname: group },
				commonLabels: { alertname: group, severity: "warning" },
				commonAnnotations: {},
			}),
		);
		const res = await fetch(`${bot.webhookUrl}/alerts`, {
			method: "POST",
			headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
			body,
		});
		await res.arrayBuffer();
		return res.status;
	};
	/**
	 * Waits for a card of every group in `groups`, failing once none came for `stallMs`. How many groups
	 * were accepted depends on the machine's speed (4 senders for 3 s; 631 on one run here, posted in 28 s),
	 * so a fixed deadline fails a fast machine yet waits long for a stalled delivery.
	 */
	const allPosted = async (groups: readonly string[], stallMs: number) => {
		let posted = 0;
		let progressAt = Date.now();
		for (;;) {
			const names = new Set(double.channelMessages(CHANNEL).map((m) => title(m).split(" · ")[1]));
			const missing = groups.filter((g) => !names.has(g));
			if (missing.length === 0) return;
			if (groups.length - missing.length > posted) [posted, progressAt] = [groups.length - missing.length, Date.now()];
			if (Date.now() - progressAt > stallMs)
				throw new Error(
					`no card for ${missing.length} of ${groups.length} accepted groups, none new for ${stallMs} ms: ` +
						`${missing.slice(0, 5).join(", ")}`,
				);
			await new Promise((resolve) => setTimeout(resolve, 100));
		}
	};
	afterAll(async () => {
		await bot?.kill();
		await double?.close();
	});

	it(
		"with the store's tables locked, /metrics still scrapes (store figures NaN, readable 0) and /readyz says " +
			"not writable",
		async () => {
			const sample = (text: string, series: string) =>
				text
					.split("\n")
					.find((l) => l.startsWith(`${series} `))
					?.slice(series.length + 1);
			const scrape = async () => {
				const res = await fetch(`${bot.webhookUrl}/metrics`);
				return { status: res.status, text: await res.text() };
			};
			const ready = async () => {
				const res = await fetch(`${bot.webhookUrl}/readyz`);
				return [res.status, await res.json()] as const;
			};
			expect(await post("BeforeLock")).toBe(202);
			expect((await scrape()).status).toBe(200);
			const locker = new pg.Client({
				connectionString: postgres.superuserUrl.replace(/\/appdb$/, `/${stateDatabase}`),
			});
			await locker.connect();
			await locker.query("BEGIN");
			// Groups first, as the store locks them: the other order could deadlock with a delivery in flight.
			await locker.query("LOCK TABLE opsbot_state.groups, opsbot_state.outbox IN ACCESS EXCLUSIVE MODE");
			let locked: { status: number; text: string };
			let readyLocked: Awaited<ReturnType<typeof ready>>;
			try {
				// Past the 1 s the last scrape's figures are reused for.
				await new Promise((resolve) => setTimeout(resolve, 1_100));
				[locked, readyLocked] = await Promise.all([scrape(), ready()]);
			} finally {
				await locker.end();
			}

			expect(locked.status).toBe(200);
			expect(sample(locked.text, "opsbot_alert_store_readable")).toBe("0");
			// prom-client spells NaN so; Prometheus reads it in any case
			expect(sample(locked.text, 'opsbot_alert_groups{state="firing"}')).toBe("Nan");
			expect(locked.text).toContain("process_resident_memory_bytes");
			expect(locked.text).toContain("opsbot_discord_gateway_connected 1");
			expect(readyLocked).toEqual([503, { discord: "connected", store: "not writable" }]);
			await vi.waitFor(async () => expect(sample((await scrape()).text, "opsbot_alert_store_readable")).toBe("1"), {
				timeout: 15_000,
				interval: 200,
			});
			expect(await ready()).toEqual([200, { discord: "connected", store: "writable" }]);
			expect(
				bot.logs().filter((l) => String(l.msg).startsWith("could not read the alert store's figures")),
			).toHaveLength(1);
		},
	);

	it("stays up: every webhook answered 202 is posted, the others got a 5xx for AlertManager to retry", async () => {
		const dba = new pg.Client({ connectionString: postgres.superuserUrl });
		await dba.connect();
		const answers = new Map<string, number>();
		let terminated = 0;
		let sending = true;
		const sender = async (n: number) => {
			for (let i = 0; sending; i++) answers.set(`Drop${n}x${i}`, await post(`Drop${n}x${i}`));
		};
		const senders = [0, 1, 2, 3].map(sender);
		// 12 rounds, a quarter of a second apart: each lands inside a transaction or between them.
		for (let round = 0; round < 12; round++) {
			await new Promise((resolve) => setTimeout(resolve, 250));
			const { rows } = await dba.query<{ n: number }>(
				"SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity " +
					"WHERE datname = $1 AND application_name = 'opsbot-state'",
				[stateDatabase],
			);
			terminated += rows[0]!.n;
		}
		sending = false;
		await Promise.all(senders);
		await dba.end();
		const accepted = [...answers].filter(([, status]) => status === 202).map(([group]) => group);
		await allPosted(accepted, 20_000);

		expect(terminated).toBeGreaterThanOrEqual(6);
		expect(bot.process.child.exitCode).toBeNull();
		expect(accepted.length).toBeGreaterThan(4);
		expect([...answers.values()].filter((status) => status !== 202 && status < 500)).toEqual([]);
		for (const g of accepted) expect(ownMessages(double, CHANNEL, g), g).toHaveLength(1);
		// The bot still takes webhooks on fresh connections.
		expect(await post("AfterDrops")).toBe(202);
	}, 90_000);
});
