import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { firingWebhook } from "../support/alert-fixtures.ts";
import { postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.ts";

const ONCALL = "300000000000000001";
const token = randomBytes(24).toString("hex");
const generatorURL = "http://prometheus.local:9090/graph?g0.expr=rate%28http_errors_total%5B5m%5D%29+%3E+1&g0.tab=1";

describe("alert relay end to end: real AlertManager -> receiver -> store -> Discord double", () => {
	let double: DiscordDouble;
	let bot: TestBot;
	let alertmanager: TestAlertManager;
	let prometheus: TestPrometheus;
	let stateDir: string;
	let opsYaml: string;

	beforeAll(async () => {
		double = await startDiscordDouble({
			guild: {
				channels: [
					{ id: "400000000000000001", name: "alerts" },
					{ id: "400000000000000002", name: "critical" },
				],
				roles: [{ id: ONCALL, name: "oncall" }],
			},
		});
		stateDir = mkdtempSync(join(tmpdir(), "opsbot-alerts-"));
		prometheus = await startPrometheus();
		opsYaml = `discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}" } }
environments: { production: { prometheus: { url: "${prometheus.url}" } } }
stateDir: ${stateDir}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "400000000000000001"
  routes:
    - match: { severity: critical }
      channel: "400000000000000002"
      mentionRole: "${ONCALL}"
`;
		bot = await startTestBot(double, opsYaml, { WEBHOOK_TOKEN: token });
		alertmanager = await startAlertManager({ webhookUrl: `${bot.webhookUrl}/alerts`, bearerToken: token });
	});
	afterAll(async () => {
		await alertmanager?.stop();
		await prometheus?.stop();
		await bot?.stop();
		await double?.close();
	});

	const inChannel = (channel: string, title: RegExp) =>
		double
			.channelMessages(channel)
			.filter((m) => title.test(String((m.embeds[0] as { title?: string } | undefined)?.title ?? "")));
	const waitForOne = (channel: string, title: RegExp, timeoutMs = 20_000) =>
		double.waitFor(() => inChannel(channel, title)[0], timeoutMs);

	it("posts one message per group, pings the role for critical in content only, edits it green on resolve", async () => {
		const alerts = ["a", "b"].map((instance) => ({
			labels: { alertname: "HighErrorRate", severity: "critical", env: "prod", instance, service: "api" },
			annotations: { summary: "5xx above 1/s", runbook_url: "https://runbooks.example.com/high-error-rate" },
			generatorURL,
		}));
		await postAlerts(alertmanager.url, alerts);

		const message = await waitForOne("400000000000000002", /HighErrorRate/);
		const embed = message.embeds[0] as { title: string; description: string; color: number };
		expect(embed.title).toBe("🔴 CRITICAL · HighErrorRate · prod");
		expect(embed.color).toBe(0xe74c3c);
		expect(embed.description).toContain("🔥 instance=a");
		expect(embed.description).toMatch(/Firing since <t:\d+:t> \(<t:\d+:R>\) · 2 of 2 firing · not acknowledged/);
		const buttons = (message.components as { components: Record<string, unknown>[] }[]).flatMap(
			(row) => row.components,
		);
		expect(buttons).toContainEqual({
			type: 2,
			style: 5,
			label: "Runbook",
			url: "https://runbooks.example.com/high-error-rate",
		});
		expect(message.content).toBe(`<@&${ONCALL}> 🔴 HighErrorRate on prod: 5xx above 1/s (2 of 2)`);
		expect(JSON.stringify(embed)).not.toContain(`<@&${ONCALL}>`);
		const posted = double.requests.find(
			(r) => r.method === "POST" && r.path === "/channels/400000000000000002/messages",
		);
		expect((posted?.body as { allowed_mentions: unknown }).allowed_mentions).toEqual({ parse: [], roles: [ONCALL] });

		await postAlerts(
			alertmanager.url,
			alerts.map((a) => ({ ...a, endsAt: new Date(Date.now() - 1_000).toISOString() })),
		);
		const resolved = await double.waitFor(
			() =>
				(double.messages.get(message.id)?.embeds[0] as { title?: string }).title?.startsWith("✅")
					? double.messages.get(message.id)
					: undefined,
			20_000,
		);

		expect(resolved.embeds[0]).toMatchObject({ title: "✅ RESOLVED · HighErrorRate · prod", color: 0x2ecc71 });
		expect(String((resolved.embeds[0] as { description: string }).description)).toMatch(
			new RegExp(
				String.raw`^Fired <t:\d+:t> \(<t:\d+:R>\) · ended <t:\d+:t> after \*\*\d+ min\*\*\n` +
					"2 of 2 recovered: instance=[ab], instance=[ab]$",
			),
		);
		expect(resolved.content).toBe("");
		expect(inChannel("400000000000000002", /HighErrorRate/)).toHaveLength(1);
	});

	it("sends Discord only well-formed text when a cut falls inside an emoji (issue 19 D6)", async () => {
		// The content is cut at 100 characters: here exactly between the two halves of 🔥's surrogate pair.
		const alertname = `${"E".repeat(98)}🔥x`;
		await postAlerts(alertmanager.url, [
			{
				labels: { alertname, severity: "critical", env: "prod", service: "api" },
				annotations: { summary: `${"🚨".repeat(150)}` },
			},
		]);

		await waitForOne("400000000000000002", /EEEE/);
		const posted = double.requests.filter(
			(r) =>
				r.method === "POST" &&
				r.path === "/channels/400000000000000002/messages" &&
				JSON.stringify(r.body).includes("EEEE"),
		);
		const strings = (value: unknown): string[] =>
			typeof value === "string"
				? [value]
				: value && typeof value === "object"
					? Object.values(value).flatMap(strings)
					: [];
		const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

		expect(posted).toHaveLength(1);
		expect(strings(posted[0]!.body).filter((text) => loneSurrogate.test(text))).toEqual([]);
	});

	it("keeps a group of 1,000 alerts within Discord's limits, attaching the full list", async () => {
		await postAlerts(
			alertmanager.url,
			Array.from({ length: 1_000 }, (_, i) => ({
				labels: { alertname: "DiskFilling", severity: "warning", instance: `node-${i}`, mountpoint: "/var" },
			})),
		);

		const message = await double.waitFor(
			() =>
				inChannel("400000000000000001", /^🟠 WARNING · DiskFilling$/).find((m) =>
					String((m.embeds[0] as { description?: string }).description).includes("1000 of 1000 firing"),
				),
			20_000,
		);

		const embed = message.embeds[0] as { description: string };
		expect(embed.description).toContain("… and 990 more (full list attached)");
		expect(message.files[0]?.name).toBe("alerts.txt");
		expect(message.files[0]?.data.toString("utf8").match(/^\[FIRING\]/gm)).toHaveLength(1_000);
		expect(double.requests.filter((r) => r.status === 400)).toEqual([]);
	});

	it("attaches a chart of the alert expression from Prometheus", async () => {
		// A fresh Prometheus scrapes for the first time only a few seconds after start.
		await vi.waitFor(
			async () => {
				const answer = (await (await fetch(`${prometheus.url}/api/v1/query?query=up`)).json()) as {
					data: { result: unknown[] };
				};
				expect(answer.data.result.length).toBeGreaterThan(0);
			},
			{ timeout: 20_000, interval: 200 },
		);
		await postAlerts(alertmanager.url, [
			{
				labels: { alertname: "TargetFlapping", severity: "warning", env: "production" },
				generatorURL: `${prometheus.url}/graph?g0.expr=up&g0.tab=1`,
			},
		]);

		// The chart comes with the message when Prometheus answers within a second, else by an edit of it.
		const message = await double.waitFor(
			() => inChannel("400000000000000001", /TargetFlapping/).find((m) => m.files.some((f) => f.name === "chart.png")),
			20_000,
		);

		expect(inChannel("400000000000000001", /TargetFlapping/)).toHaveLength(1);
		const chart = message.files.find((f) => f.name === "chart.png");
		expect(chart?.data.subarray(1, 4).toString("ascii")).toBe("PNG");
		expect((message.embeds[0] as { image?: { url: string } }).image?.url).toBe("attachment://chart.png");
	});

	it("posts the alert without its attachment, saying so, when Discord refuses the upload", async () => {
		double.failNext({
			method: "POST",
			pathPrefix: "/channels/400000000000000001/messages",
			status: 413,
			withFiles: true,
		});

		await postAlerts(
			alertmanager.url,
			Array.from({ length: 40 }, (_, i) => ({
				labels: { alertname: "BigUploadRefused", severity: "warning", instance: `node-${i}` },
			})),
		);
		const message = await waitForOne("400000000000000001", /BigUploadRefused/);

		expect(message.files).toEqual([]);
		expect((message.embeds[0] as { description: string }).description).toContain(
			"… and 30 more (the full list could not be attached)",
		);
		expect(inChannel("400000000000000001", /BigUploadRefused/)).toHaveLength(1);
	});

	it("delivers every group despite Discord answering 500 and 429 for a while", async () => {
		double.failNext({ method: "POST", pathPrefix: "/channels/400000000000000001/messages", status: 500, count: 4 });
		double.failNext({
			method: "POST",
			pathPrefix: "/channels/400000000000000001/messages",
			status: 429,
			retryAfterSeconds: 0.5,
			count: 2,
		});

		await postAlerts(
			alertmanager.url,
			["QueueBacklog", "CertExpiring", "ReplicaLag"].map((alertname) => ({
				labels: { alertname, severity: "warning" },
			})),
		);

		for (const name of ["QueueBacklog", "CertExpiring", "ReplicaLag"])
			await waitForOne("400000000000000001", new RegExp(name), 40_000);
		for (const name of ["QueueBacklog", "CertExpiring", "ReplicaLag"])
			expect(inChannel("400000000000000001", new RegExp(name))).toHaveLength(1);
		const statuses = double.requests
			.filter((r) => r.path === "/channels/400000000000000001/messages" && r.method === "POST")
			.map((r) => r.status);
		expect(statuses).toContain(500);
		expect(statuses).toContain(429);
	});

	it("refuses bad requests with 4xx before or instead of reading them, and keeps serving", async () => {
		const url = `${bot.webhookUrl}/alerts`;
		const send = (init: RequestInit) => fetch(url, { method: "POST", ...init }).then((r) => r.status);
		const auth = { authorization: `Bearer ${token}` };
		const valid = {
			version: "4",
			groupKey: '{}:{alertname="Probe"}',
			status: "firing",
			receiver: "opsbot",
			alerts: [
				{ status: "firing", labels: { alertname: "Probe" }, startsAt: new Date().toISOString(), fingerprint: "abc123" },
			],
		};

		const results = {
			noToken: await send({ headers: { "content-type": "application/json" }, body: JSON.stringify(valid) }),
			wrongToken: await send({
				headers: { "content-type": "application/json", authorization: "Bearer nope" },
				body: JSON.stringify(valid),
			}),
			invalidJson: await send({ headers: { "content-type": "application/json", ...auth }, body: "{not json" }),
			wrongType: await send({ headers: { "content-type": "text/plain", ...auth }, body: "hello" }),
			tooBig: await statusBeforeBodyIsSent(url, { "content-type": "application/json", ...auth }, 10 * 1024 * 1024),
			schema: await fetch(url, {
				method: "POST",
				headers: { "content-type": "application/json", ...auth },
				body: JSON.stringify({ ...valid, alerts: [{ ...valid.alerts[0], status: "maybe" }] }),
			}).then(async (r) => [r.status, await r.json()] as const),
			good: await send({ headers: { "content-type": "application/json", ...auth }, body: JSON.stringify(valid) }),
			retry: await send({ headers: { "content-type": "application/json", ...auth }, body: JSON.stringify(valid) }),
		};

		expect(results.noToken).toBe(401);
		expect(results.wrongToken).toBe(401);
		expect(results.invalidJson).toBe(400);
		expect(results.wrongType).toBe(415);
		expect(results.tooBig).toBe(413);
		expect(results.schema[0]).toBe(400);
		expect(JSON.stringify(results.schema[1])).toContain("alerts.0.status");
		expect(results.good).toBe(202);
		expect(results.retry).toBe(202);
		await waitForOne("400000000000000001", /Probe/);
		expect(inChannel("400000000000000001", /Probe/)).toHaveLength(1);
		expect((await fetch(`${bot.webhookUrl}/healthz`)).status).toBe(200);
		expect((await fetch(`${bot.webhookUrl}/readyz`)).status).toBe(200);
	});

	it("loses nothing and doubles nothing when the bot stops mid-storm and starts again", async () => {
		const groups = Array.from({ length: 20 }, (_, i) => `Storm${i}`);
		double.failNext({
			method: "POST",
			pathPrefix: "/channels/400000000000000001/messages",
			status: 503,
			count: 10_000,
		});
		await postAlerts(
			alertmanager.url,
			groups.map((alertname) => ({ labels: { alertname, severity: "warning" } })),
		);
		const accepted = () =>
			new Set(
				bot
					.logs()
					.filter((l) => l.msg === "alert group accepted" && /Storm\d+/.test(String(l.groupKey)))
					.map((l) => l.groupKey),
			).size;
		await double.waitFor(() => accepted() >= groups.length, 20_000);
		await alertmanager.stop();

		await bot.stop(); // what was not delivered stays in the outbox on disk
		double.clearFaults();
		bot = await startTestBot(double, opsYaml, { WEBHOOK_TOKEN: token });
		await double.waitFor(
			() => groups.every((g) => inChannel("400000000000000001", new RegExp(`^\\S+ [A-Z]+ · ${g}( · |$)`)).length > 0),
			30_000,
		);
		// A barrier instead of waiting a second: delivery writes a channel in order, so once one more group's
		// message is there, anything still queued before it (a second copy of a group) has been written too.
		const barrier = await fetch(`${bot.webhookUrl}/alerts`, {
			method: "POST",
			headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
			body: JSON.stringify(firingWebhook("StormBarrier")),
		});
		expect(barrier.status).toBe(202);
		await double.waitFor(() => inChannel("400000000000000001", /^\S+ [A-Z]+ · StormBarrier( · |$)/).length > 0, 30_000);

		for (const g of groups)
			expect(inChannel("400000000000000001", new RegExp(`^\\S+ [A-Z]+ · ${g}( · |$)`))).toHaveLength(1);
		expect(double.requests.some((r) => r.status === 503)).toBe(true);
	});
});

/**
 * Announces a body of `bytes` but sends only its first KiB, then waits: the answer must come before the body is read.
 */
function statusBeforeBodyIsSent(url: string, headers: Record<string, string>, bytes: number): Promise<number> {
	return new Promise((resolve, reject) => {
		const req = request(url, { method: "POST", headers: { ...headers, "content-length": String(bytes) } }, (res) => {
			res.resume();
			resolve(res.statusCode ?? 0);
			req.destroy();
		});
		req.on("error", (err: NodeJS.ErrnoException) => (err.code === "ECONNRESET" ? undefined : reject(err)));
		req.write(Buffer.alloc(1024, 0x61));
	});
}
