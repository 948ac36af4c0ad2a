import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { COMPILE_CACHE_DIR } from "./temp.ts";

/** `npm start`'s process (node src/main.ts) running against a test config, with its output collected. */
export interface MainProcess {
	readonly child: ChildProcess;
	readonly output: () => string;
	readonly exited: Promise<number | null>;
	/** The JSON log lines the process has written so far (one array, growing as it writes: not a snapshot). */
	readonly logs: () => readonly Record<string, unknown>[];
}

/**
 * `npm start`'s command line as node arguments, read from package.json so that tests run exactly it
 * (its V8 flags included), with src/main.ts made absolute.
 */
export function npmStartArgs(root = process.cwd()): string[] {
	const start = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: { start: string } }).scripts
		.start;
	const [command, ...args] = start.split(/\s+/);
	if (command !== "node") throw new Error(`npm start is expected to run node, not: ${start}`);
	return args.map((arg) => (arg.endsWith(".ts") ? join(root, arg) : arg));
}

/**
 * Spawns npm start's command (node src/main.ts) with only the given environment (plus PATH) and the ops file written to
 * a temp dir.
 */
export function spawnMain(opsYaml: string, env: Record<string, string>): MainProcess {
	const dir = mkdtempSync(join(tmpdir(), "opsbot-main-"));
	writeFileSync(join(dir, "opsbot.yaml"), opsYaml);
	let output = "";
	const child = spawn(process.execPath, npmStartArgs(), {
		cwd: dir,
		env: {
			PATH: process.env.PATH ?? "",
			OPSBOT_CONFIG: join(dir, "opsbot.yaml"),
			// As the image sets it (Dockerfile): the cache is on before src/main.ts loads, so the entry module
			// comes from it too instead of loading Node's TypeScript stripper (~0.1 s of CPU per start).
			NODE_COMPILE_CACHE: COMPILE_CACHE_DIR,
			...env,
		},
		stdio: ["ignore", "pipe", "pipe"],
	});
	child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
	child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
	const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
	// Parsed once, as lines complete: tests poll logs() in loops while a storm writes thousands of debug lines.
	const parsed: Record<string, unknown>[] = [];
	let parsedUpTo = 0;
	const logs = () => {
		const end = output.lastIndexOf("\n") + 1;
		if (end > parsedUpTo) {
			for (const line of output.slice(parsedUpTo, end).split("\n"))
				if (line.startsWith("{")) parsed.push(JSON.parse(line) as Record<string, unknown>);
			parsedUpTo = end;
		}
		return parsed;
	};
	return { child, output: () => output, exited, logs };
}

/**
 * The webhook receiver's base URL (`http://127.0.0.1:port`) as the process logged it once listening: with
 * port 0 in its config, the port the system chose.
 */
export function listeningAt(logs: readonly Record<string, unknown>[]): string {
	const line = logs.find((l) => l.msg === "alert receiver listening");
	if (typeof line?.address !== "string") throw new Error("the process has not logged where its webhook listens");
	return line.address;
}
