/**
 * The contracts of opsbot's small stores, each with exactly two implementations: the embedded SQLite
 * file (state/sqlite*.ts) and opsbot's own PostgreSQL (state/postgres.ts and its users). The alert
 * store's contract is alerts/store.ts; the message outbox's, alerts/message-outbox.ts.
 */

/** Server-side state behind a confirmation button: the customId carries only a random token. */
export interface PendingStore<T> {
	/** Stores `value` for `userId`; resolves to the token to put in the customId. */
	put(userId: string, value: T): Promise<string>;
	/**
	 * Takes (and removes) the entry if it exists, has not expired and belongs to `userId`; with a shared
	 * store, exactly one caller across replicas gets it.
	 */
	take(token: string, userId: string): Promise<PendingResult<T>>;
	/** Reads the entry without removing it (for state that several presses share, such as paging). */
	peek(token: string, userId: string): Promise<PendingResult<T>>;
	/**
	 * Replaces a live entry's value (paging state that grows as pages are read); does nothing if it is
	 * gone or someone else's.
	 */
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

/** The bounds every pending store applies (SQLite, PostgreSQL), each at least 1. */
export function pendingBounds(options: Pick<PendingStoreOptions, "maxPerUser" | "maxEntries">): {
	maxPerUser: number;
	maxEntries: number;
} {
	return { maxPerUser: Math.max(1, options.maxPerUser ?? 20), maxEntries: Math.max(1, options.maxEntries ?? 1_000) };
}

/** A claim taken over from a holder that died mid-restart: who it was and when its restart began. */
export interface TakenOver {
	readonly holder: string;
	readonly startedAt: number;
	/** How its death showed: its process is gone from this host, or it stopped renewing the claim. */
	readonly why: "process gone" | "no heartbeat";
}

/** What acquire() decided. */
export type RestartClaim =
	| { ok: true; tookOver?: TakenOver }
	| { ok: false; reason: "running" }
	| { ok: false; reason: "cooldown"; lastAt: number };

/** One restart at a time per container, and a cooldown after each, across every replica sharing the store. */
export interface RestartLock {
	/**
	 * Claims `key` for a restart unless one is running or the last ended less than `cooldownMs` ago.
	 * A claim whose holder died (its process is gone, or it stopped renewing the claim) is taken over.
	 */
	acquire(key: string, cooldownMs: number): Promise<RestartClaim>;
	/** Ends this process's claim; the cooldown counts from now. A claim another process took over is left alone. */
	release(key: string): Promise<void>;
}

/** One press of a button or use of an action, allowed or not: opsbot's own audit trail. */
export interface ActionRecord {
	readonly at: string;
	readonly actor: { readonly userId: string; readonly username: string };
	/** e.g. "pool.terminate", "alert.restart". */
	readonly action: string;
	/** What it was aimed at, e.g. "production: 12 sessions" or "prod-host/api". */
	readonly target: string;
	/** "refused", "cancelled", "expired", "ok", "failed", … */
	readonly result: string;
	readonly details?: Readonly<Record<string, unknown>>;
}

/** Append-only record of actions. */
export interface ActionLog {
	/** Appends one record; a failure fails only this record (the caller logs it), later ones still go through. */
	record(entry: Omit<ActionRecord, "at"> & { at?: Date }): Promise<void>;
	/** The newest records first, at most `limit`. */
	recent(limit: number, filter?: { action?: string; userId?: string }): Promise<ActionRecord[]>;
}
