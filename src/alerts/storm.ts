import { createHash } from "node:crypto";
import type { StormLine, StormView } from "./render.ts";
import type { FiringGroup } from "./store.ts";

/** How many message writes (posts and edits together) a channel may take per window. */
export interface ChannelBudget {
	readonly count: number;
	readonly windowMs: number;
}

/**
 * A channel's budget until Discord's headers say otherwise. Discord allows about 5 posts per 5 s per
 * channel (docs/PROTOCOLS.md §5.4; its numbers for edits are unconfirmed), so opsbot assumes 5 writes
 * per 5 s, posts and edits together.
 */
export const CHANNEL_BUDGET: ChannelBudget = { count: 5, windowMs: 5_000 };

/** What one answer of Discord said about a channel's message bucket (X-RateLimit-* headers, or a 429). */
export interface ChannelLimitInfo {
	readonly limit?: number | undefined;
	readonly remaining?: number | undefined;
	/** Until the bucket is full again, ms. */
	readonly resetAfterMs?: number | undefined;
}

/** A channel's storm starts when its firing groups without a message could not all be posted within this. */
export const STORM_AFTER_MS = 5_000;

/** Paces each channel's message writes to its budget, learnt from Discord's rate-limit headers. */
export interface ChannelPacer {
	/** How long (ms) the channel must wait before its next write; 0 when it may write now. */
	delay(channel: string, now?: number): number;
	/** How many writes the channel could make within `horizonMs` from now. */
	capacity(channel: string, horizonMs: number, now?: number): number;
	/** Counts a write as started; call the returned function once Discord has answered it. */
	begin(channel: string): () => void;
	/**
	 * Takes in what Discord said about the channel's bucket: its size and window become the channel's
	 * budget (posts and edits share it), and an empty bucket holds every write until it resets.
	 */
	learn(channel: string, info: ChannelLimitInfo, now?: number): void;
}

/**
 * A sliding window per channel, measured from when Discord answered: a write is made only once the
 * answer to the write `count` before it is `windowMs` old, so however long requests take on the way,
 * Discord never sees more than `count` of them in one window (plus `marginMs` for its clock and
 * rounding). The budget is `fallback` until Discord's headers give the channel's own.
 */
export function createChannelPacer(fallback: ChannelBudget = CHANNEL_BUDGET, marginMs = 100): ChannelPacer {
	const channels = new Map<string, { writes: { at: number }[]; blockedUntil: number }>();
	const learnt = new Map<string, ChannelBudget>();
	const budgetOf = (channel: string) => learnt.get(channel) ?? fallback;
	const current = (channel: string, now: number) => {
		const state = channels.get(channel);
		if (!state) return undefined;
		const budget = budgetOf(channel);
		state.writes = state.writes.filter((w) => w.at + budget.windowMs + marginMs > now);
		if (state.writes.length === 0 && state.blockedUntil <= now) {
			channels.delete(channel);
			return undefined;
		}
		return state;
	};
	return {
		delay(channel, now = Date.now()) {
			const state = current(channel, now);
			if (!state) return 0;
			let wait = Math.max(0, state.blockedUntil - now);
			const budget = budgetOf(channel);
			if (state.writes.length >= budget.count) {
				const oldest = Math.min(...state.writes.map((w) => w.at));
				// A write still in flight frees its place only once answered: look again shortly.
				wait = Math.max(wait, Number.isFinite(oldest) ? oldest + budget.windowMs + marginMs - now : 50);
			}
			return wait;
		},
		capacity(channel, horizonMs, now = Date.now()) {
			const used = current(channel, now)?.writes.length ?? 0;
			const budget = budgetOf(channel);
			return Math.max(0, budget.count - used) + Math.floor((budget.count * horizonMs) / budget.windowMs);
		},
		begin(channel) {
			let state = channels.get(channel);
			if (!state) {
				state = { writes: [], blockedUntil: 0 };
				channels.set(channel, state);
			}
			const write = { at: Number.POSITIVE_INFINITY };
			state.writes.push(write);
			return () => {
				write.at = Date.now();
			};
		},
		learn(channel, info, now = Date.now()) {
			const { limit, remaining, resetAfterMs } = info;
			if (resetAfterMs === undefined || !Number.isFinite(resetAfterMs) || resetAfterMs < 0) return;
			if (limit !== undefined && Number.isInteger(limit) && limit > 0) {
				// Reset-After is the whole window only on a window's first request: keep the longest seen.
				const known = learnt.get(channel);
				learnt.set(channel, {
					count: limit,
					windowMs: Math.max(known?.count === limit ? known.windowMs : 0, Math.ceil(resetAfterMs)),
				});
			}
			if (remaining === 0) {
				let state = channels.get(channel);
				if (!state) {
					state = { writes: [], blockedUntil: 0 };
					channels.set(channel, state);
				}
				state.blockedUntil = Math.max(state.blockedUntil, now + resetAfterMs + marginMs);
			}
		},
	};
}

/** The link Discord gives a message. */
export function messageUrl(guildId: string, channel: string, messageId: string): string {
	return `https://discord.com/channels/${guildId}/${channel}/${messageId}`;
}

/** Discord's enforce_nonce value for posting a storm summary (at most 25 characters). */
export function stormNonce(channel: string, startedAt: number): string {
	return createHash("sha256").update(`storm:${channel}:${startedAt}`).digest("base64url").slice(0, 25);
}

const SEVERITY_RANK: Readonly<Record<string, number>> = { critical: 0, error: 1, warning: 2, info: 3 };

/** The summary's view of a channel's firing groups: severity first, then newest, each with its count and link. */
export function stormView(
	groups: readonly FiringGroup[],
	context: { guildId?: string | undefined; channel: string; startedAt: number; seen: ReadonlySet<string> },
): StormView {
	const firing: StormLine[] = groups.map((g) => ({
		groupId: g.groupId,
		name: g.facts.name,
		severity: g.facts.severity ?? "",
		environment: g.facts.environment ?? "",
		firing: g.facts.firing,
		since: g.firstFiringAt,
		posted: g.messageId !== null,
		url: g.messageId && context.guildId ? messageUrl(context.guildId, context.channel, g.messageId) : undefined,
	}));
	const rank = (l: StormLine) => SEVERITY_RANK[l.severity] ?? 4;
	firing.sort(
		(a, b) =>
			rank(a) - rank(b) || b.since - a.since || a.name.localeCompare(b.name) || a.groupId.localeCompare(b.groupId),
	);
	const ids = new Set(firing.map((l) => l.groupId));
	const resolved = [...context.seen].filter((id) => !ids.has(id)).length;
	return { startedAt: context.startedAt, firing, resolved, total: ids.size + resolved };
}
