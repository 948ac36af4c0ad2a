import type { OpsFile } from "../config.ts";
import { renderLineChart } from "../render/chart.ts";
import { queryRange } from "../services/prometheus.ts";
import { alertEnvironment } from "./actions.ts";
import { expressionOf } from "./render.ts";
import type { WebhookPayload } from "./schema.ts";

/**
 * The alert expression over the last hour, from the Prometheus of the alert's environment (its
 * `alerts.environmentLabel` label, else the default environment), as a PNG; undefined without one.
 */
export function alertChart(ops: OpsFile): (payload: WebhookPayload) => Promise<Buffer | undefined> {
	return async (payload) => {
		const first = payload.alerts[0];
		const expr = first ? expressionOf(first.generatorURL) : undefined;
		const prometheus = alertEnvironment(ops, payload).config?.prometheus;
		if (!expr || !prometheus) return undefined;
		const end = new Date();
		const series = await queryRange(prometheus.url, expr, { start: new Date(end.getTime() - 3_600_000), end, stepSeconds: 30 }, { timeoutMs: Math.min(prometheus.timeoutMs, 5_000) });
		// The comparison in an alert rule leaves the series that breach it; the first is charted.
		const points = series[0]?.points ?? [];
		if (points.length === 0) return undefined;
		return renderLineChart({ points: points.map((p) => ({ x: p.at, y: p.value })) });
	};
}
