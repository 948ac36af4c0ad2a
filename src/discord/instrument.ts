import type { Client } from "discord.js";
import { discordRoute, type Metrics } from "../metrics.ts";

/** Counts every Discord API response by route and status, and exposes whether the gateway is connected. */
export function instrumentDiscord(client: Client, metrics: Metrics): void {
	client.rest.on("response", (request, response) =>
		metrics.discordRequests.inc({
			route: discordRoute(request.route),
			method: request.method,
			status: String(response.status),
		}),
	);
	metrics.gaugeAtScrape(
		"opsbot_discord_gateway_connected",
		"1 while the Discord gateway connection is ready.",
		[],
		async () => [{ labels: {}, value: client.isReady() ? 1 : 0 }],
	);
}
