import { randomBytes } from "node:crypto";

/** Server-side state behind a confirmation button: the customId carries only a random token. */
export interface PendingStore<T> {
	/** Stores `value` for `userId`; resolves to the token to put in the customId. */
	put(userId: string, value: T): Promise<string>;
	/** Takes (and removes) the entry if it exists, has not expired and belongs to `userId`; with a shared store, exactly one caller across replicas gets it. */
	take(token: string, userId: string): Promise<PendingResult<T>>;
	/** Reads the entry without removing it (for state that several presses share, such as paging). */
	peek(token: string, userId: string): Promise<PendingResult<T>>;
	/** Replaces a live entry's value (paging state that grows as pages are read); does nothing if it is gone or someone else's. */
	update(token: string, userId: string, value: T): Promise<void>;
}

/** What take() and peek() find. */
export type PendingResult<T> = { ok: true; value: T } | { ok: false; reason: "unknown" | "expired" | "other-user" };

/** Bounds of a pending store; the defaults suit Discord confirmations and paging state. */
export interface PendingStoreOptions {
	readonly now?: () => number;
	/** Entries one user may hold; their oldest goes first. */
	readonly maxPerUser?: number;
	/** Entries in all; when full, the oldest entry of whoever holds the most goes first. */
	readonly maxEntries?: number;
}

/** The bounds every pending store applies (memory, SQLite, PostgreSQL), each at least 1. */
export function pendingBounds(options: Pick<PendingStoreOptions, "maxPerUser" | "maxEntries">): {
	maxPerUser: number;
	maxEntries: number;
} {
	return { maxPerUser: Math.max(1, options.maxPerUser ?? 20), maxEntries: Math.max(1, options.maxEntries ?? 1_000) };
}

/** Creates a store whose entries expire after `ttlMs` (Discord confirmations: 60 s). */
export function createPendingStore<T>(ttlMs: number, options: PendingStoreOptions = {}): PendingStore<T> {
	const now = options.now ?? Date.now;
	const { maxPerUser, maxEntries } = pendingBounds(options);
	const entries = new Map<string, { userId: string; value: T; expiresAt: number }>();
	// Each user's tokens, oldest first (a Set keeps insertion order).
	const byUser = new Map<string, Set<string>>();

	const remove = (token: string) => {
		const entry = entries.get(token);
		if (!entry) return;
		entries.delete(token);
		const tokens = byUser.get(entry.userId);
		tokens?.delete(token);
		if (tokens?.size === 0) byUser.delete(entry.userId);
	};
	const evictOldestOf = (userId: string) => {
		const oldest = byUser.get(userId)?.values().next().value;
		if (oldest !== undefined) remove(oldest);
	};
	const sweep = () => {
		const t = now();
		for (const [token, entry] of entries) if (entry.expiresAt <= t) remove(token);
	};
	// The user holding the most entries; the one putting wins ties, so a flood evicts its own entries first.
	const heaviestUser = (putting: string): string | undefined => {
		let heaviest = byUser.has(putting) ? putting : undefined;
		let most = byUser.get(putting)?.size ?? 0;
		for (const [userId, tokens] of byUser) {
			if (tokens.size > most) {
				heaviest = userId;
				most = tokens.size;
			}
		}
		return heaviest;
	};
	const peek = (token: string, userId: string): PendingResult<T> => {
		const entry = entries.get(token);
		if (!entry) return { ok: false, reason: "unknown" };
		if (entry.userId !== userId) return { ok: false, reason: "other-user" };
		if (entry.expiresAt <= now()) return { ok: false, reason: "expired" };
		return { ok: true, value: entry.value };
	};
	return {
		async put(userId, value) {
			sweep();
			// Bounded per user, so one person pressing the same button over and over evicts only their own state.
			if ((byUser.get(userId)?.size ?? 0) >= maxPerUser) evictOldestOf(userId);
			// Bounded in all, so many users cannot grow it without limit either.
			if (entries.size >= maxEntries) {
				const heaviest = heaviestUser(userId);
				if (heaviest !== undefined) evictOldestOf(heaviest);
			}
			const token = randomBytes(12).toString("base64url");
			entries.set(token, { userId, value, expiresAt: now() + ttlMs });
			let tokens = byUser.get(userId);
			if (!tokens) byUser.set(userId, (tokens = new Set()));
			tokens.add(token);
			return token;
		},
		async take(token, userId) {
			const found = peek(token, userId);
			if (found.ok || found.reason === "expired") remove(token);
			return found;
		},
		async peek(token, userId) {
			return peek(token, userId);
		},
		async update(token, userId, value) {
			const entry = entries.get(token);
			if (entry && entry.userId === userId && entry.expiresAt > now()) entry.value = value;
		},
	};
}
