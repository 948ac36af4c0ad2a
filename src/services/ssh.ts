import { readFile } from "node:fs/promises";
import type { EnvironmentConfig } from "../config.ts";
import { UserFacingError } from "../errors.ts";
import { describeHttpFailure } from "./http.ts";

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

/** The host refused opsbot's key for the configured user. */
export class SshAuthError extends Error {
	constructor(host: string, user: string, options?: ErrorOptions) {
		super(`ssh to ${host}: the key for ${user} was refused`, options);
		this.name = "SshAuthError";
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
const SAFE_ARG = /^[A-Za-z0-9_.:=@%+/{}|-]{1,256}$/;

/**
 * Quotes an argv for the remote shell. Every argument must already be allow-listed or generated
 * by opsbot; the pattern check is a second line of defence, and single quotes make the shell
 * pass each argument through untouched.
 */
export function shellQuote(argv: readonly string[]): string {
	return argv
		.map((arg) => {
			if (!SAFE_ARG.test(arg))
				throw new Error(`refusing to pass an unexpected argument over SSH: ${JSON.stringify(arg.slice(0, 40))}`);
			return `'${arg}'`;
		})
		.join(" ");
}

/** Runs one command over SSH with a pinned host key, a connect timeout and an overall timeout. */
export async function runSsh(
	target: SshTarget,
	argv: readonly string[],
	options: { timeoutMs?: number; maxBytes?: number } = {},
): Promise<SshResult> {
	const command = shellQuote(argv);
	const pinned = Buffer.from(target.hostKey.split(" ")[1] ?? "", "base64");
	const privateKey = await readFile(target.privateKeyPath);
	// Loaded at the first SSH command, not at start: most processes never run one (~10 MiB idle RSS).
	const { Client } = await import("ssh2");
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
		const timer = setTimeout(
			() => finish(() => reject(new SshTimeoutError(target.host, timeoutMs, ready ? "command" : "connect"))),
			timeoutMs,
		);
		conn.on("error", (err: Error & { level?: string }) =>
			finish(() =>
				// ssh2 reports its readyTimeout as an error of level "client-timeout"; it is the same timeout as ours.
				reject(
					mismatch
						? new HostKeyMismatchError(target.host)
						: err.level === "client-timeout"
							? new SshTimeoutError(target.host, target.timeoutMs, "connect", { cause: err })
							: err.level === "client-authentication"
								? new SshAuthError(target.host, target.user, { cause: err })
								: err,
				),
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
					finish(() =>
						resolve({
							code,
							stdout: Buffer.concat(out).toString("utf8"),
							stderr: Buffer.concat(errOut).toString("utf8"),
							truncated: truncated || outBytes > maxBytes || errBytes > maxBytes,
						}),
					),
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

/** How one command runs: its overall deadline, output bound, and what a slow command suggests to the user. */
export interface SshRunOptions {
	/** Overall deadline for the command (default: the environment's `ssh.timeoutMs`, which always bounds connecting). */
	readonly timeoutMs?: number;
	readonly maxBytes?: number;
	/** Advice when the command connects but does not finish in time, e.g. "narrow the time range". */
	readonly slowAdvice?: string;
}

/** The SSH host of each environment (pinned host key, key file from the environment), built once from the config. */
export interface SshService {
	/**
	 * Runs one allow-listed argv on the environment's host. Failures a user can act on (no key
	 * configured, host key mismatch, key refused, no answer in time) are UserFacingErrors.
	 */
	run(environment: string, argv: readonly string[], options?: SshRunOptions): Promise<SshResult>;
}

/** The SSH host key did not match the pinned one: opsbot refused to connect and ran nothing. */
export class SshHostKeyError extends UserFacingError {
	constructor(host: string, options?: ErrorOptions) {
		super(
			[
				`The SSH host key of ${host} does not match the pinned key in the config; opsbot refused to connect, `,
				"so nothing was run. If the host was rebuilt, update ",
				{ code: "ssh.hostKey" },
				".",
			],
			options,
		);
		this.name = "SshHostKeyError";
	}
}

/** The SSH host did not answer in time (down, unreachable or slow); the request itself may be fine. */
export class SshUnavailableError extends UserFacingError {
	constructor(message: string, options?: ErrorOptions) {
		super(message, { ...options, unavailable: true });
		this.name = "SshUnavailableError";
	}
}

/** Creates the SSH service: one target per environment with an `ssh` block, built here and nowhere else. */
export function createSshService(deps: {
	readonly environments: Readonly<Record<string, Pick<EnvironmentConfig, "ssh">>>;
	readonly secret: (name: string) => string | undefined;
}): SshService {
	const hosts = new Map(
		Object.entries(deps.environments).flatMap(([name, env]) => (env.ssh ? [[name, env.ssh] as const] : [])),
	);
	return {
		async run(environment, argv, options = {}) {
			const ssh = hosts.get(environment);
			if (!ssh) throw new UserFacingError(`${environment} has no SSH host configured.`);
			const privateKeyPath = deps.secret(ssh.keyFileEnv);
			if (!privateKeyPath) throw new UserFacingError("The SSH key for this environment is not configured.");
			// Never trust an unpinned host: `opsbot doctor` shows its key for a person to check and pin.
			if (!ssh.hostKey)
				throw new UserFacingError([
					`${ssh.host} has no pinned host key (`,
					{ code: "ssh.hostKey" },
					"), so opsbot does not connect. Run ",
					{ code: "npx opsbot doctor" },
					" to see its key.",
				]);
			const target: SshTarget = {
				host: ssh.host,
				port: ssh.port,
				user: ssh.user,
				privateKeyPath,
				hostKey: ssh.hostKey,
				timeoutMs: ssh.timeoutMs,
			};
			return runSsh(target, argv, options).catch((err: unknown) => {
				throw userFacingSshError(err, {
					environment,
					host: ssh.host,
					user: ssh.user,
					command: argv.slice(0, 2).join(" "),
					slowAdvice: options.slowAdvice,
				});
			});
		},
	};
}

/** The one place SSH failures become what a user reads; anything else passes through for the generic error path. */
function userFacingSshError(
	err: unknown,
	at: { environment: string; host: string; user: string; command: string; slowAdvice: string | undefined },
): unknown {
	if (err instanceof HostKeyMismatchError) return new SshHostKeyError(at.host, { cause: err });
	if (err instanceof SshAuthError)
		return new UserFacingError(
			[
				`${at.host} refused opsbot's SSH key for `,
				{ code: at.user },
				". Check ",
				{ code: "ssh.user" },
				" and the key file named by ",
				{ code: "ssh.keyFileEnv" },
				".",
			],
			{ cause: err },
		);
	if (err instanceof SshTimeoutError) {
		const advice =
			err.phase === "connect"
				? "the host may be down or unreachable over SSH"
				: (at.slowAdvice ?? "the command did not finish");
		return new SshUnavailableError(
			`${at.command} on ${at.host} did not answer within ${Number((err.ms / 1000).toFixed(1))} s (${advice}). Try ` +
				`again, or check /health ${at.environment}.`,
			{ cause: err },
		);
	}
	return err;
}

/** Plain words for a failed SSH command in a health line: never ssh2's own text. */
export function describeSshFailure(err: unknown): string {
	const cause = err instanceof UserFacingError && err.cause !== undefined ? err.cause : err;
	if (cause instanceof HostKeyMismatchError) return "host key does not match the pinned key";
	if (cause instanceof SshAuthError) return "SSH key refused";
	if (cause instanceof SshTimeoutError) return "timed out";
	if (err instanceof UserFacingError) return err.message;
	// Socket errors (refused, unknown host) carry the same codes undici's do.
	return describeHttpFailure(err);
}
