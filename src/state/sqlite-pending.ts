import { randomBytes } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { type PendingResult, type PendingStore, type PendingStoreOptions, pendingBounds } from "./contracts.ts";
import { decodeState, encodeState } from "./json.ts";

/**
 * Pending state in the state file's `pending` table (one process, surviving its restart). `db` opens
 * the file on first use (so a CLI run that needs none of it creates nothing).
 */
export function sqlitePending(
	db: () => DatabaseSync,
	now: () => number = Date.now,
): <T>(kind: string, ttlMs: number, options?: PendingStoreOptions) => PendingStore<T> {
	let seq = 0;
	const nextSeq = () => {
		// Orders puts across restarts of the process too (max of what the file holds, then counting on).
		if (seq === 0)
			seq = Number((db().prepare("SELECT coalesce(max(seq), 0) AS s FROM pending").get() as { s: number }).s);
		return ++seq;
	};
	return function pending<T>(kind: string, ttlMs: number, options: PendingStoreOptions = {}): PendingStore<T> {
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
						`DELETE FROM pending WHERE token IN (
							SELECT token FROM pending WHERE kind = ? AND user_id = ? ORDER BY seq DESC LIMIT -1 OFFSET ?)`,
					).run(kind, userId, maxPerUser - 1);
					// … and in all: the oldest entry of whoever holds the most goes (the one putting wins ties).
					const count = (d.prepare("SELECT count(*) AS n FROM pending WHERE kind = ?").get(kind) as { n: number }).n;
					if (count >= maxEntries) {
						d.prepare(`DELETE FROM pending WHERE token = (SELECT token FROM pending WHERE kind = ?1 AND user_id = (
								SELECT user_id FROM pending WHERE kind = ?1 GROUP BY user_id
								ORDER BY count(*) DESC, user_id = ?2 DESC LIMIT 1) ORDER BY seq LIMIT 1)`).run(kind, userId);
					}
					d.prepare("INSERT INTO pending (token, kind, user_id, value, seq, expires_at) VALUES (?, ?, ?, ?, ?, ?)").run(
						token,
						kind,
						userId,
						encodeState(value),
						nextSeq(),
						now() + ttlMs,
					);
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
	};
}
