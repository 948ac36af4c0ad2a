import { Client, Events, GatewayIntentBits } from "discord.js";
import { Agent } from "undici";
import type { Logger } from "../log.ts";
import type { Router } from "./router.ts";

/** Creates the discord.js client with the one intent a slash-command bot needs; REST base overridable for the test double. */
export function createDiscordClient(options: { apiUrl?: string; router: Router; log: Logger }): Client {
	const client = new Client({
		// INTERACTION_CREATE needs no intent; Guilds fills the guild, channel and role caches.
		intents: [GatewayIntentBits.Guilds],
		// Its own agent, not the process-wide dispatcher: whoever installs that first (Node's fetch,
		// another undici major) must not decide how discord.js sends its multipart bodies.
		rest: { agent: discordAgent(), ...(options.apiUrl ? { api: options.apiUrl } : {}) },
		allowedMentions: { parse: [] },
	});
	client.on(Events.InteractionCreate, (interaction) => void options.router.handle(interaction));
	client.once(Events.ClientReady, (ready) => options.log.info({ user: ready.user.tag, guilds: ready.guilds.cache.size }, "connected to Discord"));
	client.on(Events.Error, (err) => options.log.error({ err }, "discord client error"));
	client.on(Events.Warn, (message) => options.log.warn({ message }, "discord client warning"));
	client.rest.on("rateLimited", (info) => options.log.warn({ route: info.route, retryAfter: info.retryAfter, global: info.global }, "rate limited by Discord"));
	return client;
}

/** The HTTP agent for Discord's REST API, from the one undici the tree holds (the one @discordjs/rest uses). */
export function discordAgent(): Agent {
	return new Agent({ connect: { timeout: 10_000 }, headersTimeout: 30_000, bodyTimeout: 30_000 });
}
