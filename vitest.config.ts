import { defineConfig } from "vitest/config";

export default defineConfig({
	test: {
		include: ["test/**/*.test.ts"],
		// Real PostgreSQL, PgBouncer and Loki are started once here and shared (fresh databases and tenants per file).
		globalSetup: ["test/support/global-setup.ts"],
		// After every test: no Discord double received a request Discord's spec or documented limits refuse.
		setupFiles: ["test/support/spec-guard.ts"],
		testTimeout: 30_000,
		hookTimeout: 60_000,
		pool: "forks",
		// The suite mostly waits on real servers and Discord's pacing, so more workers than cores pays:
		// Vitest's default (cores - 1) is one worker on a 2-core CI machine. Measured in bench/RESULTS.md.
		maxWorkers: 4,
	},
});
