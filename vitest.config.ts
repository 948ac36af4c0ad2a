import { defineConfig } from "vitest/config";
import { COMPILE_CACHE_DIR } from "./test/support/temp.ts";

// The test processes forked from here keep V8's compiled code of what they load from node_modules (discord.js, undici,
// pg...) between runs, in the directory the bots and CLI runs use: each of them compiled it afresh on every run.
process.env.NODE_COMPILE_CACHE ??= COMPILE_CACHE_DIR;

export default defineConfig({
	test: {
		include: ["test/**/*.test.ts"],
		// Real PostgreSQL, PgBouncer and Loki are started once here and shared (fresh databases and tenants per file).
		globalSetup: ["test/support/global-setup.ts"],
		setupFiles: [
			// After every test: no Discord double received a request Discord's spec or documented limits refuse.
			"test/support/spec-guard.ts",
			// Opt-in: per-file CPU and wall time as JSON lines (test/support/cpu-accounting.ts).
			...(process.env.OPSBOT_TEST_CPU_LOG ? ["test/support/cpu-accounting.ts"] : []),
		],
		testTimeout: 30_000,
		hookTimeout: 60_000,
		pool: "forks",
		// A worker process runs many files and imports the shared modules (the double, pg, discord.js's
		// REST, src) once, instead of a fresh process per file: on 2 cores the suite is CPU-bound, and a
		// fresh process cost each file 0.5 s to start plus 1-2 s of imports (bench/RESULTS.md, issue 20).
		// Files own their state: databases, schemas and directories are named per file, servers are per
		// file on free ports, and what a file changes in the process (umask, process.env) it restores.
		isolate: false,
		// The suite mostly waits on real servers and Discord's pacing, so more workers than cores pays:
		// Vitest's default (cores - 1) is one worker on a 2-core CI machine. Measured in bench/RESULTS.md.
		// 6 workers: the files that assert server-wide PostgreSQL/PgBouncer figures (pool, health) now start
		// servers of their own, so another file's sessions no longer change what they count (docs/testing.md).
		maxWorkers: 6,
		// Vitest's transforms of src and test files kept on disk between runs (in node_modules, so a reinstall clears it):
		// a warm run spends about 4 s transforming instead of 16 (bench/RESULTS.md, issue 20). Vitest 5 makes it the default.
		experimental: { fsModuleCache: true },
	},
});
