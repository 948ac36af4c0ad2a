import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { MAX_EPISODE_EVENTS, pruneHistory } from "../../src/alerts/episodes.ts";
import { openPostgresAlertStore } from "../../src/alerts/pg-store.ts";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import { type AlertStore, groupId } from "../../src/alerts/store.ts";
import { POSTGRES_MIGRATIONS } from "../../src/state/postgres.ts";
import { SQLITE_MIGRATIONS } from "../../src/state/sqlite.ts";
import { freshStateDatabase } from "./state-database.ts";

const CHANNEL = "400000000000000001";
const T0 = Date.parse("2026-11-24T12:00:00Z");
const ZERO = "0001-01-01T00:00:00Z";
const iso = (ms: number) => new Date(ms).toISOString();

/** A webhook of group `name` whose alerts are [fingerprint, status, endsAt?]. */
function webhook(
	name: string,
	alerts: readonly (readonly [string, "firing" | "resolved", number?])[],
	extra: Record<string, string> = {},
): WebhookPayload {
	const status = alerts.some(([, s]) => s === "firing") ? "firing" : "resolved";
	return WebhookPayload.parse({
		version: "4",
		groupKey: `{}:{alertname="${name}"}`,
		status,
		receiver: "opsbot",
		groupLabels: { alertname: name },
		commonLabels: { alertname: name, severity: "critical", env: "prod", ...extra },
		externalURL: "http://alertmanager.local:9093",
		alerts: alerts.map(([fingerprint, s, endsAt]) => ({
			status: s,
			labels: { alertname: name, severity: "critical", env: "prod", instance: fingerprint, ...extra },
			startsAt: iso(T0),
			endsAt: endsAt ? iso(endsAt) : ZERO,
			fingerprint,
		})),
	});
}

const stores: [string, () => Promise<AlertStore>][] = [
	["SQLite", async () => openAlertStore(join(mkdtempSync(join(tmpdir(), "opsbot-episodes-")), "alerts.sqlite"))],
	["PostgreSQL", async () => openPostgresAlertStore(await freshStateDatabase(), pino({ level: "silent" }))],
];

describe.each(stores)("episode history in the %s store", (_name, open) => {
	const target = [{ channel: CHANNEL }];
	const id = (name: string) => groupId("opsbot", `{}:{alertname="${name}"}`, CHANNEL);

	it("records an episode from firing to resolved, the resolution with the alerts' own end", async () => {
		const store = await open();
		await store.accept(webhook("ApiDown", [["a1", "firing"]]), target, T0 + 1_000);
		await store.accept(
			webhook("ApiDown", [
				["a1", "firing"],
				["a2", "firing"],
			]),
			target,
			T0 + 60_000,
		);
		await store.history.record({
			groupId: id("ApiDown"),
			episode: 1,
			at: T0 + 120_000,
			kind: "acknowledged",
			actor: { userId: "200000000000000011", username: "olivia" },
			details: {},
		});
		await store.accept(
			webhook("ApiDown", [
				["a1", "resolved", T0 + 170_000],
				["a2", "firing"],
			]),
			target,
			T0 + 180_000,
		);
		// The alerts ended at 12:05; AlertManager told opsbot at 12:09.
		await store.accept(
			webhook("ApiDown", [
				["a1", "resolved", T0 + 170_000],
				["a2", "resolved", T0 + 300_000],
			]),
			target,
			T0 + 540_000,
		);

		const events = await store.history.events(id("ApiDown"), 1, 100);
		expect(events.map((e) => [e.kind, e.at, e.actor?.username ?? null])).toEqual([
			["fired", T0 + 1_000, null],
			["joined", T0 + 60_000, null],
			["acknowledged", T0 + 120_000, "olivia"],
			["alerts_resolved", T0 + 180_000, null],
			["resolved", T0 + 540_000, null],
		]);
		expect(events[1]?.details.alerts?.map((a) => a.fingerprint)).toEqual(["a2"]);
		expect(events[3]?.details.alerts?.map((a) => [a.fingerprint, a.endsAt])).toEqual([["a1", iso(T0 + 170_000)]]);
		expect(events[4]?.details.durationMs).toBe(300_000);
		expect(await store.history.episode(id("ApiDown"))).toMatchObject({
			episode: 1,
			name: "ApiDown",
			environment: "prod",
			severity: "critical",
			startedAt: T0,
			endedAt: T0 + 300_000,
			ackedAt: T0 + 120_000,
			ackedBy: "olivia",
			eventCount: 5,
		});
		await store.close();
	});

	it("opens a new episode when the group fires again, linking the previous one; retries add nothing", async () => {
		const store = await open();
		await store.accept(webhook("DbSlow", [["d1", "firing"]]), target, T0);
		await store.accept(webhook("DbSlow", [["d1", "firing"]]), target, T0 + 5_000); // a retry
		await store.accept(webhook("DbSlow", [["d1", "resolved", T0 + 60_000]]), target, T0 + 70_000);
		await store.accept(webhook("DbSlow", [["d1", "firing"]]), target, T0 + 600_000);

		expect((await store.history.events(id("DbSlow"), 1, 10)).map((e) => e.kind)).toEqual(["fired", "resolved"]);
		const second = await store.history.events(id("DbSlow"), 2, 10);
		expect(second.map((e) => [e.kind, e.details.previousEpisode])).toEqual([["fired", 1]]);
		expect((await store.history.episode(id("DbSlow")))?.episode).toBe(2);
		await store.close();
	});

	it("records a resolution by hand (silence watch) as the end of the episode", async () => {
		const store = await open();
		await store.accept(webhook("Quiet", [["q1", "firing"]]), target, T0);
		const group = (await store.group(id("Quiet")))!;

		expect(await store.resolveGroup(id("Quiet"), group.signature, T0 + 90_000)).toBe(true);

		expect((await store.history.events(id("Quiet"), 1, 10)).map((e) => e.kind)).toEqual(["fired", "resolved"]);
		expect((await store.history.episode(id("Quiet")))?.endedAt).toBe(T0 + 90_000);
		await store.close();
	});

	it("lists what fires now by environment, severity and name, with who acknowledged and silenced it", async () => {
		const store = await open();
		await store.accept(webhook("ApiDown", [["a1", "firing"]]), target, T0);
		await store.accept(webhook("DiskFull", [["f1", "firing"]], { severity: "warning" }), target, T0);
		await store.accept(webhook("Staging", [["s1", "firing"]], { env: "staging" }), target, T0);
		await store.accept(webhook("Gone", [["g1", "resolved", T0]]), target, T0);
		await store.setAck(id("ApiDown"), { userId: "1", username: "olivia", at: T0 + 1 });
		await store.setSilence(id("DiskFull"), { id: "s", username: "adam", until: T0 + 3_600_000 });

		const all = await store.history.firing({}, 0, 10);
		expect(all.total).toBe(3);
		expect(all.episodes.map((e) => e.name)).toEqual(["ApiDown", "Staging", "DiskFull"]);
		expect(all.episodes[0]?.ack).toEqual({ username: "olivia", at: T0 + 1 });
		expect(all.episodes[2]?.silence).toEqual({ username: "adam", until: T0 + 3_600_000 });
		expect((await store.history.firing({ environment: "prod" }, 0, 10)).total).toBe(2);
		expect((await store.history.firing({ severity: "warning" }, 0, 10)).episodes.map((e) => e.name)).toEqual([
			"DiskFull",
		]);
		expect((await store.history.firing({ name: "apid" }, 0, 10)).episodes.map((e) => e.name)).toEqual(["ApiDown"]);
		const page2 = await store.history.firing({}, 2, 2);
		expect([page2.total, page2.episodes.map((e) => e.name)]).toEqual([3, ["DiskFull"]]);
		await store.close();
	});

	it("sums up a range: counts per name, flapping groups, mean time to acknowledge and to resolve", async () => {
		const store = await open();
		for (let i = 0; i < 3; i++) {
			const start = T0 + i * 3_600_000;
			const flap = webhook("Flappy", [["x", "firing"]]);
			await store.accept({ ...flap, alerts: [{ ...flap.alerts[0]!, startsAt: iso(start) }] }, target, start);
			await store.history.record({
				groupId: id("Flappy"),
				episode: i + 1,
				at: start + (i + 1) * 60_000,
				kind: "acknowledged",
				actor: { userId: "1", username: "olivia" },
				details: {},
			});
			await store.accept(webhook("Flappy", [["x", "resolved", start + 600_000]]), target, start + 600_000);
		}
		await store.accept(webhook("Steady", [["y", "firing"]]), target, T0);

		const summary = await store.history.history({ since: T0 - 1, until: T0 + 86_400_000, limit: 2 });

		expect(summary).toMatchObject({
			total: 4,
			acknowledged: 3,
			resolved: 3,
			meanTimeToAckMs: 120_000,
			meanTimeToResolveMs: 600_000,
			byName: [
				{ name: "Flappy", episodes: 3, firing: 0 },
				{ name: "Steady", episodes: 1, firing: 1 },
			],
			flapping: [{ groupId: id("Flappy"), name: "Flappy", environment: "prod", episodes: 3 }],
		});
		expect(summary.episodes.map((e) => [e.name, e.episode])).toEqual([
			["Flappy", 3],
			["Flappy", 2],
		]);
		const named = await store.history.history({ since: T0 - 1, until: T0 + 86_400_000, name: "stead", limit: 5 });
		expect([named.total, named.byName.map((n) => n.name)]).toEqual([1, ["Steady"]]);
		await store.close();
	});

	it("prunes ended episodes past the retention with their events, in batches, and keeps firing ones", async () => {
		const store = await open();
		for (let i = 0; i < 5; i++) {
			const name = `Old${i}`;
			await store.accept(webhook(name, [["o", "firing"]]), target, T0);
			await store.accept(webhook(name, [["o", "resolved", T0 + 60_000]]), target, T0 + 60_000);
		}
		await store.accept(webhook("StillFiring", [["s", "firing"]]), target, T0);
		const now = T0 + 91 * 86_400_000;

		expect(await store.history.prune(now - 90 * 86_400_000, 2)).toBe(2);
		expect(await pruneHistory(store.history, 90, now)).toBe(3);

		expect(await store.history.episode(id("Old4"))).toBeUndefined();
		expect(await store.history.events(id("Old4"), 1, 10)).toEqual([]);
		expect((await store.history.episode(id("StillFiring")))?.endedAt).toBeNull();
		await store.close();
	});

	it("stops storing an episode's events at the cap, except its resolution", async () => {
		const store = await open();
		await store.accept(webhook("Busy", [["b", "firing"]]), target, T0);
		for (let i = 1; i < MAX_EPISODE_EVENTS + 5; i++)
			await store.history.record({
				groupId: id("Busy"),
				episode: 1,
				at: T0 + i,
				kind: i % 2 ? "acknowledged" : "unacknowledged",
				actor: { userId: "1", username: "olivia" },
				details: {},
			});
		await store.accept(webhook("Busy", [["b", "resolved", T0 + 60_000]]), target, T0 + 60_000);

		const events = await store.history.events(id("Busy"), 1, MAX_EPISODE_EVENTS + 10);
		expect(events).toHaveLength(MAX_EPISODE_EVENTS + 1);
		expect(events.at(-1)?.kind).toBe("resolved");
		await store.close();
	}, 60_000);
});

/** The one migration of a backend's list that creates the history (wherever later ones put it). */
function historyMigration(migrations: readonly string[], marker: string): string {
	const found = migrations.filter((sql) => sql.includes(marker));
	expect(found).toHaveLength(1);
	return found[0]!;
}

describe("the episodes migration", () => {
	const target = [{ channel: CHANNEL }];
	const id = groupId("opsbot", '{}:{alertname="Old"}', CHANNEL);
	async function seed(store: AlertStore): Promise<void> {
		await store.accept(webhook("Old", [["o1", "firing"]]), target, T0);
		await store.accept(webhook("Gone", [["g1", "resolved", T0]]), target, T0);
		await store.setAck(id, { userId: "1", username: "olivia", at: T0 + 60_000 });
		await store.close();
	}
	const expectBackfilled = async (store: AlertStore) => {
		const firing = await store.history.firing({}, 0, 10);
		expect(firing.episodes.map((e) => [e.name, e.environment, e.severity, e.startedAt, e.ackedBy])).toEqual([
			["Old", "prod", "critical", T0, "olivia"],
		]);
		await store.close();
	};

	it("gives SQLite groups firing before it an open episode, so /alerts lists them at once", async () => {
		const path = join(mkdtempSync(join(tmpdir(), "opsbot-episodes-")), "alerts.sqlite");
		await seed(openAlertStore(path));
		// Back to the schema before the history, as an older opsbot left it, then the history's migration.
		const db = new DatabaseSync(path);
		db.exec("DROP TABLE episodes; DROP TABLE episode_events;");
		db.exec(historyMigration(SQLITE_MIGRATIONS, "CREATE TABLE episodes ("));
		db.close();

		await expectBackfilled(openAlertStore(path));
	});

	it("gives PostgreSQL groups firing before it an open episode", async () => {
		const url = await freshStateDatabase("opsbot_episodes_migration");
		const log = pino({ level: "silent" });
		await seed(await openPostgresAlertStore(url, log));
		const old = new pg.Client({ connectionString: url });
		await old.connect();
		await old.query("DROP TABLE opsbot_state.episodes, opsbot_state.episode_events");
		await old.query(historyMigration(POSTGRES_MIGRATIONS, "CREATE TABLE opsbot_state.episodes ("));
		await old.end();

		await expectBackfilled(await openPostgresAlertStore(url, log));
	});
});

/** Opens a store of each backend and a way to delete its episodes' rows behind its back. */
const storesWithEpisodes: [string, () => Promise<{ store: AlertStore; deleteEpisodes: () => Promise<void> }>][] = [
	[
		"SQLite",
		async () => {
			const path = join(mkdtempSync(join(tmpdir(), "opsbot-episodes-")), "alerts.sqlite");
			return {
				store: openAlertStore(path),
				deleteEpisodes: async () => new DatabaseSync(path).exec("DELETE FROM episodes"),
			};
		},
	],
	[
		"PostgreSQL",
		async () => {
			const url = await freshStateDatabase("opsbot_episodes_lost");
			const deleteEpisodes = async () => {
				const client = new pg.Client({ connectionString: url });
				await client.connect();
				await client.query("DELETE FROM opsbot_state.episodes");
				await client.end();
			};
			return { store: await openPostgresAlertStore(url, pino({ level: "silent" })), deleteEpisodes };
		},
	],
];

describe.each(storesWithEpisodes)("a firing group without its episode's row in the %s history", (_name, open) => {
	it("is listed for a storm summary from its payload", async () => {
		const { store, deleteEpisodes } = await open();
		await store.accept(
			webhook("Lost", [
				["l1", "firing"],
				["l2", "firing"],
				["l3", "resolved", T0],
			]),
			[{ channel: CHANNEL }],
			T0,
		);
		await deleteEpisodes();

		expect((await store.firingGroups(CHANNEL)).map((g) => g.facts)).toEqual([
			{ name: "Lost", environment: "prod", severity: "critical", firing: 2 },
		]);
		await store.close();
	});
});
