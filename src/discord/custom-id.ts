import { DISCORD_LIMITS } from "../render/limits.ts";

/** A parsed customId: `area:action:arg1:arg2…`. customIds are untrusted input and are validated on parse. */
export interface CustomId {
	readonly area: string;
	readonly action: string;
	readonly args: readonly string[];
}

const PART = /^[A-Za-z0-9_.-]{1,64}$/;

/** Builds a customId; throws if a part holds a separator or the whole exceeds Discord's 100 characters. */
export function encodeCustomId(area: string, action: string, ...args: string[]): string {
	for (const part of [area, action, ...args]) {
		if (!PART.test(part)) throw new Error(`customId part not encodable: ${JSON.stringify(part.slice(0, 20))}`);
	}
	const id = [area, action, ...args].join(":");
	if (id.length > DISCORD_LIMITS.customId)
		throw new Error(`customId longer than ${DISCORD_LIMITS.customId} characters`);
	return id;
}

/** Parses a customId; returns undefined for anything that is not one of ours (forged, garbled, too long). */
export function decodeCustomId(raw: string): CustomId | undefined {
	if (raw.length === 0 || raw.length > DISCORD_LIMITS.customId) return undefined;
	const parts = raw.split(":");
	if (parts.length < 2 || parts.length > 8 || !parts.every((p) => PART.test(p))) return undefined;
	const [area, action, ...args] = parts as [string, string, ...string[]];
	return { area, action, args };
}
