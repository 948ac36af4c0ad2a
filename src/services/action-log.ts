import { appendFile, mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";

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
	record(entry: Omit<ActionRecord, "at"> & { at?: Date }): Promise<void>;
	/** The newest records first, at most `limit`. */
	recent(limit: number, filter?: { action?: string; userId?: string }): Promise<ActionRecord[]>;
}

/**
 * A JSON-lines file under the state directory: one line per record, appended with O_APPEND so a
 * crash loses at most the line being written and never rewrites history.
 */
export function createFileActionLog(path: string): ActionLog {
	let ready: Promise<unknown> | undefined;
	let writes: Promise<void> = Promise.resolve();
	return {
		record(entry) {
			ready ??= mkdir(dirname(path), { recursive: true });
			const line = `${JSON.stringify({ ...entry, at: (entry.at ?? new Date()).toISOString() })}\n`;
			// Serialise appends so lines never interleave.
			writes = writes.then(async () => {
				await ready;
				await appendFile(path, line, { mode: 0o600 });
			});
			return writes;
		},
		async recent(limit, filter = {}) {
			let text: string;
			try {
				text = await readFile(path, "utf8");
			} catch (err) {
				if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
				throw err;
			}
			const out: ActionRecord[] = [];
			const lines = text.split("\n");
			for (let i = lines.length - 1; i >= 0 && out.length < limit; i--) {
				const line = lines[i];
				if (!line) continue;
				try {
					const record = JSON.parse(line) as ActionRecord;
					if (filter.action && record.action !== filter.action) continue;
					if (filter.userId && record.actor.userId !== filter.userId) continue;
					out.push(record);
				} catch {
					// A torn last line after a crash is skipped, not fatal.
				}
			}
			return out;
		},
	};
}
