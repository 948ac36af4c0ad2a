import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parser } from "@grafana/lezer-logql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { type LokiDouble, startLokiDouble } from "../loki-double/index.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { freshTenant, type TestLoki } from "../support/loki.ts";
import { sharedLoki } from "../support/shared-loki.ts";
import { fakeDocker, startSshd, type TestSshd } from "../support/sshd.ts";

const ONCALL = "300000000000000001";
const ADMIN = "300000000000000002";
const nowNs = () => BigInt(Date.now()) * 1_000_000n;
const MINUTE = 60_000_000_000n;

function parses(query: string): boolean {
	let ok = true;
	parser.parse(query).iterate({ enter: (n) => void (n.type.isError && (ok = false)) });
	return ok;
}

describe("/logs end to end: Discord double, real Loki, real sshd", () => {
	let double: DiscordDouble;
	let loki: TestLoki;
	// Only for what a real Loki cannot be made to do on demand (here: answer 429).
	let flaky: LokiDouble;
	let sshd: TestSshd;
	// The run's shared Loki: this file's own tenants.
	const teamA = freshTenant("team-a");
	const teamB = freshTenant("team-b");
	let bot: TestBot;
	let docker: ReturnType<typeof fakeDocker>;

	beforeAll(async () => {
		loki = await sharedLoki();
		[double, flaky, sshd] = await Promise.all([
			startDiscordDouble({
				guild: {
					roles: [
						{ id: ONCALL, name: "oncall" },
						{ id: ADMIN, name: "admins" },
					],
				},
			}),
			startLokiDouble(),
			startSshd(),
		]);
		const t = nowNs();
		await loki.push(teamA, { service: "api", level: "info" }, [
			{
				ns: t - 30n * MINUTE,
				line: JSON.stringify({ level: "info", message: "payment accepted", correlation_id: "c-1", user_id: 7 }),
			},
			{
				ns: t - 20n * MINUTE,
				line: JSON.stringify({
					level: "error",
					message: "payment failed: card declined",
					correlation_id: "c-2",
					user_id: 9,
				}),
			},
			{ ns: t - 10n * MINUTE, line: "plain text line about payment" },
			{ ns: t - 5n * MINUTE, line: "unrelated" },
		]);
		await loki.push(teamA, { service: "worker" }, [{ ns: t - MINUTE, line: "job done" }]);
		// Another tenant's lines never show.
		await loki.push(teamB, { service: "api" }, [{ ns: t - MINUTE, line: "payment of another team" }]);
		const iso = (ms: number) => new Date(ms).toISOString().replace("Z", "000000Z");
		docker = fakeDocker(
			sshd.binDir,
			`${iso(Date.now() - 600_000)} boom: worker crashed\n${iso(Date.now() - 300_000)} all fine\n` +
				`${iso(Date.now() - 60_000)} boom again\n`,
		);
		bot = await startTestBot(
			double,
			`discord:
  guildId: "${double.guildId}"
  roles: { oncall: "${ONCALL}", admins: "${ADMIN}" }
access:
  commands: { logs: [oncall, admins] }
  actions: { logs.raw-query: [admins] }
defaultEnvironment: production
environments:
  production:
    loki: { url: "${loki.url}", tenant: ${teamA}, grafanaUrl: "https://grafana.example.com" }
  flaky:
    loki: { url: "${flaky.url}", tenant: team-a }
  staging:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: root, keyFileEnv: STAGING_SSH_KEY, hostKey: ` +
				`"${sshd.hostKey}", containers: [api, worker] }
  rebuilt:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: root, keyFileEnv: STAGING_SSH_KEY, hostKey: "ssh-ed25519 ` +
				`AAAAC3NzaC1lZDI1NTE5AAAAIBm9ZyXwzsEMqoaN3MKjQx9u0uw0jNIKXD3LrR9bbhpH", containers: [api] }
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-state-"))}
`,
			{ STAGING_SSH_KEY: sshd.privateKeyPath },
		);
	});
	afterAll(async () => {
		await bot?.stop();
		await Promise.all([double?.close(), flaky?.close(), sshd?.stop()]);
	});

	async function logs(options: { name: string; type: number; value: string | number }[], roles = [ONCALL]) {
		const sent = await double.sendInteraction({ kind: "command", name: "logs", options, user: { roles } });
		expect((await sent.response()).type).toBe(5);
		return double.waitFor(() => {
			const m = double.originalMessage(sent.id);
			return m && (m.embeds.length > 0 || m.content) ? m : undefined;
		});
	}

	it("searches Loki as its tenant with a query Grafana's grammar accepts, newest first", async () => {
		const message = await logs([
			{ name: "service", type: 3, value: "api" },
			{ name: "contains", type: 3, value: "payment" },
			{ name: "since", type: 3, value: "1h" },
		]);

		const embed = message.embeds[0] as { title: string; description: string; footer: { text: string } };
		expect(embed.title).toBe("Logs of api on production");
		const lines = embed.description.split("\n").slice(1);
		expect(lines).toHaveLength(3);
		expect(lines[0]).toContain("plain text line about payment");
		expect(lines[1]).toMatch(
			/^🔴 `\d\d:\d\d:\d\d\.\d{3}` payment failed: card declined · correlation\\_id=c\\-2 user\\_id=9$/,
		);
		expect(lines[2]).toContain("payment accepted");
		expect(embed.description).not.toContain("another team");
		const [logql, range] = embed.footer.text.split("\n");
		expect(logql).toBe('LogQL: {service="api"} |= "payment"');
		expect(parses(logql!.slice("LogQL: ".length))).toBe(true);
		expect(range).toMatch(new RegExp(` · tenant ${teamA}$`));
		expect(JSON.stringify(message.components)).toContain("https://grafana.example.com/explore?orgId=1&left=");
	});

	it("pages to older lines from the last one shown and downloads the whole result", async () => {
		const first = await logs([
			{ name: "service", type: 3, value: "api" },
			{ name: "limit", type: 4, value: 2 },
		]);
		const older = JSON.stringify(first.components).match(/logs:older:[A-Za-z0-9_-]+:\d+:[0-9a-f]{16}/)?.[0] ?? "";
		const firstLines = (first.embeds[0] as { description: string }).description.split("\n").slice(1);

		const press = await double.sendInteraction({
			kind: "button",
			customId: older,
			messageId: first.id,
			user: { roles: [ONCALL] },
		});
		await press.response();
		const paged = await double.waitFor(() =>
			(double.messages.get(first.id)?.edits ?? 0) >= 2 ? double.messages.get(first.id) : undefined,
		);
		const download = await double.sendInteraction({
			kind: "button",
			customId: JSON.stringify(first.components).match(/logs:download:[A-Za-z0-9_-]+/)![0],
			messageId: first.id,
			user: { roles: [ONCALL] },
		});
		await download.response();
		const file = await double.waitFor(() => double.originalMessage(download.id)?.files[0]);

		expect(firstLines).toHaveLength(2);
		expect(firstLines[0]).toContain("unrelated");
		expect(firstLines[1]).toContain("plain text line about payment");
		const pagedLines = (paged.embeds[0] as { description: string }).description.split("\n").slice(1);
		expect(pagedLines).toHaveLength(2);
		expect(pagedLines[0]).toContain("payment failed: card declined");
		expect(pagedLines[1]).toContain("payment accepted");
		expect(file.data.toString("utf8").trim().split("\n")).toHaveLength(4);
	});

	it("turns Loki errors into what to change, and keeps raw LogQL to allowed roles", async () => {
		const bad = await logs([{ name: "query", type: 3, value: '{service="api"} oops' }], [ADMIN]);
		const regex = await logs([{ name: "query", type: 3, value: '{service="api"} |~ "(?=payment)"' }], [ADMIN]);
		const metric = await logs([{ name: "query", type: 3, value: 'count_over_time({service="api"}[5m])' }], [ADMIN]);
		const refused = await logs([{ name: "query", type: 3, value: '{service="api"}' }], [ONCALL]);
		flaky.failNext(429, "too many outstanding requests");
		const busy = await logs([
			{ name: "service", type: 3, value: "api" },
			{ name: "env", type: 3, value: "flaky" },
		]);

		expect(bad.content).toBe(
			"Loki could not parse the query: parse error at line 1, col 17: syntax error: unexpected IDENTIFIER. Check " +
				"the LogQL syntax.",
		);
		expect(regex.content).toBe(
			// The query is code; Loki's own reason is literal text, its backticks and brackets escaped.
			'Loki cannot use the regular expression in `|~ "(?=payment)"`: invalid or unsupported Perl syntax: ' +
				"\\`\\(?=\\`. Loki uses Go's RE2 syntax: no lookahead, lookbehind or backreferences.",
		);
		expect(metric.content).toMatch(
			new RegExp(
				String.raw`^That LogQL is a metric query \\\(Loki answered a matrix of numbers, not log lines\\\); ` +
					String.raw`\/logs shows log lines\. .*\n<https:\/\/grafana\.example\.com\/explore\?orgId=1&left=`,
			),
		);
		expect(refused.content).toContain("You are not allowed to run raw LogQL queries");
		expect(busy.content).toBe(
			"Loki is busy \\(too many outstanding requests\\). Try again in a moment or narrow the search.",
		);
	});

	it("names the option that is too long when the search would be over Loki's query size (D21)", async () => {
		const longService = await logs([
			{ name: "service", type: 3, value: "s".repeat(100_000) },
			{ name: "contains", type: 3, value: "payment" },
		]);
		const longContains = await logs([
			{ name: "service", type: 3, value: "api" },
			{ name: "contains", type: 3, value: "\u0001".repeat(1_000) },
		]);

		expect(longService.content).toMatch(/^This search is 100,\d{3} bytes as LogQL .* Shorten `service`\.$/);
		expect(longContains.content).toMatch(/Shorten `contains`\.$/);
	});

	it("opens every service's lines for a correlation id from the /whodeleted button", async () => {
		const channelMessage = (await bot.rest.post(`/channels/${double.channelIds[0]}/messages`, {
			body: { content: "a /whodeleted answer" },
		})) as { id: string };
		const at = Math.floor(Date.now() / 1000) - 20 * 60;

		const press = await double.sendInteraction({
			kind: "button",
			customId: `logs:correlation:production:c-2:${at}`,
			messageId: channelMessage.id,
			user: { roles: [ONCALL] },
		});
		expect((await press.response()).type).toBe(5);
		const reply = await double.waitFor(() =>
			double.originalMessage(press.id)?.embeds.length ? double.originalMessage(press.id) : undefined,
		);

		const query = (reply.embeds[0] as { footer: { text: string } }).footer.text.split("\n")[0]!.slice("LogQL: ".length);
		expect(query.startsWith('{service=~".+"} |= "c-2"')).toBe(true);
		expect(parses(query)).toBe(true);
		expect((reply.embeds[0] as { title: string }).title).toBe("Logs of request c-2 on production");
		const description = (reply.embeds[0] as { description: string }).description;
		expect(description).toContain("payment failed: card declined");
		expect(description.split("\n")).toHaveLength(2);
	});

	it("autocompletes services from Loki's label values", async () => {
		const sent = await double.sendInteraction({
			kind: "autocomplete",
			name: "logs",
			options: [{ name: "service", type: 3, value: "", focused: true }],
			user: { roles: [ONCALL] },
		});

		expect((await sent.response()).data).toEqual({
			choices: [
				{ name: "api", value: "api" },
				{ name: "worker", value: "worker" },
			],
		});
	});

	it("reads docker logs over SSH where there is no Loki, filtering in opsbot", async () => {
		const message = await logs([
			{ name: "service", type: 3, value: "worker" },
			{ name: "contains", type: 3, value: "boom" },
			{ name: "env", type: 3, value: "staging" },
		]);
		const refused = await logs([
			{ name: "service", type: 3, value: "postgres; rm -rf /" },
			{ name: "env", type: 3, value: "staging" },
		]);

		const lines = (message.embeds[0] as { description: string }).description.split("\n").slice(1);
		expect(lines).toHaveLength(2);
		expect(lines[0]).toContain("boom again");
		expect(lines[1]).toContain("boom: worker crashed");
		const call = docker.calls().at(-1)!;
		expect(call.slice(0, 3)).toEqual(["logs", "--timestamps", "--since"]);
		expect(call.at(-1)).toBe("worker");
		// The service typed is code (a backtick in it cannot break out); the rest is escaped text.
		expect(refused.content).toContain("` is not an allow\\-listed container on staging. Allowed: api, worker.");
		expect(docker.calls()).toHaveLength(1);
	});

	it("refuses a host whose key does not match the pinned one, running nothing", async () => {
		const before = docker.calls().length;

		const message = await logs([
			{ name: "service", type: 3, value: "api" },
			{ name: "env", type: 3, value: "rebuilt" },
		]);

		expect(message.content).toContain("does not match the pinned key in the config; opsbot refused to connect");
		expect(docker.calls()).toHaveLength(before);
	});
});
