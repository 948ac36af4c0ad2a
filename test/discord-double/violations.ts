import { formatViolation, type SpecViolation } from "./spec.ts";

/** What the run-wide check needs of a running double. */
interface Checked {
	takeViolations(): SpecViolation[];
}

const running = new Set<Checked>();

/** Called by startDiscordDouble and close(): the doubles whose requests the afterEach check looks at. */
export function trackDouble(double: Checked, on: boolean): void {
	if (on) running.add(double);
	else running.delete(double);
}

/**
 * Throws, naming every request, JSON pointer and rule, if any running double received a request Discord would refuse.
 */
export function assertNoSpecViolations(): void {
	const found = [...running].flatMap((d) => d.takeViolations());
	if (found.length > 0) throw specViolationError(found);
}

export function specViolationError(found: readonly SpecViolation[]): Error {
	return new Error(
		`The Discord double received ${found.length} request(s) that break Discord's API spec or documented limits:\n` +
			`${found.map((v) => `  ${formatViolation(v)}`).join("\n")}`,
	);
}
