import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Where what tests keep between runs lives (Node's compile cache, the Discord double's compiled checks): the system's
 * temp directory, also while a run sends everything else to its own (useRunTempDir).
 */
export const CACHE_DIR = process.env.OPSBOT_TEST_CACHE_DIR ?? tmpdir();

/** Node's compile cache for the processes tests start (bots, CLI runs) and for Vitest's own test processes. */
export const COMPILE_CACHE_DIR = join(CACHE_DIR, "node-compile-cache");

/**
 * Gives the run a temp directory of its own (global setup, before any test process is forked): TMPDIR points there,
 * so every directory a test or a server makes with mkdtemp(tmpdir()) goes under it, and the returned function removes
 * it all at the end, where a run used to leave a few hundred directories in /tmp. Readable by all (0755), as /tmp is:
 * PostgreSQL runs as its own user inside it.
 */
export function useRunTempDir(): () => void {
	const system = tmpdir();
	const dir = mkdtempSync(join(system, "opsbot-test-run-"));
	chmodSync(dir, 0o755);
	process.env.OPSBOT_TEST_CACHE_DIR = CACHE_DIR;
	process.env.TMPDIR = dir;
	return () => {
		process.env.TMPDIR = system;
		rmSync(dir, { recursive: true, force: true });
	};
}
