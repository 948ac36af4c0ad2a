import type {
	ApplicationCommandOptionChoiceData,
	AutocompleteInteraction,
	ChatInputCommandInteraction,
	MessageComponentInteraction,
	ModalSubmitInteraction,
	RESTPostAPIChatInputApplicationCommandsJSONBody,
} from "discord.js";
import type { ActionName, CommandName } from "../config.ts";
import type { AppContext, Confirmation, Services } from "../context.ts";
import { PressRefusedError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { PendingStore } from "../state/contracts.ts";
import type { Actor } from "./access.ts";
import { type CustomId, encodeCustomId } from "./custom-id.ts";

/**
 * What a handler gets: the app context plus who is asking, a logger bound to this interaction, and reply visibility.
 */
export interface HandlerContext extends AppContext {
	readonly actor: Actor;
	readonly log: Logger;
	/** True where replies must be ephemeral (outside the configured ops channels). */
	readonly ephemeral: boolean;
}

/** A slash command: its registration JSON and its handler. The router defers before execute runs. */
export interface Command {
	readonly name: CommandName;
	readonly data: RESTPostAPIChatInputApplicationCommandsJSONBody;
	execute(interaction: ChatInputCommandInteraction, ctx: HandlerContext): Promise<void>;
	/** Must answer fast: Discord has no deferred form for autocomplete (3 s). */
	autocomplete?(
		interaction: AutocompleteInteraction,
		ctx: HandlerContext,
	): Promise<ApplicationCommandOptionChoiceData[]>;
}

/** Interactions that carry a customId. */
export type ComponentInteraction = MessageComponentInteraction | ModalSubmitInteraction;

/**
 * A button, select or modal handler for one customId area/action, as declared; `component()` adds
 * its `id`. The router checks the permission, defers, runs `parse` and then `run`:
 * - `defer`: "update" defers an edit of the message the component sits on, "reply" defers a new
 *   (ephemeral) reply, "none" leaves the first answer to `run` (showModal must be the first answer).
 * - `encode` writes the handler's arguments into its customId (after `area:action`); `parse` reads
 *   them back from the pressed customId (untrusted input): arguments checked, server-side state
 *   looked up. A PressRefusedError from it is shown to the user and recorded in the action log by
 *   the router; `rawId` is the parse step of handlers that read the args in run.
 */
export interface ComponentSpec<P, A extends unknown[]> {
	readonly area: string;
	readonly action: string;
	/** Checked at press time. A command name means "whoever may use that command". */
	readonly permission: { readonly action: ActionName } | { readonly command: CommandName };
	readonly defer: "update" | "reply" | "none";
	/** The action-log name for refusals (default `area.action`). */
	readonly recordAs?: string;
	encode(...args: A): readonly string[];
	parse(id: CustomId, ctx: HandlerContext, interaction: ComponentInteraction): Promise<P>;
	run(interaction: ComponentInteraction, parsed: P, ctx: HandlerContext): Promise<void>;
}

/** A component handler with the one builder of its customId. */
export interface ComponentHandler<P = CustomId, A extends unknown[] = [string]> extends ComponentSpec<P, A> {
	/**
	 * This handler's customId for `args`: every button, select and form opsbot sends gets its id here, so
	 * the id names the area and action the router dispatches to this handler (a renamed action moves both).
	 */
	id(...args: A): string;
}

/** Declares a component handler: the spec plus `id`, built from the spec's own area, action and `encode`. */
export function component<P, A extends unknown[]>(spec: ComponentSpec<P, A>): ComponentHandler<P, A> {
	return { ...spec, id: (...args: A) => encodeCustomId(spec.area, spec.action, ...spec.encode(...args)) };
}

/**
 * Any component handler, for the router's list (each one's `parse` and `run` agree on its own type). Each handler in
 * the list is called with its own parse result.
 */
// biome-ignore lint/suspicious/noExplicitAny: a handler list holds handlers of every parse result
export type AnyComponentHandler = ComponentHandler<any, any>;

/** The parse step of handlers that need nothing but the customId. */
export async function rawId(id: CustomId): Promise<CustomId> {
	return id;
}

/**
 * What a pending-state button finds: the token (its customId's first argument), the stored value and the other
 * arguments.
 */
export interface PendingPress<T> {
	readonly token: string;
	readonly value: T;
	readonly args: readonly string[];
}

/**
 * The parse step of buttons whose first customId argument is a pending-state token: "take" for
 * one-shot confirmations, "peek" for state several presses share (paging). An unknown, expired or
 * someone else's token is refused with `refusals`' words, and recorded.
 */
export function pendingState<T>(
	store: (services: Services) => PendingStore<T>,
	how: "take" | "peek",
	refusals: { readonly expired: string; readonly otherUser?: string },
): (id: CustomId, ctx: HandlerContext) => Promise<PendingPress<T>> {
	return async (id, ctx) => {
		const [token = "", ...args] = id.args;
		const found = await store(ctx.services)[how](token, ctx.actor.userId);
		if (!found.ok) {
			throw new PressRefusedError(
				found.reason === "other-user" && refusals.otherUser ? refusals.otherUser : refusals.expired,
				{ reason: `${found.reason} ${how === "take" ? "confirmation" : "state"}`, target: "?" },
			);
		}
		return { token, value: found.value, args };
	};
}

/**
 * The parse step of a confirmation button of `kind`: the confirmation is taken (so it works once);
 * an expired, someone else's or another kind's token is refused with `expired`.
 */
export function confirmationOf<K extends Confirmation["kind"]>(
	kind: K,
	expired: string,
): (id: CustomId, ctx: HandlerContext) => Promise<Extract<Confirmation, { kind: K }>> {
	const take = pendingState((services) => services.confirmations, "take", { expired });
	return async (id, ctx) => {
		const { value } = await take(id, ctx);
		if (value.kind !== kind) throw new PressRefusedError(expired, { reason: "unknown confirmation", target: "?" });
		return value as Extract<Confirmation, { kind: K }>;
	};
}

// Alert actions are also counted, by the kind of result ("ok", "refused", "failed", …), not its free text.
const COUNTED_ACTIONS = new Set(["alert.restart", "alert.silence", "alert.unsilence"]);

/** Records what a person did, or was refused, in opsbot's action log (the one place presses are recorded). */
export async function recordAction(
	ctx: HandlerContext,
	action: string,
	target: string,
	result: string,
	details?: Record<string, unknown>,
): Promise<void> {
	if (COUNTED_ACTIONS.has(action))
		ctx.services.metrics.alertActions.inc({ action, result: result.split(/[: ]/, 1)[0] ?? result });
	await ctx.services.actionLog.record({
		actor: { userId: ctx.actor.userId, username: ctx.actor.username },
		action,
		target,
		result,
		...(details ? { details } : {}),
	});
}

/**
 * The Cancel button under a confirmation of `kind`: takes the confirmation whatever its state (so it
 * cannot be confirmed afterwards), records the cancel against what it named, and says `nothing`
 * ("nothing was ended").
 */
export function cancelButton<K extends Confirmation["kind"]>(spec: {
	area: string;
	action: string;
	kind: K;
	target: (confirmation: Extract<Confirmation, { kind: K }>) => string;
	nothing: string;
}): ComponentHandler<CustomId, [token: string]> {
	const recordAs = spec.kind;
	return component({
		area: spec.area,
		action: spec.action,
		permission: { action: spec.kind },
		defer: "update",
		recordAs,
		encode: (token: string) => [token],
		parse: rawId,
		async run(interaction, id, ctx) {
			const taken = await ctx.services.confirmations.take(id.args[0] ?? "", ctx.actor.userId);
			const confirmation =
				taken.ok && taken.value.kind === spec.kind ? (taken.value as Extract<Confirmation, { kind: K }>) : undefined;
			await recordAction(ctx, recordAs, confirmation ? spec.target(confirmation) : "?", "cancelled");
			await interaction.editReply({ content: `Cancelled; ${spec.nothing}.`, embeds: [], components: [] });
		},
	});
}
