import type { DatabaseSync } from "node:sqlite";
import type { PendingStore, PendingStoreOptions } from "../../src/state/contracts.ts";
import { createSqliteRestartLock } from "../../src/state/restart-lock.ts";
import { openSqliteDatabase } from "../../src/state/sqlite.ts";
import { sqlitePending } from "../../src/state/sqlite-pending.ts";

/** A pending store of the embedded backend on a database that lives with the test (SQLite :memory:). */
export function createPendingStore<T>(ttlMs: number, options: PendingStoreOptions = {}): PendingStore<T> {
	const db = openSqliteDatabase(":memory:");
	return sqlitePending(() => db, options.now ?? Date.now)<T>("test", ttlMs, options);
}

/** The embedded backend's pending state and restart claims on the SQLite file at `path`, with a clock of the test's. */
export function openStateFile(path: string, now: () => number = Date.now) {
	let opened: DatabaseSync | undefined;
	const db = () => (opened ??= openSqliteDatabase(path));
	const pending = sqlitePending(db, now);
	return {
		pending: <T>(kind: string, ttlMs: number, options?: PendingStoreOptions) => pending<T>(kind, ttlMs, options),
		restarts: createSqliteRestartLock(db, now),
		close() {
			opened?.close();
			opened = undefined;
		},
	};
}
