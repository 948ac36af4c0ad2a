import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createReceiver } from "../../src/alerts/receiver.ts";
import { alertsFile, expressionOf, renderAlertGroup } from "../../src/alerts/render.ts";
import { routeGroup } from "../../src/alerts/routing.ts";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { messageProblems } from "../discord-double/limits.ts";
import { payload, storeContract } from "../support/alert-fixtures.ts";

describe("alert rendering", () => {
	it("stays within Discord's limits from 1 to 1,000 alerts, attaching the list when it does not fit", () => {
		for (const n of [1, 2, 10, 11, 300, 1_000]) {
			const message = renderAlertGroup(payload(n, { truncatedAlerts: n === 1_000 ? 37 : 0 }), {
				firstFiringAt: Date.parse("2026-11-24T12:00:00Z"),
			});

			expect(messageProblems({ content: message.content, embeds: [message.embed] })).toEqual([]);
			const shown = (message.embed.description?.match(/^🔥/gm) ?? []).length;
			expect(shown).toBeGreaterThan(0);
			expect(message.files.some((f) => f.name === "alerts.txt")).toBe(shown < n);
			if (shown < n) expect(message.embed.description).toContain(`… and ${n - shown} more (full list attached)`);
			if (n === 1_000)
				expect(message.embed.description).toContain("AlertManager left out 37 more alerts \\(`max_alerts`\\).");
		}
	});

	it("decodes the expression from generatorURL with '+' as space", () => {
		expect(expressionOf("http://prom:9090/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+1&g0.tab=1")).toBe("rate(x[5m]) > 1");
		expect(expressionOf("not a url")).toBeUndefined();
	});

	it("says how long a resolved group fired, to its alerts' own endsAt rather than to when the message is drawn", () => {
		const resolved = payload(2, {}, "resolved");
		const body = { ...resolved, alerts: resolved.alerts.map((a) => ({ ...a, endsAt: "2026-11-24T12:12:00Z" })) };
		const message = renderAlertGroup(body, {
			firstFiringAt: Date.parse("2026-11-24T12:00:00Z"),
			now: Date.parse("2026-11-24T12:40:00Z"),
		});

		expect(message.embed.title).toBe("✅ RESOLVED · DiskFilling");
		expect(message.embed.description).toMatch(/^Fired <t:\d+:t> \(<t:\d+:R>\) · ended <t:\d+:t> after \*\*12 min\*\*/);
		expect(message.embed.color).toBe(0x2ecc71);
	});
});

describe("alert text from the payload", () => {
	const critical = (alertname: string) =>
		WebhookPayload.parse({
			version: "4",
			groupKey: "{}:{}",
			status: "firing",
			receiver: "opsbot",
			commonLabels: { alertname, severity: "critical" },
			alerts: [
				{
					status: "firing",
					labels: { alertname, severity: "critical" },
					startsAt: "2026-11-24T12:00:00Z",
					fingerprint: "a1",
				},
			],
		});
	const firstFiringAt = Date.parse("2026-11-24T12:00:00Z");

	it("escapes the alert name beside the on-call ping: no masked link, markdown, mention or @everyone", () => {
		const message = renderAlertGroup(critical("[Open runbook](https://evil.example/x) @everyone **now**\n# <@123>"), {
			firstFiringAt,
			mentionRole: "9",
		});

		expect(message.content).toBe(
			"<@&9> 🔴 \\[Open runbook\\]\\(<https://evil.example/x>\\) @\u200beveryone \\*\\*now\\*\\* \\# \\<@123\\> " +
				"(1 of 1)",
		);
		expect(message.allowedMentions).toEqual({ parse: [], roles: ["9"] });
	});

	it("leaves no markdown character unescaped in the content, whatever the name", () => {
		// A special character preceded by an even number of backslashes (none included) would render as markup.
		const unescaped = /(?<!\\)(?:\\\\)*[[\]()*_~`|<>#-]/;

		fc.assert(
			fc.property(
				fc.string({ unit: fc.constantFrom(..."[]()*_~`|<>#-@\\:/ \nxeveryonhr"), maxLength: 120 }),
				(alertname) => {
					const content = renderAlertGroup(critical(alertname), { firstFiringAt, mentionRole: "9" }).content;

					// The ping, the severity icon and the count are opsbot's own; the name between them is the payload's.
					expect(content.startsWith("<@&9> 🔴 ")).toBe(true);
					expect(content.endsWith(" (1 of 1)")).toBe(true);
					const text = content.slice("<@&9> 🔴 ".length, -" (1 of 1)".length);
					expect(text).not.toMatch(unescaped);
					expect(text).not.toMatch(/@(everyone|here)/);
					expect(text).not.toContain("\n");
				},
			),
			{ numRuns: 300 },
		);
	});

	it("strips bidi overrides and zero-width characters from every label, annotation and name it shows", () => {
		const invisible = [
			"\u200b",
			"\u200c",
			"\u200d",
			"\u200e",
			"\u200f",
			"\u202a",
			"\u202b",
			"\u202c",
			"\u202d",
			"\u202e",
			"\u2060",
			"\u2061",
			"\u2062",
			"\u2063",
			"\u2064",
			"\u2066",
			"\u2067",
			"\u2068",
			"\u2069",
			"\ufeff",
		];
		const dirty = (text: string) => invisible.map((c, i) => `${text}${i}${c}`).join("");
		const parsed = WebhookPayload.parse({
			version: "4",
			groupKey: "{}:{}",
			status: "firing",
			receiver: dirty("recv"),
			groupLabels: { [dirty("g")]: dirty("gv") },
			commonLabels: { alertname: dirty("Name"), severity: "critical", [dirty("team")]: dirty("db") },
			commonAnnotations: {
				summary: dirty("summary"),
				description: dirty("desc"),
				runbook_url: `https://runbooks.example.com/${dirty("r")}`,
			},
			externalURL: `http://am.example:9093${invisible.join("")}`,
			alerts: [
				{
					status: "firing",
					labels: { alertname: dirty("Name"), [dirty("instance")]: dirty("node") },
					annotations: { summary: dirty("s") },
					startsAt: "2026-11-24T12:00:00Z",
					fingerprint: "a1",
					generatorURL: `http://prom.example:9090/graph?g0.expr=up${invisible.join("")}`,
				},
			],
		});

		const message = renderAlertGroup(parsed, { firstFiringAt, mentionRole: "9" });
		const shown = [JSON.stringify(parsed), message.content, JSON.stringify(message.embed), alertsFile(parsed)];

		for (const text of shown)
			for (const c of invisible)
				expect(text.includes(c), `U+${c.codePointAt(0)?.toString(16)} in ${text.slice(0, 80)}`).toBe(false);
		expect(parsed.commonLabels.alertname).toBe(invisible.map((_, i) => `Name${i}`).join(""));
		expect(Object.keys(parsed.alerts[0]?.labels ?? {})).toContain(invisible.map((_, i) => `instance${i}`).join(""));
	});
});

describe("alert routing", () => {
	const config: Parameters<typeof routeGroup>[1] = {
		defaultChannel: "1",
		routes: [
			{ match: { severity: "critical" }, matchRe: {}, channel: "2", mentionRole: "9", continue: true },
			{ match: {}, matchRe: { alertname: "Postgres.*" }, channel: "3", continue: false },
			{ match: {}, matchRe: { alertname: ".*" }, channel: "4", continue: false },
		],
	};

	it("follows continue, anchors regexes, and falls back to the default channel", () => {
		expect(routeGroup({ alertname: "PostgresDown", severity: "critical" }, config)).toEqual([
			{ channel: "2", mentionRole: "9" },
			{ channel: "3" },
		]);
		expect(routeGroup({ alertname: "MyPostgresDown" }, config)).toEqual([{ channel: "4" }]);
		expect(routeGroup({ alertname: "X" }, { ...config, routes: [] })).toEqual([{ channel: "1" }]);
	});
});

storeContract("SQLite", async () => {
	const path = join(mkdtempSync(join(tmpdir(), "opsbot-store-")), "alerts.sqlite");
	return { store: openAlertStore(path), reopen: async () => openAlertStore(path) };
});

// Built by the config schema, so the defaults follow it.
const receiverConfig = OpsFileSchema.shape.alerts
	.unwrap()
	.parse({ defaultChannel: "400000000000000001", maxBodyBytes: 1_000_000 });

describe("webhook receiver with arbitrary bodies", () => {
	it("answers every body with 202 or a 4xx naming the problem, never a 5xx", async () => {
		const store = openAlertStore(":memory:");
		const app = createReceiver({
			config: receiverConfig,
			auth: { bearerToken: "t".repeat(20) },
			store,
			log: pino({ level: "silent" }),
			discordState: () => "connected",
		});
		const body = fc.oneof(
			fc.json(),
			fc.constant(JSON.stringify(payload(1))),
			fc
				.record({
					version: fc.constantFrom("4", "3"),
					groupKey: fc.string(),
					status: fc.constantFrom("firing", "resolved", "x"),
					receiver: fc.string(),
					alerts: fc.array(
						fc.record({
							status: fc.constantFrom("firing", "resolved"),
							labels: fc.dictionary(fc.string(), fc.string()),
							startsAt: fc.string(),
							fingerprint: fc.string({ maxLength: 70 }),
						}),
						{ maxLength: 3 },
					),
				})
				.map((o) => JSON.stringify(o)),
		);

		await fc.assert(
			fc.asyncProperty(body, async (text) => {
				const res = await app.inject({
					method: "POST",
					url: "/alerts",
					headers: { "content-type": "application/json", authorization: `Bearer ${"t".repeat(20)}` },
					payload: text,
				});
				expect([202, 400]).toContain(res.statusCode);
				if (res.statusCode === 400) expect(res.json()).toHaveProperty("error");
			}),
			{ numRuns: 200 },
		);
		await app.close();
		await store.close();
	});
});

describe("webhook receiver when the store fails", () => {
	it("answers 500 with a generic body, so AlertManager retries, and says nothing internal", async () => {
		const store = openAlertStore(":memory:");
		const broken = {
			...store,
			accept: async () => Promise.reject(new Error("disk I/O error at /var/lib/secret-path")),
		};
		const app = createReceiver({
			config: receiverConfig,
			auth: { bearerToken: "t".repeat(20) },
			store: broken,
			log: pino({ level: "silent" }),
			discordState: () => "connected",
		});

		const res = await app.inject({
			method: "POST",
			url: "/alerts",
			headers: { "content-type": "application/json", authorization: `Bearer ${"t".repeat(20)}` },
			payload: JSON.stringify(payload(1)),
		});

		expect(res.statusCode).toBe(500);
		expect(res.body).not.toContain("secret-path");
		expect(res.json()).toEqual({ error: "could not store the alert group; retry" });
		await app.close();
		await store.close();
	});
});
