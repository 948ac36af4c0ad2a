import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DiscordDouble, type StoredMessage, startDiscordDouble } from "../discord-double/index.ts";
import { createAuditLog } from "../support/audit-log.ts";
import { type Replica, shortLeaseYaml, startReplica, until } from "../support/replicas.ts";
import { fakeDocker, startSshd, type TestSshd } from "../support/sshd.ts";

const ONCALL = "300000000000000001";
const ADMIN = "300000000000000002";
const CHANNEL = "400000000000000001";
const SCHEMA = `replicas_e2e_${process.pid}`;
const webhookToken = randomBytes(24).toString("hex");
const admin = { id: "200000000000000012", username: "adam", roles: [ADMIN] };

function alert(name: string) {
	return {
		version: "4",
		groupKey: `{}:{alertname="${name}"}`,
		status: "firing",
		receiver: "opsbot",
		groupLabels: { alertname: name },
		commonLabels: { alertname: name, severity: "critical", container: "api", env: "production" },
		commonAnnotations: { summary: `${name} is down` },
		externalURL: "http://alertmanager.local:9093",
		alerts: [
			{
				status: "firing",
				labels: { alertname: name, severity: "critical", container: "api", env: "production" },
				annotations: {},
				startsAt: new Date().toISOString(),
				endsAt: "0001-01-01T00:00:00Z",
				generatorURL: "http://prom:9090/graph",
				fingerprint: randomBytes(8).toString("hex"),
			},
		],
	};
}

describe("two replicas on one PostgreSQL behave as one bot", () => {
	const postgres = inject("postgres");
	const pgbouncer = inject("pgbouncer");
	let double: DiscordDouble;
	let sshd: TestSshd;
	let docker: ReturnType<typeof fakeDocker>;
	let a: Replica;
	let b: Replica;
	let c: Replica | undefined;
	let usedConfirmId = "";
	let start: () => Promise<Replica>;

	beforeAll(async () => {
		await createAuditLog(postgres.appUrl, SCHEMA, 500, 3);
		const database = `opsbot_replicas_${process.pid}`;
		const admin = new pg.Client({ connectionString: postgres.superuserUrl });
		await admin.connect();
		await admin.query(`CREATE DATABASE ${database}`);
		await admin.end();
		const stateUrl = postgres.superuserUrl.replace(/\/appdb$/, `/${database}`);
		[double, sshd] = await Promise.all([
			startDiscordDouble({
				guild: {
					channels: [{ id: CHANNEL, name: "alerts" }],
					roles: [
						{ id: ONCALL, name: "oncall" },
						{ id: ADMIN, name: "admins" },
					],
				},
			}),
			startSshd(),
		]);
		docker = fakeDocker(sshd.binDir, "");
		const opsYaml = () =>
			`discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}", admins: "${ADMIN}" } }
access:
  commands: { audit: [admins] }
  actions: { alert.ack: [oncall, admins], alert.restart: [admins] }
environments:
  production:
    postgres: { urlEnv: PROD_DATABASE_URL }
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: root, keyFileEnv: SSH_KEY, hostKey: "${sshd.hostKey}", ` +
			`containers: [api] }
defaultEnvironment: production
audit: { schema: ${SCHEMA} }
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-replica-"))}
${shortLeaseYaml}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
  restartCooldownSeconds: 600
`;
		const env = {
			STATE_DATABASE_URL: stateUrl,
			WEBHOOK_TOKEN: webhookToken,
			SSH_KEY: sshd.privateKeyPath,
			PROD_DATABASE_URL: pgbouncer.opsbotUrl,
		};
		start = () => startReplica(double, opsYaml, env);
		a = await start();
		b = await start();
	}, 60_000);
	afterAll(async () => {
		for (const r of [a, b, c]) {
			if (r && r.process.child.exitCode === null && r.process.child.signalCode === null) {
				r.process.child.kill("SIGTERM");
				await r.process.exited;
			}
		}
		await Promise.all([double?.close(), sshd?.stop()]);
	});

	const components = (m: StoredMessage | undefined) => JSON.stringify(m?.components ?? []);
	const byTitle = (re: RegExp) =>
		double
			.channelMessages(CHANNEL)
			.filter((m) => re.test(String((m.embeds[0] as { title?: string } | undefined)?.title)));
	const errors = (r: Replica) => r.logs().filter((l) => Number(l.level) >= 50);
	async function press(customId: string, message: StoredMessage, user = admin) {
		const sent = await double.sendInteraction({ kind: "button", customId, messageId: message.id, user });
		await sent.response(10_000);
		return sent;
	}
	const followUp = (interactionId: string) =>
		double.waitFor(
			() => [...double.messages.values()].find((m) => m.interactionId === interactionId && m.content),
			10_000,
		);
	const post = (r: Replica, body: unknown) =>
		fetch(`${r.webhookUrl}/alerts`, {
			method: "POST",
			headers: { authorization: `Bearer ${webhookToken}`, "content-type": "application/json" },
			body: JSON.stringify(body),
		});

	it("lets exactly one replica open the gateway; an interaction is answered once, by it", async () => {
		const sent = await double.sendInteraction({
			kind: "command",
			name: "audit",
			options: [{ name: "since", type: 3, value: "7d" }],
			user: { roles: [ADMIN] },
		});
		const response = await sent.response(10_000);
		const page = await double.waitFor(
			() => (double.originalMessage(sent.id)?.embeds.length ? double.originalMessage(sent.id) : undefined),
			10_000,
		);

		expect(a.logged("connected to Discord")).toBe(true);
		expect(b.logged("connected to Discord")).toBe(false);
		expect(b.logged("standing by: another replica holds the Discord gateway")).toBe(true);
		const [readyA, readyB] = await Promise.all(
			[a, b].map(async (r) => {
				const res = await fetch(`${r.webhookUrl}/readyz`);
				return [res.status, await res.json()] as const;
			}),
		);
		expect(readyA).toEqual([200, { discord: "connected", store: "writable" }]);
		expect(readyB).toEqual([200, { discord: "standby", store: "writable" }]);
		expect(response.type).toBe(5);
		expect((page.embeds[0] as { title: string }).title).toMatch(/^Audit log/);
		expect([...errors(a), ...errors(b)]).toEqual([]);
	});

	it("posts one message per alert group, whichever replica took the webhook", async () => {
		const [toA, toB] = await Promise.all([post(a, alert("ApiDown")), post(b, alert("QueueStuck"))]);
		const retried = await post(b, alert("ApiDown"));

		await double.waitFor(() => byTitle(/ApiDown/).length > 0 && byTitle(/QueueStuck/).length > 0, 20_000);
		// A barrier instead of waiting 2 s: one more group, delivered after anything queued before it.
		const barrier = await post(b, alert("Barrier"));
		await double.waitFor(() => byTitle(/Barrier/).length > 0, 20_000);

		expect([toA.status, toB.status, retried.status, barrier.status]).toEqual([202, 202, 202, 202]);
		expect(byTitle(/ApiDown/)).toHaveLength(1);
		expect(byTitle(/QueueStuck/)).toHaveLength(1);
	});

	it("after kill -9 of the gateway holder the other replica answers within 30 s, and a confirmation and a " +
		"paging button made before still work", async () => {
		const alertMessage = byTitle(/ApiDown/)[0]!;
		const restart = await press(components(alertMessage).match(/alert:restart:[0-9a-f]{32}/)![0], alertMessage);
		const confirmation = await double.waitFor(
			() => (double.originalMessage(restart.id)?.content ? double.originalMessage(restart.id) : undefined),
			10_000,
		);
		const confirmId = components(confirmation).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0];
		usedConfirmId = confirmId;
		const audit = await double.sendInteraction({
			kind: "command",
			name: "audit",
			options: [{ name: "since", type: 3, value: "7d" }],
			user: { roles: [ADMIN] },
		});
		await audit.response(10_000);
		const first = await double.waitFor(
			() => (double.originalMessage(audit.id)?.embeds.length ? double.originalMessage(audit.id) : undefined),
			10_000,
		);
		const older = components(first).match(/audit:page:[A-Za-z0-9_-]+:1:older/)![0];

		const killedAt = Date.now();
		a.process.child.kill("SIGKILL");
		await a.process.exited;
		await until(
			() => b.logged("connected to Discord"),
			30_000,
			() => b.process.output().slice(-3_000),
		);
		const tookOver = Date.now() - killedAt;
		const paged = await double.sendInteraction({
			kind: "button",
			customId: older,
			messageId: first.id,
			user: { roles: [ADMIN] },
		});
		const pagedResponse = await paged.response(10_000);
		const second = await double.waitFor(
			() =>
				(double.messages.get(first.id)?.embeds[0] as { title?: string } | undefined)?.title?.startsWith(
					"Audit log, page 2",
				) && double.messages.get(first.id),
			10_000,
		);
		await press(confirmId, confirmation);
		const done = await double.waitFor(
			() =>
				double.messages.get(confirmation.id)?.content.startsWith("🔁")
					? double.messages.get(confirmation.id)
					: undefined,
			15_000,
		);

		expect(tookOver).toBeLessThan(30_000);
		expect(pagedResponse.type).toBe(6);
		expect((second.embeds[0] as { title: string }).title).toMatch(/^Audit log, page 2/);
		expect(done.content).toBe("🔁 Restarted `api` on `127.0.0.1`.");
		expect(docker.calls()).toEqual([["restart", "api"]]);
	}, 60_000);

	it(
		"restarts once per confirmation across replicas: a second press, or a new confirmation in the cooldown, " +
			"runs nothing",
		async () => {
			const alertMessage = byTitle(/ApiDown/)[0]!;
			const confirmation = [...double.messages.values()].find((m) => m.content.startsWith("🔁 Restarted"))!;
			const again = await press(usedConfirmId, confirmation);
			const restart = await press(components(alertMessage).match(/alert:restart:[0-9a-f]{32}/)![0], alertMessage);
			const second = await double.waitFor(
				() => (double.originalMessage(restart.id)?.content ? double.originalMessage(restart.id) : undefined),
				10_000,
			);
			const inCooldown = await press(components(second).match(/alert:restartconfirm:[A-Za-z0-9_-]+/)![0], second);

			expect((await followUp(again.id)).content).toContain("This confirmation has expired or is not valid");
			expect((await followUp(inCooldown.id)).content).toContain("was restarted");
			expect(docker.calls()).toEqual([["restart", "api"]]);
		},
	);

	it("stops a standby and the holder cleanly on SIGTERM, and the holder's lease passes on at once", async () => {
		const standby = await start();
		standby.process.child.kill("SIGTERM");
		const standbyExit = await standby.process.exited;
		const next = await start();
		c = next;

		b.process.child.kill("SIGTERM");
		const holderExit = await b.process.exited;
		const stoppedAt = Date.now();
		await until(
			() => next.logged("connected to Discord"),
			10_000,
			() => next.process.output().slice(-3_000),
		);
		const handover = Date.now() - stoppedAt;
		const sent = await double.sendInteraction({
			kind: "command",
			name: "audit",
			options: [{ name: "since", type: 3, value: "7d" }],
			user: { roles: [ADMIN] },
		});

		expect(standbyExit).toBe(0);
		expect(holderExit).toBe(0);
		expect(next.logged("standing by: another replica holds the Discord gateway")).toBe(true);
		expect(handover).toBeLessThan(10_000);
		expect((await sent.response(10_000)).type).toBe(5);
	}, 60_000);
});
