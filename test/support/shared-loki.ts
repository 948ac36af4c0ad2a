import { inject } from "vitest";
import { lokiAt, type TestLoki } from "./loki.ts";

/**
 * The run's one real Loki, started by test/support/global-setup.ts (starting one takes about 10 s).
 * Push only under a `freshTenant()`: files share it and run in parallel. `stop()` does nothing.
 */
export function sharedLoki(): TestLoki {
	return lokiAt(inject("loki").url);
}
