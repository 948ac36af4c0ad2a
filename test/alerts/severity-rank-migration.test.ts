import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { openPostgresAlertStore } from "../../src/alerts/pg-store.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import type { AlertStore } from "../../src/alerts/store.ts";
import { POSTGRES_MIGRATIONS } from "../../src/state/postgres.ts";
import { SQLITE_MIGRATIONS } from "../../src/state/sqlite.ts";
import { payload } from "../support/alert-fixtures.ts";
import { freshStateDatabase } from "./state-database.ts";

const targets = [{ channel: "1" }];
const group = (name: string, severity: string) =>
	payload(1, { groupKey: name, groupLabels: { alertname: name }, commonLabels: { alertname: name, severity } });

/** Two unposted groups: a warning, then a critical one that next() must send first. */
async function seed(store: AlertStore): Promise<void> {
	await store.accept(group("Early", "warning"), targets);
	await store.accept(group("Late", "CRITICAL"), targets);
	await store.close();
}

const firstSent = async (store: AlertStore) => String((await store.next("1"))?.payload.groupLabels.alertname);

describe("the severity_rank migration", () => {
	it("backfills the rank of older SQLite groups, so a critical group queued later is still sent first", async () => {
		const path = join(mkdtempSync(join(tmpdir(), "opsbot-rank-")), "alerts.sqlite");
		await seed(openAlertStore(path));
		// Back to schema version 4, as an opsbot before the rank left it.
		const db = new DatabaseSync(path);
		db.exec(`DROP INDEX groups_delivery; DROP INDEX outbox_pending;
			CREATE INDEX outbox_pending ON outbox (done, next_attempt_at);
			ALTER TABLE groups DROP COLUMN severity_rank; ALTER TABLE groups DROP COLUMN chart_attachment;
			DROP TABLE message_outbox;
			DROP TABLE episodes; DROP TABLE episode_events;
			ALTER TABLE groups DROP COLUMN resolved_at; ALTER TABLE groups DROP COLUMN flaps;
			ALTER TABLE groups DROP COLUMN previous_message_id; DROP TABLE heartbeats; DROP TABLE actions;
			DROP TABLE imported_files;
			DELETE FROM schema_version WHERE version > 4;`);
		db.close();

		const store = openAlertStore(path);

		expect(await firstSent(store)).toBe("Late");
		await store.close();
		const after = new DatabaseSync(path);
		expect(after.prepare("SELECT max(version) AS v FROM schema_version").get()).toEqual({
			v: SQLITE_MIGRATIONS.length,
		});
		after.close();
	});

	it(
		"backfills the rank of PostgreSQL groups stored before " +
			"it, so a critical group queued later is still sent first",
		async () => {
			const url = await freshStateDatabase("opsbot_rank");
			const log = pino({ level: "silent" });
			await seed(await openPostgresAlertStore(url, log));
			const old = new pg.Client({ connectionString: url });
			await old.connect();
			await old.query(
				"ALTER TABLE opsbot_state.groups DROP COLUMN severity_rank, DROP COLUMN chart_attachment," +
					" DROP COLUMN resolved_at, DROP COLUMN flaps, DROP COLUMN previous_message_id",
			);
			await old.query(
				"DROP TABLE opsbot_state.message_outbox, opsbot_state.episodes, opsbot_state.episode_events, " +
					"opsbot_state.heartbeats",
			);
			await old.query("DELETE FROM opsbot_state.schema_version WHERE version > 4");

			const store = await openPostgresAlertStore(url, log);

			expect(await firstSent(store)).toBe("Late");
			expect((await old.query("SELECT max(version) AS v FROM opsbot_state.schema_version")).rows).toEqual([
				{ v: POSTGRES_MIGRATIONS.length },
			]);
			await old.end();
			await store.close();
		},
	);
});
