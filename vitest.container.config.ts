import { defineConfig } from "vitest/config";

// `npm run test:container`: builds the image with podman and runs it (test/container/*.spec.ts).
// Kept out of `npm test` (whose include is test/**/*.test.ts): it takes minutes, and .ci/run runs it after.
export default defineConfig({
	test: {
		include: ["test/container/**/*.spec.ts"],
		testTimeout: 90_000,
		hookTimeout: 1_800_000,
		pool: "forks",
	},
});
