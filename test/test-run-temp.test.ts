import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { expect, it } from "vitest";
import { COMPILE_CACHE_DIR } from "./support/temp.ts";

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

it("keeps the run's temp directory on a tmpfs of its own, not on the disk", () => {
	const probe = mkdtempSync(join(tmpdir(), "opsbot-probe-"));
	rmSync(probe, { recursive: true });
	const runDir = dirname(probe);
	// /proc/self/mountinfo: "id parent dev root mountpoint options [optional...] - fstype source superoptions".
	const mounts = readFileSync("/proc/self/mountinfo", "utf8")
		.split("\n")
		.filter(Boolean)
		.map((line) => {
			const [before, after = ""] = line.split(" - ");
			return { mountPoint: before?.split(" ")[4], fsType: after.split(" ")[0] };
		});
	expect(
		mounts.find((m) => m.mountPoint === runDir),
		`no tmpfs on ${runDir}: ${process.env.OPSBOT_TEST_RUN_TMPFS_REFUSED ?? "?"}`,
	).toMatchObject({ fsType: "tmpfs" });
});
