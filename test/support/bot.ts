import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REST } from "discord.js";
import { parseDocument } from "yaml";
import { discordAgent } from "../../src/discord/client.ts";
import { type ActionLog, createFileActionLog } from "../../src/services/action-log.ts";
import type { DiscordDouble } from "../discord-double/index.ts";
import { type MainProcess, spawnMain } from "./main-process.ts";
import { freePort } from "./proc.ts";

/**
 * The shipped bot — `node src/main.ts`, what `npm start` runs — as a child process logged into a
 * Discord double. Tests reach it only through its real interfaces: the double (HTTP + gateway),
 * its webhook over HTTP, its log on stdout and the files it writes under its state directory.
 */
export interface TestBot {
	readonly process: MainProcess;
	/** Base URL of the webhook receiver (`http://127.0.0.1:port`), when the config has `alerts`. */
	readonly webhookUrl: string | undefined;
	readonly stateDir: string;
	/** The log lines the process has written so far (its JSON log on stdout). */
	logs(): Record<string, unknown>[];
	/** opsbot's action log as the process wrote it to `stateDir/actions.jsonl`. */
	readonly actionLog: Pick<ActionLog, "recent">;
	/** A REST client with the bot's token, for setting a scene in the double (e.g. a channel message to press on). */
	readonly rest: REST;
	/** SIGTERM, then waits: rejects unless the process drains and exits 0 within 15 s. */
	stop(): Promise<void>;
	/** SIGKILL, as a crash would. */
	kill(): Promise<void>;
}

const BOT_TOKEN = "double-token";

/**
 * Starts `node src/main.ts` with `opsYaml` (stateDir and a port 0 webhook are filled in) and `env`
 * as its whole environment, and waits until it is connected to `double` and, with `alerts`, listening.
 */
export async function startTestBot(
	double: DiscordDouble,
	opsYaml: string,
	env: Record<string, string> = {},
): Promise<TestBot> {
	const doc = parseDocument(opsYaml);
	if (!doc.has("stateDir")) doc.set("stateDir", mkdtempSync(join(tmpdir(), "opsbot-state-")));
	const stateDir = String(doc.get("stateDir"));
	let webhookUrl: string | undefined;
	if (doc.has("alerts")) {
		const host = String(doc.getIn(["alerts", "listen", "host"]) ?? "127.0.0.1");
		let port = Number(doc.getIn(["alerts", "listen", "port"]) ?? 0);
		if (!port) {
			port = await freePort();
			doc.setIn(["alerts", "listen"], doc.createNode({ host, port }));
		}
		webhookUrl = `http://${host}:${port}`;
	}
	const main = spawnMain(doc.toString(), {
		LOG_LEVEL: "debug",
		DISCORD_TOKEN: BOT_TOKEN,
		DISCORD_APPLICATION_ID: double.applicationId,
		DISCORD_API_URL: double.apiUrl,
		...env,
	});
	const logs = main.logs;
	const started = async () => {
		// A generous bound, not a wait: it returns as soon as the bot is ready (seconds when the machine is loaded).
		const deadline = Date.now() + 60_000;
		const ready = () =>
			logs().some((l) => l.msg === "connected to Discord") &&
			(!webhookUrl || logs().some((l) => l.msg === "alert receiver listening"));
		while (!ready()) {
			if (main.child.exitCode !== null || main.child.signalCode !== null)
				throw new Error(`opsbot exited while starting (code ${main.child.exitCode}):\n${main.output().slice(-3_000)}`);
			if (Date.now() > deadline) throw new Error(`opsbot not ready after 60 s:\n${main.output().slice(-3_000)}`);
			await new Promise((resolve) => setTimeout(resolve, 50));
		}
	};
	try {
		await started();
	} catch (err) {
		main.child.kill("SIGKILL");
		throw err;
	}
	const actionsPath = join(stateDir, "actions.jsonl");
	const rest = new REST({ api: double.apiUrl, agent: discordAgent() }).setToken(BOT_TOKEN);
	const exited = () => main.child.exitCode !== null || main.child.signalCode !== null;
	return {
		process: main,
		webhookUrl,
		stateDir,
		logs,
		actionLog: {
			recent: async (...args) => (existsSync(actionsPath) ? createFileActionLog(actionsPath).recent(...args) : []),
		},
		rest,
		async stop() {
			if (exited())
				throw new Error(
					`opsbot had already exited (code ${main.child.exitCode}, signal ${main.child.signalCode}):\n${main.output().slice(-3_000)}`,
				);
			main.child.kill("SIGTERM");
			const timer = setTimeout(() => main.child.kill("SIGKILL"), 15_000);
			const code = await main.exited;
			clearTimeout(timer);
			if (code !== 0)
				throw new Error(`opsbot did not exit cleanly on SIGTERM (code ${code}):\n${main.output().slice(-3_000)}`);
		},
		async kill() {
			if (exited()) return;
			main.child.kill("SIGKILL");
			await main.exited;
		},
	};
}
