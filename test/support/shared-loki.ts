import { readFileSync } from "node:fs";
import { inject } from "vitest";
import { lokiAnswers, lokiAt, type TestLoki } from "./loki.ts";
import { waitUntil } from "./proc.ts";

/**
 * The run's one real Loki, started by test/support/global-setup.ts. Push only under a `freshTenant()`:
 * files share it and run in parallel. `stop()` does nothing.
 *
 * The run does not wait for Loki to come up (about 10 s, most of it idle): the files that need it wait
 * here, the others run meanwhile.
 */
export async function sharedLoki(): Promise<TestLoki> {
	const { url, logFile } = inject("loki");
	const logTail = () => {
		try {
			return readFileSync(logFile, "utf8").split("\n").slice(-15).join("\n");
		} catch {
			return "(no log)";
		}
	};
	await waitUntil(() => lokiAnswers(url), 60_000, logTail);
	return lokiAt(url);
}
