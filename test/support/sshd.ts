import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, requireBinary, startProcess, waitUntil } from "./proc.ts";

/** A throwaway OpenSSH server on 127.0.0.1: key-only login as root, a fresh host key, and a PATH the test chooses. */
export interface TestSshd {
	readonly host: string;
	readonly port: number;
	readonly user: string;
	readonly privateKeyPath: string;
	/** "ssh-ed25519 AAAA..." as it goes into opsbot's config. */
	readonly hostKey: string;
	/** Directory prepended to the remote PATH: put stand-ins (a fake `docker`) here. */
	readonly binDir: string;
	stop(): Promise<void>;
}

/**
 * Writes a fresh ed25519 key pair to `file` and `file`.pub with OpenSSH's ssh-keygen, and returns the public key as
 * "ssh-ed25519 AAAA...". Not ssh2's utils.generateKeyPairSync: about 1 in 256 of its ed25519 keys cannot be parsed
 * back (mscdex/ssh2#1513), which failed a test at random.
 */
export function sshKeyPair(file: string): string {
	requireBinary("/usr/bin/ssh-keygen", "ssh-keygen", "openssh-client");
	const r = spawnSync("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file], { encoding: "utf8" });
	if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
	return readFileSync(`${file}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
}

/** Starts sshd; the `docker` stand-in written by the test into binDir is what remote commands find. */
export async function startSshd(): Promise<TestSshd> {
	requireBinary("/usr/sbin/sshd", "OpenSSH server", "openssh-server");
	const dir = mkdtempSync(join(tmpdir(), "opsbot-sshd-"));
	const binDir = join(dir, "bin");
	mkdirSync(binDir);
	chmodSync(dir, 0o755);
	const hostKey = sshKeyPair(join(dir, "host_key"));
	writeFileSync(join(dir, "authorized_keys"), `${sshKeyPair(join(dir, "client_key"))}\n`, { mode: 0o600 });
	if (!existsSync("/run/sshd")) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
	const port = await freePort();
	writeFileSync(
		join(dir, "sshd_config"),
		`${[
			"ListenAddress 127.0.0.1",
			`Port ${port}`,
			`HostKey ${join(dir, "host_key")}`,
			`AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"PubkeyAuthentication yes",
			"PermitRootLogin prohibit-password",
			"AllowUsers root",
			"UsePAM no",
			"StrictModes no",
			`PidFile ${join(dir, "sshd.pid")}`,
			`SetEnv PATH=${binDir}:/usr/local/bin:/usr/bin:/bin`,
		].join("\n")}\n`,
	);
	const proc = startProcess("/usr/sbin/sshd", ["-D", "-e", "-f", join(dir, "sshd_config")], {
		logFile: join(dir, "sshd.log"),
	});
	const stop = async () => {
		await proc.stop();
		rmSync(dir, { recursive: true, force: true });
	};
	try {
		await waitUntil(
			() =>
				new Promise<boolean>((resolve) => {
					const socket = connect(port, "127.0.0.1", () => {
						socket.destroy();
						resolve(true);
					});
					socket.on("error", () => resolve(false));
				}),
			15_000,
			proc.logTail,
			proc.child,
		);
	} catch (err) {
		await stop();
		throw err;
	}
	return { host: "127.0.0.1", port, user: "root", privateKeyPath: join(dir, "client_key"), hostKey, binDir, stop };
}

/**
 * Writes a `docker` stand-in that records its argv (one line per call, as the call starts) and
 * prints `output` for `docker logs`; `docker restart` takes `restartSeconds` (a slow container stop).
 */
export function fakeDocker(
	binDir: string,
	output: string,
	ps = "api|Up 2 hours\n",
	/** restartOutput: what `docker restart` prints (by default the container's name, as docker does). */
	options: { restartSeconds?: number; restartOutput?: string } = {},
): { calls: () => string[][] } {
	writeFileSync(join(binDir, "docker.ps"), ps);
	const restartOut = join(binDir, "docker.restart.out");
	writeFileSync(restartOut, options.restartOutput ?? "");
	const restartPrints = options.restartOutput === undefined ? 'echo "$2"' : `cat '${restartOut}'`;
	const callsFile = join(binDir, "docker.calls");
	rmSync(callsFile, { force: true });
	writeFileSync(join(binDir, "docker.out"), output);
	writeFileSync(
		join(binDir, "docker"),
		`#!/bin/sh\nprintf '%s\\0' "$@" >> '${callsFile}'\nprintf '\\n' >> '${callsFile}'\ncase "$1" in\n` +
			`  logs) cat '${join(binDir, "docker.out")}' ;;\n` +
			`  restart) sleep ${options.restartSeconds ?? 0}; ${restartPrints} ;;\n` +
			`  ps) cat '${join(binDir, "docker.ps")}' 2>/dev/null ;;\n  *) echo "unknown command $1" >&2; exit 1 ;;\nesac\n`,
		{ mode: 0o755 },
	);
	return {
		calls: () =>
			existsSync(callsFile)
				? readFileSync(callsFile, "utf8")
						.split("\n")
						.filter(Boolean)
						.map((line) => line.split("\0").filter(Boolean))
				: [],
	};
}
