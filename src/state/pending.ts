import { randomBytes } from "node:crypto";
import { type PendingResult, type PendingStore, type PendingStoreOptions, pendingBounds } from "./contracts.ts";
import { decodeState, encodeState } from "./json.ts";
import type { StateDatabase } from "./postgres.ts";

/**
 * Pending state in opsbot_state.pending, shared by replicas: a confirmation made by one replica
 * works when another takes the press, or after the first died. take() is a DELETE … RETURNING, so
 * one confirmation is taken exactly once across replicas. Expiry uses the database's clock, so
 * replicas whose clocks differ agree. `kind` keeps stores of different value types apart.
 */
export function createPostgresPendingStore<T>(
	db: StateDatabase,
	kind: string,
	ttlMs: number,
	options: PendingStoreOptions = {},
): PendingStore<T> {
	const { maxPerUser, maxEntries } = pendingBounds(options);
	const miss = async (token: string): Promise<PendingResult<T>> => {
		const { rows } = await db.query<{ expired: boolean }>(
			"SELECT expires_at <= clock_timestamp() AS expired FROM opsbot_state.pending WHERE token = $1 AND kind = $2",
			[token, kind],
		);
		if (!rows[0]) return { ok: false, reason: "unknown" };
		return { ok: false, reason: rows[0].expired ? "expired" : "other-user" };
	};
	let puts = 0;
	return {
		async put(userId, value) {
			const token = randomBytes(12).toString("base64url");
			// Bounded per user like the in-memory store: the user's oldest beyond the cap go as this one comes in.
			await db.query(
				`WITH capped AS (
					DELETE FROM opsbot_state.pending WHERE token IN (
						SELECT token FROM opsbot_state.pending WHERE kind = $2 AND user_id = $3 ORDER BY created_at DESC OFFSET $6))
				INSERT INTO opsbot_state.pending (token, kind, user_id, value, expires_at)
				VALUES ($1, $2, $3, $4::jsonb, clock_timestamp() + make_interval(secs => $5::double precision / 1000))`,
				[token, kind, userId, encodeState(value), ttlMs, maxPerUser - 1],
			);
			// Expired rows are swept now and then, not on every put (an index on expires_at keeps it cheap).
			if (++puts % 50 === 1)
				await db.query("DELETE FROM opsbot_state.pending WHERE expires_at < clock_timestamp() - interval '1 minute'");
			// Bounded in all too: past maxEntries the oldest entry of whoever holds the most goes (the one putting wins ties, so
			// a flood evicts its own).
			await db.query(
				`DELETE FROM opsbot_state.pending WHERE token = (
					SELECT token FROM opsbot_state.pending WHERE kind = $1 AND user_id = (
						SELECT user_id FROM opsbot_state.pending WHERE kind = $1 GROUP BY user_id
						ORDER BY count(*) DESC, (user_id = $2) DESC LIMIT 1)
					ORDER BY created_at LIMIT 1)
				AND (SELECT count(*) FROM opsbot_state.pending WHERE kind = $1) > $3`,
				[kind, userId, maxEntries],
			);
			return token;
		},
		async take(token, userId) {
			const { rows } = await db.query<{ value: unknown; expired: boolean }>(
				"DELETE FROM opsbot_state.pending WHERE token = $1 AND kind = $2 AND user_id = $3 " +
					"RETURNING value::text AS value, expires_at <= clock_timestamp() AS expired",
				[token, kind, userId],
			);
			const row = rows[0];
			if (!row) return miss(token);
			return row.expired ? { ok: false, reason: "expired" } : { ok: true, value: decodeState<T>(String(row.value)) };
		},
		async peek(token, userId) {
			const { rows } = await db.query<{ value: unknown; expired: boolean }>(
				"SELECT value::text AS value, expires_at <= clock_timestamp() AS expired FROM opsbot_state.pending " +
					"WHERE token = $1 AND kind = $2 AND user_id = $3",
				[token, kind, userId],
			);
			const row = rows[0];
			if (!row) return miss(token);
			return row.expired ? { ok: false, reason: "expired" } : { ok: true, value: decodeState<T>(String(row.value)) };
		},
		async update(token, userId, value) {
			await db.query(
				"UPDATE opsbot_state.pending SET value = $4::jsonb WHERE token = $1 AND kind = $2 AND user_id = $3 " +
					"AND expires_at > clock_timestamp()",
				[token, kind, userId, encodeState(value)],
			);
		},
	};
}
