import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { type HeldConnections, openConnections } from "../support/db.ts";
import { startPgBouncer, type TestPgBouncer } from "../support/pgbouncer.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";

const ONCALL = "300000000000000001";
const ADMIN = "300000000000000002";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// A PostgreSQL and PgBouncer of this file's own, not the run's shared ones: /pool reads the whole server
// (pg_stat_activity, SHOW POOLS), so another file's session idle in transaction would be counted as a cause.
describe("/pool end to end: the Discord double, real PostgreSQL and PgBouncer", () => {
	let postgres: TestPostgres;
	let pgbouncer: TestPgBouncer;
	let double: DiscordDouble;
	let bot: TestBot;
	let idle: HeldConnections;
	// A database besides appdb: termination only ever touches the configured database.
	const database = "e2e_pool";
	const url = (base: string) => base.replace(/\/appdb$/, `/${database}`);

	beforeAll(async () => {
		postgres = await startPostgres();
		pgbouncer = await startPgBouncer(postgres);
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await admin.query(`CREATE DATABASE ${database} OWNER app`);
		await admin.end();
		idle = await openConnections(url(postgres.appUrl), 4, { applicationName: "e2e-idle" });
		double = await startDiscordDouble({
			guild: {
				roles: [
					{ id: ONCALL, name: "oncall" },
					{ id: ADMIN, name: "admins" },
				],
			},
		});
		bot = await startTestBot(
			double,
			`discord:
  guildId: "${double.guildId}"
  roles: { oncall: "${ONCALL}", admins: "${ADMIN}" }
access:
  commands: { pool: [oncall, admins] }
  actions: { pool.terminate: [admins] }
environments:
  production:
    postgres: { urlEnv: PROD_DATABASE_URL }
    pgbouncer: { adminUrlEnv: PROD_PGBOUNCER_ADMIN_URL }
pool: { idleMinutes: 0.05, idleInTransactionMinutes: 0.05 }
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-state-"))}
`,
			{ PROD_DATABASE_URL: url(postgres.opsbotUrl), PROD_PGBOUNCER_ADMIN_URL: pgbouncer.statsUrl },
		);
	});
	afterAll(async () => {
		await bot?.stop();
		await double?.close();
		await idle?.close();
		await pgbouncer?.stop();
		await postgres?.stop();
	});

	async function poolMessage() {
		const sent = await double.sendInteraction({ kind: "command", name: "pool", user: { roles: [ONCALL] } });
		expect((await sent.response()).type).toBe(5);
		return double.waitFor(() =>
			double.originalMessage(sent.id)?.embeds.length ? double.originalMessage(sent.id) : undefined,
		);
	}

	it("shows usage, the application breakdown, PgBouncer's pools and a chart", async () => {
		await poolMessage(); // a second sample, so the chart has a line
		const message = await poolMessage();

		const embed = message.embeds[0] as {
			title: string;
			fields: { name: string; value: string }[];
			image?: { url: string };
		};
		expect(embed.title).toMatch(/^Connections on production: \d+ \/ 97 used \(\d+ %\)$/);
		expect(embed.fields.find((f) => f.name === "By application and address")?.value).toContain(
			"`e2e-idle` 127.0.0.1: 4",
		);
		expect(embed.fields.find((f) => f.name === "PgBouncer pools")).toBeDefined();
		expect(embed.image?.url).toBe("attachment://pool.png");
		expect(message.files[0]).toMatchObject({ name: "pool.png", contentType: "image/png" });
		expect(JSON.stringify(message.components)).toContain("pool:refresh:production");
	});

	it("refuses the terminate button to a role without pool.terminate, and records the refusal", async () => {
		const message = await poolMessage();

		const press = await double.sendInteraction({
			kind: "button",
			customId: "pool:terminate:production",
			messageId: message.id,
			user: { id: "200000000000000005", roles: [ONCALL] },
		});
		const response = await press.response();
		const refusals = await bot.actionLog.recent(5, { userId: "200000000000000005" });

		expect(response).toMatchObject({ type: 4, data: { flags: 64 } });
		expect(String(response.data?.content)).toContain("You are not allowed to use pool.terminate");
		expect(refusals[0]).toMatchObject({ action: "pool.terminate", result: "refused: role not allowed" });
	});

	it("confirms with exactly the sessions, ends them on confirm, and refuses a forged or reused token", async () => {
		await using victims = await openConnections(url(postgres.appUrl), 2, { applicationName: "e2e-victim" });
		const victimPids = await Promise.all(
			victims.clients.map(async (c) => (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid),
		);
		const idlePids = await Promise.all(
			idle.clients.map(async (c) => (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid),
		);
		await sleep(3_500); // idleMinutes is 0.05 (3 s)
		const message = await poolMessage();
		const admin = { id: "200000000000000007", roles: [ADMIN] };
		expect(message.components).toEqual([
			expect.objectContaining({
				components: [
					expect.objectContaining({
						custom_id: "pool:terminate:production",
						label: "End 6 idle connections older than 0.05 min…",
					}),
					expect.objectContaining({ custom_id: "pool:refresh:production" }),
				],
			}),
		]);

		const press = await double.sendInteraction({
			kind: "button",
			customId: "pool:terminate:production",
			messageId: message.id,
			user: admin,
		});
		expect((await press.response()).type).toBe(5);
		const confirmation = await double.waitFor(() =>
			double.originalMessage(press.id)?.embeds.length ? double.originalMessage(press.id) : undefined,
		);
		const preview = confirmation.embeds[0] as { title: string; description: string };
		const confirmId = JSON.stringify(confirmation.components).match(/pool:confirm:[A-Za-z0-9_-]+/)?.[0] ?? "";

		expect(preview.title).toBe("End 6 idle connections on production?");
		for (const pid of [...victimPids, ...idlePids]) expect(preview.description).toContain(`pid ${pid}`);

		const someoneElse = await double.sendInteraction({
			kind: "button",
			customId: confirmId,
			messageId: confirmation.id,
			user: { id: "200000000000000008", roles: [ADMIN] },
		});
		expect((await someoneElse.response()).type).toBe(6);
		const confirm = await double.sendInteraction({
			kind: "button",
			customId: confirmId,
			messageId: confirmation.id,
			user: admin,
		});
		expect((await confirm.response()).type).toBe(6);
		const done = await double.waitFor(
			() => double.messages.get(confirmation.id)?.content.startsWith("Ended") && double.messages.get(confirmation.id),
		);
		const reuse = await double.sendInteraction({
			kind: "button",
			customId: confirmId,
			messageId: confirmation.id,
			user: admin,
		});
		await reuse.response();
		const followUp = (id: string) =>
			[...double.messages.values()].find((m) => m.interactionId === id && m.id !== confirmation.id);
		const reuseReply = await double.waitFor(() => followUp(reuse.id));
		const otherReply = await double.waitFor(() => followUp(someoneElse.id));

		expect(reuseReply).toMatchObject({ flags: 64 });
		expect(reuseReply.content).toContain("This confirmation has expired or is not valid");
		expect(otherReply.content).toBe("Only the person who asked can confirm this.");
		expect(double.messages.get(confirmation.id)?.content).toBe(done.content);

		expect(done.content).toMatch(/^Ended 6 idle connections on production\./);
		const watcher = new pg.Client({ connectionString: postgres.superuserUrl });
		await watcher.connect();
		const alive = await watcher.query("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", [
			[...victimPids, ...idlePids],
		]);
		await watcher.end();
		expect(alive.rowCount).toBe(0);
		const trail = await bot.actionLog.recent(10, { action: "pool.terminate" });
		expect(trail.map((r) => r.result)).toEqual(
			expect.arrayContaining(["confirmation shown", "ok", "refused: unknown confirmation"]),
		);
		expect(trail.find((r) => r.result === "ok")?.details).toMatchObject({
			ended: expect.arrayContaining(victimPids),
			skipped: 0,
		});
	});

	it("offers to end the sessions idle in transaction when they are the cause, and ends exactly those", async () => {
		const pidOf = async (c: pg.Client) =>
			(await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
		await using stuck = await openConnections(url(postgres.appUrl), 2, {
			applicationName: "e2e-stuck",
			inTransaction: true,
		});
		await using bystanders = await openConnections(url(postgres.appUrl), 2, { applicationName: "e2e-bystander" });
		const stuckPids = await Promise.all(stuck.clients.map(pidOf));
		const bystanderPids = await Promise.all(bystanders.clients.map(pidOf));
		await sleep(3_500); // idleInTransactionMinutes is 0.05 (3 s); the bystanders are idle that long too
		await using young = await openConnections(url(postgres.appUrl), 1, {
			applicationName: "e2e-young",
			inTransaction: true,
		});
		const youngPids = await Promise.all(young.clients.map(pidOf));
		const admin = { id: "200000000000000010", roles: [ADMIN] };

		const message = await poolMessage();
		const buttons =
			(message.components as { components: { custom_id?: string; label?: string }[] }[])[0]?.components ?? [];
		const end = buttons.find((b) => b.custom_id?.startsWith("pool:terminate:"));
		const press = await double.sendInteraction({
			kind: "button",
			customId: end?.custom_id ?? "",
			messageId: message.id,
			user: admin,
		});
		expect((await press.response()).type).toBe(5);
		const confirmation = await double.waitFor(() =>
			double.originalMessage(press.id)?.embeds.length ? double.originalMessage(press.id) : undefined,
		);
		const preview = confirmation.embeds[0] as { title: string; description: string };
		const confirmId = JSON.stringify(confirmation.components).match(/pool:confirm:[A-Za-z0-9_-]+/)?.[0] ?? "";
		const confirm = await double.sendInteraction({
			kind: "button",
			customId: confirmId,
			messageId: confirmation.id,
			user: admin,
		});
		expect((await confirm.response()).type).toBe(6);
		const done = await double.waitFor(
			() => double.messages.get(confirmation.id)?.content.startsWith("Ended") && double.messages.get(confirmation.id),
		);
		const watcher = new pg.Client({ connectionString: postgres.superuserUrl });
		await watcher.connect();
		const alive = await watcher.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", [
			[...stuckPids, ...bystanderPids, ...youngPids],
		]);
		await watcher.end();

		expect((message.embeds[0] as { description: string }).description).toMatch(
			/^\*\*Likely cause:\*\* 2 sessions idle in transaction for over 0\.05 min/,
		);
		expect(end).toEqual({
			type: 2,
			style: 4,
			custom_id: "pool:terminate:production:idle-in-transaction",
			label: "End 2 sessions idle in transaction longer than 0.05 min…",
		});
		expect(preview.title).toBe("End 2 sessions idle in transaction on production?");
		for (const pid of stuckPids) expect(preview.description).toContain(`pid ${pid}`);
		expect(preview.description).not.toContain(`pid ${youngPids[0]}`);
		expect(preview.description).toMatch(/This confirmation expires <t:\d+:R>\./);
		expect(done.content).toMatch(/^Ended 2 sessions idle in transaction on production\./);
		expect(alive.rows.map((r) => r.pid).sort()).toEqual([...bystanderPids, ...youngPids].sort());
		const trail = await bot.actionLog.recent(5, { action: "pool.terminate", userId: admin.id });
		expect(trail.find((r) => r.result === "ok")?.details).toMatchObject({
			ended: expect.arrayContaining(stuckPids),
			skipped: 0,
			sessions: "idle-in-transaction",
		});
	});

	it("says so plainly when nothing is idle long enough", async () => {
		const message = await poolMessage();

		const press = await double.sendInteraction({
			kind: "button",
			customId: "pool:terminate:production",
			messageId: message.id,
			user: { id: "200000000000000009", roles: [ADMIN] },
		});
		await press.response();
		const reply = await double.waitFor(() =>
			double.originalMessage(press.id)?.content ? double.originalMessage(press.id) : undefined,
		);

		expect(reply.content).toBe("No idle connections older than 0.05 min on production; nothing to end.");
	});

	it("still answers, without the chart and saying so, when Discord refuses the upload", async () => {
		await poolMessage();
		double.failNext({ method: "PATCH", pathPrefix: "/webhooks/", status: 413, withFiles: true });

		const message = await poolMessage();

		expect((message.embeds[0] as { title: string }).title).toMatch(/^Connections on production: \d+ \/ 97 used/);
		expect((message.embeds[0] as { image?: unknown }).image).toBeUndefined();
		expect(message.files).toEqual([]);
		expect(message.content).toContain("The attachment could not be sent");
		expect(JSON.stringify(message.components)).toContain("pool:refresh:production");
		expect(double.requests.some((r) => r.status === 413)).toBe(true);
	});
});
