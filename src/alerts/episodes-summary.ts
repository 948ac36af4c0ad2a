import { type Episode, FLAPPING_EPISODES, type HistoryQuery, type HistorySummary } from "./episodes.ts";

/** One group's figures over a history's range, as both stores' queries return them. */
export type GroupFigures = {
	group_id: string;
	name: string;
	environment: string | null;
	n: number | string;
	acked: number | string;
	ack_sum: number | string | null;
	ended: number | string;
	duration_sum: number | string | null;
};

/** Most alert names and flapping groups a summary lists. */
const LISTED = 10;

/** A history summary from per-group figures over the range (one aggregate query) and its latest episodes. */
export function summarise(
	query: HistoryQuery,
	groups: readonly GroupFigures[],
	episodes: readonly Episode[],
): HistorySummary {
	let total = 0;
	let acknowledged = 0;
	let ackSum = 0;
	let resolved = 0;
	let durationSum = 0;
	const byName = new Map<string, { episodes: number; firing: number }>();
	for (const g of groups) {
		const n = Number(g.n);
		const ended = Number(g.ended);
		total += n;
		acknowledged += Number(g.acked);
		ackSum += Number(g.ack_sum ?? 0);
		resolved += ended;
		durationSum += Number(g.duration_sum ?? 0);
		const name = byName.get(g.name) ?? { episodes: 0, firing: 0 };
		byName.set(g.name, { episodes: name.episodes + n, firing: name.firing + n - ended });
	}
	return {
		since: query.since,
		until: query.until,
		total,
		acknowledged,
		resolved,
		meanTimeToAckMs: acknowledged > 0 ? Math.round(ackSum / acknowledged) : null,
		meanTimeToResolveMs: resolved > 0 ? Math.round(durationSum / resolved) : null,
		byName: [...byName]
			.map(([name, c]) => ({ name, ...c }))
			.sort((a, b) => b.episodes - a.episodes || a.name.localeCompare(b.name))
			.slice(0, LISTED),
		flapping: groups
			.filter((g) => Number(g.n) >= FLAPPING_EPISODES)
			.map((g) => ({ groupId: g.group_id, name: g.name, environment: g.environment, episodes: Number(g.n) }))
			.sort((a, b) => b.episodes - a.episodes || a.name.localeCompare(b.name))
			.slice(0, LISTED),
		episodes,
	};
}
