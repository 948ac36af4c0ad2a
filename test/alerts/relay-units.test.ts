import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createReceiver } from "../../src/alerts/receiver.ts";
import { expressionOf, renderAlertGroup } from "../../src/alerts/render.ts";
import { routeGroup } from "../../src/alerts/routing.ts";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import { openAlertStore } from "../../src/alerts/store.ts";
import { messageProblems } from "../discord-double/limits.ts";

const ZERO = "0001-01-01T00:00:00Z";

function payload(n: number, overrides: Partial<WebhookPayload> = {}, status: "firing" | "resolved" = "firing"): WebhookPayload {
	return WebhookPayload.parse({
		version: "4",
		groupKey: '{}:{alertname="DiskFilling"}',
		status,
		receiver: "opsbot",
		groupLabels: { alertname: "DiskFilling" },
		commonLabels: { alertname: "DiskFilling", severity: "warning" },
		commonAnnotations: { summary: "Disk filling up", description: "x".repeat(3_000) },
		externalURL: "http://alertmanager.local:9093",
		alerts: Array.from({ length: n }, (_, i) => ({ status, labels: { alertname: "DiskFilling", severity: "warning", instance: `node-${i}-${"y".repeat(80)}` }, annotations: { summary: "z".repeat(500) }, startsAt: "2026-11-24T12:00:00Z", endsAt: status === "resolved" ? "2026-11-24T12:10:00Z" : ZERO, generatorURL: "http://prom:9090/graph?g0.expr=node_filesystem_avail_bytes+%3C+1e9&g0.tab=1", fingerprint: `f${i.toString(16).padStart(15, "0")}` })),
		...overrides,
	});
}

describe("alert rendering", () => {
	it("stays within Discord's limits from 1 to 1,000 alerts, attaching the list when it does not fit", () => {
		for (const n of [1, 2, 10, 11, 300, 1_000]) {
			const message = renderAlertGroup(payload(n, { truncatedAlerts: n === 1_000 ? 37 : 0 }), { firstFiringAt: Date.parse("2026-11-24T12:00:00Z") });

			expect(messageProblems({ content: message.content, embeds: [message.embed] })).toEqual([]);
			const shown = (message.embed.description?.match(/^🔥/gm) ?? []).length;
			expect(shown).toBeGreaterThan(0);
			expect(message.files.some((f) => f.name === "alerts.txt")).toBe(shown < n);
			if (shown < n) expect(message.embed.description).toContain(`… and ${n - shown} more (full list attached)`);
			if (n === 1_000) expect(message.embed.description).toContain("AlertManager left out 37 more alerts (max_alerts)");
		}
	});

	it("decodes the expression from generatorURL with '+' as space", () => {
		expect(expressionOf("http://prom:9090/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+1&g0.tab=1")).toBe("rate(x[5m]) > 1");
		expect(expressionOf("not a url")).toBeUndefined();
	});

	it("says how long a resolved group fired", () => {
		const message = renderAlertGroup(payload(2, {}, "resolved"), { firstFiringAt: Date.parse("2026-11-24T12:00:00Z"), now: Date.parse("2026-11-24T12:12:00Z") });

		expect(message.embed.title).toBe("✅ Resolved: DiskFilling");
		expect(message.embed.description).toMatch(/^\*\*Resolved after 12 min\.\*\*/);
		expect(message.embed.color).toBe(0x2ecc71);
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
		expect(routeGroup({ alertname: "PostgresDown", severity: "critical" }, config)).toEqual([{ channel: "2", mentionRole: "9" }, { channel: "3" }]);
		expect(routeGroup({ alertname: "MyPostgresDown" }, config)).toEqual([{ channel: "4" }]);
		expect(routeGroup({ alertname: "X" }, { ...config, routes: [] })).toEqual([{ channel: "1" }]);
	});
});

describe("alert store", () => {
	const targets = [{ channel: "1" }];

	it("ignores retries and HA duplicates, coalesces updates, and opens a new episode after a resolve", () => {
		const store = openAlertStore(join(mkdtempSync(join(tmpdir(), "opsbot-store-")), "alerts.sqlite"));

		expect(store.accept(payload(2), targets)).toEqual({ queued: 1, duplicates: 0 });
		expect(store.accept(payload(2), targets)).toEqual({ queued: 0, duplicates: 1 });
		store.accept(payload(3), targets);
		const first = store.next("1")!;
		expect(first.payload.alerts).toHaveLength(3); // the newest of the two pending updates
		store.delivered(first, "m1");
		store.accept(payload(3, {}, "resolved"), targets);
		const resolve = store.next("1")!;
		store.delivered(resolve, "m1");
		store.accept(payload(1), targets);
		const again = store.next("1")!;

		expect(resolve).toMatchObject({ messageId: "m1", episode: 1 });
		expect(again).toMatchObject({ messageId: null, episode: 2 });
		expect(again.nonce).not.toBe(first.nonce);
		store.close();
	});

	it("keeps what was not delivered across a restart", () => {
		const path = join(mkdtempSync(join(tmpdir(), "opsbot-store-")), "alerts.sqlite");
		const before = openAlertStore(path);
		before.accept(payload(1), targets);
		before.accept(payload(1, { groupKey: "other" }), targets);
		before.close();

		const after = openAlertStore(path);

		expect(after.pending()).toBe(2);
		expect(after.writable()).toBe(true);
		after.close();
	});
});

describe("webhook receiver with arbitrary bodies", () => {
	it("answers every body with 202 or a 4xx naming the problem, never a 5xx", async () => {
		const store = openAlertStore(":memory:");
		const app = createReceiver({ config: { listen: { host: "127.0.0.1", port: 0 }, defaultChannel: "1", routes: [], containerLabel: "container", environmentLabel: "env", restartCooldownSeconds: 300, maxBodyBytes: 1_000_000 }, auth: { bearerToken: "t".repeat(20) }, store, log: pino({ level: "silent" }), onQueued: () => undefined, discordReady: () => true });
		const body = fc.oneof(fc.json(), fc.constant(JSON.stringify(payload(1))), fc.record({ version: fc.constantFrom("4", "3"), groupKey: fc.string(), status: fc.constantFrom("firing", "resolved", "x"), receiver: fc.string(), alerts: fc.array(fc.record({ status: fc.constantFrom("firing", "resolved"), labels: fc.dictionary(fc.string(), fc.string()), startsAt: fc.string(), fingerprint: fc.string({ maxLength: 70 }) }), { maxLength: 3 }) }).map((o) => JSON.stringify(o)));

		await fc.assert(
			fc.asyncProperty(body, async (text) => {
				const res = await app.inject({ method: "POST", url: "/alerts", headers: { "content-type": "application/json", authorization: `Bearer ${"t".repeat(20)}` }, payload: text });
				expect([202, 400]).toContain(res.statusCode);
				if (res.statusCode === 400) expect(res.json()).toHaveProperty("error");
			}),
			{ numRuns: 200 },
		);
		await app.close();
		store.close();
	});
});
