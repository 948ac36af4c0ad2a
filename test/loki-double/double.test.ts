import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { goDuration, type LokiDouble, parseLokiTime, startLokiDouble } from "./index.ts";

// How the double answers normally is checked against the real Loki in test/services/loki-contract.test.ts;
// here: its own helpers and the faults it exists for.
describe("Loki double", () => {
	let loki: LokiDouble;
	const base = 1_700_000_000_000_000_000n;
	beforeAll(async () => {
		loki = await startLokiDouble();
		loki.add("t1", { service: "api" }, [{ ns: base, line: "first" }]);
	});
	afterAll(() => loki.close());

	const get = (path: string, tenant = "t1") =>
		fetch(`${loki.url}${path}`, { headers: { "x-scope-orgid": tenant }, signal: AbortSignal.timeout(2_000) });

	it("reads timestamps as Loki does: float seconds, <=10 digits seconds, longer nanoseconds, else RFC3339", () => {
		expect(parseLokiTime("1700000000")).toBe(1_700_000_000_000_000_000n);
		expect(parseLokiTime("1700000000.5")).toBe(1_700_000_000_500_000_000n);
		expect(parseLokiTime("1700000000000000001")).toBe(1_700_000_000_000_000_001n);
		expect(parseLokiTime("2023-11-14T22:13:20Z")).toBe(1_700_000_000_000_000_000n);
	});

	it("prints durations as Go does", () => {
		expect(goDuration(721n * 3_600_000_000_000n + 1_000_000_000n)).toBe("721h0m1s");
		expect(goDuration(722n * 3_600_000_000_000n + 311_000_000n)).toBe("722h0m0.311s");
	});

	it("keeps tenants apart", async () => {
		const selector = encodeURIComponent('{service="api"}');
		const query = `/loki/api/v1/query_range?query=${selector}&start=${base}&end=${base + 1n}`;

		const own = (await (await get(query)).json()) as { data: { result: unknown[] } };
		const other = (await (await get(query, "t2")).json()) as { data: { result: unknown[] } };

		expect(own.data.result).toHaveLength(1);
		expect(other.data.result).toEqual([]);
	});

	it("answers the next requests with a given status and body, then normally again", async () => {
		loki.failNext(200, "<html>proxy error</html>", 1, "text/html");
		loki.failNext(502, "Bad Gateway");

		const garbage = await get("/loki/api/v1/label/service/values");
		const bad = await get("/loki/api/v1/label/service/values");
		const good = await get("/loki/api/v1/label/service/values");

		expect([garbage.status, garbage.headers.get("content-type"), await garbage.text()]).toEqual([
			200,
			"text/html",
			"<html>proxy error</html>",
		]);
		expect([bad.status, await bad.text()]).toEqual([502, "Bad Gateway"]);
		expect(await good.json()).toEqual({ status: "success", data: ["api"] });
	});

	it("stalls the next request without answering", async () => {
		loki.stallNext();

		const stalled = await get("/loki/api/v1/label/service/values").then(
			() => "answered",
			(err: Error) => err.name,
		);

		expect(stalled).toBe("TimeoutError");
		expect((await get("/loki/api/v1/label/service/values")).status).toBe(200);
	});
});
