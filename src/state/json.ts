/**
 * JSON for state kept in a shared store. Paging state holds Dates (search ranges) and bigints (Loki
 * nanosecond cursors), which plain JSON turns into strings or refuses; they are tagged here and
 * come back as the same types. `undefined` in arrays (the first page's cursor) stays undefined
 * rather than becoming null.
 */
export function encodeState(value: unknown): string {
	return JSON.stringify(value, function (this: Record<string, unknown>, key, v: unknown) {
		const raw = this[key];
		if (raw instanceof Date) return { $date: raw.getTime() };
		if (typeof v === "bigint") return { $bigint: v.toString() };
		if (v === undefined && Array.isArray(this)) return { $undefined: true };
		return v;
	});
}

/** The inverse of encodeState. */
export function decodeState<T>(text: string): T {
	const revived = JSON.parse(text, (_key, v: unknown) => {
		if (v && typeof v === "object" && !Array.isArray(v)) {
			const o = v as Record<string, unknown>;
			const keys = Object.keys(o);
			if (keys.length === 1) {
				if (typeof o.$date === "number") return new Date(o.$date);
				if (typeof o.$bigint === "string") return BigInt(o.$bigint);
				if (o.$undefined === true) return UNDEFINED;
			}
		}
		return v;
	}) as unknown;
	return restoreUndefined(revived) as T;
}

// A reviver that returns undefined deletes the property; a marker is swapped back afterwards instead.
const UNDEFINED = Symbol("undefined");

function restoreUndefined(v: unknown): unknown {
	if (v === UNDEFINED) return undefined;
	if (Array.isArray(v)) return v.map(restoreUndefined);
	if (v && typeof v === "object" && !(v instanceof Date)) {
		for (const [k, inner] of Object.entries(v)) (v as Record<string, unknown>)[k] = restoreUndefined(inner);
	}
	return v;
}
