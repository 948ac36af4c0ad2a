import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
	alertChart,
	alertLineChart,
	CHARTS_AT_ONCE,
	expressionUnit,
	fetchAlertSeries,
	seriesNames,
	splitComparison,
} from "../../src/alerts/chart.ts";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { chartModel, chartSvg } from "../../src/render/chart.ts";
import {
	createPrometheusClient,
	createPrometheusService,
	type PrometheusClient,
	type PrometheusService,
	type RangeSeries,
} from "../../src/services/prometheus.ts";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.ts";

const MANY = 2_000;

/** An exporter on 127.0.0.1 with 2,000 series of one gauge: shard s0001 at 0.0005 … s2000 at 1. */
async function startManySeriesExporter(): Promise<{ server: Server; target: string }> {
	const samples = Array.from(
		{ length: MANY },
		(_, i) => `chart_load{shard="s${String(i + 1).padStart(4, "0")}"} ${(i + 1) / MANY}`,
	);
	const body = `# TYPE chart_load gauge\n${samples.join("\n")}\n`;
	const server = createServer((_req, res) =>
		res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(body),
	);
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	return { server, target: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** The environment's Prometheus with every range-query answer recorded: how many series, how many points. */
function recording(client: PrometheusClient): {
	service: PrometheusService;
	answers: { series: number; points: number }[];
} {
	const answers: { series: number; points: number }[] = [];
	const recorded: PrometheusClient = {
		...client,
		async queryRange(query, range, options) {
			const series: RangeSeries[] = await client.queryRange(query, range, options);
			answers.push({ series: series.length, points: series.reduce((sum, s) => sum + s.points.length, 0) });
			return series;
		},
	};
	return { service: { forEnvironment: () => recorded }, answers };
}

function firing(
	expr: string,
	extra: { commonAnnotations?: Record<string, string>; commonLabels?: Record<string, string> } = {},
): WebhookPayload {
	return WebhookPayload.parse({
		version: "4",
		groupKey: '{}:{alertname="MemoryHigh"}',
		status: "firing",
		receiver: "opsbot",
		groupLabels: { alertname: "MemoryHigh" },
		commonLabels: { alertname: "MemoryHigh", ...extra.commonLabels },
		commonAnnotations: extra.commonAnnotations ?? {},
		externalURL: "http://alertmanager.local:9093",
		alerts: [
			{
				status: "firing",
				labels: { alertname: "MemoryHigh" },
				startsAt: "2026-11-24T13:40:00Z",
				endsAt: "0001-01-01T00:00:00Z",
				generatorURL: `http://prom:9090/graph?g0.expr=${encodeURIComponent(expr)}&g0.tab=1`,
				fingerprint: "f000000000000001",
			},
		],
	});
}

describe("alert chart", () => {
	let prometheus: TestPrometheus;
	let exporter: Server;
	const instant = async (query: string) =>
		(
			(await (await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(query)}`)).json()) as {
				data: { result: { value: [number, string] }[] };
			}
		).data.result;
	beforeAll(async () => {
		const many = await startManySeriesExporter();
		exporter = many.server;
		prometheus = await startPrometheus({ targets: { many: [many.target] } });
		// The chart ranks series by their last value at 5 s resolution: wait until both jobs have samples 6 s old.
		await vi.waitFor(
			async () => {
				expect(Number((await instant("count(chart_load offset 6s)"))[0]?.value[1])).toBe(MANY);
				expect((await instant('up{job="prometheus"} offset 6s')).length).toBe(1);
			},
			{ timeout: 25_000, interval: 250 },
		);
	}, 30_000);
	afterAll(async () => {
		await prometheus?.stop();
		await new Promise((resolve) => exporter?.close(resolve));
	});

	const lastHour = () => {
		const end = new Date(Math.ceil(Date.now() / 1_000) * 1_000);
		return { start: new Date(end.getTime() - 3_600_000), end };
	};

	it(
		"asks a real Prometheus for the top 8 series and a summary " +
			"of the rest, so 2,000 series never reach opsbot (D15)",
		async () => {
			const ops = OpsFileSchema.parse({
				discord: { guildId: "100000000000000001" },
				environments: { production: { prometheus: { url: prometheus.url } } },
				alerts: { listen: { host: "127.0.0.1", port: 0 }, defaultChannel: "100000000000000002" },
			});
			const { service, answers } = recording(createPrometheusClient({ url: prometheus.url, timeoutMs: 5_000 }));

			const png = await alertChart({ ...ops, alerts: ops.alerts! }, service)(firing("chart_load > 0.99"));

			expect(png?.subarray(1, 4).toString("ascii")).toBe("PNG");
			expect(answers.length).toBeGreaterThan(0);
			// 8 lines and 3 summary series (seen, min, max) of at most 121 points each, whatever the expression's size.
			for (const answer of answers) expect(answer.series).toBeLessThanOrEqual(8);
			expect(answers.reduce((sum, a) => sum + a.points, 0)).toBeLessThanOrEqual(11 * 121);
		},
	);

	it("draws a storm's charts a few at a time, each with its own turn at Prometheus, not all at once", async () => {
		const ops = OpsFileSchema.parse({
			discord: { guildId: "100000000000000001" },
			environments: { production: { prometheus: { url: prometheus.url } } },
			alerts: { listen: { host: "127.0.0.1", port: 0 }, defaultChannel: "100000000000000002" },
		});
		const client = createPrometheusClient({ url: prometheus.url, timeoutMs: 5_000 });
		let asking = 0;
		let most = 0;
		const counted: PrometheusClient = {
			...client,
			async queryRange(query, range, options) {
				most = Math.max(most, ++asking);
				try {
					return await client.queryRange(query, range, options);
				} finally {
					asking--;
				}
			},
		};
		const chart = alertChart({ ...ops, alerts: ops.alerts! }, { forEnvironment: () => counted });

		const pngs = await Promise.all(Array.from({ length: 6 }, () => chart(firing("chart_load > 0.99"))));

		expect(pngs.map((png) => png?.subarray(1, 4).toString("ascii"))).toEqual(Array(6).fill("PNG"));
		// Each chart asks two range queries together; six charts at once asked twelve.
		expect(most).toBe(2 * CHARTS_AT_ONCE);
	});

	it("still says how many series were left out, and draws the top ones whole", async () => {
		const expr = "chart_load > 0.99";
		const range = lastHour();
		const answer = await fetchAlertSeries(
			createPrometheusClient({ url: prometheus.url, timeoutMs: 5_000 }),
			expr,
			range,
		);

		const chart = alertLineChart(
			firing(expr),
			expr,
			answer.series,
			{ start: range.start.getTime(), end: range.end.getTime() },
			answer.others,
		);
		const model = chartModel(chart!);

		expect(answer.series.map((s) => s.metric.shard).sort()).toEqual([
			"s1993",
			"s1994",
			"s1995",
			"s1996",
			"s1997",
			"s1998",
			"s1999",
			"s2000",
		]);
		expect(answer.others?.count).toBe(MANY - 8);
		expect(answer.others?.band.at(-1)).toMatchObject({ min: 1 / MANY, max: 1992 / MANY });
		expect(chart?.title).toBe(`MemoryHigh — ${MANY} series`);
		expect(chart?.thresholds).toEqual([expect.objectContaining({ value: 0.99, comparison: ">" })]);
		expect(model.others?.count).toBe(MANY - 8);
		// The legend's three rows hold fewer lines than 8; what it leaves out joins the band and its count.
		const others = Number(/>(\d+) others</.exec(chartSvg(chart!))?.[1]);
		expect(others).toBeGreaterThanOrEqual(MANY - 8);
		expect(others).toBeLessThan(MANY);
	});

	it("picks the lowest series for an alert that fires below its threshold", async () => {
		const answer = await fetchAlertSeries(
			createPrometheusClient({ url: prometheus.url, timeoutMs: 5_000 }),
			"chart_load < 0.01",
			lastHour(),
		);

		expect(answer.series.map((s) => s.metric.shard).sort()).toEqual([
			"s0001",
			"s0002",
			"s0003",
			"s0004",
			"s0005",
			"s0006",
			"s0007",
			"s0008",
		]);
		expect(answer.others?.count).toBe(MANY - 8);
	});

	it("charts an expression without a comparison: the top 8 of Prometheus's own series, the rest counted", async () => {
		const expr = '{job="prometheus", __name__=~"go_memstats_.+_bytes"}';
		const range = lastHour();
		const answer = await fetchAlertSeries(
			createPrometheusClient({ url: prometheus.url, timeoutMs: 5_000 }),
			expr,
			range,
		);
		const total = Number((await instant(`count(${expr})`))[0]?.value[1]);

		const chart = alertLineChart(
			firing(expr),
			expr,
			answer.series,
			{ start: range.start.getTime(), end: range.end.getTime() },
			answer.others,
		);

		expect(total).toBeGreaterThan(10);
		expect(answer.series).toHaveLength(8);
		expect(answer.others?.count).toBe(total - 8);
		expect(chart?.title).toBe(`MemoryHigh — ${total} series`);
		expect(chart?.thresholds).toEqual([]);
	});

	it("returns a PNG from the environment's Prometheus, and nothing for an expression without data", async () => {
		const ops = OpsFileSchema.parse({
			discord: { guildId: "100000000000000001" },
			environments: { production: { prometheus: { url: prometheus.url } } },
			alerts: { listen: { host: "127.0.0.1", port: 0 }, defaultChannel: "100000000000000002" },
		});
		const chart = alertChart({ ...ops, alerts: ops.alerts! }, createPrometheusService(ops.environments));

		const png = await chart(firing('sum by (code) (prometheus_http_requests_total{job="prometheus"})'));
		const none = await chart(firing("absent_metric_for_the_chart_test"));

		expect(png?.subarray(1, 4).toString("ascii")).toBe("PNG");
		expect(none).toBeUndefined();
	});

	it("takes the threshold from the expression's top-level comparison with a number", () => {
		expect(splitComparison('sum by (instance) (rate(http_requests_total{status=~"5.."}[5m])) > 1')).toEqual({
			lhs: 'sum by (instance) (rate(http_requests_total{status=~"5.."}[5m]))',
			op: ">",
			value: 1,
		});
		expect(splitComparison("node_filesystem_avail_bytes < 1e9")).toMatchObject({ op: "<", value: 1e9 });
		expect(splitComparison("up == 0")).toMatchObject({ lhs: "up", op: "==", value: 0 });
		expect(splitComparison("(a > 1) >= 0.9")).toMatchObject({ lhs: "(a > 1)", op: ">=", value: 0.9 });
		expect(splitComparison('x{a=">1"} > 2')).toMatchObject({ lhs: 'x{a=">1"}', value: 2 });
		expect(splitComparison("a > bool 1")).toBeUndefined();
		expect(splitComparison("a > 1 and b > 2")).toBeUndefined();
		expect(splitComparison("a > b")).toBeUndefined();
		expect(splitComparison("rate(x[5m])")).toBeUndefined();
	});

	it("marks the series the alerts fire for, first, and shades from the earliest startsAt", () => {
		const payload = firing("x > 1");
		const series = [
			{ metric: { instance: "a" }, points: [{ at: 1_000, value: 5 }] },
			{ metric: { instance: "b" }, points: [{ at: 1_000, value: 9 }] },
		];
		const labelled = WebhookPayload.parse({
			...payload,
			alerts: [{ ...payload.alerts[0], labels: { alertname: "MemoryHigh", instance: "a" } }],
		});

		const chart = alertLineChart(labelled, "x > 1", series, { start: 0, end: 2_000 });

		expect(chart?.series.map((s) => [s.name, s.firing])).toEqual([
			["instance=a", true],
			["instance=b", false],
		]);
		expect(chartModel(chart!).lines.map((l) => l.name)).toEqual(["instance=a", "instance=b"]);
		expect(chart?.firingSince).toBe(Date.parse("2026-11-24T13:40:00Z"));
	});

	it("names series by the labels that tell them apart", () => {
		expect(
			seriesNames([
				{ job: "api", instance: "a" },
				{ job: "api", instance: "b", extra: "x" },
			]),
		).toEqual(["instance=a", "extra=x instance=b"]);
		expect(seriesNames([{ __name__: "up", job: "api" }])).toEqual(["job=api"]);
		expect(seriesNames([{}])).toEqual(["value"]);
	});

	it("takes the unit from the unit annotation, else from Prometheus naming conventions", () => {
		expect(expressionUnit('sum by (instance) (rate(http_requests_total{status=~"5.."}[5m])) > 1')).toBe("/s");
		expect(expressionUnit('node_filesystem_avail_bytes{mountpoint="/"} < 1e9')).toBe("B");
		expect(expressionUnit("rate(node_network_receive_bytes_total[5m]) > 1e8")).toBe("B/s");
		expect(
			expressionUnit("histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 0.5"),
		).toBe("s");
		expect(expressionUnit("up == 0")).toBeUndefined();
		expect(expressionUnit("rate(errors_total[5m]) / rate(requests_total[5m]) > 0.05")).toBeUndefined();
		expect(expressionUnit("rate(node_cpu_seconds_total[5m])")).toBeUndefined();
		expect(expressionUnit("up == 0", " targets ")).toBe("targets");
	});

	it("uses the alert's unit annotation, and draws nothing when no series has a point", () => {
		const payload = firing("x", { commonAnnotations: { unit: "%" } });

		const chart = alertLineChart(payload, "x", [{ metric: { instance: "a" }, points: [{ at: 1_000, value: 5 }] }], {
			start: 0,
			end: 2_000,
		});
		const empty = alertLineChart(payload, "x", [{ metric: { instance: "a" }, points: [] }], { start: 0, end: 2_000 });

		expect(chart?.unit).toBe("%");
		expect(empty).toBeUndefined();
	});
});
