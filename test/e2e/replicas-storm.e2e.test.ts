import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { payload } from "../support/alert-fixtures.ts";
import { type Replica, relayReplicaOps, startReplica, until } from "../support/replicas.ts";
import { fastChannelRateLimit, ownMessages, requestTitle, stormOver, summaries, title } from "../support/storm.ts";

const CHANNEL = "400000000000000001";
const GROUPS = 50;
const webhookToken = randomBytes(24).toString("hex");

/**
 * Issue 21's "one deliverer across replicas", through two shipped processes on one PostgreSQL: a storm
 * whose webhooks are split between the replicas, and kill -9 of the gateway holder while the storm is
 * being shown. The standby takes the gateway and delivery over and finishes the storm: every group once,
 * one summary (the same message, edited), no 429.
 */
describe("a storm into two replicas survives kill -9 of the holder mid-storm", () => {
	const postgres = inject("postgres");
	let double: DiscordDouble;
	let stateUrl: string;
	let a: Replica;
	let b: Replica;

	const startReplicaOnState = () =>
		startReplica(double, relayReplicaOps(double.guildId, CHANNEL), {
			STATE_DATABASE_URL: stateUrl,
			WEBHOOK_TOKEN: webhookToken,
		});

	beforeAll(async () => {
		const database = `opsbot_replstorm_${process.pid}`;
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await admin.query(`CREATE DATABASE ${database}`);
		await admin.end();
		stateUrl = postgres.superuserUrl.replace(/\/appdb$/, `/${database}`);
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
	});

	const post = (r: Replica, name: string, alerts: number) =>
		fetch(`${r.webhookUrl}/alerts`, {
			method: "POST",
			headers: { authorization: `Bearer ${webhookToken}`, "content-type": "application/json" },
			body: JSON.stringify(
				payload(alerts, {
					groupKey: name,
					groupLabels: { alertname: name },
					commonLabels: { alertname: name, severity: "warning" },
				}),
			),
		}).then((res) => res.status);

	it("the standby takes over and finishes it: each group once and up to date, one summary ending over, no 429", {
		timeout: 120_000,
	}, async () => {
		const names = Array.from({ length: GROUPS }, (_, i) => `Rs${String(i).padStart(2, "0")}`);
		const posted = () => names.filter((n) => ownMessages(double, CHANNEL, n).length > 0).length;
		expect([a.logged("connected to Discord"), b.logged("connected to Discord")]).toEqual([true, false]);

		const first = await Promise.all(names.map((name, i) => post(i % 2 === 0 ? a : b, name, 2)));
		// Mid-storm: the summary is up and some groups have their message, most do not yet.
		await until(
			() => summaries(double, CHANNEL).length > 0 && posted() >= 5,
			60_000,
			() => a.process.output().slice(-3_000),
		);
		const postedBeforeKill = posted();
		const cardedBeforeKill = names.filter((n) => ownMessages(double, CHANNEL, n).length > 0);
		const summaryId = summaries(double, CHANNEL)[0]!.id;
		// Discord takes the holder's next card but answers only once the holder is dead: it never hears
		// it was posted, so its claim on the group is all the store knows.
		const held = double.holdNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages` });
		await held.held;
		a.process.child.kill("SIGKILL");
		await a.process.exited;
		const killedAt = Date.now();
		const seen = double.requests.length;
		held.release();
		const unrecorded = await double.waitFor(() => {
			const post = double.requests.slice(seen).find((r) => r.method === "POST" && r.status !== 0);
			return post && requestTitle(post).split(" · ")[1];
		}, 10_000);
		// AlertManager's next notification of every group (one more alert) reaches the survivor only.
		const second = await Promise.all(names.map((name) => post(b, name, 3)));
		await until(
			() => b.logged("delivering alerts: this replica holds the gateway lease"),
			40_000,
			() => b.process.output().slice(-3_000),
		);
		const tookOverMs = Date.now() - killedAt;
		// Each card counts three alerts once the second notification reached it.
		const upToDate = (n: string) => ownMessages(double, CHANNEL, n).some((m) => m.content.endsWith("(3 of 3)"));
		await until(
			() => names.every(upToDate) && stormOver(double, CHANNEL),
			90_000,
			() =>
				JSON.stringify({
					stale: names.filter((n) => !upToDate(n)),
					summaries: summaries(double, CHANNEL).map(title),
					sample: ownMessages(double, CHANNEL, names[0]!).map((m) => m.content),
				}).slice(0, 4_000) +
				b.process
					.logs()
					.filter((l) => Number(l.level) >= 30 && l.svc !== "alert-receiver")
					.slice(-40)
					.map((l) => JSON.stringify(l))
					.join("\n"),
		);

		// Within the lease (6 s) and a renewal (2 s), plus a loaded machine's slack.
		expect(tookOverMs).toBeLessThan(30_000);
		expect(postedBeforeKill).toBeLessThan(GROUPS);
		expect(names).toContain(unrecorded);
		expect([...first, ...second].every((s) => s === 202)).toBe(true);
		expect(names.filter((n) => ownMessages(double, CHANNEL, n).length !== 1)).toEqual([]);
		// The dead holder's cards and summary are edited by the survivor, never posted again.
		const afterKill = double.requests.filter((r) => r.at >= killedAt && r.path.startsWith(`/channels/${CHANNEL}/`));
		const postedAgain = afterKill.filter(
			(r) => r.method === "POST" && cardedBeforeKill.includes(requestTitle(r).split(" · ")[1] ?? ""),
		);
		expect(postedAgain).toEqual([]);
		expect(afterKill.some((r) => r.method === "PATCH" && r.path.endsWith(`/${summaryId}`))).toBe(true);
		expect(summaries(double, CHANNEL).map((m) => m.id)).toEqual([summaryId]);
		expect(title(summaries(double, CHANNEL)[0]!)).toMatch(/Alert storm over/);
		expect(double.requests.filter((r) => r.status === 429).map((r) => `${r.method} ${requestTitle(r)}`)).toEqual([]);
	});
});
