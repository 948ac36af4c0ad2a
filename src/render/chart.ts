import { Worker } from "node:worker_threads";
import { formatDuration } from "../time.ts";

/** A request to the renderer thread (chart-worker.mjs). */
interface ChartJob {
	readonly id: number;
	readonly svg: string;
	readonly zoom: number;
}

/** The renderer thread's answer: the PNG, or why there is none. */
type ChartResult = { readonly id: number; readonly png: Uint8Array } | { readonly id: number; readonly error: string };

/**
 * Line charts for Discord: the layout (scales, ticks, legend, top N plus an "others" band) is
 * built here as SVG; resvg, compiled to WebAssembly (no native binary, no install step), turns it
 * into a PNG on a thread of its own, so a storm of alert charts never blocks the event loop. Text
 * uses JetBrains Mono, a TTF shipped inside an npm package: no system fonts, no network, and its
 * fixed advance (0.6 em) lets the layout measure text exactly without a canvas.
 */

/** One point: x is a Unix time in ms, y a value. */
export interface ChartPoint {
	readonly x: number;
	readonly y: number;
}

/** One line of the chart: its legend name and its points. */
export interface ChartSeries {
	readonly name: string;
	readonly points: readonly ChartPoint[];
}

/** What to draw. Every series is shown: the top `maxSeries` by latest value as lines, the rest as one min–max band. */
export interface LineChart {
	readonly title: string;
	/** A second line under the title, e.g. the PromQL expression or where the samples came from. */
	readonly detail?: string | undefined;
	readonly series: readonly ChartSeries[];
	/** The time window shown (ms); points outside it are clipped. */
	readonly range: { readonly start: number; readonly end: number };
	/** The unit of the values: "connections", "/s", "B", "B/s", "s", "%"… Undefined when not known. */
	readonly unit?: string | undefined;
	/** A dashed red line, e.g. the usable connections. */
	readonly limit?: { readonly value: number; readonly label: string } | undefined;
	/** Series drawn one by one; the rest share the "others" band. */
	readonly maxSeries?: number;
	/** Points further apart than this are not joined (a series that was absent for a while). */
	readonly gapMs?: number | undefined;
	/** Layout width in CSS px (default 640); the PNG has `scale` (default 1.5) times as many pixels. */
	readonly width?: number;
	readonly scale?: number;
}

type Rgb = string;
// An opaque card in Discord's dark-theme embed colour: it reads the same on the dark and the light theme.
const THEME = { background: "#2b2d31", border: "#4e5058", grid: "#3f4147", axis: "#80848e", text: "#dbdee1", muted: "#b5bac1", limit: "#ed4245", others: "#949ba4" } as const;
// Distinct on the dark card, none red (red is the limit), ordered so neighbours differ in hue and lightness.
const PALETTE: readonly Rgb[] = ["#4e9eff", "#f5b83d", "#3ecf8e", "#c77dff", "#ff7aa8", "#5ed4e6", "#ff9548", "#b5d96b"];
const FONT_FAMILY = "JetBrains Mono";
const ADVANCE = 0.6; // JetBrains Mono: every glyph advances 600/1000 em.
const DEFAULT_MAX_SERIES = 8;

/** Renders the chart as a PNG on the renderer thread (see chart-worker.mjs), one chart at a time. */
export async function renderChart(chart: LineChart): Promise<Buffer> {
	return renderer.render(chartSvg(chart), chart.scale ?? 1.5);
}

/**
 * The renderer thread, started on the first chart and kept (a new one would compile resvg again:
 * ending an idle one gave back 18 of its 90 MiB and the next start took 64 more). It never keeps
 * the process alive on its own: it is referenced only while a chart is being drawn. If it dies,
 * the charts in flight fail (an alert goes out without its picture) and the next chart starts a new one.
 */
function createRenderer() {
	let worker: Worker | undefined;
	let nextId = 0;
	const pending = new Map<number, { resolve: (png: Buffer) => void; reject: (err: Error) => void }>();

	function start(): Worker {
		// A small young generation: each chart's objects die with it, and V8 would otherwise grow the space to tens of MB under a storm's churn.
		const started = new Worker(new URL("./chart-worker.mjs", import.meta.url), { resourceLimits: { maxYoungGenerationSizeMb: 4 } });
		started.on("message", (result: ChartResult) => {
			const waiting = pending.get(result.id);
			pending.delete(result.id);
			if ("png" in result) waiting?.resolve(Buffer.from(result.png.buffer, result.png.byteOffset, result.png.byteLength));
			else waiting?.reject(new Error(`chart could not be drawn: ${result.error}`));
			if (pending.size === 0) started.unref();
		});
		const fail = (err: Error) => {
			if (worker !== started) return;
			worker = undefined;
			for (const waiting of pending.values()) waiting.reject(new Error("the chart renderer stopped", { cause: err }));
			pending.clear();
		};
		started.on("error", fail);
		started.on("exit", (code) => fail(new Error(`exit code ${code}`)));
		return started;
	}

	return {
		render(svg: string, zoom: number): Promise<Buffer> {
			worker ??= start();
			worker.ref();
			const id = nextId++;
			const job: ChartJob = { id, svg, zoom };
			const png = new Promise<Buffer>((resolve, reject) => pending.set(id, { resolve, reject }));
			worker.postMessage(job);
			return png;
		},
	};
}

const renderer = createRenderer();

/** What the chart shows: the lines, the band of the rest, and the y range. */
export interface ChartModel {
	readonly lines: readonly (ChartSeries & { readonly colour: Rgb; readonly latest: number })[];
	/** The series not drawn one by one: how many, and their min and max at each time. */
	readonly others: { readonly count: number; readonly band: readonly { x: number; min: number; max: number }[] } | undefined;
}

/** Picks the top series by latest value (ties by name, so the picture is stable) and folds the rest into a band. */
export function chartModel(chart: Pick<LineChart, "series" | "range" | "maxSeries">): ChartModel {
	const inRange = (p: ChartPoint) => p.x >= chart.range.start && p.x <= chart.range.end && Number.isFinite(p.y);
	const series = chart.series.map((s) => ({ name: s.name, points: [...s.points].filter(inRange).sort((a, b) => a.x - b.x) })).filter((s) => s.points.length > 0);
	const latest = (s: { points: readonly ChartPoint[] }) => (s.points.at(-1) as ChartPoint).y;
	series.sort((a, b) => latest(b) - latest(a) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
	const max = Math.max(1, chart.maxSeries ?? DEFAULT_MAX_SERIES);
	// One left over is drawn as a line: a band of one series says less than the series.
	const shown = series.length <= max + 1 ? series : series.slice(0, max);
	const rest = series.slice(shown.length);
	const lines = shown.map((s, i) => ({ ...s, colour: PALETTE[i % PALETTE.length] as Rgb, latest: latest(s) }));
	if (rest.length === 0) return { lines, others: undefined };
	const byTime = new Map<number, { min: number; max: number }>();
	for (const s of rest) {
		for (const p of s.points) {
			const at = byTime.get(p.x);
			if (at) {
				at.min = Math.min(at.min, p.y);
				at.max = Math.max(at.max, p.y);
			} else byTime.set(p.x, { min: p.y, max: p.y });
		}
	}
	const band = [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([x, v]) => ({ x, ...v }));
	return { lines, others: { count: rest.length, band } };
}

/** The chart as an SVG document (pure; `renderChart` rasterises it). */
export function chartSvg(chart: LineChart): string {
	const width = Math.max(400, chart.width ?? 640);
	const model = chartModel(chart);
	const pad = 16;
	const titleSize = 18;
	const small = 13;
	const out: string[] = [];
	let y = pad + titleSize - 2;
	out.push(text(pad, y, fit(chart.title, width - 2 * pad, titleSize), { size: titleSize, fill: THEME.text, weight: 700 }));
	if (chart.detail) {
		y += 20;
		out.push(text(pad, y, fit(chart.detail, width - 2 * pad, small), { size: small, fill: THEME.muted }));
	}
	y += 20;
	out.push(text(pad, y, fit(rangeText(chart.range), width - 2 * pad, small), { size: small, fill: THEME.muted }));

	// The y scale covers every line, the band and the limit.
	const values = [...model.lines.flatMap((l) => l.points.map((p) => p.y)), ...(model.others?.band.flatMap((b) => [b.min, b.max]) ?? []), ...(chart.limit ? [chart.limit.value] : [])];
	const scale = yScale(values);
	const tickLabels = scale.ticks.map((t) => formatValue(t, chart.unit, scale.step));
	const unitCaption = chart.unit ? unitLabel(chart.unit) : "";
	const plotTop = y + (unitCaption ? 34 : 18);
	const plotHeight = 200;
	const plotBottom = plotTop + plotHeight;
	const plotLeft = pad + Math.max(3, ...tickLabels.map((l) => l.length)) * small * ADVANCE + 8;
	const plotRight = width - pad;
	const { start, end } = chart.range.end > chart.range.start ? chart.range : { start: chart.range.start - 60_000, end: chart.range.start + 60_000 };
	const px = (x: number) => plotLeft + ((x - start) / (end - start)) * (plotRight - plotLeft);
	const py = (v: number) => plotBottom - ((v - scale.min) / (scale.max - scale.min)) * plotHeight;

	if (unitCaption) out.push(text(pad, plotTop - 14, fit(unitCaption, width - 2 * pad, small), { size: small, fill: THEME.muted }));
	scale.ticks.forEach((t, i) => {
		out.push(`<line x1="${n(plotLeft)}" y1="${n(py(t))}" x2="${n(plotRight)}" y2="${n(py(t))}" stroke="${THEME.grid}" stroke-width="1"/>`);
		out.push(text(plotLeft - 8, py(t) + small * 0.35, tickLabels[i] ?? "", { size: small, fill: THEME.muted, anchor: "end" }));
	});
	for (const t of timeTicks(start, end)) {
		out.push(`<line x1="${n(px(t.at))}" y1="${n(plotBottom)}" x2="${n(px(t.at))}" y2="${n(plotBottom + 5)}" stroke="${THEME.axis}" stroke-width="1"/>`);
		const half = (t.label.length * small * ADVANCE) / 2;
		out.push(text(Math.min(px(t.at), width - 6 - half), plotBottom + 20, t.label, { size: small, fill: THEME.muted, anchor: "middle" }));
	}
	out.push(`<line x1="${n(plotLeft)}" y1="${n(plotBottom)}" x2="${n(plotRight)}" y2="${n(plotBottom)}" stroke="${THEME.axis}" stroke-width="1"/>`);

	out.push(`<g clip-path="url(#plot)">`);
	if (model.others) {
		for (const run of splitAtGaps(model.others.band, chart.gapMs)) {
			const upper = run.map((b) => `${n(px(b.x))},${n(py(b.max))}`);
			const lower = run.map((b) => `${n(px(b.x))},${n(py(b.min))}`).reverse();
			out.push(`<polygon points="${[...upper, ...lower].join(" ")}" fill="${THEME.others}" fill-opacity="0.3" stroke="${THEME.others}" stroke-opacity="0.7" stroke-width="1"/>`);
		}
	}
	if (chart.limit) out.push(`<line x1="${n(plotLeft)}" y1="${n(py(chart.limit.value))}" x2="${n(plotRight)}" y2="${n(py(chart.limit.value))}" stroke="${THEME.limit}" stroke-width="2" stroke-dasharray="8 6"/>`);
	// The highest series last, so it is on top.
	for (const line of [...model.lines].reverse()) {
		for (const run of splitAtGaps(line.points, chart.gapMs)) {
			if (run.length === 1) out.push(`<circle cx="${n(px(run[0]!.x))}" cy="${n(py(run[0]!.y))}" r="3" fill="${line.colour}"/>`);
			else out.push(`<polyline points="${run.map((p) => `${n(px(p.x))},${n(py(p.y))}`).join(" ")}" fill="none" stroke="${line.colour}" stroke-width="2.25" stroke-linejoin="round" stroke-linecap="round"/>`);
		}
	}
	out.push(`</g>`);
	if (model.lines.length === 0 && !model.others) out.push(text((plotLeft + plotRight) / 2, plotTop + plotHeight * 0.4, "no data in this time range", { size: 15, fill: THEME.muted, anchor: "middle" }));

	// Legend under the plot: the name on the left, the latest value on the right; two columns when every name fits in one.
	const entries: { swatch: string; name: string; value: string }[] = [
		...model.lines.map((l) => ({ swatch: `<line x1="0" y1="0" x2="18" y2="0" stroke="${l.colour}" stroke-width="3.5" stroke-linecap="round"/>`, name: l.name, value: legendValue(l.latest, chart.unit) })),
		...(model.others ? [{ swatch: `<rect x="0" y="-5" width="18" height="10" fill="${THEME.others}" fill-opacity="0.3" stroke="${THEME.others}" stroke-opacity="0.7"/>`, name: `${model.others.count} others (min–max)`, value: othersRange(model.others.band, chart.unit) }] : []),
		...(chart.limit ? [{ swatch: `<line x1="0" y1="0" x2="18" y2="0" stroke="${THEME.limit}" stroke-width="2" stroke-dasharray="5 3"/>`, name: chart.limit.label, value: legendValue(chart.limit.value, chart.unit) }] : []),
	];
	const legendTop = plotBottom + 44;
	const gutter = 24;
	const charWidth = small * ADVANCE;
	const entryWidth = (e: { name: string; value: string }) => 26 + ([...e.name].length + 2 + e.value.length) * charWidth;
	const columns = entries.length > 3 && entries.every((e) => entryWidth(e) <= (width - 2 * pad - gutter) / 2) ? 2 : 1;
	const columnWidth = (width - 2 * pad - (columns - 1) * gutter) / columns;
	const rowHeight = 20;
	entries.forEach((e, i) => {
		const x = pad + (i % columns) * (columnWidth + gutter);
		const rowY = legendTop + Math.floor(i / columns) * rowHeight;
		const nameWidth = columnWidth - 26 - (e.value.length + 2) * charWidth;
		out.push(`<g transform="translate(${n(x)},${n(rowY - small * 0.35)})">${e.swatch}</g>`);
		out.push(text(x + 26, rowY, fit(e.name, nameWidth, small), { size: small, fill: THEME.text }));
		out.push(text(x + columnWidth, rowY, e.value, { size: small, fill: THEME.muted, anchor: "end" }));
	});
	const height = Math.ceil(legendTop + Math.max(0, Math.ceil(entries.length / columns) - 1) * rowHeight + pad);

	return [
		`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT_FAMILY}">`,
		`<defs><clipPath id="plot"><rect x="${n(plotLeft)}" y="${n(plotTop - 4)}" width="${n(plotRight - plotLeft + 4)}" height="${plotHeight + 8}"/></clipPath></defs>`,
		`<rect x="0.5" y="0.5" width="${width - 1}" height="${height - 1}" rx="6" fill="${THEME.background}" stroke="${THEME.border}"/>`,
		...out,
		`</svg>`,
	].join("\n");
}

/** "24 Nov 2026 13:00 → 14:00 UTC (1 h)". */
export function rangeText(range: { start: number; end: number }): string {
	const a = new Date(range.start);
	const b = new Date(range.end);
	const day = (d: Date) => `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
	const sameDay = day(a) === day(b);
	return `${day(a)} ${hhmm(a)} → ${sameDay ? "" : `${day(b)} `}${hhmm(b)} UTC (${formatDuration(range.end - range.start)})`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const hhmm = (d: Date) => `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;


/** Ticks at whole UTC minutes or hours, at most about eight. */
export function timeTicks(start: number, end: number): { at: number; label: string }[] {
	const steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1_440, 2_880, 10_080].map((m) => m * 60_000);
	const step = steps.find((s) => (end - start) / s <= 8) ?? 10_080 * 60_000;
	const ticks: { at: number; label: string }[] = [];
	for (let at = Math.ceil(start / step) * step; at <= end; at += step) {
		const d = new Date(at);
		ticks.push({ at, label: step >= 1_440 * 60_000 ? `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}` : hhmm(d) });
	}
	return ticks;
}

/** A y scale with four or five round steps; zero-based for non-negative data unless that flattens it. */
export function yScale(values: readonly number[]): { min: number; max: number; step: number; ticks: number[] } {
	let lo = values.length > 0 ? Math.min(...values) : 0;
	let hi = values.length > 0 ? Math.max(...values) : 1;
	if (lo >= 0 && lo < hi * 0.6) lo = 0;
	// A flat line sits on a scale from zero to it.
	if (hi === lo) {
		if (lo > 0) lo = 0;
		else if (lo < 0) hi = 0;
		else hi = 1;
	}
	const step = niceStep((hi - lo) / 4);
	const min = Math.floor(lo / step + 1e-9) * step;
	const max = Math.ceil(hi / step - 1e-9) * step;
	const ticks: number[] = [];
	for (let i = 0; min + i * step <= max + step * 1e-9; i++) ticks.push(roundTo(min + i * step, step));
	return { min, max: max > min ? max : min + step, step, ticks };
}

function niceStep(raw: number): number {
	const magnitude = 10 ** Math.floor(Math.log10(raw));
	for (const m of [1, 2, 2.5, 5]) if (m * magnitude >= raw * (1 - 1e-9)) return m * magnitude;
	return 10 * magnitude;
}

function roundTo(value: number, step: number): number {
	const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 2);
	return Number(value.toFixed(Math.min(decimals, 20)));
}

const SI = [
	{ factor: 1e12, prefix: "T" },
	{ factor: 1e9, prefix: "G" },
	{ factor: 1e6, prefix: "M" },
	{ factor: 1e3, prefix: "k" },
];
const IEC = [
	{ factor: 2 ** 40, prefix: "Ti" },
	{ factor: 2 ** 30, prefix: "Gi" },
	{ factor: 2 ** 20, prefix: "Mi" },
	{ factor: 2 ** 10, prefix: "Ki" },
];

/**
 * A value for an axis or the legend: bytes in KiB/MiB/GiB, seconds as ms/s/min/h, other values
 * with k/M/G; `step` (the axis step) sets the decimals so neighbouring ticks read differently.
 */
export function formatValue(value: number, unit?: string, step?: number): string {
	const bytes = unit === "B" || unit === "B/s";
	const suffix = bytes ? unit.slice(1) : unit === "s" ? "" : unit && /^[/%]/.test(unit) ? unit : "";
	const abs = Math.abs(value);
	if (unit === "s") {
		const scaled = abs !== 0 && abs < 1 ? { f: 1e-3, u: "ms" } : abs >= 7_200 ? { f: 3_600, u: "h" } : abs >= 120 ? { f: 60, u: "min" } : { f: 1, u: "s" };
		return `${number(value / scaled.f, step === undefined ? undefined : step / scaled.f)} ${scaled.u}`;
	}
	const prefixes = bytes ? IEC : SI;
	const p = prefixes.find((x) => abs >= x.factor);
	const scaled = p ? value / p.factor : value;
	const text = number(scaled, step === undefined ? undefined : step / (p?.factor ?? 1));
	if (bytes) return `${text} ${p?.prefix ?? ""}B${suffix}`;
	return `${text}${p?.prefix ?? ""}${suffix}`;
}

function number(value: number, step: number | undefined): string {
	const fixed = value.toFixed(step === undefined ? valueDecimals(value) : stepDecimals(step));
	const trimmed = fixed.includes(".") ? fixed.replace(/\.?0+$/, "") : fixed;
	return trimmed === "-0" ? "0" : trimmed;
}

/** Enough decimals that ticks `step` apart read differently: 0.25 → 2, 2.5 → 1, 50 → 0. */
function stepDecimals(step: number): number {
	const exponent = Math.floor(Math.log10(step) + 1e-9);
	const mantissa = Math.round((step / 10 ** exponent) * 1e6) / 1e6;
	return Math.max(0, Math.min(6, -exponent + (Number.isInteger(mantissa) ? 0 : 1)));
}

/** About three significant figures for a legend value. */
function valueDecimals(value: number): number {
	const abs = Math.abs(value);
	return abs >= 100 || Number.isInteger(value) ? 0 : abs >= 10 ? 1 : abs >= 0.1 ? 2 : 3;
}

/** The axis caption for a unit: "connections", "per second", "bytes"… */
function unitLabel(unit: string): string {
	const names: Record<string, string> = { "/s": "per second", B: "bytes", "B/s": "bytes per second", s: "seconds", "%": "percent" };
	return names[unit] ?? unit;
}

/** A legend value: with its unit, spelled out when it is a word ("73 connections"). */
function legendValue(value: number, unit: string | undefined): string {
	const formatted = formatValue(value, unit);
	return unit && /^[a-z]/i.test(unit) && unit !== "B" && unit !== "B/s" && unit !== "s" ? `${formatted} ${unit}` : formatted;
}

function othersRange(band: readonly { min: number; max: number }[], unit: string | undefined): string {
	const last = band.at(-1);
	return last ? `${formatValue(last.min, unit)}–${formatValue(last.max, unit)}` : "";
}

/** Splits points where two neighbours are more than `gapMs` apart. */
function splitAtGaps<T extends { x: number }>(points: readonly T[], gapMs: number | undefined): T[][] {
	const runs: T[][] = [];
	let current: T[] = [];
	for (const p of points) {
		const previous = current.at(-1);
		if (previous && gapMs !== undefined && p.x - previous.x > gapMs) {
			runs.push(current);
			current = [];
		}
		current.push(p);
	}
	if (current.length > 0) runs.push(current);
	return runs;
}

/** Cuts text to the code points that fit `width` px at `size`, ending in "…" when cut. */
function fit(value: string, width: number, size: number): string {
	const chars = [...value.replace(/\s+/g, " ")];
	const room = Math.max(1, Math.floor(width / (size * ADVANCE)));
	return chars.length <= room ? chars.join("") : `${chars.slice(0, room - 1).join("")}…`;
}

function text(x: number, y: number, value: string, style: { size: number; fill: Rgb; anchor?: "start" | "middle" | "end"; weight?: number }): string {
	const anchor = style.anchor && style.anchor !== "start" ? ` text-anchor="${style.anchor}"` : "";
	const weight = style.weight ? ` font-weight="${style.weight}"` : "";
	return `<text x="${n(x)}" y="${n(y)}" font-size="${style.size}" fill="${style.fill}"${anchor}${weight}>${escapeXml(value)}</text>`;
}

/** Escapes text for SVG and drops what XML 1.0 cannot hold (control characters, lone surrogates). */
export function escapeXml(value: string): string {
	return value
		.toWellFormed()
		.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\uFFFE\uFFFF]/g, "")
		.replace(/&/g, "&amp;")
		.replace(/</g, "&lt;")
		.replace(/>/g, "&gt;")
		.replace(/"/g, "&quot;");
}

const n = (value: number) => (Number.isFinite(value) ? Math.round(value * 10) / 10 : 0);
