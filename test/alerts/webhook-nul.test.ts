import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { openPostgresAlertStore } from "../../src/alerts/pg-store.ts";
import { createReceiver } from "../../src/alerts/receiver.ts";
import { replaceNul, WebhookPayload } from "../../src/alerts/schema.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import type { AlertStore } from "../../src/alerts/store.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { freshStateDatabase } from "./state-database.ts";

const CHANNEL = "400000000000000001";
const token = randomBytes(24).toString("hex");
const config = OpsFileSchema.shape.alerts.unwrap().parse({ defaultChannel: CHANNEL, maxBodyBytes: 1_000_000 });

// As AlertManager sends it: JSON escapes U+0000 as \u0000, in values and in keys.
const NUL_BODY =
	String.raw`{"version":"4","groupKey":"{}:{alertname=\"Disk\u0000Full\"}",` +
	String.raw`"status":"firing","receiver":"opsbot",
	"groupLabels":{"alertname":"Disk\u0000Full"},"commonLabels":{"alertname":"Disk\u0000Full","severity":"critical"},
	"commonAnnotations":{"summary":"disk\u0000 full"},"notification_reason":"x\u0000",
	"alerts":[{"status":"firing","labels":{"alertname":"Disk\u0000Full","path\u0000":"/var"},` +
	String.raw`"annotations":{"description":"\u0000"},
	"startsAt":"2026-11-24T12:00:00Z","fingerprint":"0123456789abcdef"}]}`;

describe("webhook schema and NUL characters", () => {
	it("replaces every NUL, in known and unknown fields and in label names, with U+FFFD", () => {
		const parsed = WebhookPayload.parse(JSON.parse(NUL_BODY));

		expect(JSON.stringify(parsed)).not.toContain("\\u0000");
		expect(parsed.groupKey).toBe('{}:{alertname="Disk\uFFFDFull"}');
		expect(parsed.commonLabels).toEqual({ alertname: "Disk\uFFFDFull", severity: "critical" });
		expect(parsed.alerts[0]?.labels).toEqual({ alertname: "Disk\uFFFDFull", "path\uFFFD": "/var" });
		expect(parsed.alerts[0]?.annotations.description).toBe("\uFFFD");
		expect(parsed.notification_reason).toBe("x\uFFFD");
	});

	it("keeps values that differ only by a NUL apart", () => {
		const a = WebhookPayload.parse({ ...JSON.parse(NUL_BODY), groupKey: "a\u0000b" });
		const b = WebhookPayload.parse({ ...JSON.parse(NUL_BODY), groupKey: "ab" });

		expect(a.groupKey).not.toBe(b.groupKey);
	});

	it("returns a body without NUL as it is, without copying it", () => {
		const body = { version: "4", alerts: [{ labels: { a: "b" } }], n: 1, ok: true, none: null };

		expect(replaceNul(body)).toBe(body);
	});

	it("keeps a __proto__ key as data when it rebuilds an object", () => {
		const cleaned = replaceNul(JSON.parse('{"__proto__":{"polluted":"x\\u0000"},"k":"v"}')) as Record<string, unknown>;

		expect(Object.getPrototypeOf(cleaned)).toBe(Object.prototype);
		expect(Object.getOwnPropertyDescriptor(cleaned, "__proto__")?.value).toEqual({ polluted: "x\uFFFD" });
	});
});

describe.each([
	{
		name: "SQLite",
		open: async (): Promise<AlertStore> =>
			openAlertStore(join(mkdtempSync(join(tmpdir(), "opsbot-nul-")), "alerts.sqlite")),
	},
	{
		name: "PostgreSQL",
		open: async () => openPostgresAlertStore(await freshStateDatabase("opsbot_nul"), pino({ level: "silent" })),
	},
])("a webhook with NUL characters ($name store)", ({ open }) => {
	it("is accepted with 202, stored once, and delivered with U+FFFD in place of each NUL", async () => {
		const store = await open();
		const app = createReceiver({
			config,
			auth: { bearerToken: token },
			store,
			log: pino({ level: "silent" }),
			discordState: () => "connected",
		});
		const send = () =>
			app.inject({
				method: "POST",
				url: "/alerts",
				headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
				payload: NUL_BODY,
			});

		const first = await send();
		const retry = await send();
		const item = await store.next(CHANNEL);
		const group = item && (await store.group(item.groupId));
		await app.close();

		expect(first.statusCode).toBe(202);
		expect(first.json()).toEqual({ queued: 1, duplicates: 0 });
		expect(retry.json()).toEqual({ queued: 0, duplicates: 1 });
		expect(item?.payload.commonLabels.alertname).toBe("Disk\uFFFDFull");
		expect(item?.payload.alerts[0]?.labels["path\uFFFD"]).toBe("/var");
		expect(group?.payload.groupKey).toBe('{}:{alertname="Disk\uFFFDFull"}');
		await store.close();
	});
});
