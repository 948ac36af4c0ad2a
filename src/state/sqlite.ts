import { randomBytes } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { type PendingResult, type PendingStore, type PendingStoreOptions, pendingBounds } from "../discord/pending.ts";
import { decodeState, encodeState } from "./json.ts";
import { preparePrivateDatabase } from "./private-files.ts";
import { createSqliteRestartLock, type RestartLock } from "./restart-lock.ts";

/** The embedded state file (`stateDir/state.sqlite`): what replicas keep in PostgreSQL, for one process, surviving its restart. */
export interface StateFile {
	pending<T>(kind: string, ttlMs: number, options?: PendingStoreOptions): PendingStore<T>;
	readonly restarts: RestartLock;
	close(): void;
}

/** Opens `path` on first use (so a CLI run that needs none of it creates nothing). */
export function openStateFile(path: string, now: () => number = Date.now): StateFile {
	let opened: DatabaseSync | undefined;
	const db = (): DatabaseSync => {
		if (opened) return opened;
		preparePrivateDatabase(path);
		const d = new DatabaseSync(path);
		d.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
		d.exec(`CREATE TABLE IF NOT EXISTS pending (token TEXT PRIMARY KEY, kind TEXT NOT NULL, user_id TEXT NOT NULL, value TEXT NOT NULL, seq INTEGER NOT NULL, expires_at INTEGER NOT NULL);
			CREATE INDEX IF NOT EXISTS pending_user ON pending (kind, user_id, seq);
			CREATE INDEX IF NOT EXISTS pending_expiry ON pending (expires_at);
			CREATE TABLE IF NOT EXISTS restarts (key TEXT PRIMARY KEY, running INTEGER NOT NULL, started_at INTEGER NOT NULL, last_at INTEGER NOT NULL);`);
		// Who holds a running claim and when it last said so (files written before these columns get them here).
		const columns = new Set(
			(d.prepare("SELECT name FROM pragma_table_info('restarts')").all() as { name: string }[]).map((c) => c.name),
		);
		if (!columns.has("holder")) d.exec("ALTER TABLE restarts ADD COLUMN holder TEXT");
		if (!columns.has("heartbeat_at")) d.exec("ALTER TABLE restarts ADD COLUMN heartbeat_at INTEGER");
		opened = d;
		return d;
	};
	let seq = 0;
	const nextSeq = () => {
		// Orders puts across restarts of the process too (max of what the file holds, then counting on).
		if (seq === 0)
			seq = Number((db().prepare("SELECT coalesce(max(seq), 0) AS s FROM pending").get() as { s: number }).s);
		return ++seq;
	};
	return {
		pending<T>(kind: string, ttlMs: number, options: PendingStoreOptions = {}): PendingStore<T> {
			const { maxPerUser, maxEntries } = pendingBounds(options);
			const read = (token: string, userId: string): PendingResult<T> => {
				const row = db()
					.prepare("SELECT user_id, value, expires_at FROM pending WHERE token = ? AND kind = ?")
					.get(token, kind) as { user_id: string; value: string; expires_at: number } | undefined;
				if (!row) return { ok: false, reason: "unknown" };
				if (row.user_id !== userId) return { ok: false, reason: "other-user" };
				if (row.expires_at <= now()) return { ok: false, reason: "expired" };
				return { ok: true, value: decodeState<T>(row.value) };
			};
			return {
				async put(userId, value) {
					const d = db();
					const token = randomBytes(12).toString("base64url");
					d.exec("BEGIN IMMEDIATE");
					try {
						d.prepare("DELETE FROM pending WHERE expires_at <= ?").run(now());
						// Bounded per user, so one person pressing over and over evicts only their own state …
						d.prepare(
							"DELETE FROM pending WHERE token IN (SELECT token FROM pending WHERE kind = ? AND user_id = ? ORDER BY seq DESC LIMIT -1 OFFSET ?)",
						).run(kind, userId, maxPerUser - 1);
						// … and in all: the oldest entry of whoever holds the most goes (the one putting wins ties).
						const count = (d.prepare("SELECT count(*) AS n FROM pending WHERE kind = ?").get(kind) as { n: number }).n;
						if (count >= maxEntries) {
							d.prepare(`DELETE FROM pending WHERE token = (SELECT token FROM pending WHERE kind = ?1 AND user_id = (
								SELECT user_id FROM pending WHERE kind = ?1 GROUP BY user_id ORDER BY count(*) DESC, user_id = ?2 DESC LIMIT 1) ORDER BY seq LIMIT 1)`).run(
								kind,
								userId,
							);
						}
						d.prepare(
							"INSERT INTO pending (token, kind, user_id, value, seq, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
						).run(token, kind, userId, encodeState(value), nextSeq(), now() + ttlMs);
						d.exec("COMMIT");
					} catch (err) {
						d.exec("ROLLBACK");
						throw err;
					}
					return token;
				},
				async take(token, userId) {
					const found = read(token, userId);
					if (found.ok || found.reason === "expired")
						db().prepare("DELETE FROM pending WHERE token = ? AND kind = ?").run(token, kind);
					return found;
				},
				async peek(token, userId) {
					return read(token, userId);
				},
				async update(token, userId, value) {
					db()
						.prepare("UPDATE pending SET value = ? WHERE token = ? AND kind = ? AND user_id = ? AND expires_at > ?")
						.run(encodeState(value), token, kind, userId, now());
				},
			};
		},
		restarts: createSqliteRestartLock(db, now),
		close() {
			opened?.close();
			opened = undefined;
		},
	};
}
