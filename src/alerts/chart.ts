import type { AlertingOps } from "../config.ts";
import { renderChart, type LineChart } from "../render/chart.ts";
import type { PrometheusService, RangeSeries } from "../services/prometheus.ts";
import { alertEnvironment } from "./actions.ts";
import { expressionOf } from "./render.ts";
import type { WebhookPayload } from "./schema.ts";

const WINDOW_MS = 3_600_000;
const STEP_SECONDS = 30;

/**
 * The alert expression over the last hour, from the Prometheus of the alert's environment (its
 * `alerts.environmentLabel` label, else the default environment), as a PNG; undefined without one.
 * Every series is drawn: the top 8 by latest value as lines, the rest as a min–max band.
 */
export function alertChart(ops: AlertingOps, prometheusService: Pick<PrometheusService, "forEnvironment">): (payload: WebhookPayload) => Promise<Buffer | undefined> {
	return async (payload) => {
		const first = payload.alerts[0];
		const expr = first ? expressionOf(first.generatorURL) : undefined;
		const prometheus = prometheusService.forEnvironment(alertEnvironment(ops, payload).name);
		if (!expr || !prometheus) return undefined;
		// Whole seconds, as queryRange asks for them, so the newest point is inside the charted range.
		const end = new Date(Math.ceil(Date.now() / 1_000) * 1_000);
		const start = new Date(end.getTime() - WINDOW_MS);
		// The message waits for its chart: at most 5 s of it, whatever Prometheus' own timeout.
		const series = await prometheus.queryRange(expr, { start, end, stepSeconds: STEP_SECONDS }, { timeoutMs: Math.min(prometheus.timeoutMs, 5_000) });
		const chart = alertLineChart(payload, expr, series, { start: start.getTime(), end: end.getTime() });
		return chart ? renderChart(chart) : undefined;
	};
}

/** The chart of an alert's expression from its range-query answer; undefined when no series has a point. */
export function alertLineChart(payload: WebhookPayload, expr: string, series: readonly RangeSeries[], range: { start: number; end: number }): LineChart | undefined {
	const drawn = series.filter((s) => s.points.length > 0);
	if (drawn.length === 0) return undefined;
	const names = seriesNames(drawn.map((s) => s.metric));
	const alertname = payload.commonLabels.alertname ?? payload.groupLabels.alertname ?? payload.alerts[0]?.labels.alertname ?? "Alert";
	const unit = payload.commonAnnotations.unit ?? payload.alerts[0]?.annotations.unit;
	return {
		title: `${alertname} — ${drawn.length} series`,
		detail: expr,
		series: drawn.map((s, i) => ({ name: names[i] ?? "", points: s.points.map((p) => ({ x: p.at, y: p.value })) })),
		range,
		unit: expressionUnit(expr, unit),
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
	const varying = metrics.length > 1 ? keys.filter((k) => new Set(metrics.map((m) => m[k])).size > 1) : keys.filter((k) => k !== "__name__");
	return metrics.map((m) => varying.filter((k) => m[k] !== undefined).map((k) => `${k}=${m[k]}`).join(" ") || "value");
}

const AGGREGATION_CLAUSE = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g;
const NOT_METRICS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"]);

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
	const metrics = [...bare.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)].map((m) => m[1] as string).filter((name) => !NOT_METRICS.has(name.toLowerCase()));
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
