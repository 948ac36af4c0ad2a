import { defineConfig } from "vitest/config";

export default defineConfig({
	test: {
		include: ["test/**/*.test.ts"],
		// Real PostgreSQL, PgBouncer, AlertManager, Prometheus and sshd are started once here and shared.
		globalSetup: ["test/support/global-setup.ts"],
		testTimeout: 30_000,
		hookTimeout: 60_000,
		pool: "forks",
	},
});
