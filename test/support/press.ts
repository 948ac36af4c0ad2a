import type { CustomId } from "../../src/discord/custom-id.ts";
import type { ComponentHandler, ComponentInteraction, HandlerContext } from "../../src/discord/handler.ts";

/** A press as the router runs it after deferring: the handler's parse step, then its run step. */
export async function pressComponent<P>(
	handler: ComponentHandler<P>,
	interaction: ComponentInteraction,
	id: CustomId,
	ctx: HandlerContext,
): Promise<void> {
	await handler.run(interaction, await handler.parse(id, ctx, interaction), ctx);
}
