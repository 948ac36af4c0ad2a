import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";
import { createSshService } from "../src/services/ssh.ts";

const ops = `discord: { guildId: "100000000000000001" }
environments:
  production:
    ssh: { host: prod.internal, user: deploy, keyFileEnv: PROD_SSH_KEY_FILE, containers: [api] }
`;

describe("an SSH host with no pinned key", () => {
	const path = join(mkdtempSync(join(tmpdir(), "opsbot-hostkey-")), "opsbot.yaml");
	writeFileSync(path, ops);
	const env = {
		OPSBOT_CONFIG: path,
		PROD_SSH_KEY_FILE: "/nonexistent/key",
		DISCORD_TOKEN: "t",
		DISCORD_APPLICATION_ID: "100000000000000002",
	};

	it("stops the bot from starting, saying how to get the key", () => {
		let problems: readonly string[] = [];
		try {
			loadConfig(env, "bot");
		} catch (err) {
			if (err instanceof ConfigError) problems = err.problems;
		}
		expect(problems).toEqual([
			"environments.production.ssh.hostKey: required: pin the host's key (`ssh-keyscan -t ed25519 prod.internal`, " +
				"or `npx opsbot doctor` shows it)",
		]);
	});

	it("lets the CLI load the config (so doctor can show the key), and its SSH service refuses to connect", async () => {
		const config = loadConfig(env, "cli");
		const ssh = createSshService({ environments: config.ops.environments, secret: (name) => config.secrets.get(name) });

		await expect(ssh.run("production", ["docker", "ps"])).rejects.toThrow(
			"prod.internal has no pinned host key (ssh.hostKey), so opsbot does not connect. Run npx opsbot doctor to " +
				"see its key.",
		);
	});
});
