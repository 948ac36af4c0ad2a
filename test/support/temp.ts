import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
 *
 * The directory is a tmpfs of its own where the run may mount one (the suite runs as root): the bots' and unit tests'
 * SQLite stores sync every commit (synchronous = FULL), Loki, Prometheus and AlertManager write their data, and on a
 * disk each sync waits for it (bench/RESULTS.md, issue 20). Not /dev/shm: node-exporter leaves mounts under /dev out,
 * and the disk tests mount their tmpfs inside this directory. Where mounting is refused, the run stays on disk.
 */
export function useRunTempDir(): () => void {
	const system = tmpdir();
	removeDeadRunsTempDirs(system);
	const dir = mkdtempSync(join(system, RUN_DIR_PREFIX));
	const mounted = mountRunTmpfs(dir);
	chmodSync(dir, 0o755);
	writeFileSync(join(dir, RUN_OWNER_FILE), String(process.pid));
	process.env.OPSBOT_TEST_CACHE_DIR = CACHE_DIR;
	process.env.TMPDIR = dir;
	return () => {
		process.env.TMPDIR = system;
		// Lazily: a server's file still open, or a disk test's tmpfs left mounted inside, must not keep the run's
		// directory from going; the kernel frees the memory once the last user lets go.
		if (mounted) execFileSync("umount", ["--lazy", dir], { stdio: "pipe" });
		rmSync(dir, { recursive: true, force: true });
	};
}

const RUN_DIR_PREFIX = "opsbot-test-run-";
/** The pid of the run that owns the directory: a run stopped before its teardown leaves its tmpfs mounted. */
const RUN_OWNER_FILE = ".owner";

/** Unmounts and removes the run directories whose run is gone (killed before its teardown), holding memory. */
export function removeDeadRunsTempDirs(system: string): void {
	for (const name of readdirSync(system).filter((n) => n.startsWith(RUN_DIR_PREFIX))) {
		const dir = join(system, name);
		let owner: number;
		try {
			owner = Number(readFileSync(join(dir, RUN_OWNER_FILE), "utf8"));
		} catch {
			continue; // An earlier layout, or a run starting this instant: not ours to judge.
		}
		if (!Number.isInteger(owner) || owner <= 0 || isAlive(owner)) continue;
		try {
			execFileSync("umount", ["--lazy", dir], { stdio: "pipe" });
		} catch {
			// Not a mount: a run that stayed on disk.
		}
		rmSync(dir, { recursive: true, force: true });
	}
}

function isAlive(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch (err) {
		return (err as NodeJS.ErrnoException).code === "EPERM";
	}
}

/** Mounts a tmpfs on `dir`; false where that is not permitted (test-run-temp.test.ts fails with the reason). */
function mountRunTmpfs(dir: string): boolean {
	try {
		// Bounded: a run's peak is about 1.4 GB, most of it the shared PostgreSQL's per-file databases (bench/RESULTS.md).
		execFileSync("mount", ["-t", "tmpfs", "-o", `size=${RUN_TMPFS_SIZE},mode=0755`, "tmpfs", dir], { stdio: "pipe" });
		return true;
	} catch (err) {
		const reason = (err as { stderr?: Buffer }).stderr?.toString().trim() || String(err);
		process.env.OPSBOT_TEST_RUN_TMPFS_REFUSED = reason;
		return false;
	}
}
const RUN_TMPFS_SIZE = "4g";
