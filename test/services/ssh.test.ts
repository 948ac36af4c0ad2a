import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserFacingError } from "../../src/errors.ts";
import { createSshService, HostKeyMismatchError, runSsh, SshHostKeyError, shellQuote } from "../../src/services/ssh.ts";
import { healthService } from "../support/services.ts";
import { fakeDocker, sshKeyPair, startSshd, type TestSshd } from "../support/sshd.ts";

describe("SSH runner against a real sshd with a pinned host key", () => {
	let sshd: TestSshd;
	beforeAll(async () => {
		sshd = await startSshd();
	});
	afterAll(() => sshd?.stop());

	const target = () => ({
		host: sshd.host,
		port: sshd.port,
		user: sshd.user,
		privateKeyPath: sshd.privateKeyPath,
		hostKey: sshd.hostKey,
		timeoutMs: 10_000,
	});

	it("runs an argument list on the remote host and returns exit code and output", async () => {
		const docker = fakeDocker(sshd.binDir, "line one\nline two\n");

		const result = await runSsh(target(), ["docker", "logs", "--tail", "5", "api"]);

		expect(result).toMatchObject({ code: 0, stdout: "line one\nline two\n", truncated: false });
		expect(docker.calls()).toEqual([["logs", "--tail", "5", "api"]]);
	});

	it("refuses a host presenting another key, before anything runs", async () => {
		const docker = fakeDocker(sshd.binDir, "");
		const other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm9ZyXwzsEMqoaN3MKjQx9u0uw0jNIKXD3LrR9bbhpH";

		const error = await runSsh({ ...target(), hostKey: other }, ["docker", "restart", "api"]).catch(
			(err: unknown) => err,
		);

		expect(error).toBeInstanceOf(HostKeyMismatchError);
		expect(docker.calls()).toEqual([]);
	});

	it("turns a host key mismatch and a refused key into what the user reads, naming the config to check", async () => {
		const other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm9ZyXwzsEMqoaN3MKjQx9u0uw0jNIKXD3LrR9bbhpH";
		const strangerKey = join(mkdtempSync(join(tmpdir(), "opsbot-ssh-auth-")), "key");
		sshKeyPair(strangerKey);
		const ssh = (hostKey: string) => ({
			host: sshd.host,
			port: sshd.port,
			user: sshd.user,
			keyFileEnv: "KEY",
			hostKey,
			timeoutMs: 10_000,
			containers: ["api"],
		});
		const service = createSshService({
			environments: { pinned: { ssh: ssh(other) }, stranger: { ssh: ssh(sshd.hostKey) } },
			secret: (name) => (name === "KEY" ? strangerKey : undefined),
		});

		const mismatch = await service.run("pinned", ["docker", "restart", "api"]).catch((err: unknown) => err);
		const refused = await service.run("stranger", ["docker", "restart", "api"]).catch((err: unknown) => err);

		expect(mismatch).toBeInstanceOf(SshHostKeyError);
		expect((mismatch as Error).message).toContain(
			"does not match the pinned key in the config; opsbot refused to connect, so nothing was run",
		);
		expect(refused).toBeInstanceOf(UserFacingError);
		expect((refused as Error).message).toBe(
			`${sshd.host} refused opsbot's SSH key for ${sshd.user}. Check ssh.user and the key file named by ssh.keyFileEnv.`,
		);
	});

	it("never passes shell syntax through", () => {
		expect(shellQuote(["docker", "logs", "api"])).toBe("'docker' 'logs' 'api'");
		for (const bad of ["api; rm -rf /", "$(id)", "a b", "`x`", "'", ""])
			expect(() => shellQuote(["docker", "logs", bad])).toThrow(/refusing/);
	});
});

describe("/health lists the allow-listed containers over SSH", () => {
	let sshd: TestSshd;
	beforeAll(async () => {
		sshd = await startSshd();
	});
	afterAll(() => sshd?.stop());

	it("reads docker ps for the allow-listed containers only, and says which are not running", async () => {
		fakeDocker(sshd.binDir, "", "api|Up 2 hours\nworker|Exited (1) 3 minutes ago\nsecret-thing|Up 5 days\n");
		const service = healthService({
			environments: {
				production: {
					http: [],
					ssh: {
						host: sshd.host,
						port: sshd.port,
						user: "root",
						keyFileEnv: "KEY",
						hostKey: sshd.hostKey,
						timeoutMs: 10_000,
						containers: ["api", "worker", "cron"],
					},
				},
			},
			databases: { get: () => undefined },
			secret: (name) => (name === "KEY" ? sshd.privateKeyPath : undefined),
			log: pino({ level: "silent" }),
		});

		const snapshot = await service.check("production");

		expect(snapshot.checks).toEqual([
			expect.objectContaining({
				name: "containers on 127.0.0.1",
				kind: "containers",
				state: "down",
				detail: "api up 2 hours, worker exited (1) 3 minutes ago, cron not found",
			}),
		]);
	});
});
