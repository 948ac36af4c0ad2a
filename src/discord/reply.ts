import type { EmbedBuilder } from "@discordjs/builders";
import type {
	AttachmentPayload,
	ChatInputCommandInteraction,
	InteractionEditReplyOptions,
	MessageComponentInteraction,
	ModalSubmitInteraction,
} from "discord.js";
import type { APIEmbed } from "discord-api-types/v10";
import type { Logger } from "../log.ts";

/** A deferred reply's final content, with the files it attaches. */
export interface ReplyWithFiles {
	readonly content?: string;
	readonly embeds?: readonly (EmbedBuilder | APIEmbed)[];
	readonly components?: InteractionEditReplyOptions["components"];
	readonly files: readonly AttachmentPayload[];
}

const MISSING_NOTE =
	"⚠️ The attachment could not be sent; the rest of the answer is here. Try again, or use the CLI (`npx " +
	"opsbot …`).";

/**
 * Edits a deferred reply that attaches files. When the files cannot be sent (Discord refuses them,
 * or opsbot fails to encode them), the answer still goes out without them, saying so: a picture or
 * a download never takes the text with it. Outages (5xx, network) are left to the caller's error path.
 */
export async function editReplyWithFiles(
	interaction: ChatInputCommandInteraction | MessageComponentInteraction | ModalSubmitInteraction,
	reply: ReplyWithFiles,
	log: Logger,
): Promise<void> {
	try {
		await interaction.editReply({
			...reply,
			embeds: reply.embeds ? [...reply.embeds] : [],
			files: [...reply.files],
			attachments: [],
		});
	} catch (err) {
		// Imported here, not at the top: the CLI imports the command modules for their reports and must
		// not pay for loading discord.js's REST client, which the error classes come with.
		const { classifySendError } = await import("./send-failure.ts");
		if (reply.files.length === 0 || classifySendError(err) === "transient") throw err;
		log.error(
			{ err, files: reply.files.map((f) => f.name) },
			"reply attachments could not be sent; sending the answer without them",
		);
		const embeds = (reply.embeds ?? []).map((e) => {
			const json = "toJSON" in e ? e.toJSON() : e;
			// An image that points at a missing attachment would show as broken.
			const { image, ...rest } = json;
			return image?.url.startsWith("attachment://") ? rest : json;
		});
		const content = [reply.content, MISSING_NOTE].filter(Boolean).join("\n");
		await interaction.editReply({ ...reply, content, embeds, files: [], attachments: [] });
	}
}
