import { Client, Events, GatewayIntentBits, Options } from "discord.js";
import { Agent } from "undici";
import type { Logger } from "../log.ts";
import type { Router } from "./router.ts";

/**
 * What discord.js keeps of the guild. opsbot reads only the guild, its channels and its roles
 * (interaction.member.roles.cache is the guild's role cache filtered by the member's role ids, so the
 * access checks need it); discord.js itself needs those three and permission overwrites, and they
 * cannot be limited. Everything else Guilds would fill (emojis, stickers, threads, scheduled events,
 * stage instances) and what interactions and replies would add (members, users, messages) is not
 * kept: the objects an interaction carries are still built from its payload, just not cached.
 * Only the bot's own user and member stay.
 */
export function discordCaches(): ReturnType<typeof Options.cacheWithLimits> {
	const own = (entry: { id: string; client: Client }) => entry.id === entry.client.user?.id;
	return Options.cacheWithLimits({
		ApplicationCommandManager: 0,
		ApplicationEmojiManager: 0,
		AutoModerationRuleManager: 0,
		BaseGuildEmojiManager: 0,
		DMMessageManager: 0,
		EntitlementManager: 0,
		GuildBanManager: 0,
		GuildEmojiManager: 0,
		GuildForumThreadManager: 0,
		GuildInviteManager: 0,
		GuildMemberManager: { maxSize: 0, keepOverLimit: own },
		GuildMessageManager: 0,
		GuildScheduledEventManager: 0,
		GuildStickerManager: 0,
		GuildTextThreadManager: 0,
		MessageManager: 0,
		PresenceManager: 0,
		ReactionManager: 0,
		ReactionUserManager: 0,
		StageInstanceManager: 0,
		ThreadManager: 0,
		ThreadMemberManager: 0,
		UserManager: { maxSize: 0, keepOverLimit: own },
		VoiceStateManager: 0,
	});
}

/**
 * Creates the discord.js client with the one intent a slash-command bot needs; REST base overridable for the test
 * double.
 */
export function createDiscordClient(options: { apiUrl?: string; router: Router; log: Logger }): Client {
	const client = new Client({
		// INTERACTION_CREATE needs no intent; Guilds fills the guild, channel and role caches.
		intents: [GatewayIntentBits.Guilds],
		makeCache: discordCaches(),
		// Its own agent, not the process-wide dispatcher: whoever installs that first (Node's fetch,
		// another undici major) must not decide how discord.js sends its multipart bodies.
		rest: { agent: discordAgent(), ...(options.apiUrl ? { api: options.apiUrl } : {}) },
		allowedMentions: { parse: [] },
	});
	client.on(Events.InteractionCreate, (interaction) => void options.router.handle(interaction));
	client.once(Events.ClientReady, (ready) =>
		options.log.info({ user: ready.user.tag, guilds: ready.guilds.cache.size }, "connected to Discord"),
	);
	client.on(Events.Error, (err) => options.log.error({ err }, "discord client error"));
	client.on(Events.Warn, (message) => options.log.warn({ message }, "discord client warning"));
	client.rest.on("rateLimited", (info) =>
		options.log.warn(
			{ route: info.route, retryAfter: info.retryAfter, global: info.global },
			"rate limited by Discord",
		),
	);
	return client;
}

/** The HTTP agent for Discord's REST API, from the one undici the tree holds (the one @discordjs/rest uses). */
export function discordAgent(): Agent {
	return new Agent({ connect: { timeout: 10_000 }, headersTimeout: 30_000, bodyTimeout: 30_000 });
}
