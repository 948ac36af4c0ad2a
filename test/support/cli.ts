import { execFile } from "node:child_process";

/** What a CLI run printed and how it exited. */
export interface CliRun {
	readonly code: number;
	readonly stdout: string;
	readonly stderr: string;
}

/** `npx opsbot ARGS` as a child process (bin/opsbot.js, as a user runs it), with only `env` (plus PATH). */
export function runOpsbotCli(
	args: readonly string[],
	env: Record<string, string> = {},
	timeoutMs = 20_000,
): Promise<CliRun> {
	return new Promise((resolve) => {
		execFile(
			process.execPath,
			["bin/opsbot.js", ...args],
			{ env: { PATH: process.env.PATH ?? "", ...env }, timeout: timeoutMs },
			(err, stdout, stderr) => {
				resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
			},
		);
	});
}

/** A terminal report with its wrapped lines joined again (continuation lines are indented 10+ columns), to match words, not layout. */
export function unwrapped(text: string): string {
	return text.replace(/\n {10,}/g, " ");
}
