import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { expect, it } from "vitest";
import { COMPILE_CACHE_DIR, removeDeadRunsTempDirs } from "./support/temp.ts";

it("makes the run's temp directories inside one directory of its own, and keeps caches outside it", () => {
	const made = mkdtempSync(join(tmpdir(), "opsbot-probe-"));
	try {
		// Global setup removes this parent at the end of the run, with all a test or server left in it.
		expect(basename(dirname(made))).toMatch(/^opsbot-test-run-/);
		expect(COMPILE_CACHE_DIR.startsWith(dirname(made))).toBe(false);
		expect(process.env.NODE_COMPILE_CACHE).toBe(COMPILE_CACHE_DIR);
	} finally {
		rmSync(made, { recursive: true, force: true });
	}
});

/** /proc/self/mountinfo: "id parent dev root mountpoint options [optional...] - fstype source superoptions". */
function mounts(): { mountPoint: string | undefined; fsType: string | undefined }[] {
	return readFileSync("/proc/self/mountinfo", "utf8")
		.split("\n")
		.filter(Boolean)
		.map((line) => {
			const [before, after = ""] = line.split(" - ");
			return { mountPoint: before?.split(" ")[4], fsType: after.split(" ")[0] };
		});
}

it("keeps the run's temp directory on a tmpfs of its own, not on the disk", () => {
	const probe = mkdtempSync(join(tmpdir(), "opsbot-probe-"));
	rmSync(probe, { recursive: true });
	const runDir = dirname(probe);
	expect(
		mounts().find((m) => m.mountPoint === runDir),
		`no tmpfs on ${runDir}: ${process.env.OPSBOT_TEST_RUN_TMPFS_REFUSED ?? "?"}`,
	).toMatchObject({ fsType: "tmpfs" });
});

it("unmounts and removes the temp directory of a run killed before its teardown, and only that", () => {
	const system = mkdtempSync(join(tmpdir(), "opsbot-system-"));
	const deadPid = spawnSync(process.execPath, ["-e", ""]).pid;
	const dead = join(system, "opsbot-test-run-dead");
	const live = join(system, "opsbot-test-run-live");
	const unowned = join(system, "opsbot-test-run-unowned");
	for (const dir of [dead, live, unowned]) mkdirSync(dir);
	spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dead], { stdio: "pipe" });
	try {
		writeFileSync(join(dead, ".owner"), String(deadPid));
		writeFileSync(join(live, ".owner"), String(process.pid));
		expect(mounts().some((m) => m.mountPoint === dead)).toBe(true);

		removeDeadRunsTempDirs(system);

		expect(existsSync(dead)).toBe(false);
		expect(mounts().some((m) => m.mountPoint === dead)).toBe(false);
		expect(existsSync(live)).toBe(true);
		expect(existsSync(unowned)).toBe(true);
	} finally {
		spawnSync("umount", ["--lazy", dead], { stdio: "pipe" });
		rmSync(system, { recursive: true, force: true });
	}
});
