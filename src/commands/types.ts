import type {
	ApplicationCommandOptionChoiceData,
	AutocompleteInteraction,
	ChatInputCommandInteraction,
	MessageComponentInteraction,
	ModalSubmitInteraction,
	RESTPostAPIChatInputApplicationCommandsJSONBody,
} from "discord.js";
import type { ActionName, CommandName } from "../config.ts";
import type { AppContext } from "../context.ts";
import type { Actor } from "../discord/access.ts";
import type { CustomId } from "../discord/custom-id.ts";
import type { Logger } from "../log.ts";

/** What a handler gets: the app context plus who is asking, a logger bound to this interaction, and reply visibility. */
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
	autocomplete?(interaction: AutocompleteInteraction, ctx: HandlerContext): Promise<ApplicationCommandOptionChoiceData[]>;
}

/** Interactions that carry a customId. */
export type ComponentInteraction = MessageComponentInteraction | ModalSubmitInteraction;

/**
 * A button, select or modal handler for one customId area/action. `ack` tells the router how to
 * acknowledge before `handle` runs: "update" defers an edit of the message, "reply" defers a new
 * (ephemeral) reply, "none" leaves it to the handler (for showModal, which must be the first answer).
 */
export interface ComponentHandler {
	readonly area: string;
	readonly action: string;
	/** Checked at press time. A command name means "whoever may use that command". */
	readonly permission: { readonly action: ActionName } | { readonly command: CommandName };
	readonly ack: "update" | "reply" | "none";
	handle(interaction: ComponentInteraction, id: CustomId, ctx: HandlerContext): Promise<void>;
}
