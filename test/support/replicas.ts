import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DiscordDouble } from "../discord-double/index.ts";
import { listeningAt, type MainProcess, spawnMain } from "./main-process.ts";

/**
 * The gateway lease the replica e2e files run with (the ops file's `replicas` section): short, so
 * that a standby takes over within about 8 s of kill -9 of the holder instead of the default's 20 s.
 */
export const SHORT_LEASE = { leaseSeconds: 6, renewSeconds: 2 } as const;
const { leaseSeconds, renewSeconds } = SHORT_LEASE;
export const shortLeaseYaml = `replicas: { leaseSeconds: ${leaseSeconds}, renewSeconds: ${renewSeconds} }`;

/** One replica: `node src/main.ts` with its own state directory and webhook port, sharing STATE_DATABASE_URL. */
export interface Replica {
	readonly process: MainProcess;
	readonly webhookUrl: string;
	logs(): readonly Record<string, unknown>[];
	logged(msg: string): boolean;
	count(msg: string): number;
}

/** Polls `probe` until it holds; the error carries `why()` (e.g. the process' last output). */
export async function until(probe: () => boolean, timeoutMs: number, why: () => string = () => ""): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!probe()) {
		if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms\n${why()}`);
		await new Promise((resolve) => setTimeout(resolve, 25));
	}
}

/**
 * Starts a replica talking to the Discord double, with the ops file `opsYaml()` (made anew for each start, so
 * a state directory in it can be its own) and `env` beside the Discord settings; resolves once it takes
 * webhooks and either holds the gateway or stands by. The ops file's webhook listens on port 0.
 */
export async function startReplica(
	double: DiscordDouble,
	opsYaml: () => string,
	env: Record<string, string>,
	timeoutMs = 30_000,
): Promise<Replica> {
	// Port 0 in the ops file: the replica binds a port the system chooses and logs it. A port chosen here first
	// and bound later could be taken meanwhile (another file's server, or an outgoing connection's own port).
	const main = spawnMain(opsYaml(), {
		LOG_LEVEL: "debug",
		DISCORD_TOKEN: "double-token",
		DISCORD_APPLICATION_ID: double.applicationId,
		DISCORD_API_URL: double.apiUrl,
		...env,
	});
	const count = (msg: string) => main.logs().filter((l) => l.msg === msg).length;
	await until(
		() =>
			count("alert receiver listening") > 0 &&
			count("connected to Discord") + count("standing by: another replica holds the Discord gateway") > 0,
		timeoutMs,
		() => main.output().slice(-3_000),
	);
	const replica: Replica = {
		process: main,
		webhookUrl: listeningAt(main.logs()),
		logs: main.logs,
		logged: (msg) => count(msg) > 0,
		count,
	};
	return replica;
}

/** The ops file of a replica that only relays alerts to `channel`: its own state directory, the short lease. */
export function relayReplicaOps(guildId: string, channel: string): () => string {
	return () => `discord: { guildId: "${guildId}" }
environments: { production: {} }
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-replica-"))}
${shortLeaseYaml}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${channel}"
`;
}
