import { afterEach } from "vitest";
import { assertNoSpecViolations } from "../discord-double/violations.ts";

// Every test fails if, while it ran, a Discord double received a request Discord's spec or documented
// limits refuse (test/discord-double/spec.ts). A test that sends one on purpose takes it with takeViolations().
afterEach(() => {
	assertNoSpecViolations();
});
