import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { alertChart, alertLineChart, expressionUnit, seriesNames } from "../../src/alerts/chart.ts";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { chartModel } from "../../src/render/chart.ts";
import { createPrometheusClient, createPrometheusService } from "../../src/services/prometheus.ts";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.ts";

function firing(expr: string, extra: { commonAnnotations?: Record<string, string>; commonLabels?: Record<string, string> } = {}): WebhookPayload {
	return WebhookPayload.parse({
		version: "4",
		groupKey: '{}:{alertname="MemoryHigh"}',
		status: "firing",
		receiver: "opsbot",
		groupLabels: { alertname: "MemoryHigh" },
		commonLabels: { alertname: "MemoryHigh", ...extra.commonLabels },
		commonAnnotations: extra.commonAnnotations ?? {},
		externalURL: "http://alertmanager.local:9093",
		alerts: [{ status: "firing", labels: { alertname: "MemoryHigh" }, startsAt: "2026-11-24T13:40:00Z", endsAt: "0001-01-01T00:00:00Z", generatorURL: `http://prom:9090/graph?g0.expr=${encodeURIComponent(expr)}&g0.tab=1`, fingerprint: "f000000000000001" }],
	});
}

describe("alert chart", () => {
	let prometheus: TestPrometheus;
	beforeAll(async () => {
		prometheus = await startPrometheus();
		// A fresh Prometheus scrapes itself for the first time a second or two after start.
		await vi.waitFor(
			async () => {
				const answer = (await (await fetch(`${prometheus.url}/api/v1/query?query=up`)).json()) as { data: { result: unknown[] } };
				expect(answer.data.result.length).toBeGreaterThan(0);
			},
			{ timeout: 20_000, interval: 200 },
		);
	});
	afterAll(async () => {
		await prometheus?.stop();
	});

	it("charts every series a real Prometheus returns for the expression, not only the first", async () => {
		const expr = '{job="prometheus", __name__=~"go_memstats_.+_bytes"}';
		const end = new Date(Math.ceil(Date.now() / 1_000) * 1_000);
		const range = { start: new Date(end.getTime() - 3_600_000), end, stepSeconds: 30 };
		const series = await createPrometheusClient({ url: prometheus.url, timeoutMs: 5_000 }).queryRange(expr, range);

		const chart = alertLineChart(firing(expr), expr, series, { start: range.start.getTime(), end: end.getTime() });
		const model = chartModel(chart!);

		expect(series.length).toBeGreaterThan(10);
		expect(chart?.title).toBe(`MemoryHigh — ${series.length} series`);
		expect(model.lines).toHaveLength(8);
		expect(model.others?.count).toBe(series.length - 8);
		expect(model.lines.every((l) => /^__name__=go_memstats_\w+_bytes$/.test(l.name))).toBe(true);
		const latest = series.map((s) => s.points.at(-1)!.value).sort((a, b) => b - a);
		expect(model.lines.map((l) => l.latest)).toEqual(latest.slice(0, 8));
	});

	it("returns a PNG from the environment's Prometheus, and nothing for an expression without data", async () => {
		const ops = OpsFileSchema.parse({ discord: { guildId: "100000000000000001" }, environments: { production: { prometheus: { url: prometheus.url } } }, alerts: { listen: { host: "127.0.0.1", port: 0 }, defaultChannel: "100000000000000002" } });
		const chart = alertChart({ ...ops, alerts: ops.alerts! }, createPrometheusService(ops.environments));

		const png = await chart(firing('sum by (code) (prometheus_http_requests_total{job="prometheus"})'));
		const none = await chart(firing("absent_metric_for_the_chart_test"));

		expect(png?.subarray(1, 4).toString("ascii")).toBe("PNG");
		expect(none).toBeUndefined();
	});

	it("names series by the labels that tell them apart", () => {
		expect(seriesNames([{ job: "api", instance: "a" }, { job: "api", instance: "b", extra: "x" }])).toEqual(["instance=a", "extra=x instance=b"]);
		expect(seriesNames([{ __name__: "up", job: "api" }])).toEqual(["job=api"]);
		expect(seriesNames([{}])).toEqual(["value"]);
	});

	it("takes the unit from the unit annotation, else from Prometheus naming conventions", () => {
		expect(expressionUnit('sum by (instance) (rate(http_requests_total{status=~"5.."}[5m])) > 1')).toBe("/s");
		expect(expressionUnit("node_filesystem_avail_bytes{mountpoint=\"/\"} < 1e9")).toBe("B");
		expect(expressionUnit("rate(node_network_receive_bytes_total[5m]) > 1e8")).toBe("B/s");
		expect(expressionUnit("histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 0.5")).toBe("s");
		expect(expressionUnit("up == 0")).toBeUndefined();
		expect(expressionUnit("rate(errors_total[5m]) / rate(requests_total[5m]) > 0.05")).toBeUndefined();
		expect(expressionUnit("rate(node_cpu_seconds_total[5m])")).toBeUndefined();
		expect(expressionUnit("up == 0", " targets ")).toBe("targets");
	});

	it("uses the alert's unit annotation, and draws nothing when no series has a point", () => {
		const payload = firing("x", { commonAnnotations: { unit: "%" } });

		const chart = alertLineChart(payload, "x", [{ metric: { instance: "a" }, points: [{ at: 1_000, value: 5 }] }], { start: 0, end: 2_000 });
		const empty = alertLineChart(payload, "x", [{ metric: { instance: "a" }, points: [] }], { start: 0, end: 2_000 });

		expect(chart?.unit).toBe("%");
		expect(empty).toBeUndefined();
	});
});
