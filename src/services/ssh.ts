import { readFile } from "node:fs/promises";
import { Client } from "ssh2";

/** Where and as whom to run a command; the host key is pinned (known_hosts form: "ssh-ed25519 AAAA..."). */
export interface SshTarget {
	readonly host: string;
	readonly port: number;
	readonly user: string;
	readonly privateKeyPath: string;
	readonly hostKey: string;
	readonly timeoutMs: number;
}

/** What a remote command did. Output is cut at `maxBytes` per stream. */
export interface SshResult {
	readonly code: number | null;
	readonly stdout: string;
	readonly stderr: string;
	readonly truncated: boolean;
}

/** The host presented another key than the pinned one: nothing was run. */
export class HostKeyMismatchError extends Error {
	constructor(host: string) {
		super(`host key of ${host} does not match the pinned key; refusing to connect`);
		this.name = "HostKeyMismatchError";
	}
}

/** The host did not complete the SSH handshake, or the command did not finish, within `ms`. */
export class SshTimeoutError extends Error {
	readonly host: string;
	readonly ms: number;
	/** "connect": no working SSH session in time; "command": connected, but the command did not finish. */
	readonly phase: "connect" | "command";
	constructor(host: string, ms: number, phase: "connect" | "command", options?: ErrorOptions) {
		super(`ssh to ${host}: ${phase === "connect" ? "no SSH session" : "command not finished"} after ${ms} ms`, options);
		this.name = "SshTimeoutError";
		this.host = host;
		this.ms = ms;
		this.phase = phase;
	}
}

// Single quotes make every other character inert; the pattern keeps arguments to what opsbot itself builds.
const SAFE_ARG = /^[A-Za-z0-9_.:=@%+\/{}|-]{1,256}$/;

/**
 * Quotes an argv for the remote shell. Every argument must already be allow-listed or generated
 * by opsbot; the pattern check is a second line of defence, and single quotes make the shell
 * pass each argument through untouched.
 */
export function shellQuote(argv: readonly string[]): string {
	return argv
		.map((arg) => {
			if (!SAFE_ARG.test(arg)) throw new Error(`refusing to pass an unexpected argument over SSH: ${JSON.stringify(arg.slice(0, 40))}`);
			return `'${arg}'`;
		})
		.join(" ");
}

/** Runs one command over SSH with a pinned host key, a connect timeout and an overall timeout. */
export async function runSsh(target: SshTarget, argv: readonly string[], options: { timeoutMs?: number; maxBytes?: number } = {}): Promise<SshResult> {
	const command = shellQuote(argv);
	const pinned = Buffer.from(target.hostKey.split(" ")[1] ?? "", "base64");
	const privateKey = await readFile(target.privateKeyPath);
	const maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
	return new Promise<SshResult>((resolve, reject) => {
		const conn = new Client();
		let mismatch = false;
		let ready = false;
		let settled = false;
		const timeoutMs = options.timeoutMs ?? target.timeoutMs;
		const finish = (fn: () => void) => {
			if (settled) return;
			settled = true;
			clearTimeout(timer);
			conn.end();
			fn();
		};
		const timer = setTimeout(() => finish(() => reject(new SshTimeoutError(target.host, timeoutMs, ready ? "command" : "connect"))), timeoutMs);
		conn.on("error", (err: Error & { level?: string }) =>
			finish(() =>
				// ssh2 reports its readyTimeout as an error of level "client-timeout"; it is the same timeout as ours.
				reject(mismatch ? new HostKeyMismatchError(target.host) : err.level === "client-timeout" ? new SshTimeoutError(target.host, target.timeoutMs, "connect", { cause: err }) : err),
			),
		);
		conn.on("ready", () => {
			ready = true;
			conn.exec(command, (err, stream) => {
				if (err) return finish(() => reject(err));
				const out: Buffer[] = [];
				const errOut: Buffer[] = [];
				let outBytes = 0;
				let errBytes = 0;
				let truncated = false;
				stream.on("data", (chunk: Buffer) => {
					if (outBytes < maxBytes) out.push(chunk.subarray(0, maxBytes - outBytes));
					else truncated = true;
					outBytes += chunk.length;
				});
				stream.stderr.on("data", (chunk: Buffer) => {
					if (errBytes < maxBytes) errOut.push(chunk.subarray(0, maxBytes - errBytes));
					else truncated = true;
					errBytes += chunk.length;
				});
				stream.on("close", (code: number | null) =>
					finish(() => resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(errOut).toString("utf8"), truncated: truncated || outBytes > maxBytes || errBytes > maxBytes })),
				);
			});
		});
		conn.connect({
			host: target.host,
			port: target.port,
			username: target.user,
			privateKey,
			readyTimeout: target.timeoutMs,
			hostVerifier: (key: Buffer) => {
				const ok = key.equals(pinned);
				if (!ok) mismatch = true;
				return ok;
			},
		});
	});
}
