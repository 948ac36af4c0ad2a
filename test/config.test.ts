import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { requireEnvironment } from "../src/commands/options.ts";
import { ConfigError, findEnvironment, loadConfig } from "../src/config.ts";
import { UserFacingError } from "../src/errors.ts";
import { textToMarkdown } from "../src/render/report.ts";

const dir = mkdtempSync(join(tmpdir(), "opsbot-config-"));
let n = 0;
function writeConfig(yaml: string): string {
	const path = join(dir, `c${n++}.yaml`);
	writeFileSync(path, yaml);
	return path;
}
const secretValue = () => `postgres://opsbot:${randomBytes(9).toString("hex")}@127.0.0.1:6432/appdb`;

const minimal = `
discord: { guildId: "100000000000000001" }
environments:
  production:
    postgres: { urlEnv: PROD_DATABASE_URL }
`;

function problemsOf(env: NodeJS.ProcessEnv, mode: "bot" | "cli" = "cli"): string[] {
	try {
		loadConfig(env, mode);
	} catch (err) {
		if (err instanceof ConfigError) return [...err.problems];
		throw err;
	}
	return [];
}

describe("loadConfig", () => {
	it("validates the shipped opsbot.example.yaml with every secret it names set", () => {
		const env = {
			OPSBOT_CONFIG: "opsbot.example.yaml",
			DISCORD_TOKEN: randomBytes(12).toString("hex"),
			DISCORD_APPLICATION_ID: "100000000000000900",
			PROD_DATABASE_URL: secretValue(),
			PROD_PGBOUNCER_ADMIN_URL: secretValue(),
			PROD_SSH_KEY_FILE: "/nonexistent/key",
			STAGING_DATABASE_URL: secretValue(),
			STAGING_SSH_KEY_FILE: "/nonexistent/key",
			WEBHOOK_TOKEN: randomBytes(16).toString("hex"),
		};

		const config = loadConfig(env, "bot");

		expect(Object.keys(config.ops.environments)).toEqual(["production", "staging"]);
		expect(config.ops.environments.production?.pgbouncer?.adminUrlEnv).toBe("PROD_PGBOUNCER_ADMIN_URL");
		expect(config.ops.environments.production?.loki?.url).toBe("http://monitoring.internal:3100");
		expect(config.ops.environments.staging?.loki).toBeUndefined();
		expect(config.ops.audit.columns.resourceType).toBe("resource_type");
		expect(config.secrets.get("PROD_DATABASE_URL")).toBe(env.PROD_DATABASE_URL);
	});

	it("names the path of a missing required key", () => {
		const path = writeConfig(`
discord: { guildId: "100000000000000001" }
environments:
  staging:
    postgres: { timeoutMs: 1000 }
`);

		expect(problemsOf({ OPSBOT_CONFIG: path })).toContain("environments.staging.postgres.urlEnv: required");
	});

	it("lists every problem at once, each with its path", () => {
		const path = writeConfig(`
discord: { guildId: "12" }
access:
  commands: { health: [nobody] }
environments:
  production:
    http:
      - { name: api, url: "ftp://example.com", timeoutMs: 5 }
    postgres: { urlEnv: lower_case }
    surprise: true
pool: { warnPercent: 95, criticalPercent: 90 }
`);

		const problems = problemsOf({ OPSBOT_CONFIG: path });

		expect(problems).toEqual(
			expect.arrayContaining([
				expect.stringMatching(/^discord\.guildId: expected a Discord id/),
				expect.stringMatching(/^environments\.production\.http\.0\.url: expected an http\(s\) URL/),
				expect.stringMatching(/^environments\.production\.http\.0\.timeoutMs: /),
				expect.stringMatching(/^environments\.production\.postgres\.urlEnv: expected an environment variable name/),
				'environments.production: unknown key "surprise"',
			]),
		);
		expect(problems.length).toBeGreaterThanOrEqual(5);
	});

	it("reports cross-references: unknown roles, thresholds, default environment", () => {
		const path = writeConfig(`
discord: { guildId: "100000000000000001", roles: { oncall: "100000000000000100" } }
access:
  commands: { pool: [oncall, ghosts] }
environments:
  production: {}
defaultEnvironment: prod
pool: { warnPercent: 95, criticalPercent: 90 }
`);

		const problems = problemsOf({ OPSBOT_CONFIG: path });

		expect(problems).toContain('access.commands.pool.1: unknown role "ghosts" (define it under discord.roles)');
		expect(problems).toContain("pool.warnPercent: must be below pool.criticalPercent");
		expect(problems.some((p) => p.startsWith("defaultEnvironment: "))).toBe(true);
	});

	it("takes the replicas' lease timings (15 s and 5 s by default) and refuses a lease too short to renew", () => {
		const defaults = loadConfig(
			{
				OPSBOT_CONFIG: writeConfig('discord: { guildId: "100000000000000001" }\nenvironments: { production: {} }\n'),
			},
			"cli",
		);
		const short = writeConfig(`
discord: { guildId: "100000000000000001" }
environments: { production: {} }
replicas: { leaseSeconds: 6, renewSeconds: 2 }
`);
		const tooShort = writeConfig(`
discord: { guildId: "100000000000000001" }
environments: { production: {} }
replicas: { leaseSeconds: 8, renewSeconds: 3 }
`);

		expect(defaults.ops.replicas).toEqual({ leaseSeconds: 15, renewSeconds: 5 });
		expect(loadConfig({ OPSBOT_CONFIG: short }, "cli").ops.replicas).toEqual({ leaseSeconds: 6, renewSeconds: 2 });
		expect(problemsOf({ OPSBOT_CONFIG: tooShort })).toEqual([
			"replicas.leaseSeconds: must be at least 3 × renewSeconds (so one failed renewal does not cost the lease)",
		]);
	});

	it("reads the alert clocks every 5 s by default, as often as alerts.clocks says, and refuses 0, 61 or 2.5", () => {
		const withClocks = (clocks: string) =>
			writeConfig(`
discord: { guildId: "100000000000000001" }
environments: { production: {} }
alerts:
  defaultChannel: "400000000000000001"
${clocks}`);

		expect(loadConfig({ OPSBOT_CONFIG: withClocks("") }, "cli").ops.alerts?.clocks).toEqual({ intervalSeconds: 5 });
		expect(
			loadConfig({ OPSBOT_CONFIG: withClocks("  clocks: { intervalSeconds: 1 }") }, "cli").ops.alerts?.clocks,
		).toEqual({ intervalSeconds: 1 });
		expect(problemsOf({ OPSBOT_CONFIG: withClocks("  clocks: { intervalSeconds: 0 }") })).toEqual([
			"alerts.clocks.intervalSeconds: must be 1 to 60 seconds",
		]);
		expect(problemsOf({ OPSBOT_CONFIG: withClocks("  clocks: { intervalSeconds: 61 }") })).toEqual([
			"alerts.clocks.intervalSeconds: must be 1 to 60 seconds",
		]);
		expect(problemsOf({ OPSBOT_CONFIG: withClocks("  clocks: { intervalSeconds: 2.5 }") })).toEqual([
			"alerts.clocks.intervalSeconds: must be a whole number of seconds",
		]);
	});

	it("requires the environment variables the file names, without printing any value", () => {
		const path = writeConfig(minimal);
		const secret = secretValue();

		const unset = problemsOf({ OPSBOT_CONFIG: path });
		const set = problemsOf({ OPSBOT_CONFIG: path, PROD_DATABASE_URL: secret, DISCORD_TOKEN: "x".repeat(3) }, "bot");

		expect(unset).toEqual([
			"environments.production.postgres.urlEnv: environment variable PROD_DATABASE_URL is not set (put it in .env)",
		]);
		expect(set).toEqual([
			"env.DISCORD_APPLICATION_ID: required to start the bot: paste it into .env from " +
				"https://discord.com/developers/applications (General Information > Application ID)",
		]);
		expect(set.join("\n")).not.toContain(secret);
	});

	it("never echoes secret values from a malformed environment", () => {
		const path = writeConfig(minimal);
		const token = `leak-${randomBytes(8).toString("hex")}`;

		let message = "";
		try {
			loadConfig(
				{
					OPSBOT_CONFIG: path,
					PROD_DATABASE_URL: secretValue(),
					WEBHOOK_TOKEN: token.slice(0, 6),
					DISCORD_API_URL: `not a url ${token}`,
				},
				"cli",
			);
		} catch (err) {
			message = (err as Error).message;
		}

		expect(message).toContain("env.WEBHOOK_TOKEN: must be at least 16 characters");
		expect(message).toContain("env.DISCORD_API_URL: expected an http(s) URL");
		expect(message).not.toContain(token);
		expect(message).not.toContain(token.slice(0, 6));
	});

	it("explains a missing file and broken YAML", () => {
		expect(problemsOf({ OPSBOT_CONFIG: join(dir, "absent.yaml") })[0]).toMatch(/ops config file not found/);
		expect(problemsOf({ OPSBOT_CONFIG: writeConfig("discord: [unclosed\n  x: y") })[0]).toMatch(/YAML .* at line \d+/);
		expect(problemsOf({ OPSBOT_CONFIG: writeConfig("discord: {}\ndiscord: {}\n") })[0]).toMatch(/YAML DUPLICATE_KEY/);
	});

	it("requires webhook auth when alerts are configured and the bot starts", () => {
		const path = writeConfig(`${minimal}\nalerts: { defaultChannel: "100000000000000020" }\n`);
		const bot = { DISCORD_TOKEN: "double-token", DISCORD_APPLICATION_ID: "100000000000000900" };

		expect(problemsOf({ OPSBOT_CONFIG: path, PROD_DATABASE_URL: secretValue(), ...bot }, "bot")).toEqual([
			"env.WEBHOOK_TOKEN: required when `alerts` is configured (or set WEBHOOK_BASIC_AUTH): 16+ random " +
				"characters, e.g. from `openssl rand -base64 24`",
		]);
	});

	it("lets the CLI run without webhook auth or Discord secrets when alerts are configured", () => {
		const path = writeConfig(`${minimal}\nalerts: { defaultChannel: "100000000000000020" }\n`);

		const config = loadConfig({ OPSBOT_CONFIG: path, PROD_DATABASE_URL: secretValue() }, "cli");

		expect(config.ops.alerts?.defaultChannel).toBe("100000000000000020");
		expect(config.env.WEBHOOK_TOKEN).toBeUndefined();
	});
});

describe("environment lookup by user text", () => {
	const ops = { environments: { production: { http: [] }, staging: { http: [] } }, defaultEnvironment: "production" };

	it.each(["__proto__", "constructor", "toString", "hasOwnProperty"])("finds no environment called %s", (name) => {
		expect(findEnvironment(ops, name)).toBeUndefined();
	});

	it.each(["__proto__", "constructor"])("tells the user %s is unknown and lists the known ones", (name) => {
		let thrown: unknown;
		try {
			requireEnvironment(ops, name);
		} catch (err) {
			thrown = err;
		}

		expect(thrown).toBeInstanceOf(UserFacingError);
		// The terminal reads the name as it is; Discord shows it as code, as before.
		expect((thrown as Error).message).toBe(`Unknown environment ${name}. Known: production, staging.`);
		expect(textToMarkdown((thrown as UserFacingError).text)).toBe(
			`Unknown environment \`${name}\`. Known: production, staging.`,
		);
		expect(() => requireEnvironment(ops, name, "postgres")).toThrow(UserFacingError);
	});

	it("still finds configured environments, including the default", () => {
		expect(findEnvironment(ops, "staging")).toBe(ops.environments.staging);
		expect(requireEnvironment(ops, undefined)).toBe("production");
		expect(requireEnvironment(ops, "staging")).toBe("staging");
	});
});
