import { Client, GatewayIntentBits } from "discord.js";

const client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: process.env.DISCORD_API_URL } });
client.once("clientReady", () => console.log("connected to Discord"));
await client.login(process.env.DISCORD_TOKEN);
process.on("SIGTERM", () => {
	client.destroy();
	process.exit(0);
});
