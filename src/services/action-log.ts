import type { DatabaseSync } from "node:sqlite";
import type { ActionLog } from "../state/contracts.ts";
import type { StateDatabase } from "../state/postgres.ts";

export type { ActionLog, ActionRecord } from "../state/contracts.ts";

/** Both backends keep the newest this many records; the oldest beyond are pruned every PRUNE_EVERY records. */
const KEEP_RECORDS = 100_000;
const PRUNE_EVERY = 100;

/** A record's details as stored (JSON text), or null; throws for details that are not serialisable. */
function detailsJson(entry: { details?: unknown }): string | null {
	try {
		return entry.details === undefined ? null : JSON.stringify(entry.details);
	} catch (err) {
		throw new Error("action record is not serialisable", { cause: err });
	}
}

/**
 * The action log in the embedded state file's `actions` table (state/sqlite.ts), newest first by
 * insertion. `db` opens the file on first use; `stored` says whether there is state to read at all, so
 * reading the log (opsbot actions) where opsbot never ran creates no file. Bounded like the PostgreSQL log.
 */
export function createSqliteActionLog(
	db: () => DatabaseSync,
	options: { keep?: number; stored?: () => boolean } = {},
): ActionLog {
	const keep = Math.max(1, options.keep ?? KEEP_RECORDS);
	let records = 0;
	return {
		async record(entry) {
			const d = db();
			const { lastInsertRowid } = d
				.prepare(
					"INSERT INTO actions (at, user_id, username, action, target, result, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
				)
				.run(
					(entry.at ?? new Date()).getTime(),
					entry.actor.userId,
					entry.actor.username,
					entry.action,
					entry.target,
					entry.result,
					detailsJson(entry),
				);
			if (++records % PRUNE_EVERY === 1)
				d.prepare("DELETE FROM actions WHERE id <= ?").run(Number(lastInsertRowid) - keep);
		},
		async recent(limit, filter = {}) {
			if (limit < 1 || options.stored?.() === false) return [];
			// Only the filters given, so the (action, id) and (user_id, id) indexes serve them.
			const conditions = [
				["action = ?", filter.action],
				["user_id = ?", filter.userId],
			].filter((c): c is [string, string] => Boolean(c[1]));
			const where = conditions.map(([sql]) => sql);
			const params = conditions.map(([, value]) => value);
			const rows = db()
				.prepare(
					`SELECT at, user_id, username, action, target, result, details FROM actions
					${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id DESC LIMIT ?`,
				)
				.all(...params, limit) as {
				at: number;
				user_id: string;
				username: string;
				action: string;
				target: string;
				result: string;
				details: string | null;
			}[];
			return rows.map((r) => ({
				at: new Date(r.at).toISOString(),
				actor: { userId: r.user_id, username: r.username },
				action: r.action,
				target: r.target,
				result: r.result,
				...(r.details === null ? {} : { details: JSON.parse(r.details) as Record<string, unknown> }),
			}));
		},
	};
}

/**
 * The action log in opsbot_state.actions (STATE_DATABASE_URL), so `/audit source:opsbot` on any
 * replica sees every replica's records. Bounded: beyond `keep` rows the oldest are pruned (checked
 * every PRUNE_EVERY records, so the cost is spread).
 */
export function createPostgresActionLog(db: StateDatabase, options: { keep?: number } = {}): ActionLog {
	const keep = Math.max(1, options.keep ?? KEEP_RECORDS);
	let records = 0;
	return {
		async record(entry) {
			const details = detailsJson(entry);
			await db.query(
				"INSERT INTO opsbot_state.actions (at, user_id, username, action, target, result, details) " +
					"VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
				[
					entry.at ?? new Date(),
					entry.actor.userId,
					entry.actor.username,
					entry.action,
					entry.target,
					entry.result,
					details,
				],
			);
			if (++records % PRUNE_EVERY === 1)
				await db.query("DELETE FROM opsbot_state.actions WHERE id <= (SELECT max(id) FROM opsbot_state.actions) - $1", [
					keep,
				]);
		},
		async recent(limit, filter = {}) {
			if (limit < 1) return [];
			const { rows } = await db.query<{
				at: Date;
				user_id: string;
				username: string;
				action: string;
				target: string;
				result: string;
				details: Record<string, unknown> | null;
			}>(
				"SELECT at, user_id, username, action, target, result, details FROM opsbot_state.actions " +
					"WHERE ($1::text IS NULL OR action = $1) AND ($2::text IS NULL OR user_id = $2) ORDER BY id DESC LIMIT $3",
				[filter.action || null, filter.userId || null, limit],
			);
			return rows.map((r) => ({
				at: r.at.toISOString(),
				actor: { userId: r.user_id, username: r.username },
				action: r.action,
				target: r.target,
				result: r.result,
				...(r.details ? { details: r.details } : {}),
			}));
		},
	};
}
