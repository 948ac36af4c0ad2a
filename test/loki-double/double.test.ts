import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseLokiTime, startLokiDouble, type LokiDouble } from "./index.ts";

// The double is checked against the documented facts it stands in for (PROTOCOLS.md §2).
describe("Loki double follows Loki's documented API", () => {
	let loki: LokiDouble;
	const base = 1_700_000_000_000_000_000n;
	beforeAll(async () => {
		loki = await startLokiDouble();
		loki.add({ service: "api" }, [{ ns: base, line: "first" }, { ns: base + 1_000_000_000n, line: "second" }]);
		loki.add({ service: "worker" }, [{ ns: base + 500_000_000n, line: "other" }]);
	});
	afterAll(() => loki.close());

	const get = (path: string, tenant: string | null = "t1") => fetch(`${loki.url}${path}`, { headers: tenant ? { "x-scope-orgid": tenant } : {} });

	it("reads timestamps as Loki does: float seconds, <=10 digits seconds, longer nanoseconds, else RFC3339", () => {
		expect(parseLokiTime("1700000000")).toBe(1_700_000_000_000_000_000n);
		expect(parseLokiTime("1700000000.5")).toBe(1_700_000_000_500_000_000n);
		expect(parseLokiTime("1700000000000000001")).toBe(1_700_000_000_000_000_001n);
		expect(parseLokiTime("2023-11-14T22:13:20Z")).toBe(1_700_000_000_000_000_000n);
	});

	it("answers 401 'no org id' without X-Scope-OrgID, as with auth_enabled", async () => {
		const res = await get("/loki/api/v1/query_range?query={service=%22api%22}", null);

		expect(res.status).toBe(401);
		expect(res.headers.get("content-type")).toContain("text/plain");
		expect(await res.text()).toBe("no org id\n");
	});

	it("returns streams with nanosecond string timestamps, newest first by default, start inclusive and end exclusive", async () => {
		const res = await get(`/loki/api/v1/query_range?query=${encodeURIComponent('{service="api"}')}&start=${base}&end=${base + 1_000_000_000n}`);
		const body = (await res.json()) as { status: string; data: { resultType: string; result: { stream: object; values: [string, string][] }[] } };

		expect(body.status).toBe("success");
		expect(body.data.resultType).toBe("streams");
		expect(body.data.result).toEqual([{ stream: { service: "api" }, values: [[base.toString(), "first"]] }]);
	});

	it("applies line filters and limits, and rejects what Loki rejects with plain text", async () => {
		const filtered = (await (await get(`/loki/api/v1/query_range?query=${encodeURIComponent('{service=~".+"} |= "o"')}&start=${base}&end=${base + 2_000_000_000n}&limit=1`)).json()) as { data: { result: { values: string[][] }[] } };
		const bad = await get(`/loki/api/v1/query_range?query=${encodeURIComponent('{service="api"} |= "x')}`);
		const tooMany = await get(`/loki/api/v1/query_range?query=${encodeURIComponent('{service="api"}')}&limit=5001`);
		const empty = await get(`/loki/api/v1/query_range?query=${encodeURIComponent('{service=~".*"}')}`);

		expect(filtered.data.result.flatMap((s) => s.values.map((v) => v[1]))).toEqual(["second"]);
		expect(bad.status).toBe(400);
		expect(await bad.text()).toMatch(/^parse error at line 1, col \d+/);
		expect(await tooMany.text()).toBe("max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)\n");
		expect(await empty.text()).toMatch(/queries require at least one regexp or equality matcher that does not have an empty-compatible value/);
	});

	it("lists label values and reports readiness", async () => {
		const values = (await (await get("/loki/api/v1/label/service/values")).json()) as { data: string[] };
		loki.setReady(false);
		const notReady = await get("/ready");
		loki.setReady(true);

		expect(values.data).toEqual(["api", "worker"]);
		expect(notReady.status).toBe(503);
		expect(await notReady.text()).toMatch(/^Ingester not ready/);
	});
});
