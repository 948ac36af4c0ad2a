import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";

/**
 * State files hold alert payloads, paging state (an /audit search's email) and the action trail:
 * only opsbot's own user may read them, whatever the process umask. Directories opsbot creates are
 * 0700, files 0600.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` (and missing parents) 0700. A directory that already exists is left as the operator made it. */
export function makePrivateDir(dir: string): void {
	if (existsSync(dir)) return;
	mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
	// mkdir's mode is filtered by the umask; 0700 is what is meant.
	chmodSync(dir, PRIVATE_DIR_MODE);
}

/**
 * Prepares an SQLite file at `path` before it is opened: its directory as makePrivateDir, the file
 * created 0600, and its journals (-wal, -shm) from an older opsbot made 0600 too. SQLite creates a
 * database's -wal and -shm with the database file's own mode, so these stay private from then on.
 */
export function preparePrivateDatabase(path: string): void {
	if (path === ":memory:") return;
	makePrivateDir(dirname(path));
	if (!existsSync(path)) closeSync(openSync(path, "a", PRIVATE_FILE_MODE));
	for (const file of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(file)) chmodSync(file, PRIVATE_FILE_MODE);
}
