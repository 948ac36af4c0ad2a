import { inject } from "vitest";
import { lokiAnswers, lokiAt, type TestLoki } from "./loki.ts";
import { tailOf, waitUntil } from "./proc.ts";

/**
 * The run's one real Loki, started by test/support/global-setup.ts. Push only under a `freshTenant()`:
 * files share it and run in parallel. `stop()` does nothing.
 *
 * The run does not wait for Loki to come up (about 10 s, most of it idle): the files that need it wait
 * here, the others run meanwhile.
 */
export async function sharedLoki(): Promise<TestLoki> {
	const { url, logFile } = inject("loki");
	await waitUntil(
		() => lokiAnswers(url),
		60_000,
		() => tailOf(logFile),
	);
	return lokiAt(url);
}
