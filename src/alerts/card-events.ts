import type { HandlerContext } from "../discord/handler.ts";
import type { Matcher } from "../services/alertmanager.ts";
import type { EpisodeEventKind, EventDetails } from "./episodes.ts";
import { formatMatcher } from "./matchers.ts";

/**
 * Adds a person's action to the episode's history (its timeline and thread). After the action took
 * effect: a history that cannot be written is logged, never turned into a failed action.
 */
export async function recordEvent(
	ctx: HandlerContext,
	group: { groupId: string; episode: number },
	kind: EpisodeEventKind,
	details: EventDetails = {},
): Promise<void> {
	const store = ctx.services.alertState.store;
	if (!store) return;
	const { userId, username } = ctx.actor;
	await store.history
		.record({ ...group, at: Date.now(), kind, actor: { userId, username }, details })
		.catch((err: unknown) =>
			ctx.log.warn({ err, groupId: group.groupId, kind }, "could not add to the alert's history"),
		);
}

/**
 * A silence made from a card: shown on the card ("silenced by X until …"), added to the episode's
 * history, and the card re-rendered now.
 */
export async function noteSilenceOnCard(
	ctx: HandlerContext,
	group: { groupId: string; episode: number },
	silence: { id: string; until: number; matchers: readonly Matcher[]; comment?: string },
): Promise<void> {
	const store = ctx.services.alertState.store;
	if (!store) return;
	await store.setSilence(group.groupId, { id: silence.id, username: ctx.actor.username, until: silence.until });
	await recordEvent(ctx, group, "silenced", {
		silenceId: silence.id,
		until: silence.until,
		// The timeline writes name=value: a regex or negative matcher keeps its operator in the value.
		matchers: silence.matchers.map((m) => ({
			name: m.name,
			value: m.isEqual && !m.isRegex ? m.value : formatMatcher(m).slice(m.name.length + 1),
		})),
		...(silence.comment ? { comment: silence.comment } : {}),
	});
}
