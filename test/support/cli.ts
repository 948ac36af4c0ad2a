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
	return runNodeScript("bin/opsbot.js", args, env, timeoutMs);
}

/** `node SCRIPT ARGS` from the project's root as a child process, with only `env` (plus PATH). */
export function runNodeScript(
	script: string,
	args: readonly string[],
	env: Record<string, string> = {},
	timeoutMs = 20_000,
): Promise<CliRun> {
	return new Promise((resolve) => {
		execFile(
			process.execPath,
			[script, ...args],
			{ env: { PATH: process.env.PATH ?? "", ...env }, timeout: timeoutMs },
			(err, stdout, stderr) => {
				resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
			},
		);
	});
}

let inProcessRunning = false;

/**
 * The same run inside the test's process: `runCli` with the output collected and `process.env` set
 * to only `env` (plus PATH) for the run, as runOpsbotCli's child sees it. For cases that test what
 * the CLI decides and prints; each CLI journey keeps at least one runOpsbotCli case for the process
 * boundary (exit status, flushed output). Runs one at a time: the environment is the process's own.
 */
export async function runOpsbotInProcess(args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> {
	// Loaded here, not at the top: files that only spawn the CLI do not pay for importing it.
	const { runCli } = await import("../../src/cli.ts");
	if (inProcessRunning) throw new Error("runOpsbotInProcess: one run at a time (it sets process.env)");
	inProcessRunning = true;
	const saved = process.env;
	process.env = { PATH: saved.PATH ?? "", ...env };
	let stdout = "";
	let stderr = "";
	try {
		const code = await runCli([...args], { out: (s) => void (stdout += s), err: (s) => void (stderr += s) });
		return { code, stdout, stderr };
	} finally {
		process.env = saved;
		inProcessRunning = false;
	}
}

/**
 * A terminal report with its wrapped lines joined again (continuation lines are indented 10+ columns), to match words,
 * not layout.
 */
export function unwrapped(text: string): string {
	return text.replace(/\n {10,}/g, " ");
}
