import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PermissionFlagsBits } from "discord.js";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { commandBodies } from "../../deploy-commands.ts";
import type { DoctorResult } from "../../src/services/doctor.ts";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { runOpsbotCli, runOpsbotInProcess, unwrapped } from "../support/cli.ts";
import { startSshd, type TestSshd } from "../support/sshd.ts";

const TOKEN = "doctor-test-token";
const GUILD = "100000000000000001";
const ONCALL = "300000000000000001";
const GHOST_ROLE = "300000000000000999";
const OPS = "400000000000000001";
const ALERTS = "400000000000000002";

/**
 * `opsbot doctor` as a user runs it (bin/opsbot.js), against the Discord double over HTTP and real
 * services: one fault of each kind — a channel where the bot may not embed links, a role the server
 * does not have, a service that refuses connections, an SSH host with no pinned key, and commands
 * registered from an older version — each named with what to do, in the terminal view and in --json.
 */
describe("opsbot doctor against a stack with one fault of each kind", () => {
	const pgbouncer = inject("pgbouncer");
	let double: DiscordDouble;
	let sshd: TestSshd;
	let api: Server;
	let env: Record<string, string>;

	beforeAll(async () => {
		api = createServer((_, res) => res.end("ok"));
		await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
		sshd = await startSshd();
		double = await startDiscordDouble({
			token: TOKEN,
			guild: {
				id: GUILD,
				roles: [{ id: ONCALL, name: "oncall" }],
				channels: [
					{ id: OPS, name: "ops" },
					// The fault: @everyone may not embed links here (the overwrite's id is the guild's), which also takes it from the
					// bot.
					{
						id: ALERTS,
						name: "alerts",
						permission_overwrites: [
							{ id: GUILD, type: 0, allow: "0", deny: PermissionFlagsBits.EmbedLinks.toString() },
						],
					},
				],
			},
		});
		// Registered by an older opsbot: /audit missing and a command since removed.
		const old = commandBodies().filter((c) => c.name !== "audit");
		double.commands.guild.set(double.guildId, [
			...old,
			{ name: "oldstatus", description: "gone", type: 1 },
		] as unknown as Record<string, unknown>[]);
		const dir = mkdtempSync(join(tmpdir(), "opsbot-doctor-"));
		writeFileSync(
			join(dir, "opsbot.yaml"),
			`discord:
  guildId: "${double.guildId}"
  opsChannels: ["${OPS}"]
  roles: { oncall: "${ONCALL}", admins: "${GHOST_ROLE}" }
access:
  commands: { health: [everyone], pool: [oncall] }
environments:
  production:
    http:
      - { name: website, url: "http://127.0.0.1:${(api.address() as AddressInfo).port}/", timeoutMs: 2000 }
      - { name: backend, url: "http://127.0.0.1:1/health", timeoutMs: 2000 }
    postgres: { urlEnv: PROD_DATABASE_URL, timeoutMs: 3000 }
    ssh: { host: ${sshd.host}, port: ${sshd.port}, user: ${sshd.user}, keyFileEnv: PROD_SSH_KEY_FILE, timeoutMs: 5000 }
alerts:
  listen: { host: 127.0.0.1, port: 1 }
  defaultChannel: "${OPS}"
  routes:
    - { match: { severity: critical }, channel: "${ALERTS}", mentionRole: "${ONCALL}" }
stateDir: ${join(dir, "data")}
`,
		);
		env = {
			OPSBOT_CONFIG: join(dir, "opsbot.yaml"),
			DISCORD_TOKEN: TOKEN,
			DISCORD_APPLICATION_ID: double.applicationId,
			DISCORD_API_URL: double.apiUrl,
			WEBHOOK_TOKEN: "w".repeat(32),
			PROD_DATABASE_URL: pgbouncer.opsbotUrl,
			PROD_SSH_KEY_FILE: sshd.privateKeyPath,
		};
	});
	afterAll(async () => {
		await double?.close();
		await sshd?.stop();
		await new Promise((resolve) => api?.close(resolve));
	});

	it("names each fault with what to do in the terminal view, and exits 2", async () => {
		const run = await runOpsbotCli(["doctor"], env, 60_000);

		expect(run.code, run.stderr).toBe(2);
		// Printed for 80 columns: a finding's text continues on indented lines, and stands under a long label.
		const out = unwrapped(run.stdout);
		expect(out).toMatch(/^\[CRIT\] opsbot set-up: \d+ broken/);
		expect(out).toMatch(
			/CRIT\s+channel #alerts\s+the bot lacks Embed Links \(alerts\.routes\.0\) → Edit Channel > Permissions/,
		);
		expect(out).toMatch(/OK\s+channel #ops\s+the bot may post there/);
		expect(out).toMatch(
			new RegExp(
				`CRIT\\s+role admins\\s+${GHOST_ROLE} is not a role of this server \\(discord\\.roles\\.admins\\) → ` +
					`Server Settings > Roles`,
			),
		);
		expect(out).toMatch(/OK\s+role oncall/);
		expect(out).toMatch(/CRIT\s+production · backend\s+http: .*refused/);
		expect(out).toMatch(/OK\s+production · website/);
		expect(out).toMatch(/OK\s+production · postgresql/);
		expect(out).toMatch(/CRIT\s+production · ssh 127\.0\.0\.1:\d+\s+answers, but no host key is pinned/);
		// The key to pin is the host's own, printed in full for the config, never trusted by itself; the
		// lines to copy (config line, AlertManager receiver) are whole lines however narrow the terminal.
		const printed = run.stdout.split("\n").map((line) => line.trim());
		expect(printed).toContain(`hostKey: ${sshd.hostKey}`);
		expect(printed).toContain("credentials_file: /etc/alertmanager/opsbot-token");
		expect(out).toMatch(
			new RegExp(
				String.raw`WARN\s+slash commands\s+registered in server \d+ differ from the code: \/audit missing, ` +
					String.raw`\/oldstatus no longer exists → node deploy-commands\.ts --guild`,
			),
		);
		expect(out).toMatch(/OK\s+token\s+valid/);
		expect(out).toMatch(/off: not configured: pgbouncer/);
	});

	it("gives the same findings as data with --json", async () => {
		const run = await runOpsbotInProcess(["doctor", "--json"], env);

		expect(run.code, run.stderr).toBe(2);
		const result = JSON.parse(run.stdout) as DoctorResult;
		const state = (subject: string) => result.findings.find((f) => f.subject === subject)?.state;
		expect(state("channel #alerts")).toBe("broken");
		expect(state("channel #ops")).toBe("ok");
		expect(state("role admins")).toBe("broken");
		expect(state("production · backend")).toBe("broken");
		expect(state(`production · ssh ${sshd.host}:${sshd.port}`)).toBe("broken");
		expect(state("slash commands")).toBe("degraded");
		expect(result.hostKeys).toEqual([
			expect.objectContaining({ environment: "production", host: sshd.host, configLine: `hostKey: ${sshd.hostKey}` }),
		]);
		expect(result.findings.find((f) => f.subject === "channel #alerts")?.fix).toContain("Edit Channel > Permissions");
	});

	it("says the token was refused, and stops the Discord checks there", async () => {
		const run = await runOpsbotInProcess(["doctor", "--json"], {
			...env,
			DISCORD_TOKEN: "a-token-discord-does-not-know",
		});

		expect(run.code, run.stderr).toBe(2);
		const discord = (JSON.parse(run.stdout) as DoctorResult).findings.filter((f) => f.area === "discord");
		expect(discord).toEqual([
			expect.objectContaining({ subject: "token", state: "broken", detail: "Discord refused the token (401)" }),
		]);
	});

	it("exits 78 with the config's problems when the config is invalid", async () => {
		const run = await runOpsbotInProcess(["doctor"], { ...env, PROD_DATABASE_URL: "" });

		expect(run.code).toBe(78);
		expect(run.stderr).toContain(
			"environments.production.postgres.urlEnv: environment variable PROD_DATABASE_URL is not set",
		);
	});

	it("says when the bot is not in the server, with the invite URL, and stops the Discord checks there", async () => {
		const outside = await startDiscordDouble({ token: TOKEN, guild: { id: GUILD }, botNotInGuild: true });
		try {
			const run = await runOpsbotInProcess(["doctor", "--json"], {
				...env,
				DISCORD_APPLICATION_ID: outside.applicationId,
				DISCORD_API_URL: outside.apiUrl,
			});

			expect(run.code, run.stderr).toBe(2);
			const discord = (JSON.parse(run.stdout) as DoctorResult).findings.filter((f) => f.area === "discord");
			expect(discord.map((f) => [f.subject, f.state])).toEqual([
				["token", "ok"],
				["server", "broken"],
			]);
			expect(discord[1]?.detail).toBe(`the bot is not in server ${GUILD} (discord.guildId)`);
			expect(discord[1]?.fix).toContain(
				`https://discord.com/oauth2/authorize?client_id=${outside.applicationId}&scope=bot+applications.commands&` +
					`permissions=`,
			);
		} finally {
			await outside.close();
		}
	});
});
