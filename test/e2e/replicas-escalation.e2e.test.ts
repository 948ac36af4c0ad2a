import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshStateDatabase } from "../alerts/state-database.ts";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { type Replica, shortLeaseYaml, startReplica } from "../support/replicas.ts";

const CHANNEL = "400000000000000001";
const LEADS = "300000000000000007";
const token = randomBytes(24).toString("hex");

/**
 * Two replicas on one PostgreSQL: an escalation and a dead man's notice are each sent once, also after
 * kill -9 of the one that sent them.
 */
describe("escalation across two replicas (node src/main.ts twice, shared PostgreSQL state)", () => {
	let double: DiscordDouble;
	let a: Replica;
	let b: Replica;
	let stateUrl: string;

	beforeAll(async () => {
		double = await startDiscordDouble({
			guild: { channels: [{ id: CHANNEL, name: "alerts" }], roles: [{ id: LEADS, name: "leads" }] },
		});
		const stateDir = mkdtempSync(join(tmpdir(), "opsbot-replica-escalation-"));
		const opsYaml = () => `discord: { guildId: "${double.guildId}", roles: { leads: "${LEADS}" } }
environments: { production: {} }
stateDir: ${stateDir}
${shortLeaseYaml}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
  clocks: { intervalSeconds: 1 }
  routes:
    - match: { team: db }
      channel: "${CHANNEL}"
      escalation: { afterMinutes: 0.05, mention: [leads] }
  # No Watchdog is ever sent here: the dead man's notice is due 3 s after the watch began.
  deadman: { alertname: Watchdog, afterMinutes: 0.05, channel: "${CHANNEL}" }
`;
		stateUrl = await freshStateDatabase("opsbot_replica_escalation");
		const env = { STATE_DATABASE_URL: stateUrl, WEBHOOK_TOKEN: token };
		a = await startReplica(double, opsYaml, env);
		b = await startReplica(double, opsYaml, env);
	}, 90_000);
	afterAll(async () => {
		for (const r of [a, b]) {
			if (r && r.process.child.exitCode === null && r.process.child.signalCode === null) {
				r.process.child.kill("SIGTERM");
				await r.process.exited;
			}
		}
		await double?.close();
	});

	const mentions = () =>
		double.requests.filter(
			(r) =>
				r.method === "POST" &&
				r.path === `/channels/${CHANNEL}/messages` &&
				String((r.body as { content?: string }).content ?? "").startsWith(`📣 <@&${LEADS}>`),
		);

	const deadmanNotices = () =>
		double.requests.filter(
			(r) =>
				r.method === "POST" &&
				r.path === `/channels/${CHANNEL}/messages` &&
				String((r.body as { content?: string }).content ?? "").startsWith("🚨 No "),
		);

	it("posts the mention and the dead man's notice once; the replica taking over after kill -9 posts neither again", {
		timeout: 120_000,
	}, async () => {
		const leader = a.count("connected to Discord") > 0 ? a : b;
		const standby = leader === a ? b : a;
		const labels = { alertname: "DbDown", severity: "critical", team: "db" };
		const res = await fetch(`${standby.webhookUrl}/alerts`, {
			method: "POST",
			headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
			body: JSON.stringify({
				version: "4",
				groupKey: '{}:{alertname="DbDown"}',
				status: "firing",
				receiver: "opsbot",
				groupLabels: { alertname: "DbDown" },
				commonLabels: labels,
				commonAnnotations: {},
				externalURL: "http://alertmanager.local:9093",
				alerts: [
					{
						status: "firing",
						labels,
						annotations: {},
						startsAt: new Date().toISOString(),
						endsAt: "0001-01-01T00:00:00Z",
						generatorURL: "",
						fingerprint: "0123456789abcdef",
					},
				],
			}),
		});
		expect(res.status).toBe(202);
		await double.waitFor(() => mentions().length > 0 && deadmanNotices().length > 0, 60_000);

		leader.process.child.kill("SIGKILL");
		await leader.process.exited;
		await double.waitFor(() => standby.count("delivering alerts: this replica holds the gateway lease") > 0, 60_000);
		// Two whole passes of the new leader's clocks, each of which would have queued it again, and the
		// message outbox emptied: what the dead leader posted but had not recorded is sent again once its
		// claim (leaseSeconds) ends.
		const before = standby.count("escalation pass done");
		await double.waitFor(() => standby.count("escalation pass done") >= before + 2, 30_000);
		const client = new pg.Client({ connectionString: stateUrl });
		await client.connect();
		try {
			const unsent = "SELECT count(*)::int AS n FROM opsbot_state.message_outbox WHERE state <> 'sent'";
			await double.waitFor(
				async () => (await client.query<{ n: number }>(unsent)).rows[0]!.n === 0 || undefined,
				30_000,
			);
		} finally {
			await client.end();
		}

		// One message each in the channel. A post the dead leader made but had not recorded is sent again
		// by the new one once its claim ends, with the same nonce: Discord hands back the first message.
		const nonces = (posts: typeof double.requests) => new Set(posts.map((r) => (r.body as { nonce?: string }).nonce));
		const shown = (prefix: string) => double.channelMessages(CHANNEL).filter((m) => m.content.startsWith(prefix));
		expect(nonces(mentions()).size).toBe(1);
		expect(nonces(deadmanNotices()).size).toBe(1);
		expect(shown(`📣 <@&${LEADS}>`)).toHaveLength(1);
		expect(shown("🚨 No ")).toHaveLength(1);
		expect(mentions()[0]?.body).toMatchObject({ allowed_mentions: { parse: [], roles: [LEADS], users: [] } });
	});
});
