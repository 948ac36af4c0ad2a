import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import { payload } from "../support/alert-fixtures.ts";
import { startPgBouncer, type TestPgBouncer } from "../support/pgbouncer.ts";
import { type Replica, relayReplicaOps, SHORT_LEASE, startReplica, until } from "../support/replicas.ts";
import { fastChannelRateLimit, ownMessages, stormSize } from "../support/storm.ts";

const CHANNEL = "400000000000000001";
const webhookToken = randomBytes(24).toString("hex");
// How often a standby replica asks for the gateway lease (the ops file's replicas.renewSeconds).
const STANDBY_POLL_MS = SHORT_LEASE.renewSeconds * 1_000;

const title = (m: StoredMessage) => String((m.embeds[0] as { title?: string } | undefined)?.title ?? "");

/**
 * D2 and D7: two replicas whose state database is reached through PgBouncer in transaction mode (a
 * real PgBouncer). Exactly one holds the gateway and delivers; kill -9 of it hands both over.
 */
describe("two replicas behind PgBouncer in transaction mode", () => {
	const postgres = inject("postgres");
	let pgbouncer: TestPgBouncer;
	let double: DiscordDouble;
	let a: Replica;
	let b: Replica;
	let stateUrl: string;

	const startReplicaOnState = () =>
		startReplica(
			double,
			relayReplicaOps(double.guildId, CHANNEL),
			{ STATE_DATABASE_URL: stateUrl, WEBHOOK_TOKEN: webhookToken },
			20_000,
		);

	beforeAll(async () => {
		const database = `opsbot_pgb_replicas_${process.pid}`;
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await admin.query(`CREATE DATABASE ${database} OWNER opsbot`);
		await admin.end();
		// One server connection: every replica's statements share it, as they may with any pool size (PgBouncer picks any).
		pgbouncer = await startPgBouncer(postgres, { databases: [database], poolSize: 1 });
		const password = encodeURIComponent(postgres.passwords.opsbot);
		stateUrl = `postgres://opsbot:${password}@127.0.0.1:${pgbouncer.port}/${database}`;
		double = await startDiscordDouble({
			guild: { channels: [{ id: CHANNEL, name: "alerts" }] },
			channelRateLimit: fastChannelRateLimit,
		});
		a = await startReplicaOnState();
		b = await startReplicaOnState();
	}, 60_000);
	afterAll(async () => {
		for (const r of [a, b]) {
			if (r && r.process.child.exitCode === null && r.process.child.signalCode === null) {
				r.process.child.kill("SIGTERM");
				await r.process.exited;
			}
		}
		await double?.close();
		await pgbouncer?.stop();
	});

	const post = (r: Replica, name: string) =>
		fetch(`${r.webhookUrl}/alerts`, {
			method: "POST",
			headers: { authorization: `Bearer ${webhookToken}`, "content-type": "application/json" },
			body: JSON.stringify(
				payload(2, {
					groupKey: name,
					groupLabels: { alertname: name },
					commonLabels: { alertname: name, severity: "warning" },
				}),
			),
		}).then((res) => res.status);

	it("sends one storm summary and no 429 for a storm's groups split between the replicas, each group posted once", {
		timeout: 120_000,
	}, async () => {
		const names = Array.from({ length: stormSize(fastChannelRateLimit) }, (_, i) => `Split${i}`);

		const statuses = await Promise.all(names.map((name, i) => post(i % 2 === 0 ? a : b, name)));
		const summaries = () => double.channelMessages(CHANNEL).filter((m) => title(m).includes("Alert storm"));
		await double.waitFor(
			() =>
				names.every((n) => ownMessages(double, CHANNEL, n).length > 0) &&
				summaries().some((m) => /Alert storm over/.test(title(m))),
			90_000,
		);

		expect(statuses.every((s) => s === 202)).toBe(true);
		expect(summaries()).toHaveLength(1);
		expect(double.requests.filter((r) => r.status === 429)).toEqual([]);
		for (const n of names) expect(ownMessages(double, CHANNEL, n), n).toHaveLength(1);
	});

	it("lets exactly one replica hold the gateway: one gateway session, the other stands by", async () => {
		// A standby asks for the lease every renewSeconds: once a full poll and a bit
		// have passed since b stood by, a second holder would have connected. After the storm test above
		// that time has passed already; run alone, this waits for it.
		const stoodBy = b.process.logs().find((l) => l.msg === "standing by: another replica holds the Discord gateway");
		await until(() => Date.now() >= Number(stoodBy?.time) + STANDBY_POLL_MS + 1_000, STANDBY_POLL_MS + 2_000);

		expect(stoodBy).toBeDefined();
		expect(double.gatewaySessions()).toBe(1);
		expect([a.logged("connected to Discord"), b.logged("connected to Discord")]).toEqual([true, false]);
	});

	it("hands the gateway and delivery to the standby after kill -9 of the holder", { timeout: 60_000 }, async () => {
		a.process.child.kill("SIGKILL");
		await a.process.exited;
		await until(
			() => b.logged("connected to Discord"),
			30_000,
			() => b.process.output().slice(-3_000),
		);
		const status = await post(b, "AfterTakeover");
		await double.waitFor(() => ownMessages(double, CHANNEL, "AfterTakeover").length > 0, 20_000);

		expect(status).toBe(202);
		expect(double.gatewaySessions()).toBe(1);
	});
});
