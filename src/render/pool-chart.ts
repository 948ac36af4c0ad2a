import type { UsageSample } from "../services/pool.ts";
import type { PoolThresholds } from "../services/pool-diagnosis.ts";
import type { LineChart, ReferenceLine } from "./chart.ts";

/**
 * The /pool chart: connections used over the history, with the usable limit and the warn and
 * critical levels (`pool.warnPercent` / `criticalPercent` of usable, as the diagnosis judges them)
 * as dashed lines; without a usable figure (PostgreSQL down) only the line.
 */
export function poolLineChart(
	environment: string,
	history: { readonly source: string; readonly samples: readonly UsageSample[] },
	usable: number | undefined,
	thresholds: Pick<PoolThresholds, "warnPercent" | "criticalPercent">,
): LineChart {
	// The fewest connections the diagnosis calls warn or critical (it rounds the percentage).
	const atLeast = (percent: number, of: number) => Math.ceil(((percent - 0.5) * of) / 100);
	const levels: ReferenceLine[] =
		usable === undefined
			? []
			: [
					{ value: usable, label: "usable", tone: "limit" },
					{
						value: atLeast(thresholds.criticalPercent, usable),
						label: `critical ${thresholds.criticalPercent} %`,
						tone: "critical",
					},
					{ value: atLeast(thresholds.warnPercent, usable), label: `warn ${thresholds.warnPercent} %`, tone: "warn" },
				];
	const samples = history.samples;
	return {
		title: `Connections used on ${environment}`,
		detail: history.source,
		series: [{ name: "used", points: samples.map((s) => ({ x: s.at, y: s.used })) }],
		range: { start: samples[0]?.at ?? 0, end: samples.at(-1)?.at ?? 0 },
		unit: "connections",
		thresholds: levels,
	};
}
