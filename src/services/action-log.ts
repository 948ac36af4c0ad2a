import { appendFile, mkdir, open, rename, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { ActionLog, ActionRecord } from "../state/contracts.ts";
import type { StateDatabase } from "../state/postgres.ts";

export type { ActionLog, ActionRecord } from "../state/contracts.ts";

import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from "../state/private-files.ts";

/** Bounds of the file action log. */
export interface FileActionLogOptions {
	/** The live file is rotated to `<path>.1` before it would grow past this (default 10 MiB). */
	readonly maxBytes?: number;
	/** Rotated files kept: `<path>.1` (newest) … `<path>.<keep>` (default 3). */
	readonly keep?: number;
	/** `recent()` reads the file backwards in chunks of this size (default 64 KiB). */
	readonly chunkBytes?: number;
}

// A record is a few hundred bytes; anything far longer is not one of ours (or is torn) and is skipped unread.
const MAX_LINE_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * A JSON-lines file under the state directory: one line per record, appended with O_APPEND so a
 * crash loses at most the line being written and never rewrites history. Rotated by size, so the
 * trail stays bounded; read from the end, so `recent()` costs what it returns, not the file's size.
 */
export function createFileActionLog(path: string, options: FileActionLogOptions = {}): ActionLog {
	const maxBytes = options.maxBytes ?? 10 * 1024 * 1024;
	const keep = Math.max(1, options.keep ?? 3);
	const chunkBytes = Math.max(1, options.chunkBytes ?? 64 * 1024);
	const files = [path, ...Array.from({ length: keep }, (_, i) => `${path}.${i + 1}`)];
	// Appends run one at a time so lines never interleave and rotation never races an append.
	let queue: Promise<void> = Promise.resolve();

	async function rotateIfFull(incoming: number): Promise<void> {
		const size = await stat(path).then(
			(s) => s.size,
			(err: NodeJS.ErrnoException) => {
				if (err.code === "ENOENT") return 0;
				throw err;
			},
		);
		if (size === 0 || size + incoming <= maxBytes) return;
		for (let i = files.length - 1; i > 0; i--) {
			await rename(files[i - 1]!, files[i]!).catch((err: NodeJS.ErrnoException) => {
				if (err.code !== "ENOENT") throw err;
			});
		}
	}

	return {
		record(entry) {
			let line: string;
			try {
				line = `${JSON.stringify({ ...entry, at: (entry.at ?? new Date()).toISOString() })}\n`;
			} catch (err) {
				return Promise.reject(new Error("action record is not serialisable", { cause: err }));
			}
			const append = queue.then(async () => {
				// Every time, not once: a failed or removed state directory must not fail every later record.
				await mkdir(dirname(path), { recursive: true, mode: PRIVATE_DIR_MODE });
				await rotateIfFull(Buffer.byteLength(line));
				await appendFile(path, line, { mode: PRIVATE_FILE_MODE });
			});
			// The queue only orders appends; a failure belongs to its own record, not to the ones after it.
			queue = append.catch(() => undefined);
			return append;
		},
		async recent(limit, filter = {}) {
			const out: ActionRecord[] = [];
			if (limit < 1) return out;
			const visit = (line: string): boolean => {
				let record: ActionRecord;
				try {
					record = JSON.parse(line) as ActionRecord;
				} catch {
					return false; // a torn last line after a crash is skipped, not fatal
				}
				if (filter.action && record.action !== filter.action) return false;
				if (filter.userId && record.actor?.userId !== filter.userId) return false;
				out.push(record);
				return out.length >= limit;
			};
			for (const file of files) {
				if (await readLinesBackwards(file, chunkBytes, visit)) break;
			}
			return out;
		},
	};
}

/** Calls `visit` with each line of `file`, last line first, until it returns true (then resolves true). A missing file has no lines. */
async function readLinesBackwards(
	file: string,
	chunkBytes: number,
	visit: (line: string) => boolean,
): Promise<boolean> {
	let handle;
	try {
		handle = await open(file, "r");
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
		throw err;
	}
	try {
		const emit = (bytes: Buffer): boolean => bytes.length > 0 && visit(bytes.toString("utf8"));
		let position = (await handle.stat()).size;
		// The end of a line whose start lies further back in the file, as pieces, last first (joined once, when the line is complete).
		let tail: Buffer[] = [];
		let tailBytes = 0;
		let overlong = false;
		while (position > 0) {
			const size = Math.min(chunkBytes, position);
			position -= size;
			const chunk = Buffer.alloc(size);
			let filled = 0;
			while (filled < size) {
				const { bytesRead } = await handle.read(chunk, filled, size - filled, position + filled);
				if (bytesRead === 0) break;
				filled += bytesRead;
			}
			let end = filled;
			let newline = end > 0 ? chunk.lastIndexOf(NEWLINE, end - 1) : -1;
			while (newline !== -1) {
				if (!overlong && emit(Buffer.concat([chunk.subarray(newline + 1, end), ...tail.toReversed()]))) return true;
				tail = [];
				tailBytes = 0;
				overlong = false;
				end = newline;
				newline = end > 0 ? chunk.lastIndexOf(NEWLINE, end - 1) : -1;
			}
			if (overlong || tailBytes + end > MAX_LINE_BYTES) {
				overlong = true;
				tail = [];
				tailBytes = 0;
			} else if (end > 0) {
				tail.push(chunk.subarray(0, end));
				tailBytes += end;
			}
		}
		return !overlong && emit(Buffer.concat(tail.toReversed()));
	} finally {
		await handle.close();
	}
}

/**
 * The action log in opsbot_state.actions (STATE_DATABASE_URL), so `/audit source:opsbot` on any
 * replica sees every replica's records. Bounded like the file log: beyond `keep` rows the oldest are
 * pruned (checked every hundredth record, so the cost is spread).
 */
export function createPostgresActionLog(db: StateDatabase, options: { keep?: number } = {}): ActionLog {
	const keep = Math.max(1, options.keep ?? 100_000);
	let records = 0;
	return {
		async record(entry) {
			let details: string | null;
			try {
				details = entry.details === undefined ? null : JSON.stringify(entry.details);
			} catch (err) {
				throw new Error("action record is not serialisable", { cause: err });
			}
			await db.query(
				"INSERT INTO opsbot_state.actions (at, user_id, username, action, target, result, details) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
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
			if (++records % 100 === 1)
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
				"SELECT at, user_id, username, action, target, result, details FROM opsbot_state.actions WHERE ($1::text IS NULL OR action = $1) AND ($2::text IS NULL OR user_id = $2) ORDER BY id DESC LIMIT $3",
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
