import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";

/** A request to the renderer process (chart-worker.mjs). */
interface ChartJob {
	readonly id: number;
	readonly svg: string;
	readonly zoom: number;
}

/** The renderer process's answer: the PNG, or why there is none. */
type ChartResult = { readonly id: number; readonly png: Uint8Array } | { readonly id: number; readonly error: string };

/**
 * Line charts for Discord: the layout (scales, ticks, legend, top N plus an "others" band) is
 * built here as SVG; resvg, compiled to WebAssembly (no native binary, no install step), turns it
 * into a PNG in a process of its own, so a storm of alert charts never blocks the event loop. Text
 * uses JetBrains Mono, a TTF shipped inside an npm package: no system fonts, no network, and its
 * fixed advance (0.6 em) lets the layout measure text exactly without a canvas.
 *
 * Sized for where Discord shows it: an embed image is fitted into about 400×300, so the chart is
 * laid out 480 px wide and about half as tall, with 19 px axis and legend text: about 16 px on a
 * desktop, 10 px on a phone (the old 640×526 layout with 13 px text gave 7 px and 5 px).
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
	/** The series an alert fires for: listed and coloured first. */
	readonly firing?: boolean | undefined;
}

/** A dashed horizontal line: an alert's threshold, the pool's warn, critical and usable levels. */
export interface ReferenceLine {
	readonly value: number;
	/** Legend name, e.g. "threshold" or "warn 70 %". */
	readonly label: string;
	/** Written before the value in the legend: the alert's comparison ("> 1/s"). */
	readonly comparison?: string | undefined;
	readonly tone: "critical" | "warn" | "limit";
}

/** Series left out of the answer (Prometheus returned only the top ones): how many, and their min–max per time. */
export interface OtherSeries {
	readonly count: number;
	readonly band: readonly { readonly x: number; readonly min: number; readonly max: number }[];
}

/**
 * What to draw. Every series is shown: the top ones (firing first, then by latest value) as lines,
 * as many as four legend rows hold, the rest as one min–max band.
 */
export interface LineChart {
	readonly title: string;
	/** Text after the time range on the second line, e.g. where the samples came from. */
	readonly detail?: string | undefined;
	readonly series: readonly ChartSeries[];
	/** The time window shown (ms); points outside it are clipped. */
	readonly range: { readonly start: number; readonly end: number };
	/** The unit of the values: "connections", "/s", "B", "B/s", "s", "%"… Undefined when not known. */
	readonly unit?: string | undefined;
	/** Dashed lines, listed in the legend after the series. */
	readonly thresholds?: readonly ReferenceLine[] | undefined;
	/** When the alert started firing (ms): the plot is shaded from there to the end. */
	readonly firingSince?: number | undefined;
	/** Series the caller did not fetch one by one, folded into the "others" band with any left over here. */
	readonly others?: OtherSeries | undefined;
	/** At most this many series drawn one by one (fewer when the legend's four rows hold fewer). */
	readonly maxSeries?: number;
	/** Points further apart than this are not joined (a series that was absent for a while). */
	readonly gapMs?: number | undefined;
	/** Layout width in CSS px (default 480); the PNG has `scale` (default 2.5) times as many pixels. */
	readonly width?: number;
	readonly scale?: number;
}

type Rgb = string;
// An opaque card in Discord's dark-theme embed colour: it reads the same on the dark and the light theme.
const THEME = {
	background: "#2b2d31",
	border: "#4e5058",
	grid: "#3f4147",
	axis: "#80848e",
	text: "#dbdee1",
	muted: "#b5bac1",
	others: "#949ba4",
	firing: "#ed4245",
} as const;
const TONES: Record<ReferenceLine["tone"], Rgb> = { critical: "#ed4245", limit: "#ed4245", warn: "#f0b232" };
const DASHES: Record<ReferenceLine["tone"], string> = { critical: "8 5", warn: "8 5", limit: "3 4" };
// Distinct on the dark card, none red or amber (those are the thresholds), neighbours differ in hue and lightness.
const PALETTE: readonly Rgb[] = [
	"#4e9eff",
	"#3ecf8e",
	"#c77dff",
	"#ff7aa8",
	"#5ed4e6",
	"#b5d96b",
	"#ff9548",
	"#e8e3a0",
];
const FONT_FAMILY = "JetBrains Mono";
const ADVANCE = 0.6; // JetBrains Mono: every glyph advances 600/1000 em.
const DEFAULT_MAX_SERIES = 8;
// Four would fit the brief, but three keep the picture near 2:1 with a plot tall enough to read.
const LEGEND_ROWS = 3;
const DEFAULT_WIDTH = 480;
const DEFAULT_SCALE = 2.5;
const TEXT = 19; // axis, legend and the second line
const TITLE = 21;

/** How long the renderer process may sit idle before it is ended (its memory given back). */
export const RENDERER_IDLE_MS = 60_000;

/** Renders the chart as a PNG in the renderer process (see chart-worker.mjs), one chart at a time. */
export async function renderChart(chart: LineChart): Promise<Buffer> {
	return renderer.render(chartSvg(chart), chart.scale ?? DEFAULT_SCALE);
}

/** The renderer process's controls: draw, whether it runs, and end it now. */
export interface ChartRenderer {
	render(svg: string, zoom: number): Promise<Buffer>;
	readonly running: boolean;
	/** The renderer process's id while it runs (its memory can be read in /proc). */
	readonly pid: number | undefined;
	stop(): Promise<void>;
}

// The renderer's Node: wasm from the baseline compiler only and no V8 helper threads (the first
// chart costs 82 MiB instead of 120, the peak over 470 charts 146 instead of 193, for charts about
// twice as slow: `npm run bench -- charts`), a small young generation and old space, and a
// collection after each chart (chart-worker.mjs: its anonymous memory stays at ~34 MiB instead of
// growing by ~0.12 MiB a chart; bench/RESULTS.md, "The chart renderer's memory").
const RENDERER_NODE_FLAGS = [
	"--liftoff-only",
	"--single-threaded",
	"--max-semi-space-size=1",
	"--max-old-space-size=64",
	"--expose-gc",
];

/**
 * The renderer: a child process (chart-worker.mjs), started on the first chart and ended after
 * `idleMs` without one, so the ~90 MiB that resvg's wasm, its memory and a V8 isolate take are
 * given back whole (a worker thread's share stays in the bot's malloc arenas after it ends: ending
 * one gave back 18 of 98 MiB). Starting again costs about 0.4 s, nothing against a minute of quiet.
 * It never keeps opsbot alive on its own: it is referenced only while a chart is being drawn, and
 * it exits when opsbot does (its IPC channel closes). If it dies, the charts in flight fail (an
 * alert goes out without its picture) and the next chart starts a new one.
 */
export function createChartRenderer(options: { idleMs?: number } = {}): ChartRenderer {
	const idleMs = options.idleMs ?? RENDERER_IDLE_MS;
	let child: ChildProcess | undefined;
	let idleTimer: NodeJS.Timeout | undefined;
	let nextId = 0;
	const pending = new Map<number, { resolve: (png: Buffer) => void; reject: (err: Error) => void }>();
	const hold = (started: ChildProcess, held: boolean) => {
		if (held) {
			started.ref();
			(started.channel as { ref?: () => void } | undefined)?.ref?.();
		} else {
			started.unref();
			(started.channel as { unref?: () => void } | undefined)?.unref?.();
		}
	};

	function start(): ChildProcess {
		const started = fork(fileURLToPath(new URL("./chart-worker.mjs", import.meta.url)), [], {
			execArgv: RENDERER_NODE_FLAGS,
			serialization: "advanced",
			stdio: ["ignore", "ignore", "inherit", "ipc"],
		});
		started.on("message", (result: ChartResult) => {
			const waiting = pending.get(result.id);
			pending.delete(result.id);
			if ("png" in result)
				waiting?.resolve(Buffer.from(result.png.buffer, result.png.byteOffset, result.png.byteLength));
			else waiting?.reject(new Error(`chart could not be drawn: ${result.error}`));
			if (pending.size === 0 && child === started) {
				hold(started, false);
				idleTimer = setTimeout(() => void stop(), idleMs).unref();
			}
		});
		const fail = (err: Error) => {
			if (child !== started) return;
			child = undefined;
			for (const waiting of pending.values()) waiting.reject(new Error("the chart renderer stopped", { cause: err }));
			pending.clear();
		};
		started.on("error", fail);
		started.on("exit", (code, signal) => fail(new Error(`exit code ${code ?? signal}`)));
		return started;
	}

	async function stop(): Promise<void> {
		clearTimeout(idleTimer);
		const ending = child;
		if (!ending || pending.size > 0) return;
		child = undefined;
		if (ending.exitCode !== null || ending.signalCode !== null) return;
		const exited = new Promise((resolve) => ending.once("exit", resolve));
		ending.kill("SIGTERM");
		await exited;
	}

	return {
		render(svg, zoom) {
			clearTimeout(idleTimer);
			child ??= start();
			hold(child, true);
			const id = nextId++;
			const job: ChartJob = { id, svg, zoom };
			const png = new Promise<Buffer>((resolve, reject) => pending.set(id, { resolve, reject }));
			child.send(job);
			return png;
		},
		get running() {
			return child !== undefined;
		},
		get pid() {
			return child?.pid;
		},
		stop,
	};
}

const renderer = createChartRenderer();

/** What the chart shows: the lines, the band of the rest. */
export interface ChartModel {
	readonly lines: readonly (ChartSeries & { readonly colour: Rgb; readonly latest: number })[];
	/** The series not drawn one by one: how many, and their min and max at each time. */
	readonly others: OtherSeries | undefined;
}

/**
 * Picks the series drawn as lines: firing ones first, then by latest value (ties by name, so the
 * picture is stable); the rest, with any the caller already folded (`others`), become one band.
 */
export function chartModel(chart: Pick<LineChart, "series" | "range" | "maxSeries" | "others">): ChartModel {
	const inRange = (p: ChartPoint) => p.x >= chart.range.start && p.x <= chart.range.end && Number.isFinite(p.y);
	const series = chart.series
		.map((s) => ({
			name: s.name,
			firing: s.firing === true,
			points: [...s.points].filter(inRange).sort((a, b) => a.x - b.x),
		}))
		.filter((s) => s.points.length > 0);
	const latest = (s: { points: readonly ChartPoint[] }) => (s.points.at(-1) as ChartPoint).y;
	series.sort(
		(a, b) =>
			Number(b.firing) - Number(a.firing) || latest(b) - latest(a) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
	);
	const max = Math.max(1, chart.maxSeries ?? DEFAULT_MAX_SERIES);
	const folded = chart.others && chart.others.count > 0 ? chart.others : undefined;
	// One left over is drawn as a line: a band of one series says less than the series.
	const shown = !folded && series.length <= max + 1 ? series : series.slice(0, max);
	const rest = series.slice(shown.length);
	const lines = shown.map((s, i) => ({ ...s, colour: PALETTE[i % PALETTE.length] as Rgb, latest: latest(s) }));
	if (rest.length === 0 && !folded) return { lines, others: undefined };
	const byTime = new Map<number, { min: number; max: number }>();
	const add = (x: number, min: number, max: number) => {
		const at = byTime.get(x);
		if (at) {
			at.min = Math.min(at.min, min);
			at.max = Math.max(at.max, max);
		} else byTime.set(x, { min, max });
	};
	for (const s of rest) for (const p of s.points) add(p.x, p.y, p.y);
	for (const b of folded?.band ?? [])
		if (inRange({ x: b.x, y: b.min }) && Number.isFinite(b.max)) add(b.x, b.min, b.max);
	const band = [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([x, v]) => ({ x, ...v }));
	return { lines, others: { count: rest.length + (folded?.count ?? 0), band } };
}

/**
 * Legend names without what they all share: `instance=api-1.prod.example.com:9100` and
 * `instance=api-14.prod.example.com:9100` become `api-1` and `api-14`. Cuts only at a label
 * boundary (after `=`, a space or a comma; before `.`, `:`, a space or a comma), never to nothing.
 */
export function trimCommon(names: readonly string[]): string[] {
	if (names.length < 2) return [...names];
	const chars = names.map((name) => [...name]);
	const shortest = Math.min(...chars.map((c) => c.length));
	let prefix = 0;
	while (prefix < shortest && chars.every((c) => c[prefix] === chars[0]![prefix])) prefix++;
	let suffix = 0;
	while (
		suffix < shortest - prefix &&
		chars.every((c) => c[c.length - 1 - suffix] === chars[0]![chars[0]!.length - 1 - suffix])
	)
		suffix++;
	const first = chars[0]!;
	let cutStart = 0;
	for (let i = 0; i < prefix; i++) if ("= ,;".includes(first[i]!)) cutStart = i + 1;
	let cutEnd = 0;
	for (let i = suffix; i > 0; i--) {
		if (".: ,;".includes(first[first.length - i]!)) {
			cutEnd = i;
			break;
		}
	}
	const trimmed = chars.map((c) =>
		c
			.slice(cutStart, c.length - cutEnd)
			.join("")
			.trim(),
	);
	return trimmed.some((t) => t === "") ? [...names] : trimmed;
}

interface LegendEntry {
	readonly swatch: string;
	readonly name: string;
	readonly value: string;
}

/**
 * The lines and legend entries that fit four legend rows: two columns where names are short, one row each where not.
 */
function legendPlan(
	chart: LineChart,
	width: number,
): { model: ChartModel; rows: LegendEntry[][]; columnWidth: number } {
	const gutter = 16;
	const columnWidth = (width - gutter) / 2;
	const charWidth = TEXT * ADVANCE;
	const entryWidth = (e: LegendEntry) => SWATCH + ([...e.name].length + 1 + [...e.value].length) * charWidth;
	let plan: { model: ChartModel; rows: LegendEntry[][]; columnWidth: number } | undefined;
	for (let lines = Math.max(1, chart.maxSeries ?? DEFAULT_MAX_SERIES); lines >= 1; lines--) {
		const model = chartModel({ ...chart, maxSeries: lines });
		const names = trimCommon(model.lines.map((l) => l.name));
		const entries: LegendEntry[] = [
			...model.lines.map((l, i) => ({
				swatch: `<line x1="0" y1="0" x2="18" y2="0" stroke="${l.colour}" stroke-width="4" stroke-linecap="round"/>`,
				name: names[i] ?? l.name,
				value: formatValue(l.latest, chart.unit),
			})),
			...(inlineThreshold(chart) ? [] : (chart.thresholds ?? [])).map((t) => ({
				swatch: `<line x1="0" y1="0" x2="18" y2="0" stroke="${TONES[t.tone]}" stroke-width="2.5" stroke-dasharray="5 3"/>`,
				name: t.label,
				value: `${t.comparison ? `${t.comparison} ` : ""}${formatValue(t.value, chart.unit)}`,
			})),
			...(model.others
				? [
						{
							swatch:
								`<rect x="0" y="-6" width="18" height="12" fill="${THEME.others}" fill-opacity="0.35" ` +
								`stroke="${THEME.others}" stroke-opacity="0.8"/>`,
							name: `${model.others.count} others`,
							value: othersRange(model.others.band, chart.unit),
						},
					]
				: []),
		];
		// Half-width entries pair up first; an entry too wide for half a row takes a whole one.
		const half = entries.filter((e) => entryWidth(e) <= columnWidth);
		const whole = entries.filter((e) => entryWidth(e) > columnWidth);
		const rows: LegendEntry[][] = [];
		for (let i = 0; i < half.length; i += 2) rows.push(half.slice(i, i + 2));
		for (const e of whole) rows.push([e]);
		plan = { model, rows, columnWidth };
		if (rows.length <= LEGEND_ROWS) return plan;
	}
	return { ...(plan as NonNullable<typeof plan>), rows: (plan as NonNullable<typeof plan>).rows.slice(0, LEGEND_ROWS) };
}

const SWATCH = 28;

/** The threshold named on the plot rather than in the legend: the only one there is (an alert's). */
function inlineThreshold(chart: Pick<LineChart, "thresholds">): ReferenceLine | undefined {
	const finite = (chart.thresholds ?? []).filter((t) => Number.isFinite(t.value));
	return finite.length === 1 ? finite[0] : undefined;
}

/** The chart as an SVG document (pure; `renderChart` rasterises it). */
export function chartSvg(chart: LineChart): string {
	const width = Math.max(320, chart.width ?? DEFAULT_WIDTH);
	const pad = 12;
	const inner = width - 2 * pad;
	const { model, rows, columnWidth } = legendPlan(chart, inner);
	const out: string[] = [];
	const titleY = pad + TITLE - 3;
	out.push(text(pad, titleY, fit(chart.title, inner, TITLE), { size: TITLE, fill: THEME.text, weight: 700 }));
	// The unit is said once: in the tick labels ("2/s", "1 GiB"), else here, unless the title names it.
	const unitWord =
		chart.unit && formatValue(1, chart.unit) === "1" && !chart.title.toLowerCase().includes(chart.unit.toLowerCase())
			? unitLabel(chart.unit)
			: undefined;
	const second = [rangeText(chart.range), unitWord, chart.detail].filter(Boolean).join(" · ");
	const secondY = titleY + 24;
	out.push(text(pad, secondY, fit(second, inner, TEXT), { size: TEXT, fill: THEME.muted }));

	// The y scale covers every line, the band and the thresholds.
	const thresholds = (chart.thresholds ?? []).filter((t) => Number.isFinite(t.value));
	const values = [
		...model.lines.flatMap((l) => l.points.map((p) => p.y)),
		...(model.others?.band.flatMap((b) => [b.min, b.max]) ?? []),
		...thresholds.map((t) => t.value),
	];
	const scale = yScale(values, 3);
	const tickLabels = scale.ticks.map((t) => formatValue(t, chart.unit, scale.step));
	const plotTop = secondY + 17;
	const plotHeight = 104;
	const plotBottom = plotTop + plotHeight;
	const plotLeft = pad + Math.max(2, ...tickLabels.map((l) => [...l].length)) * TEXT * ADVANCE + 8;
	const plotRight = width - pad;
	const { start, end } =
		chart.range.end > chart.range.start
			? chart.range
			: { start: chart.range.start - 60_000, end: chart.range.start + 60_000 };
	const px = (x: number) => plotLeft + ((x - start) / (end - start)) * (plotRight - plotLeft);
	// Halves first: for values near ±1e308 the span itself would be Infinity.
	const py = (v: number) => plotBottom - ((v / 2 - scale.min / 2) / (scale.max / 2 - scale.min / 2)) * plotHeight;

	const labelsOnTop: string[] = [];
	if (chart.firingSince !== undefined && chart.firingSince < end) {
		const from = Math.max(plotLeft, px(chart.firingSince));
		out.push(
			`<rect x="${n(from)}" y="${n(plotTop)}" width="${n(plotRight - from)}" height="${plotHeight}" ` +
				`fill="${THEME.firing}" fill-opacity="0.14"/>`,
		);
		out.push(
			`<line x1="${n(from)}" y1="${n(plotTop)}" x2="${n(from)}" y2="${n(plotBottom)}" stroke="${THEME.firing}" ` +
				`stroke-opacity="0.7" stroke-width="1.5"/>`,
		);
		// On a pill of the card's colour, so a line through it does not hide it.
		const label = "firing";
		const labelWidth = label.length * 17 * ADVANCE;
		const labelX = Math.min(from + 4, plotRight - labelWidth - 8);
		labelsOnTop.push(
			`<rect x="${n(labelX)}" y="${n(plotTop + 2)}" width="${n(labelWidth + 8)}" height="20" rx="3" ` +
				`fill="${THEME.background}" fill-opacity="0.85"/>`,
		);
		labelsOnTop.push(text(labelX + 4, plotTop + 17, label, { size: 17, fill: "#f28b8d" }));
	}
	scale.ticks.forEach((t, i) => {
		out.push(
			`<line x1="${n(plotLeft)}" y1="${n(py(t))}" x2="${n(plotRight)}" y2="${n(py(t))}" stroke="${THEME.grid}" ` +
				`stroke-width="1"/>`,
		);
		out.push(
			text(plotLeft - 7, py(t) + TEXT * 0.35, tickLabels[i] ?? "", { size: TEXT, fill: THEME.muted, anchor: "end" }),
		);
	});
	const ticks = timeTicks(start, end, Math.max(2, Math.floor((plotRight - plotLeft) / 95)));
	for (const t of ticks) {
		out.push(
			`<line x1="${n(px(t.at))}" y1="${n(plotBottom)}" x2="${n(px(t.at))}" y2="${n(plotBottom + 5)}" ` +
				`stroke="${THEME.axis}" stroke-width="1"/>`,
		);
		const half = ([...t.label].length * TEXT * ADVANCE) / 2;
		// The first label moves right of its tick rather than under the y axis's lowest label.
		out.push(
			text(Math.max(plotLeft + half - 8, Math.min(px(t.at), width - pad - half)), plotBottom + 22, t.label, {
				size: TEXT,
				fill: THEME.muted,
				anchor: "middle",
			}),
		);
	}
	out.push(
		`<line x1="${n(plotLeft)}" y1="${n(plotBottom)}" x2="${n(plotRight)}" y2="${n(plotBottom)}" ` +
			`stroke="${THEME.axis}" stroke-width="1"/>`,
	);

	out.push(`<g clip-path="url(#plot)">`);
	if (model.others) {
		for (const run of splitAtGaps(model.others.band, chart.gapMs)) {
			const upper = run.map((b) => `${n(px(b.x))},${n(py(b.max))}`);
			const lower = run.map((b) => `${n(px(b.x))},${n(py(b.min))}`).reverse();
			out.push(
				`<polygon points="${[...upper, ...lower].join(" ")}" fill="${THEME.others}" fill-opacity="0.3" ` +
					`stroke="${THEME.others}" stroke-opacity="0.7" stroke-width="1"/>`,
			);
		}
	}
	for (const t of thresholds)
		out.push(
			`<line x1="${n(plotLeft)}" y1="${n(py(t.value))}" x2="${n(plotRight)}" y2="${n(py(t.value))}" ` +
				`stroke="${TONES[t.tone]}" stroke-width="2" stroke-dasharray="${DASHES[t.tone]}"/>`,
		);
	const single = inlineThreshold(chart);
	if (single) {
		// One threshold is named on its line, at the left where the lines are usually still below it; it saves a legend row.
		const label = `${single.comparison ? `${single.comparison} ` : ""}${formatValue(single.value, chart.unit)}`;
		const y = py(single.value) - 4 - 20 < plotTop ? py(single.value) + 4 : py(single.value) - 24;
		labelsOnTop.push(
			`<rect x="${n(plotLeft + 4)}" y="${n(y)}" width="${n([...label].length * 17 * ADVANCE + 8)}" height="20" ` +
				`rx="3" fill="${THEME.background}" fill-opacity="0.85"/>`,
		);
		labelsOnTop.push(text(plotLeft + 8, y + 15, label, { size: 17, fill: TONES[single.tone] }));
	}
	// The first series (firing, or highest) last, so it is on top.
	for (const line of [...model.lines].reverse()) {
		for (const run of splitAtGaps(line.points, chart.gapMs)) {
			if (run.length === 1)
				out.push(`<circle cx="${n(px(run[0]!.x))}" cy="${n(py(run[0]!.y))}" r="3.5" fill="${line.colour}"/>`);
			else
				out.push(
					`<polyline points="${run.map((p) => `${n(px(p.x))},${n(py(p.y))}`).join(" ")}" fill="none" ` +
						`stroke="${line.colour}" stroke-width="${line.firing ? 3 : 2.25}" stroke-linejoin="round" ` +
						`stroke-linecap="round"/>`,
				);
		}
	}
	out.push(`</g>`, ...labelsOnTop);
	if (model.lines.length === 0 && !model.others)
		out.push(
			text((plotLeft + plotRight) / 2, plotTop + plotHeight * 0.45, "no data in this time range", {
				size: TEXT,
				fill: THEME.muted,
				anchor: "middle",
			}),
		);

	// Legend under the plot: swatch, name, and the latest value right-aligned in its column.
	const legendTop = plotBottom + 48;
	const rowHeight = 23;
	const charWidth = TEXT * ADVANCE;
	rows.forEach((row, r) => {
		const rowY = legendTop + r * rowHeight;
		row.forEach((e, c) => {
			const x = pad + c * (columnWidth + 16);
			const right =
				row.length === 1 && SWATCH + ([...e.name].length + 1 + [...e.value].length) * charWidth > columnWidth
					? pad + inner
					: x + columnWidth;
			const valueWidth = [...e.value].length * charWidth;
			out.push(`<g transform="translate(${n(x)},${n(rowY - TEXT * 0.33)})">${e.swatch}</g>`);
			out.push(
				text(x + SWATCH, rowY, fit(e.name, right - x - SWATCH - valueWidth - charWidth, TEXT), {
					size: TEXT,
					fill: THEME.text,
				}),
			);
			out.push(text(right, rowY, e.value, { size: TEXT, fill: THEME.muted, anchor: "end" }));
		});
	});
	const height = Math.ceil(legendTop + Math.max(0, rows.length - 1) * rowHeight + pad);

	return [
		`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ` +
			`${height}" font-family="${FONT_FAMILY}">`,
		`<defs><clipPath id="plot"><rect x="${n(plotLeft)}" y="${n(plotTop - 4)}" ` +
			`width="${n(plotRight - plotLeft + 4)}" height="${plotHeight + 8}"/></clipPath></defs>`,
		`<rect x="0.5" y="0.5" width="${width - 1}" height="${height - 1}" rx="6" fill="${THEME.background}" ` +
			`stroke="${THEME.border}"/>`,
		...out,
		`</svg>`,
	].join("\n");
}

/**
 * "24 Nov 13:00–14:00 UTC"; across days "23 Nov 22:30 – 24 Nov 14:00 UTC" (short: it shares a line at 40
 * characters).
 */
export function rangeText(range: { start: number; end: number }): string {
	const a = new Date(range.start);
	const b = new Date(range.end);
	const day = (d: Date) => `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
	if (day(a) === day(b)) return `${day(b)} ${hhmm(a)}–${hhmm(b)} UTC`;
	return `${day(a)} ${hhmm(a)} – ${day(b)} ${hhmm(b)} UTC`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const hhmm = (d: Date) => `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;

/** Ticks at whole UTC minutes or hours, at most `maxTicks`. */
export function timeTicks(start: number, end: number, maxTicks = 8): { at: number; label: string }[] {
	const steps = [1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 360, 720, 1_440, 2_880, 10_080].map((m) => m * 60_000);
	// Intervals one fewer than ticks; a range that ends on a step would otherwise get one tick more.
	const step = steps.find((s) => Math.floor((end - start) / s) + 1 <= maxTicks) ?? 10_080 * 60_000;
	const ticks: { at: number; label: string }[] = [];
	for (let at = Math.ceil(start / step) * step; at <= end; at += step) {
		const d = new Date(at);
		ticks.push({ at, label: step >= 1_440 * 60_000 ? `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}` : hhmm(d) });
	}
	return ticks;
}

/**
 * A y scale with about `intervals` round steps; zero-based for non-negative data unless that
 * flattens it. Any finite values give a finite scale (±1e308 included): spans are taken in halves.
 */
export function yScale(
	values: readonly number[],
	intervals = 4,
): { min: number; max: number; step: number; ticks: number[] } {
	const finite = values.filter(Number.isFinite);
	let lo = finite.length > 0 ? Math.min(...finite) : 0;
	let hi = finite.length > 0 ? Math.max(...finite) : 1;
	if (lo >= 0 && lo < hi * 0.6) lo = 0;
	// A flat line sits on a scale from zero to it.
	if (hi === lo) {
		if (lo > 0) lo = 0;
		else if (lo < 0) hi = 0;
		else hi = 1;
	}
	const step = niceStep(hi / intervals - lo / intervals);
	let min = Math.floor(lo / step + 1e-9) * step;
	let max = Math.ceil(hi / step - 1e-9) * step;
	if (!Number.isFinite(min)) min = lo;
	if (!Number.isFinite(max)) max = hi;
	// Whole multiples of the step inside the scale: k * step never overflows where min and max did not.
	// Bounded: where the step is below the values' precision, neighbouring multiples round to one value.
	const ticks: number[] = [];
	for (let k = Math.ceil(min / step - 1e-9); k <= Math.floor(max / step + 1e-9) && ticks.length <= 12; k++)
		ticks.push(roundTo(k * step, step));
	return { min, max: max > min ? max : min + step, step, ticks: [...new Set(ticks)] };
}

/** The round step (1, 2, 2.5 or 5 times a power of ten) at or above `raw`; never Infinity. */
function niceStep(raw: number): number {
	const magnitude = 10 ** Math.floor(Math.log10(raw));
	for (const m of [1, 2, 2.5, 5, 10])
		if (m * magnitude >= raw * (1 - 1e-9)) return Math.min(m * magnitude, Number.MAX_VALUE);
	return Number.MAX_VALUE;
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
	// Past the largest prefix, the exponent: "1e308", not three hundred digits.
	if (abs >= 1e15)
		return (
			`${value.toExponential(1).replace(/\.0e/, "e").replace("e+", "e")}` +
			`${bytes ? ` B${suffix}` : unit === "s" ? " s" : suffix}`
		);
	if (unit === "s") {
		const scaled =
			abs !== 0 && abs < 1
				? { f: 1e-3, u: "ms" }
				: abs >= 7_200
					? { f: 3_600, u: "h" }
					: abs >= 120
						? { f: 60, u: "min" }
						: { f: 1, u: "s" };
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
	const names: Record<string, string> = {
		"/s": "per second",
		B: "bytes",
		"B/s": "bytes per second",
		s: "seconds",
		"%": "percent",
	};
	return names[unit] ?? unit;
}

function othersRange(band: readonly { min: number; max: number }[], unit: string | undefined): string {
	const last = band.at(-1);
	if (!last) return "";
	const low = formatValue(last.min, unit);
	const high = formatValue(last.max, unit);
	// "0.25–0.6/s" rather than "0.25/s–0.6/s": the unit once when both ends share it.
	const unitOf = (v: string) => v.replace(/^[-+\d.e]+/, "");
	return unitOf(low) === unitOf(high) && unitOf(low) !== ""
		? `${low.slice(0, low.length - unitOf(low).length)}–${high}`
		: `${low}–${high}`;
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

function text(
	x: number,
	y: number,
	value: string,
	style: { size: number; fill: Rgb; anchor?: "start" | "middle" | "end"; weight?: number },
): string {
	const anchor = style.anchor && style.anchor !== "start" ? ` text-anchor="${style.anchor}"` : "";
	const weight = style.weight ? ` font-weight="${style.weight}"` : "";
	return (
		`<text x="${n(x)}" y="${n(y)}" font-size="${style.size}" ` +
		`fill="${style.fill}"${anchor}${weight}>${escapeXml(value)}</text>`
	);
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
