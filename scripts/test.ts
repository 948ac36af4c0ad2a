// `npm test`: the linter, the type check and the suite at once, one exit status for all three.
// Biome and tsc overlap the suite's start (global setup, the workers' imports) instead of running 8-10 s before
// it: `npm test` ends 5-7 s after Vitest instead of 10 (bench/RESULTS.md, issue 20). Their reports are held and
// printed after the suite's, so its live output stays whole. Arguments go to Vitest (`npm test -- file`).
import { type ChildProcess, spawn } from "node:child_process";

interface Step {
	readonly name: string;
	readonly code: number;
	readonly output: string;
}

const children = new Set<ChildProcess>();

function run(name: string, bin: string, args: readonly string[], held: boolean): Promise<Step> {
	return new Promise((resolve) => {
		const child = spawn(bin, args, { stdio: held ? ["ignore", "pipe", "pipe"] : "inherit" });
		children.add(child);
		let output = "";
		child.stdout?.on("data", (chunk: Buffer) => void (output += chunk.toString()));
		child.stderr?.on("data", (chunk: Buffer) => void (output += chunk.toString()));
		child.once("error", (err) => resolve({ name, code: 127, output: `${name}: ${err.message}\n` }));
		child.once("close", (code, signal) => resolve({ name, code: code ?? (signal ? 128 : 1), output }));
	});
}

// A terminal's Ctrl-C reaches every step; a SIGTERM sent to this process alone (a CI timeout) is passed on.
for (const signal of ["SIGINT", "SIGTERM"] as const)
	process.on(signal, () => {
		for (const child of children) child.kill(signal);
	});
// Held output is printed where this process prints: in colour when that is a terminal.
const colour = process.stdout.isTTY === true;
const steps = await Promise.all([
	run("biome ci", "node_modules/.bin/biome", ["ci", ".", `--colors=${colour ? "force" : "off"}`], true),
	run("tsc", "node_modules/.bin/tsc", ["-p", ".", "--pretty", String(colour)], true),
	run("vitest", "node_modules/.bin/vitest", ["run", ...process.argv.slice(2)], false),
]);

for (const step of steps.filter((s) => s.output.trim() !== "")) process.stdout.write(`\n${step.output.trimEnd()}\n`);
const failed = steps.filter((s) => s.code !== 0);
for (const step of failed) process.stderr.write(`npm test: ${step.name} failed (exit ${step.code})\n`);
process.exit(failed.length > 0 ? 1 : 0);
