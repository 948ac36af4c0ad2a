import type { AlertingOps } from "../config.ts";
import { type LineChart, type OtherSeries, renderChart } from "../render/chart.ts";
import type {
	PrometheusCallOptions,
	PrometheusClient,
	PrometheusService,
	RangeSeries,
} from "../services/prometheus.ts";
import { alertEnvironment } from "./actions.ts";
import { expressionOf } from "./render.ts";
import type { WebhookPayload } from "./schema.ts";

const WINDOW_MS = 3_600_000;
const STEP_SECONDS = 30;
/**
 * Series Prometheus returns one by one; the rest come back as three series (count, min, max), however many there are.
 */
const TOP_SERIES = 8;

/**
 * Alert charts drawn at once (their Prometheus queries, SVG and PNG): the others wait their turn, and
 * their 5 s for Prometheus starts when it comes. Forty groups at once would otherwise send Prometheus
 * eighty range queries together (on a busy machine all of them timed out: no chart at all) and hold
 * every answer and picture in memory together. Two: one asks Prometheus while the other is drawn.
 */
export const CHARTS_AT_ONCE = 2;

/**
 * The alert expression over the last hour, from the Prometheus of the alert's environment (its
 * `alerts.environmentLabel` label, else the default environment), as a PNG; undefined without one.
 * The comparison's left side is drawn (so the rise to the threshold shows), the threshold as a
 * dashed line, the firing period shaded from the alerts' `startsAt`; the top 8 series as lines,
 * the rest as a min–max band whose size and shape Prometheus computes (see `fetchAlertSeries`).
 * At most `CHARTS_AT_ONCE` are drawn at a time.
 */
export function alertChart(
	ops: AlertingOps,
	prometheusService: Pick<PrometheusService, "forEnvironment">,
): (payload: WebhookPayload) => Promise<Buffer | undefined> {
	const turn = takingTurns(CHARTS_AT_ONCE);
	return (payload) => turn(() => drawAlertChart(ops, prometheusService, payload));
}

/** Runs at most `max` tasks at a time, the others in the order they came. */
function takingTurns(max: number): <T>(task: () => Promise<T>) => Promise<T> {
	let running = 0;
	const waiting: (() => void)[] = [];
	return async (task) => {
		// A finished task hands its place to the next waiting one, so `running` counts places taken.
		if (running < max) running++;
		else await new Promise<void>((resolve) => waiting.push(resolve));
		try {
			return await task();
		} finally {
			const next = waiting.shift();
			if (next) next();
			else running--;
		}
	};
}

async function drawAlertChart(
	ops: AlertingOps,
	prometheusService: Pick<PrometheusService, "forEnvironment">,
	payload: WebhookPayload,
): Promise<Buffer | undefined> {
	const first = payload.alerts[0];
	const expr = first ? expressionOf(first.generatorURL) : undefined;
	const prometheus = prometheusService.forEnvironment(alertEnvironment(ops, payload).name);
	if (!expr || !prometheus) return undefined;
	// Whole seconds, as queryRange asks for them, so the newest point is inside the charted range.
	const end = new Date(Math.ceil(Date.now() / 1_000) * 1_000);
	const start = new Date(end.getTime() - WINDOW_MS);
	// The message waits for its chart: at most 5 s of it, whatever Prometheus' own timeout.
	const answer = await fetchAlertSeries(
		prometheus,
		expr,
		{ start, end },
		{ timeoutMs: Math.min(prometheus.timeoutMs, 5_000) },
	);
	const chart = alertLineChart(
		payload,
		expr,
		answer.series,
		{ start: start.getTime(), end: end.getTime() },
		answer.others,
	);
	return chart ? renderChart(chart) : undefined;
}

/** A comparison with a number at the top of an expression: `<lhs> > 0.9`. */
export interface Comparison {
	readonly lhs: string;
	readonly op: ">" | ">=" | "<" | "<=" | "==" | "!=";
	readonly value: number;
}

/**
 * The threshold of an alert expression: its top-level comparison with a number (`… > 0.9`,
 * `up == 0`). Undefined for `bool` comparisons, for two comparisons joined by and/or/unless (which
 * threshold would it be?) and when the right side is not a plain number.
 */
export function splitComparison(expr: string): Comparison | undefined {
	// Strings and selector/range brackets masked (same length), so `=~` or `>` inside them never counts.
	const masked = expr
		.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, (m) => "_".repeat(m.length))
		.replace(/\{[^}]*\}|\[[^\]]*\]/g, (m) => "_".repeat(m.length));
	let depth = 0;
	let topLevel = "";
	let last: { at: number; op: Comparison["op"] } | undefined;
	for (let i = 0; i < masked.length; i++) {
		const c = masked[i];
		if (c === "(") depth++;
		else if (c === ")") depth--;
		else if (depth === 0) {
			topLevel += c;
			const two = masked.slice(i, i + 2);
			if (two === ">=" || two === "<=" || two === "==" || two === "!=") {
				last = { at: i, op: two };
				i++;
			} else if (c === ">" || c === "<") last = { at: i, op: c };
		}
	}
	if (!last || /\b(?:and|or|unless)\b/i.test(topLevel)) return undefined;
	const rhs = expr.slice(last.at + last.op.length).trim();
	const number = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i.test(rhs) ? Number(rhs) : Number.NaN;
	const lhs = expr.slice(0, last.at).trim();
	if (!Number.isFinite(number) || lhs === "") return undefined;
	return { lhs, op: last.op, value: number };
}

/** What the chart needs from Prometheus: up to 8 series one by one, the rest as a count and a min–max band. */
export interface AlertSeries {
	readonly series: RangeSeries[];
	readonly others: OtherSeries | undefined;
}

/**
 * Asks Prometheus for at most 8 series and three summary series, however many the expression has
 * (2,000 series × 121 points would be tens of MB to parse, and the RSS would stay). The 8 are
 * chosen once, at the end of the window (`@ end()`, Prometheus ≥ 2.33), so each is whole: the
 * highest by last value, the lowest for a `<`/`<=`/`==` alert (the ones that fire).
 */
export async function fetchAlertSeries(
	prometheus: Pick<PrometheusClient, "queryRange">,
	expr: string,
	range: { start: Date; end: Date },
	options: PrometheusCallOptions = {},
): Promise<AlertSeries> {
	const comparison = splitComparison(expr);
	const base = `(${comparison?.lhs ?? expr})`;
	const pick = comparison && ["<", "<=", "=="].includes(comparison.op) ? "bottomk" : "topk";
	// Ranked by the last value in the window's final two minutes (series still present), once for the whole range.
	const atEnd = "[2m:5s] @ end()";
	// *_over_time may drop the metric name; a copy in a label keeps `{__name__=~"a|b"}` series apart.
	const named = `label_replace(${base}, "opsbot_name", "$1", "__name__", "(.+)")`;
	const chosen = `${pick}(${TOP_SERIES}, last_over_time(${named}${atEnd}))`;
	// Matching ignores __name__, so both sides carry the copy.
	const rest = `${named} unless ${chosen}`;
	const tagged = (stat: string, query: string) => `label_replace(${query}, "opsbot_chart", "${stat}", "", "")`;
	const summary = [
		tagged("count", `count(${base})`),
		tagged("min", `min(${rest})`),
		tagged("max", `max(${rest})`),
	].join(" or ");
	const span = { ...range, stepSeconds: STEP_SECONDS };
	const [lines, stats] = await Promise.all([
		prometheus.queryRange(`${named} and ${chosen}`, span, options),
		prometheus.queryRange(summary, span, options),
	]);
	const series = lines.map(({ metric: { opsbot_name: _, ...metric }, points }) => ({ metric, points }));
	const stat = (name: string) => stats.find((s) => s.metric.opsbot_chart === name)?.points ?? [];
	// The most series at one time: what "N series" means on the chart.
	const total = Math.max(series.length, ...stat("count").map((p) => p.value));
	const max = new Map(stat("max").map((p) => [p.at, p.value]));
	const band = stat("min").flatMap((p) =>
		max.has(p.at) ? [{ x: p.at, min: p.value, max: max.get(p.at) as number }] : [],
	);
	const count = total - series.length;
	return { series, others: count > 0 ? { count, band } : undefined };
}

/**
 * The chart of an alert's expression from its range-query answer; undefined when no series has a
 * point. Series the alerts fire for (every label of the series on a firing alert) come first.
 */
export function alertLineChart(
	payload: WebhookPayload,
	expr: string,
	series: readonly RangeSeries[],
	range: { start: number; end: number },
	others?: OtherSeries,
): LineChart | undefined {
	const drawn = series.filter((s) => s.points.length > 0);
	if (drawn.length === 0 && !others?.band.length) return undefined;
	const names = seriesNames(drawn.map((s) => s.metric));
	const alertname =
		payload.commonLabels.alertname ?? payload.groupLabels.alertname ?? payload.alerts[0]?.labels.alertname ?? "Alert";
	const unit = payload.commonAnnotations.unit ?? payload.alerts[0]?.annotations.unit;
	const comparison = splitComparison(expr);
	const firingAlerts = payload.alerts.filter((a) => a.status === "firing");
	const fires = (metric: Readonly<Record<string, string>>) =>
		firingAlerts.some((a) => Object.entries(metric).every(([k, v]) => k === "__name__" || a.labels[k] === v));
	const starts = firingAlerts.map((a) => Date.parse(a.startsAt)).filter((t) => Number.isFinite(t) && t > 0);
	const total = drawn.length + (others?.count ?? 0);
	return {
		title: `${alertname} — ${total} series`,
		series: drawn.map((s, i) => ({
			name: names[i] ?? "",
			points: s.points.map((p) => ({ x: p.at, y: p.value })),
			firing: fires(s.metric),
		})),
		range,
		unit: expressionUnit(comparison?.lhs ?? expr, unit),
		thresholds: comparison
			? [{ value: comparison.value, label: "threshold", comparison: comparison.op, tone: "critical" }]
			: [],
		firingSince: starts.length > 0 ? Math.min(...starts) : undefined,
		others,
		// A step with no point means the series was absent then (Prometheus's lookback ran out).
		gapMs: STEP_SECONDS * 1_500,
	};
}

/**
 * Legend names: the labels whose values tell the series apart (`instance=api-1`), so labels every
 * series shares (job, env) do not crowd the legend; one series keeps all its labels but `__name__`.
 */
export function seriesNames(metrics: readonly Readonly<Record<string, string>>[]): string[] {
	const keys = [...new Set(metrics.flatMap((m) => Object.keys(m)))].sort();
	const varying =
		metrics.length > 1
			? keys.filter((k) => new Set(metrics.map((m) => m[k])).size > 1)
			: keys.filter((k) => k !== "__name__");
	return metrics.map(
		(m) =>
			varying
				.filter((k) => m[k] !== undefined)
				.map((k) => `${k}=${m[k]}`)
				.join(" ") || "value",
	);
}

const AGGREGATION_CLAUSE = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g;
const NOT_METRICS = new Set([
	"by",
	"without",
	"on",
	"ignoring",
	"group_left",
	"group_right",
	"bool",
	"and",
	"or",
	"unless",
	"offset",
	"inf",
	"nan",
]);

/**
 * The unit of an alert expression's values: its `unit` annotation when set, else what Prometheus's
 * naming conventions say (`_seconds`, `_bytes`, `_percent`; per second under rate/irate), else undefined.
 * A product or quotient of metrics makes a unit no name tells, so it stays undefined.
 */
export function expressionUnit(expr: string, annotation?: string): string | undefined {
	if (annotation?.trim()) return annotation.trim().slice(0, 32);
	const bare = expr
		.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
		.replace(/\{[^}]*\}|\[[^\]]*\]/g, "")
		.replace(AGGREGATION_CLAUSE, "");
	if (/[/*]/.test(bare)) return undefined;
	const metrics = [...bare.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)]
		.map((m) => m[1] as string)
		.filter((name) => !NOT_METRICS.has(name.toLowerCase()));
	const quantile = /\bhistogram_quantile\s*\(/.test(bare);
	const bases = new Set(metrics.map((name) => baseUnit(quantile ? name.replace(/_bucket$/, "") : name)));
	if (bases.size !== 1) return undefined;
	const [base] = bases;
	const perSecond = !quantile && /\b(?:i?rate)\s*\(/.test(bare);
	if (!perSecond) return base === "count" ? undefined : base;
	return base === "B" ? "B/s" : base === "count" ? "/s" : undefined;
}

function baseUnit(metric: string): string {
	const name = metric.replace(/_(?:total|sum|count|created)$/, "");
	if (metric.endsWith("_count")) return "count";
	if (/_seconds$/.test(name)) return "s";
	if (/_bytes$/.test(name)) return "B";
	if (/_percent$/.test(name)) return "%";
	return "count";
}
