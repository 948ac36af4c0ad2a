import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { runOpsbotCli, runOpsbotInProcess, unwrapped } from "../support/cli.ts";
import { mountTmpfs, startNodeExporter, type TestMount, type TestNodeExporter } from "../support/node-exporter.ts";
import { startPostgres, type TestPostgres } from "../support/postgres.ts";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.ts";

const ONCALL = "300000000000000001";

// The first run is the process (bin/opsbot.js); the later ones test what it prints, in-process.
const opsbot = runOpsbotInProcess;

/** Discord markdown escapes undone, to compare with what a person reads. */
const unescapeMarkdown = (text: string) => text.replace(/\\(.)/g, "$1");

describe(
	"/health with host resources and custom checks: the shipped process, the CLI, real node-exporter, " +
		"Prometheus and PostgreSQL",
	() => {
		// A PostgreSQL of its own: the shared one is busy with other files' connections, which would move the postgresql
		// line.
		let postgres: TestPostgres;
		let disk: TestMount;
		let exporter: TestNodeExporter;
		let prometheus: TestPrometheus;
		let app: pg.Client;
		let double: DiscordDouble;
		let bot: TestBot;
		let cliEnv: Record<string, string>;

		async function newestBackup(hoursAgo: number): Promise<void> {
			await app.query(`TRUNCATE "BackupLog"`);
			await app.query(`INSERT INTO "BackupLog" (created_at) VALUES (now() - make_interval(hours => $1))`, [hoursAgo]);
		}

		/** Waits until Prometheus' newest scrape of node-exporter shows the tmpfs with `mib` MiB used. */
		async function scraped(mib: number): Promise<void> {
			const query =
				`node_filesystem_size_bytes{mountpoint="${disk.dir}"} - ` +
				`node_filesystem_free_bytes{mountpoint="${disk.dir}"}`;
			for (let i = 0; i < 80; i++) {
				const answer = (await (
					await fetch(`${prometheus.url}/api/v1/query?${new URLSearchParams({ query })}`)
				).json()) as { data: { result: { value: [number, string] }[] } };
				if (Number(answer.data.result[0]?.value[1]) === mib * 1024 * 1024) return;
				await new Promise((resolve) => setTimeout(resolve, 250));
			}
			throw new Error(`Prometheus never saw ${mib} MiB used on ${disk.dir}`);
		}

		async function health(): Promise<{ title: string; description: string; color: number }> {
			const sent = await double.sendInteraction({
				kind: "command",
				name: "health",
				options: [{ name: "env", type: 3, value: "production" }],
				user: { roles: [ONCALL] },
			});
			const message = await double.waitFor(
				() =>
					double.originalMessage(sent.id)?.embeds[0]?.title?.toString().startsWith("Health of production") &&
					double.originalMessage(sent.id),
			);
			const embed = message.embeds[0] as { title: string; description: string; color: number };
			return { ...embed, description: unescapeMarkdown(embed.description) };
		}

		beforeAll(async () => {
			disk = mountTmpfs(64);
			exporter = await startNodeExporter();
			prometheus = await startPrometheus({ targets: { node: [exporter.address] } });
			postgres = await startPostgres();
			app = new pg.Client({ connectionString: postgres.appUrl });
			await app.connect();
			await app.query(
				`DROP TABLE IF EXISTS "BackupLog"; ` +
					`CREATE TABLE "BackupLog" (id serial PRIMARY KEY, created_at timestamptz NOT NULL)`,
			);
			await newestBackup(2);
			const ops = `discord:
  guildId: "{GUILD}"
  roles: { oncall: "${ONCALL}" }
access:
  commands: { health: [oncall] }
environments:
  production:
    postgres: { urlEnv: PROD_DATABASE_URL, timeoutMs: 3000 }
    prometheus: { url: "${prometheus.url}", timeoutMs: 3000 }
    hosts:
      - { name: prod, instance: "${exporter.address}", mounts: ["/", "${disk.dir}"] }
    checks:
      - name: backup age
        sql: SELECT extract(epoch FROM now() - max(created_at)) / 3600 FROM "BackupLog"
        unit: h
        degraded: 26
        down: 48
      - { name: scrape targets up, promql: "count(up == 1)", direction: below, degraded: 1, down: 0 }
`;
			double = await startDiscordDouble({ guild: { roles: [{ id: ONCALL, name: "oncall" }] } });
			bot = await startTestBot(double, ops.replace("{GUILD}", double.guildId), {
				PROD_DATABASE_URL: postgres.opsbotUrl,
			});
			const dir = mkdtempSync(join(tmpdir(), "opsbot-cli-hosts-"));
			writeFileSync(
				join(dir, "opsbot.yaml"),
				`${ops.replace("{GUILD}", double.guildId)}stateDir: "${join(dir, "state")}"\n`,
			);
			cliEnv = { OPSBOT_CONFIG: join(dir, "opsbot.yaml"), PROD_DATABASE_URL: postgres.opsbotUrl };
			await scraped(0);
			// Prometheus scrapes its two targets on their own schedules: wait until both have been scraped once.
			for (let i = 0; i < 80; i++) {
				const answer = (await (
					await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent("count(up == 1)")}`)
				).json()) as { data: { result: { value: [number, string] }[] } };
				if (answer.data.result[0]?.value[1] === "2") break;
				await new Promise((resolve) => setTimeout(resolve, 250));
			}
		});
		afterAll(async () => {
			await bot?.stop();
			await double?.close();
			await app?.query(`DROP TABLE IF EXISTS "BackupLog"`);
			await app?.end();
			await Promise.all([prometheus?.stop(), exporter?.stop(), postgres?.stop()]);
			disk?.unmount();
		});

		it("shows the host's disk per mount, memory, load and uptime and the custom checks as ordinary lines", async () => {
			const embed = await health();

			expect(embed.title, embed.description).toBe("Health of production: all good");
			expect(embed.description).toMatch(
				new RegExp(
					`🟢 \\*\\*prod\\*\\* host · \\d+ ms — disk / [\\d.]+/[\\d.]+ [GT]B \\(\\d+ %\\), ${disk.dir} 0\\.0/64 ` +
						`MB \\(0 %\\) · ram [\\d.]+/[\\d.]+ GB \\(\\d+ %\\) · load [\\d.]+/core · up \\d+ (d|h|min)\\n`,
				),
			);
			expect(embed.description).toMatch(/🟢 \*\*backup age\*\* sql · \d+ ms — 2 h\n/);
			expect(embed.description).toMatch(/🟢 \*\*scrape targets up\*\* promql · \d+ ms — 2$/);
		});

		it(
			"turns red on a full disk and amber on a late backup, " +
				"in Discord and in the CLI's text and exit code, and back",
			async () => {
				disk.fill(62);
				await newestBackup(30);
				await scraped(62);

				const embed = await health();
				const full = await runOpsbotCli(["health", "--env", "production"], cliEnv);
				disk.fill(0);
				await scraped(0);
				const late = await opsbot(["health", "--env", "production"], cliEnv);
				await newestBackup(1);
				const fine = await opsbot(["health", "--env", "production", "--json"], cliEnv);

				expect(embed.title).toBe("Health of production: down");
				expect(embed.color).toBe(0xe74c3c);
				// The reason first: "disk <dir> at 96 % (≥ 95 %)", then the figures (Discord escapes the brackets).
				expect(embed.description).toMatch(
					new RegExp(
						`🔴 \\*\\*prod\\*\\* host · \\d+ ms — disk ${disk.dir} at 96 % \\\\?\\(≥ 95 %\\\\?\\) — disk / ` +
							`.*, ${disk.dir} 62/64 MB \\\\?\\(96 %\\\\?\\) · ram .*\\n`,
					),
				);
				expect(embed.description).toMatch(/🟠 \*\*backup age\*\* sql · \d+ ms — 30 h \(≥ 26 h\)\n/);
				expect(full.code).toBe(2);
				expect(full.stdout).toMatch(/^\[CRIT\] Health of production: down\n/);
				expect(unwrapped(full.stdout)).toMatch(
					new RegExp(
						`\\n {2}CRIT {2}prod {12}host · \\d+ ms — disk ${disk.dir} at 96 % \\(≥ 95 %\\) — disk / .*, ` +
							`${disk.dir} 62/64 MB \\(96 %\\) · .*\\n`,
					),
				);
				expect(unwrapped(full.stdout)).toMatch(/\n {2}WARN {2}backup age {6}sql · \d+ ms — 30 h \(≥ 26 h\)\n/);
				expect(late.code).toBe(1);
				expect(late.stdout).toMatch(/^\[WARN\] Health of production: degraded\n/);
				expect(fine.code).toBe(0);
				const [snapshot] = JSON.parse(fine.stdout) as {
					checks: {
						name: string;
						state: string;
						value?: number;
						hosts?: { instance: string; mounts: { mountpoint: string; sizeBytes: number }[] }[];
					}[];
				}[];
				const byName = Object.fromEntries(snapshot!.checks.map((c) => [c.name, c]));
				expect(byName.prod?.hosts?.[0]).toMatchObject({
					instance: exporter.address,
					mounts: [{ mountpoint: "/" }, { mountpoint: disk.dir, sizeBytes: 64 * 1024 * 1024 }],
				});
				expect(byName["backup age"]).toMatchObject({ state: "ok" });
				expect(byName["backup age"]?.value).toBeCloseTo(1, 2);
			},
		);
	},
);
