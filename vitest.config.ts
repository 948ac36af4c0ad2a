import { defineConfig } from "vitest/config";

// What every file runs with, whichever project it belongs to.
const shared: { setupFiles: string[]; testTimeout: number; hookTimeout: number; pool: "forks" } = {
	// After every test: no Discord double received a request Discord's spec or documented limits refuse.
	setupFiles: [
		"test/support/spec-guard.ts",
		// Opt-in: per-file CPU and wall time as JSON lines (test/support/cpu-accounting.ts).
		...(process.env.OPSBOT_TEST_CPU_LOG ? ["test/support/cpu-accounting.ts"] : []),
	],
	testTimeout: 30_000,
	hookTimeout: 60_000,
	pool: "forks",
};

/** Files that start the shipped processes (the bot, the CLI): each in a fresh worker process. */
const PROCESS_FILES = ["test/e2e/**/*.test.ts"];

export default defineConfig({
	test: {
		// Real PostgreSQL, PgBouncer and Loki are started once here and shared (fresh databases and tenants per file).
		globalSetup: ["test/support/global-setup.ts"],
		// The suite mostly waits on real servers and Discord's pacing, so more workers than cores pays:
		// Vitest's default (cores - 1) is one worker on a 2-core CI machine. Measured in bench/RESULTS.md.
		maxWorkers: 4,
		projects: [
			{
				test: {
					...shared,
					name: "unit",
					include: ["test/**/*.test.ts"],
					exclude: PROCESS_FILES,
					isolate: false,
				},
			},
			{ test: { ...shared, name: "e2e", include: PROCESS_FILES } },
		],
	},
});
