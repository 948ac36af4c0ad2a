import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
	const server = createServer();
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as { port: number };
	await new Promise((resolve) => server.close(resolve));
	return port;
}

/** Fails with the install command when a service binary is missing: never a silent skip. */
export function requireBinary(path: string, what: string, apt: string): void {
	if (!existsSync(path)) throw new Error(`${what} not found (${path}). Install it with: apt-get install -y ${apt}`);
}

/** A child process started by a test, with its log file, stoppable exactly once. */
export interface Started {
	readonly child: ChildProcess;
	readonly logFile: string;
	/** SIGTERM, then SIGKILL after `graceMs` (0: SIGKILL at once, for a throwaway server slow to stop). */
	stop(graceMs?: number): Promise<void>;
	logTail(): string;
}

/** The last 15 lines of a server's log file, for the error when it does not come up ("" when there is none). */
export function tailOf(logFile: string): string {
	try {
		return readFileSync(logFile, "utf8").split("\n").slice(-15).join("\n");
	} catch {
		return "";
	}
}

/** Starts a long-running binary in the foreground, stdout/stderr to `logFile`. */
export function startProcess(
	command: string,
	args: string[],
	options: { logFile: string; uid?: number; gid?: number; env?: NodeJS.ProcessEnv; cwd?: string },
): Started {
	const out = openSync(options.logFile, "a");
	const child = spawn(command, args, {
		stdio: ["ignore", out, out],
		env: options.env ?? process.env,
		...(options.cwd ? { cwd: options.cwd } : {}),
		...(options.uid !== undefined ? { uid: options.uid } : {}),
		...(options.gid !== undefined ? { gid: options.gid } : {}),
	});
	const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
	let stopping: Promise<void> | undefined;
	const logTail = () => tailOf(options.logFile);
	return {
		child,
		logFile: options.logFile,
		logTail,
		stop(graceMs = 5_000) {
			stopping ??= (async () => {
				if (child.exitCode !== null || child.signalCode !== null) return;
				child.kill(graceMs > 0 ? "SIGTERM" : "SIGKILL");
				const timer = graceMs > 0 ? setTimeout(() => child.kill("SIGKILL"), graceMs) : undefined;
				await exited;
				clearTimeout(timer);
			})();
			return stopping;
		},
	};
}

/** Polls `probe` until it resolves truthy; fails with `describe()` (the log tail) after `timeoutMs`. */
export async function waitUntil(
	probe: () => Promise<boolean>,
	timeoutMs: number,
	describe: () => string,
	process?: ChildProcess,
): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (Date.now() < deadline) {
		if (process && (process.exitCode !== null || process.signalCode !== null)) {
			throw new Error(`process exited early (code ${process.exitCode}, signal ${process.signalCode}):\n${describe()}`);
		}
		if (await probe().catch(() => false)) return;
		await new Promise((resolve) => setTimeout(resolve, 100));
	}
	throw new Error(`not ready after ${timeoutMs} ms:\n${describe()}`);
}

/** uid/gid of a system user (the `postgres` user created by the Debian package). */
export function userIds(name: string): { uid: number; gid: number } {
	const line = readFileSync("/etc/passwd", "utf8")
		.split("\n")
		.find((l) => l.startsWith(`${name}:`));
	if (!line) throw new Error(`system user "${name}" not found. Install it with: apt-get install -y postgresql`);
	const [, , uid, gid] = line.split(":");
	return { uid: Number(uid), gid: Number(gid) };
}

/** Starts a Prometheus-family server (it answers `GET /-/ready`) and waits for it; stop() also removes `dir`. */
export async function startReadyServer(
	binary: string,
	args: string[],
	options: { dir: string; logFile: string; url: string },
): Promise<{ url: string; stop: () => Promise<void> }> {
	const proc = startProcess(binary, args, { logFile: options.logFile });
	const stop = async () => {
		await proc.stop();
		rmSync(options.dir, { recursive: true, force: true });
	};
	try {
		await waitUntil(
			async () => (await fetch(`${options.url}/-/ready`)).status === 200,
			30_000,
			proc.logTail,
			proc.child,
		);
	} catch (err) {
		await stop();
		throw err;
	}
	return { url: options.url, stop };
}
