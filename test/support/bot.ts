import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REST } from "discord.js";
import { pino } from "pino";
import { parseDocument } from "yaml";
import type { Config } from "../../src/config.ts";
import { discordAgent } from "../../src/discord/client.ts";
import type { ActionLog } from "../../src/state/contracts.ts";
import { openState } from "../../src/state/index.ts";
import { STATE_FILE } from "../../src/state/sqlite.ts";
import { freshStateDatabase } from "../alerts/state-database.ts";
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
	/**
	 * Where its state lives, as environment for another process on the same state (a CLI run, a second
	 * bot): `{ STATE_DATABASE_URL }` on PostgreSQL, `{}` on the SQLite file under `stateDir`.
	 */
	readonly stateEnv: Readonly<Record<string, string>>;
	/** The log lines the process has written so far (its JSON log on stdout). */
	logs(): readonly Record<string, unknown>[];
	/**
	 * The first log line `matches` accepts, once the process has written it. Wait for a line that explains an effect
	 * seen in the double: the log comes down a pipe of its own and can trail the request it explains.
	 */
	waitForLog(matches: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
	/** opsbot's action log as the process wrote it, read through the state layer (either backend). */
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
 * `OPSBOT_E2E_STATE=postgres` (npm run test:e2e:postgres) runs every bot on a PostgreSQL state database
 * of its own on the run's shared server, instead of the SQLite file under its stateDir; a bot given
 * STATE_DATABASE_URL keeps it. One database per stateDir, so a bot restarted on its stateDir finds its state.
 */
export const E2E_STATE: "sqlite" | "postgres" = process.env.OPSBOT_E2E_STATE === "postgres" ? "postgres" : "sqlite";
const databasesByStateDir = new Map<string, Promise<string>>();

/** The state environment a bot on `stateDir` gets under the run's E2E_STATE (see `stateEnv`). */
export async function stateEnvFor(stateDir: string): Promise<Record<string, string>> {
	if (E2E_STATE !== "postgres") return {};
	let url = databasesByStateDir.get(stateDir);
	if (!url) databasesByStateDir.set(stateDir, (url = freshStateDatabase("opsbot_e2e")));
	return { STATE_DATABASE_URL: await url };
}

/**
 * The action log opsbot keeps on `stateDir` (SQLite) or in `stateEnv.STATE_DATABASE_URL`, read through
 * the state layer as `opsbot actions` reads it; empty before the process wrote any.
 */
export function actionLogOf(
	stateDir: string,
	stateEnv: Readonly<Record<string, string>> = {},
): Pick<ActionLog, "recent"> {
	const url = stateEnv.STATE_DATABASE_URL || undefined;
	return {
		async recent(...args) {
			// The SQLite file is the bot's to create (its mode, its first migration): none yet, no records.
			if (!url && !existsSync(join(stateDir, STATE_FILE))) return [];
			const ops = { stateDir, replicas: { leaseSeconds: 15, renewSeconds: 5 } };
			const config = { env: url ? { STATE_DATABASE_URL: url } : {}, ops } as unknown as Config;
			const state = await openState(config, pino({ level: "silent" }));
			try {
				return await state.actions.recent(...args);
			} finally {
				await state.close();
			}
		},
	};
}

/**
 * Starts `node src/main.ts` with `opsYaml` (stateDir and a port 0 webhook are filled in) and `env`
 * as its whole environment, and waits until it is connected to `double` and, with `alerts`, listening.
 */
export async function startTestBot(
	double: DiscordDouble,
	opsYaml: string,
	env: Record<string, string> = {},
	/** `embedded`: the SQLite file under stateDir whatever OPSBOT_E2E_STATE says (a test of that file itself). */
	options: { embedded?: boolean } = {},
): Promise<TestBot> {
	const doc = parseDocument(opsYaml);
	if (!doc.has("stateDir")) doc.set("stateDir", mkdtempSync(join(tmpdir(), "opsbot-state-")));
	const stateDir = String(doc.get("stateDir"));
	const stateEnv =
		"STATE_DATABASE_URL" in env
			? { STATE_DATABASE_URL: env.STATE_DATABASE_URL! }
			: options.embedded
				? {}
				: await stateEnvFor(stateDir);
	const host = String(doc.getIn(["alerts", "listen", "host"]) ?? "127.0.0.1");
	// A port 0 webhook gets a free port chosen here (`/alerts test` posts to the configured one); another process may
	// take it before the bot listens, so a start that fails on exactly that is tried again on another port.
	const choosePort = doc.has("alerts") && !Number(doc.getIn(["alerts", "listen", "port"]) ?? 0);
	for (let attempt = 1; ; attempt++) {
		if (choosePort) doc.setIn(["alerts", "listen"], doc.createNode({ host, port: await freePort() }));
		const webhookUrl = doc.has("alerts")
			? `http://${host}:${Number(doc.getIn(["alerts", "listen", "port"]))}`
			: undefined;
		const main = spawnMain(doc.toString(), {
			LOG_LEVEL: "debug",
			DISCORD_TOKEN: BOT_TOKEN,
			DISCORD_APPLICATION_ID: double.applicationId,
			DISCORD_API_URL: double.apiUrl,
			...stateEnv,
			...env,
		});
		try {
			await untilStarted(main, webhookUrl);
		} catch (err) {
			main.child.kill("SIGKILL");
			if (choosePort && attempt < 3 && /EADDRINUSE/.test(main.output())) continue;
			throw err;
		}
		return testBot(main, double, webhookUrl, stateDir, stateEnv);
	}
}

/** Waits until `main` is connected to Discord and, with a webhook, listening; throws if it exits first. */
async function untilStarted(main: MainProcess, webhookUrl: string | undefined): Promise<void> {
	const logs = main.logs;
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
}

/** The TestBot handle of a started process. */
function testBot(
	main: MainProcess,
	double: DiscordDouble,
	webhookUrl: string | undefined,
	stateDir: string,
	stateEnv: Record<string, string>,
): TestBot {
	const logs = main.logs;
	const rest = new REST({ api: double.apiUrl, agent: discordAgent() }).setToken(BOT_TOKEN);
	const exited = () => main.child.exitCode !== null || main.child.signalCode !== null;
	return {
		process: main,
		webhookUrl,
		stateDir,
		stateEnv,
		logs,
		waitForLog: (matches, timeoutMs = 10_000) => double.waitFor(() => logs().find(matches), timeoutMs),
		actionLog: actionLogOf(stateDir, stateEnv),
		rest,
		async stop() {
			if (exited())
				throw new Error(
					`opsbot had already exited (code ${main.child.exitCode}, signal ${main.child.signalCode}):\n` +
						`${main.output().slice(-3_000)}`,
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
