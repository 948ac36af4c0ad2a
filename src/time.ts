import { UserFacingError } from "./errors.ts";

/** Parses "15m", "24h", "7d" or an ISO date into an absolute time. */
export function parseTimeSpec(spec: string, now: Date = new Date()): Date {
	const trimmed = spec.trim();
	const relative = /^(\d{1,5})\s*([mhdw])$/i.exec(trimmed);
	if (relative) {
		const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[
			relative[2]!.toLowerCase() as "m" | "h" | "d" | "w"
		];
		return new Date(now.getTime() - Number(relative[1]) * unit);
	}
	if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(trimmed)) {
		const date = new Date(trimmed.length === 10 ? `${trimmed}T00:00:00Z` : trimmed);
		if (!Number.isNaN(date.getTime())) return date;
	}
	throw new UserFacingError(
		`Cannot read the time ${JSON.stringify(trimmed.slice(0, 40))}: use 15m, 24h, 7d or an ISO date such as ` +
			`2026-11-24 or 2026-11-24T13:00:00Z.`,
	);
}

/** A time range from "15m"-style `since` (or "FROM..TO"), bounded to `maxHours`. */
export function parseRange(spec: string, maxHours: number, now: Date = new Date()): { start: Date; end: Date } {
	const [from, to] = spec.includes("..") ? spec.split("..", 2) : [spec, undefined];
	const start = parseTimeSpec(from ?? "", now);
	const end = to ? parseTimeSpec(to, now) : now;
	if (end.getTime() <= start.getTime())
		throw new UserFacingError("The range is empty: the start must be before the end.");
	if (end.getTime() - start.getTime() > maxHours * 3_600_000)
		throw new UserFacingError(`That range is longer than the ${maxHours} h opsbot searches at once. Narrow it.`);
	return { start, end };
}

/**
 * A duration for people: "12 min", "3 h 5 min", "2 d 4 h"; with `seconds`, under 90 s in seconds
 * ("42 s", for idle connections where seconds matter).
 */
export function formatDuration(ms: number, options: { seconds?: boolean } = {}): string {
	if (options.seconds && ms < 90_000) return `${Math.max(0, Math.round(ms / 1000))} s`;
	const minutes = Math.max(0, Math.round(ms / 60_000));
	if (minutes < 60) return `${minutes} min`;
	const hours = Math.floor(minutes / 60);
	if (hours < 48) return `${hours} h${minutes % 60 ? ` ${minutes % 60} min` : ""}`;
	return `${Math.floor(hours / 24)} d${hours % 24 ? ` ${hours % 24} h` : ""}`;
}

const DURATION_UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** "90m", "4h", "1d", "1h30m" -> milliseconds; NaN for anything else. */
export function durationMs(text: string): number {
	const trimmed = text.trim().toLowerCase();
	if (!/^(\d{1,5}\s*[mhdw]\s*)+$/.test(trimmed)) return Number.NaN;
	let total = 0;
	for (const [, n, unit] of trimmed.matchAll(/(\d{1,5})\s*([mhdw])/g))
		total += Number(n) * DURATION_UNIT_MS[unit as keyof typeof DURATION_UNIT_MS];
	return total;
}
