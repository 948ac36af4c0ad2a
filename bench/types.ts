/** One measured figure; `npm run bench` prints these as a table. */
export interface BenchRow {
	readonly bench: string;
	readonly metric: string;
	readonly value: number | string;
	readonly unit: string;
	readonly note?: string;
}

/** Percentile of already-sorted numbers (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
	if (sorted.length === 0) return Number.NaN;
	const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
	return sorted[index] ?? Number.NaN;
}

/** Rounds for display: 2 decimals under 10, 1 under 100, whole numbers above. */
export function round(n: number): number {
	return n < 10 ? Math.round(n * 100) / 100 : n < 100 ? Math.round(n * 10) / 10 : Math.round(n);
}
