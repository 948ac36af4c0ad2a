import { existsSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { postgresAlertStore } from "../alerts/pg-store.ts";
import { sqliteAlertStore } from "../alerts/sqlite-store.ts";
import type { AlertStore } from "../alerts/store.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { createPostgresActionLog, createSqliteActionLog } from "../services/action-log.ts";
import type { ActionLog, PendingStore, RestartLock } from "./contracts.ts";
import { createPostgresPendingStore } from "./pending.ts";
import { openStateDatabase } from "./postgres.ts";
import { createPostgresRestartLock, createSqliteRestartLock } from "./restart-lock.ts";
import { legacyActionLogFiles, openStateDirDatabase, STATE_FILE } from "./sqlite.ts";
import { sqlitePending } from "./sqlite-pending.ts";

/**
 * The one door to what opsbot keeps. Two backends: with STATE_DATABASE_URL, opsbot's own PostgreSQL
 * (one pool, shared by replicas: state/postgres.ts); without it, one SQLite file under stateDir
 * (state/sqlite.ts).
 */
export interface State {
	/** Alert groups, their outbox and the message outbox; undefined unless opened with `alerts`. */
	readonly alerts: AlertStore | undefined;
	/** Server-side state behind buttons, by kind (confirmations, paging), each entry expiring after `ttlMs`. */
	pending<T>(kind: string, ttlMs: number): PendingStore<T>;
	/** One restart at a time per container, and a cooldown after each. */
	readonly restarts: RestartLock;
	/** opsbot's own audit trail of presses and actions. */
	readonly actions: ActionLog;
	/** Writes what waits for a group commit, then closes the file or the pool. */
	close(): Promise<void>;
}

/**
 * Opens the state `config` names. `alerts`: open the alert store too (the bot with `alerts`
 * configured); else the SQLite file is opened only on first use, so a CLI run that needs no state
 * creates nothing, and the PostgreSQL schema is migrated before the first statement.
 */
export async function openState(config: Config, log: Logger, options: { alerts?: boolean } = {}): Promise<State> {
	const url = config.env.STATE_DATABASE_URL;
	// How webhooks open episodes: a group firing again within the regroup window re-opens its card.
	const policy = { regroupMs: (config.ops.alerts?.regroupMinutes ?? 0) * 60_000 };
	if (url) {
		const db = openStateDatabase(url, log.child({ svc: "state" }));
		let alerts: AlertStore | undefined;
		try {
			// A claim on an outbox item lasts as long as the gateway lease: a dead holder's claims have
			// ended by the time another replica holds the lease and delivers.
			const claimMs = config.ops.replicas.leaseSeconds * 1_000;
			alerts = options.alerts ? await postgresAlertStore(db, policy, { claimMs }) : undefined;
		} catch (err) {
			await db.close().catch(() => undefined);
			throw err;
		}
		return {
			alerts,
			pending: (kind, ttlMs) => createPostgresPendingStore(db, kind, ttlMs),
			restarts: createPostgresRestartLock(db),
			actions: createPostgresActionLog(db),
			async close() {
				await alerts?.close();
				await db.close();
			},
		};
	}
	const stateDir = config.ops.stateDir;
	let opened: DatabaseSync | undefined;
	const db = () => (opened ??= openStateDirDatabase(stateDir, { log: log.child({ svc: "state" }) }));
	const alerts = options.alerts ? sqliteAlertStore(db(), join(stateDir, STATE_FILE), policy) : undefined;
	const pending = sqlitePending(db);
	return {
		alerts,
		pending: (kind, ttlMs) => pending(kind, ttlMs),
		restarts: createSqliteRestartLock(db, Date.now),
		actions: createSqliteActionLog(db, {
			// Where opsbot never ran, reading the log creates no state file; an old actions.jsonl is read (imported).
			stored: () => opened !== undefined || embeddedStateExists(config) || legacyActionLogFiles(stateDir).length > 0,
		}),
		async close() {
			await alerts?.close();
			opened?.close();
			opened = undefined;
		},
	};
}

/** Whether the embedded state holds anything yet (the bot ran here): its file, or an earlier opsbot's. */
export function embeddedStateExists(config: Config): boolean {
	return [STATE_FILE, "alerts.sqlite"].some((file) => existsSync(join(config.ops.stateDir, file)));
}

/**
 * Runs `work` on the alert store the relay uses, for a CLI command that only reads it; undefined
 * where the relay never ran (no STATE_DATABASE_URL and no state file: opening it would create one).
 */
export async function readAlertStore<T>(
	config: Config,
	log: Logger,
	work: (store: AlertStore) => Promise<T>,
): Promise<T | undefined> {
	if (!config.env.STATE_DATABASE_URL && !embeddedStateExists(config)) return undefined;
	const state = await openState(config, log, { alerts: true });
	try {
		return await work(state.alerts!);
	} finally {
		await state.close();
	}
}
