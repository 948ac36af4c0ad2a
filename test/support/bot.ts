import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Events, type Client } from "discord.js";
import { pino } from "pino";
import { startAlertRelay, type AlertRelay } from "../../src/alerts/relay.ts";
import { COMMANDS, COMPONENTS } from "../../src/commands/index.ts";
import { loadConfig } from "../../src/config.ts";
import { createContext, type AppContext } from "../../src/context.ts";
import { createDiscordClient } from "../../src/discord/client.ts";
import { createRouter } from "../../src/discord/router.ts";
import type { DiscordDouble } from "../discord-double/index.ts";

/** The bot as main.ts composes it, logged into a Discord double, for end-to-end tests. */
export interface TestBot {
	readonly ctx: AppContext;
	readonly client: Client;
	/** Log lines the bot wrote (JSON objects). */
	readonly logs: Record<string, unknown>[];
	/** The alert relay, when the config has `alerts`. */
	readonly relay: AlertRelay | undefined;
	stop(): Promise<void>;
}

/** Writes `opsYaml` to a temp file, loads it with `env` as the environment, and logs the bot into `double`. */
export async function startTestBot(double: DiscordDouble, opsYaml: string, env: Record<string, string> = {}): Promise<TestBot> {
	const path = join(mkdtempSync(join(tmpdir(), "opsbot-bot-")), "opsbot.yaml");
	writeFileSync(path, opsYaml);
	const config = loadConfig({ ...env, OPSBOT_CONFIG: path, DISCORD_TOKEN: "double-token", DISCORD_APPLICATION_ID: double.applicationId, DISCORD_API_URL: double.apiUrl }, "bot");
	const logs: Record<string, unknown>[] = [];
	const log = pino({ level: "debug", redact: { paths: ["*.password", "*.token"], censor: "[redacted]" } }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
	const { ctx, close } = createContext(config, log);
	const router = createRouter(COMMANDS, COMPONENTS, ctx);
	const client = createDiscordClient({ apiUrl: double.apiUrl, router, log });
	const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
	await client.login("double-token");
	await ready;
	const relay = await startAlertRelay(config, client, log, ctx.services.alertState);
	return {
		ctx,
		client,
		logs,
		relay,
		async stop() {
			await relay?.close();
			await router.drain();
			await client.destroy();
			await close();
		},
	};
}
