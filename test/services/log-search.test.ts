import { describe, expect, it } from "vitest";
import { OpsFileSchema } from "../../src/config.ts";
import { UserFacingError } from "../../src/errors.ts";
import { logSearchRequest, searchLogs } from "../../src/services/log-search.ts";
import type { LogSearchRequest } from "../../src/services/logs.ts";
import { MetricQueryError } from "../../src/services/loki.ts";

const ops = OpsFileSchema.parse({
	discord: { guildId: "100000000000000001" },
	defaultEnvironment: "production",
	environments: {
		production: {
			loki: {
				url: "http://127.0.0.1:3100",
				tenant: "team-a",
				grafanaUrl: "https://grafana.example.com/",
				grafanaOrgId: 7,
			},
		},
		staging: { loki: { url: "http://127.0.0.1:3100", tenant: "team-b" } },
	},
	logs: { defaultLimit: 50, maxLimit: 500, defaultSince: "1h", maxRangeHours: 24 },
});
const now = new Date("2026-11-21T09:00:00.000Z");

describe("logSearchRequest", () => {
	it("fills in the configured environment, range and limit", () => {
		expect(logSearchRequest(ops, { service: "api" }, now)).toEqual({
			environment: "production",
			service: "api",
			start: new Date("2026-11-21T08:00:00.000Z"),
			end: now,
			limit: 50,
		});
	});

	it("keeps every filter given", () => {
		const request = logSearchRequest(
			ops,
			{
				env: "staging",
				service: null,
				level: "error",
				contains: "pay`ment",
				correlation: "c-42",
				since: "15m",
				limit: 500,
				query: '{a="b"}',
			},
			now,
		);

		expect(request).toEqual({
			environment: "staging",
			service: "",
			start: new Date("2026-11-21T08:45:00.000Z"),
			end: now,
			limit: 500,
			level: "error",
			contains: "pay`ment",
			correlation: "c-42",
			rawQuery: '{a="b"}',
		});
	});

	it("refuses what it cannot search, saying why", () => {
		const refusal = (raw: Parameters<typeof logSearchRequest>[1]) => {
			try {
				logSearchRequest(ops, raw, now);
			} catch (err) {
				expect(err).toBeInstanceOf(UserFacingError);
				return (err as Error).message;
			}
			return "accepted";
		};

		expect(refusal({})).toMatch(/^Pick a service, or give a correlation id/);
		expect(refusal({ service: "api", level: "loud" })).toBe(
			"Unknown level; use one of debug, info, warning, error, critical.",
		);
		expect(refusal({ correlation: "c 42" })).toMatch(/^A correlation id is 1–100 letters/);
		expect(refusal({ service: "api", limit: 501 })).toBe("The limit must be between 1 and 500.");
		expect(refusal({ service: "api", limit: 1.5 })).toBe("The limit must be between 1 and 500.");
		expect(refusal({ service: "api", contains: "x".repeat(1_001) })).toBe(
			"contains is too long (at most 1000 characters).",
		);
		expect(refusal({ service: "api", since: "30d" })).not.toBe("accepted");
	});
});

describe("searchLogs", () => {
	const request: LogSearchRequest = {
		environment: "production",
		service: "",
		rawQuery: 'count_over_time({service="api"}[5m])',
		start: new Date("2026-11-21T08:00:00.000Z"),
		end: now,
		limit: 20,
	};
	const metric = { search: async () => Promise.reject(new MetricQueryError("matrix")) };

	it("adds the Grafana link of a metric query where the environment has a Grafana", async () => {
		const err = (await searchLogs({ logs: metric, ops }, request).catch((e: unknown) => e)) as Error;

		expect(err).toBeInstanceOf(UserFacingError);
		expect(err.message).toMatch(
			new RegExp(
				String.raw`^That LogQL is a metric query \(Loki answered a matrix of numbers, not log lines\); .*\n` +
					String.raw`https:\/\/grafana\.example\.com\/explore\?orgId=7&left=`,
			),
		);
		expect(JSON.parse(decodeURIComponent(err.message.split("left=")[1]!))).toEqual({
			datasource: "loki",
			queries: [{ refId: "A", expr: request.rawQuery }],
			range: { from: String(Date.parse("2026-11-21T08:00:00.000Z")), to: String(now.getTime()) },
		});
	});

	it("says only what Loki's answer meant where there is no Grafana, and passes other errors on", async () => {
		const plain = (await searchLogs({ logs: metric, ops }, { ...request, environment: "staging" }).catch(
			(e: unknown) => e,
		)) as Error;
		const outage = new Error("socket hang up");
		const other = await searchLogs({ logs: { search: async () => Promise.reject(outage) }, ops }, request).catch(
			(e: unknown) => e,
		);

		expect(plain.message).toBe(new MetricQueryError("matrix").message);
		expect(other).toBe(outage);
	});
});
