import type { DiscordDouble, StoredMessage } from "../discord-double/index.ts";

// What a test reads of the alert cards the Discord double received: one definition for every e2e file.

/** The first embed's title of a message, "" when it has none (or there is no message). */
export const embedTitle = (m: StoredMessage | undefined) =>
	String((m?.embeds[0] as { title?: string } | undefined)?.title ?? "");

/** The first embed's description of a message, "" when it has none (or there is no message). */
export const embedDescription = (m: StoredMessage | undefined) =>
	String((m?.embeds[0] as { description?: string } | undefined)?.description ?? "");

/** The messages in `channel` whose first embed's title matches `re`, oldest first. */
export const cardsTitled = (double: DiscordDouble, channel: string, re: RegExp) =>
	double.channelMessages(channel).filter((m) => re.test(embedTitle(m)));
