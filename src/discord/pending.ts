import { randomBytes } from "node:crypto";

/** Server-side state behind a confirmation button: the customId carries only a random token. */
export interface PendingStore<T> {
	/** Stores `value` for `userId`; returns the token to put in the customId. */
	put(userId: string, value: T): string;
	/** Takes (and removes) the entry if it exists, has not expired and belongs to `userId`. */
	take(token: string, userId: string): { ok: true; value: T } | { ok: false; reason: "unknown" | "expired" | "other-user" };
	/** Reads the entry without removing it (for state that several presses share, such as paging). */
	peek(token: string, userId: string): { ok: true; value: T } | { ok: false; reason: "unknown" | "expired" | "other-user" };
	size(): number;
}

/** Creates a store whose entries expire after `ttlMs` (Discord confirmations: 60 s). */
export function createPendingStore<T>(ttlMs: number, now: () => number = Date.now, maxEntries = 1_000): PendingStore<T> {
	const entries = new Map<string, { userId: string; value: T; expiresAt: number }>();
	const sweep = () => {
		const t = now();
		for (const [token, entry] of entries) if (entry.expiresAt <= t) entries.delete(token);
	};
	const peek: PendingStore<T>["peek"] = (token, userId) => {
		const entry = entries.get(token);
		if (!entry) return { ok: false, reason: "unknown" };
		if (entry.userId !== userId) return { ok: false, reason: "other-user" };
		if (entry.expiresAt <= now()) return { ok: false, reason: "expired" };
		return { ok: true, value: entry.value };
	};
	return {
		put(userId, value) {
			sweep();
			// Bounded: the oldest confirmation goes first when someone floods the button.
			if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as string);
			const token = randomBytes(12).toString("base64url");
			entries.set(token, { userId, value, expiresAt: now() + ttlMs });
			return token;
		},
		take(token, userId) {
			const found = peek(token, userId);
			if (found.ok || found.reason === "expired") entries.delete(token);
			return found;
		},
		peek,
		size: () => entries.size,
	};
}
