import { appendFileSync, readFileSync } from "node:fs";
import { relative } from "node:path";
import { afterAll, expect } from "vitest";

// Opt-in (OPSBOT_TEST_CPU_LOG=path, vitest.config.ts): one JSON line per test file with the CPU its
// worker process used (user + sys, its own and its reaped children's: spawned bots, CLI runs,
// per-file servers) and its wall time, to see where the suite's CPU goes (bench/RESULTS.md, issue 20).
const TICK_S = 0.01; // USER_HZ on Linux

function cpu(): { self: number; children: number } {
	// /proc/self/stat fields after the command name: utime 14, stime 15, cutime 16, cstime 17 (1-based).
	const stat = readFileSync("/proc/self/stat", "utf8");
	const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
	const at = (n: number) => Number(fields[n - 3]) * TICK_S;
	return { self: at(14) + at(15), children: at(16) + at(17) };
}

// With isolation off a worker runs several files: this setup file runs again before each, so what
// came between the last file's end and this one's start is counted as this file's boot.
const shared = globalThis as { lastFileEndCpu?: { self: number; children: number } };
const atLoad = cpu();
const before = shared.lastFileEndCpu ?? { self: 0, children: 0 };
const loadedAt = Date.now();
const uptimeAtLoad = process.uptime();

afterAll(() => {
	const end = cpu();
	const file = expect.getState().testPath ?? "unknown";
	const line = {
		file: relative(process.cwd(), file),
		pid: process.pid,
		bootCpu: round(atLoad.self - before.self + atLoad.children - before.children),
		bootWall: round(uptimeAtLoad),
		selfCpu: round(end.self - atLoad.self),
		childCpu: round(end.children - atLoad.children),
		wall: round((Date.now() - loadedAt) / 1000),
		startedAt: loadedAt,
		endedAt: Date.now(),
	};
	shared.lastFileEndCpu = end;
	appendFileSync(process.env.OPSBOT_TEST_CPU_LOG as string, `${JSON.stringify(line)}\n`);
});

function round(n: number): number {
	return Math.round(n * 100) / 100;
}
