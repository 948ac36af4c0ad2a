import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { describe, expect, it, vi } from "vitest";
import { alertLineChart } from "../../src/alerts/chart.ts";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import {
	chartModel,
	chartSvg,
	createChartRenderer,
	escapeXml,
	formatValue,
	type LineChart,
	rangeText,
	renderChart,
	timeTicks,
	yScale,
} from "../../src/render/chart.ts";
import { poolLineChart } from "../../src/render/pool-chart.ts";
import type { RangeSeries } from "../../src/services/prometheus.ts";

/*
 * Golden images: `UPDATE_GOLDEN=1 npx vitest run test/render/chart.test.ts` rewrites
 * test/render/golden/*.png and the README's pictures (docs/chart-*.png) from the same data.
 * Look at them before committing. A mismatch leaves the picture drawn in a temp dir, named in the failure.
 */
const UPDATE = process.env.UPDATE_GOLDEN === "1";
const GOLDEN_DIR = join(import.meta.dirname, "golden");
const DOCS_DIR = join(import.meta.dirname, "..", "..", "docs");

interface Image {
	readonly width: number;
	readonly height: number;
	readonly rgba: Uint8Array;
}

/** Decodes the 8-bit RGB/RGBA, non-interlaced PNGs resvg writes (all five row filters). */
function decodePng(png: Buffer): Image {
	expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
	let offset = 8;
	let width = 0;
	let height = 0;
	let channels = 4;
	const idat: Buffer[] = [];
	while (offset < png.length) {
		const length = png.readUInt32BE(offset);
		const type = png.toString("ascii", offset + 4, offset + 8);
		const data = png.subarray(offset + 8, offset + 8 + length);
		if (type === "IHDR") {
			width = data.readUInt32BE(0);
			height = data.readUInt32BE(4);
			expect([data[8], data[12]]).toEqual([8, 0]);
			channels = data[9] === 6 ? 4 : 3;
		}
		if (type === "IDAT") idat.push(data);
		offset += 12 + length;
	}
	const raw = inflateSync(Buffer.concat(idat));
	const stride = width * channels;
	const out = new Uint8Array(width * height * channels);
	for (let y = 0; y < height; y++) {
		const filter = raw[y * (stride + 1)];
		for (let x = 0; x < stride; x++) {
			const value = raw[y * (stride + 1) + 1 + x]!;
			const a = x >= channels ? out[y * stride + x - channels]! : 0;
			const b = y > 0 ? out[(y - 1) * stride + x]! : 0;
			const c = x >= channels && y > 0 ? out[(y - 1) * stride + x - channels]! : 0;
			const p = a + b - c;
			const paeth =
				Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
					? a
					: Math.abs(p - b) <= Math.abs(p - c)
						? b
						: c;
			const predictor = [0, a, b, (a + b) >> 1, paeth][filter ?? 0] ?? 0;
			out[y * stride + x] = (value + predictor) & 0xff;
		}
	}
	const rgba =
		channels === 4
			? out
			: new Uint8Array(width * height * 4).map((_, i) => (i % 4 === 3 ? 255 : out[Math.floor(i / 4) * 3 + (i % 4)]!));
	return { width, height, rgba };
}

const pixel = (image: Image, x: number, y: number) =>
	Array.from(image.rgba.subarray((y * image.width + x) * 4, (y * image.width + x) * 4 + 4));
const hex = (colour: string) => [1, 3, 5].map((i) => Number.parseInt(colour.slice(i, i + 2), 16));
/** Pixels of about this colour (within `tolerance` per channel). */
function countColour(image: Image, colour: string, tolerance = 24): number {
	const [r, g, b] = hex(colour) as [number, number, number];
	let count = 0;
	for (let i = 0; i < image.rgba.length; i += 4)
		if (
			Math.abs(image.rgba[i]! - r) <= tolerance &&
			Math.abs(image.rgba[i + 1]! - g) <= tolerance &&
			Math.abs(image.rgba[i + 2]! - b) <= tolerance
		)
			count++;
	return count;
}

/**
 * Compares with the golden PNG: the same size, and at most 0.05 % of pixels off by more than 24 in
 * any channel. resvg runs as WebAssembly, so its output is the same on every machine; the tolerance
 * is for a future resvg's anti-aliasing, while a moved line or a changed colour fails.
 */
function expectGolden(name: string, png: Buffer, docsName?: string): void {
	const golden = join(GOLDEN_DIR, name);
	if (UPDATE || !existsSync(golden)) {
		if (!UPDATE)
			throw new Error(
				`${golden} is missing: run UPDATE_GOLDEN=1 npx vitest run test/render/chart.test.ts and look at it`,
			);
		mkdirSync(GOLDEN_DIR, { recursive: true });
		writeFileSync(golden, png);
		if (docsName) {
			mkdirSync(DOCS_DIR, { recursive: true });
			copyFileSync(golden, join(DOCS_DIR, docsName));
		}
		return;
	}
	const expected = decodePng(readFileSync(golden));
	const actual = decodePng(png);
	let off = 0;
	if (expected.width === actual.width && expected.height === actual.height) {
		for (let i = 0; i < actual.rgba.length; i += 4) {
			for (let c = 0; c < 4; c++) {
				if (Math.abs(actual.rgba[i + c]! - expected.rgba[i + c]!) > 24) {
					off++;
					break;
				}
			}
		}
	}
	const share = off / (actual.width * actual.height);
	if (expected.width !== actual.width || expected.height !== actual.height || share > 0.0005) {
		const drawn = join(mkdtempSync(join(tmpdir(), "opsbot-chart-")), name);
		writeFileSync(drawn, png);
		const how =
			expected.width !== actual.width || expected.height !== actual.height
				? `${actual.width}x${actual.height} instead of ${expected.width}x${expected.height}`
				: `${(share * 100).toFixed(2)} % of pixels off`;
		expect.fail(
			`${name} differs from its golden image (${how}); drawn: ${drawn}. If the change is intended: ` +
				`UPDATE_GOLDEN=1 npx vitest run test/render/chart.test.ts`,
		);
	}
}

// Deterministic data: a fixed clock and a seeded generator, so the goldens never drift.
const END = Date.UTC(2026, 10, 24, 14, 0);
const HOUR = 3_600_000;
function random(seed: number): () => number {
	let state = seed;
	return () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
}

/**
 * A `sum by (instance) (rate(...[5m]))` answer: 14 instances every 30 s for an hour; api-4 jumps past 1/s at 13:40,
 * api-6 is absent for 10 minutes.
 */
function errorRateSeries(): RangeSeries[] {
	const next = random(7);
	return Array.from({ length: 14 }, (_, k) => ({
		metric: { instance: `api-${k + 1}.prod.example.com:9100`, job: "api" },
		points: Array.from({ length: 121 }, (_, i) => ({
			at: END - HOUR + i * 30_000,
			value: Math.max(0, 0.15 + k * 0.045 + Math.sin(i / 9 + k) * 0.08 + next() * 0.08 + (k === 3 && i > 80 ? 1.3 : 0)),
		})).filter((_, i) => !(k === 5 && i > 40 && i < 60)),
	}));
}

const payload = WebhookPayload.parse({
	version: "4",
	groupKey: '{}:{alertname="HighErrorRate"}',
	status: "firing",
	receiver: "opsbot",
	groupLabels: { alertname: "HighErrorRate" },
	commonLabels: { alertname: "HighErrorRate", job: "api" },
	externalURL: "http://alertmanager.local:9093",
	alerts: [
		{
			status: "firing",
			labels: { alertname: "HighErrorRate", instance: "api-4.prod.example.com:9100", job: "api", severity: "critical" },
			startsAt: "2026-11-24T13:42:00Z",
			endsAt: "0001-01-01T00:00:00Z",
			generatorURL: "http://prom:9090/graph?g0.expr=x",
			fingerprint: "f000000000000001",
		},
	],
});
const EXPR = 'sum by (instance) (rate(http_requests_total{status=~"5.."}[5m])) > 1';

function alertFixture(): LineChart {
	const chart = alertLineChart(payload, EXPR, errorRateSeries(), { start: END - HOUR, end: END });
	if (!chart) throw new Error("no chart");
	return chart;
}

/** Connections used over six hours of Prometheus samples, nearing the usable limit after 13:00. */
function poolFixture(): LineChart {
	const start = END - 6 * HOUR;
	const next = random(11);
	const points = Array.from({ length: 361 }, (_, i) => ({
		x: start + i * 60_000,
		y: Math.round(38 + 22 * Math.sin(i / 45) + next() * 4 + (i > 300 ? 30 : 0)),
	}));
	return poolLineChart(
		"production",
		{ source: "Prometheus", samples: points.map((p) => ({ at: p.x, used: p.y })) },
		97,
		{ warnPercent: 70, criticalPercent: 90 },
	);
}

describe("chart golden images", () => {
	it(
		"draws an alert expression 2:1-ish for Discord's 400 px: the firing series first, the top ones as lines, " +
			"the rest as a band, the threshold and the firing period",
		async () => {
			const chart = alertFixture();
			const png = await renderChart(chart);

			expectGolden("alert-many-series.png", png, "chart-alert.png");
			const image = decodePng(png);
			expect(image.width).toBe(1200);
			expect(image.width / image.height).toBeGreaterThan(1.6);
			// Text size where Discord shows it (400 px wide): at least twice the old chart's 7 px.
			expect(19 * (400 / 480)).toBeGreaterThanOrEqual(14);
			for (const colour of ["#4e9eff", "#3ecf8e", "#c77dff", "#ff7aa8"])
				expect(countColour(image, colour, 12)).toBeGreaterThan(300);
			const svg = chartSvg(chart);
			expect(svg).toContain(">api-4<"); // the common "instance=" and ".prod.example.com:9100" trimmed
			expect(svg).toContain(">&gt; 1/s<"); // the threshold from "> 1", on its line
			expect(svg).toContain(">firing<");
			expect(svg).toMatch(/>10 others</);
			expect(svg).toContain("13:00–14:00 UTC");
			expect(countColour(image, "#ed4245", 12)).toBeGreaterThan(400); // the dashed threshold line and the firing edge
		},
	);

	it("draws the pool chart with its title, the usable limit, the warn and critical levels and a legend", async () => {
		const png = await renderChart(poolFixture());
		const svg = chartSvg(poolFixture());

		expect(svg).toContain(">warn 70 %<");
		expect(svg).toContain(">critical 90 %<");
		expect(svg).toContain(">68<"); // round(68 / 97) = 70 %: the fewest connections the diagnosis calls warn
		expect(svg).toContain(">87<");
		expect(countColour(decodePng(png), "#f0b232", 12)).toBeGreaterThan(300); // the amber warn line

		expectGolden("pool.png", png, "chart-pool.png");
		const image = decodePng(png);
		expect(countColour(image, "#ed4245", 12)).toBeGreaterThan(500); // the dashed limit line and its legend swatch
		// an opaque card: the same on Discord's dark and light themes
		expect(pixel(image, image.width - 30, 12).slice(0, 3)).toEqual(hex("#2b2d31"));
	});

	it("draws a single series, and says so when the range holds no data", async () => {
		const one = await renderChart({
			title: "up",
			series: [{ name: "value", points: [{ x: END - 60_000, y: 1 }] }],
			range: { start: END - HOUR, end: END },
		});
		const none = await renderChart({ title: "up", series: [], range: { start: END - HOUR, end: END } });

		expectGolden("single-point.png", one);
		expectGolden("no-data.png", none);
		expect(chartSvg({ title: "up", series: [], range: { start: END - HOUR, end: END } })).toContain(
			"no data in this time range",
		);
	});
});

describe("extreme values (D16)", () => {
	// Values at the edge of a float64 (finite, unlike NaN and ±Inf, which are dropped): the span hi − lo overflows to
	// Infinity.
	const extreme: LineChart = {
		title: "Extreme values",
		series: [
			{
				name: "huge",
				points: [
					{ x: END - HOUR, y: 1e308 },
					{ x: END - HOUR / 2, y: 1e308 },
					{ x: END, y: 1e308 },
				],
			},
			{
				name: "negative huge",
				points: [
					{ x: END - HOUR, y: -1e308 },
					{ x: END, y: -1e308 },
				],
			},
			{
				name: "five",
				points: [
					{ x: END - HOUR, y: 5 },
					{ x: END, y: 5 },
				],
			},
		],
		range: { start: END - HOUR, end: END },
	};

	it("keeps a finite scale with ticks for ±1e308", () => {
		const scale = yScale([5, 1e308, -1e308]);

		expect(Number.isFinite(scale.min) && Number.isFinite(scale.max) && Number.isFinite(scale.step)).toBe(true);
		expect(scale.ticks.length).toBeGreaterThanOrEqual(2);
		expect(scale.ticks.every(Number.isFinite)).toBe(true);
		expect(yScale([Number.MAX_VALUE, -Number.MAX_VALUE]).ticks.every(Number.isFinite)).toBe(true);
		expect(formatValue(1e308)).toBe("1e308");
	});

	it("draws every series of a chart with ±1e308 in the plot, not an empty chart", async () => {
		const svg = chartSvg(extreme);
		const png = await renderChart(extreme);

		const lines = [...svg.matchAll(/<polyline points="([^"]+)"/g)].map((m) =>
			m[1]!.split(" ").map((p) => Number(p.split(",")[1])),
		);
		expect(lines).toHaveLength(3);
		// Top, bottom and middle of the plot: three different heights, none at the clipped 0.
		const heights = lines.map((ys) => ys[0]!);
		expect(new Set(heights).size).toBe(3);
		expect(heights.every((y) => y > 50)).toBe(true);
		expect(svg).toContain(">1e308<");
		expectGolden("extreme-values.png", png);
	});
});

describe("renderChart", () => {
	it("draws charts asked for at once, one after another on its thread, each one whole", async () => {
		const charts = await Promise.all(
			[poolFixture(), alertFixture(), poolFixture(), alertFixture()].map((chart) => renderChart(chart)),
		);

		expect(charts[0]?.equals(charts[2]!)).toBe(true);
		expect(charts[1]?.equals(charts[3]!)).toBe(true);
		expect(charts.map((png) => decodePng(png).width)).toEqual([1200, 1200, 1200, 1200]);
	});

	it("starts its thread on the first chart, ends it after the idle time, restarts it for the next chart", async () => {
		const renderer = createChartRenderer({ idleMs: 100 });
		const svg = chartSvg(poolFixture());
		expect(renderer.running).toBe(false);

		const first = await renderer.render(svg, 1);
		expect(renderer.running).toBe(true);
		await vi.waitFor(() => expect(renderer.running).toBe(false), { timeout: 10_000, interval: 20 });
		const again = await renderer.render(svg, 1);

		expect(again.equals(first)).toBe(true);
		await renderer.stop();
		expect(renderer.running).toBe(false);
	});

	it("keeps its thread while charts are queued, however long the idle time is short", async () => {
		const renderer = createChartRenderer({ idleMs: 1 });
		const svg = chartSvg(alertFixture());

		const pngs = await Promise.all(Array.from({ length: 6 }, () => renderer.render(svg, 1)));

		expect(new Set(pngs.map((png) => png.toString("base64"))).size).toBe(1);
		await renderer.stop();
	});
});

describe("chartModel", () => {
	it("keeps the firing series, then the top ones by latest value, as lines; folds the rest in a min–max band", () => {
		const model = chartModel(alertFixture());

		const byLatest = errorRateSeries()
			.filter((s) => s.metric.instance !== "api-4.prod.example.com:9100")
			.sort((a, b) => b.points.at(-1)!.value - a.points.at(-1)!.value);
		expect(model.lines.map((l) => l.name)).toEqual(
			["api-4", ...byLatest.slice(0, 7).map((s) => /api-\d+/.exec(s.metric.instance!)![0])].map(
				(k) => `instance=${k}.prod.example.com:9100`,
			),
		);
		expect(model.lines[0]?.firing).toBe(true);
		expect(model.others?.count).toBe(6);
		const at = END - HOUR;
		const firstBand = model.others?.band[0];
		const others = byLatest.slice(7).map((s) => s.points.find((p) => p.at === at)!.value);
		expect(firstBand).toEqual({ x: at, min: Math.min(...others), max: Math.max(...others) });
	});

	it("draws one left-over series as a line rather than a band of one, and orders ties by name", () => {
		const series = Array.from({ length: 9 }, (_, i) => ({ name: `s${9 - i}`, points: [{ x: 1, y: 5 }] }));

		const model = chartModel({ series, range: { start: 0, end: 10 } });

		expect(model.lines.map((l) => l.name)).toEqual(["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"]);
		expect(model.others).toBeUndefined();
	});

	it("leaves out points outside the range, series without points, and values that are not numbers", () => {
		const model = chartModel({
			series: [
				{
					name: "a",
					points: [
						{ x: -5, y: 1 },
						{ x: 5, y: Number.NaN },
						{ x: 6, y: 2 },
					],
				},
				{ name: "b", points: [{ x: 50, y: 1 }] },
			],
			range: { start: 0, end: 10 },
		});

		expect(model.lines).toEqual([expect.objectContaining({ name: "a", points: [{ x: 6, y: 2 }], latest: 2 })]);
	});
});

describe("chart text", () => {
	it("escapes labels that would break the SVG and drops characters XML cannot hold", () => {
		const svg = chartSvg({
			title: 'x</text><script>"&',
			series: [{ name: "a\u0000b\ud800<c>", points: [{ x: 1, y: 1 }] }],
			range: { start: 0, end: 10 },
		});

		expect(svg).toContain("x&lt;/text&gt;&lt;script&gt;&quot;&amp;");
		expect(svg).toContain(">ab\ufffd&lt;c&gt;<");
		expect(escapeXml("\u0007bell")).toBe("bell");
	});

	it("cuts a long title to the width with an ellipsis", () => {
		expect(chartSvg({ title: "x".repeat(300), series: [], range: { start: 0, end: 10 } })).toMatch(/>x{35}…</);
	});

	it("formats values per unit: bytes in IEC, seconds as ms/min/h, rates and counts with k/M", () => {
		expect(formatValue(1536, "B")).toBe("1.5 KiB");
		expect(formatValue(3 * 2 ** 30, "B/s")).toBe("3 GiB/s");
		expect(formatValue(0.25, "s")).toBe("250 ms");
		expect(formatValue(300, "s")).toBe("5 min");
		expect(formatValue(2_500, "/s")).toBe("2.5k/s");
		expect(formatValue(0.05, undefined)).toBe("0.05");
		expect(formatValue(97, "connections")).toBe("97");
		expect(formatValue(2.5, "/s", 2.5)).toBe("2.5/s");
		expect(formatValue(4, "/s", 2)).toBe("4/s");
	});

	it("chooses round y steps, zero-based unless that flattens the data", () => {
		expect(yScale([3, 97])).toEqual({ min: 0, max: 100, step: 25, ticks: [0, 25, 50, 75, 100] });
		expect(yScale([990, 1_010]).min).toBeGreaterThan(900);
		expect(yScale([-3, 2]).ticks).toEqual([-4, -2, 0, 2]);
		expect(yScale([0, 0])).toMatchObject({ min: 0, max: 1 });
		expect(yScale([1, 1])).toMatchObject({ min: 0, max: 1 });
		expect(yScale([]).ticks.length).toBeGreaterThan(1);
	});

	it("labels the time axis at whole UTC minutes and states the range", () => {
		expect(timeTicks(END - HOUR, END).map((t) => t.label)).toEqual([
			"13:00",
			"13:10",
			"13:20",
			"13:30",
			"13:40",
			"13:50",
			"14:00",
		]);
		expect(timeTicks(END - 6 * HOUR, END)).toHaveLength(7);
		expect(rangeText({ start: END - HOUR, end: END })).toBe("24 Nov 13:00–14:00 UTC");
		expect(rangeText({ start: END - 14 * HOUR - 90 * 60_000, end: END })).toBe("23 Nov 22:30 – 24 Nov 14:00 UTC");
		expect(timeTicks(END - HOUR, END, 5).map((t) => t.label)).toEqual(["13:00", "13:15", "13:30", "13:45", "14:00"]);
	});
});
