import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline/promises";
import { parseDocument } from "yaml";
import { OpsFileSchema } from "./config.ts";
import { UserFacingError } from "./errors.ts";

/**
 * `opsbot init`: the quick start's first config. Writes a minimal `opsbot.yaml` (one channel, one
 * role, one environment with one HTTP check, alerts into that channel) and a `.env` holding a fresh
 * webhook token and empty Discord secrets, never overwriting either.
 */

/** What `init` asks for. */
export interface InitAnswers {
	readonly guild: string;
	readonly channel: string;
	readonly role: string;
	readonly env: string;
	readonly url: string;
}

const SNOWFLAKE = /^\d{17,20}$/;
const ENV_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** The questions, in order, with what a valid answer looks like (the same rules the config applies). */
const QUESTIONS: readonly { key: keyof InitAnswers; ask: string; check: (v: string) => string | undefined }[] = [
	{
		key: "guild",
		ask: "Server id (right-click the server icon > Copy Server ID)",
		check: (v) =>
			SNOWFLAKE.test(v)
				? undefined
				: "a Discord id is 17-20 digits (turn on Developer Mode, then right-click > Copy ID)",
	},
	{
		key: "channel",
		ask: "Channel id for replies and alerts (right-click the channel > Copy Channel ID)",
		check: (v) => (SNOWFLAKE.test(v) ? undefined : "a Discord id is 17-20 digits"),
	},
	{
		key: "role",
		ask: "On-call role id (Server Settings > Roles, right-click > Copy Role ID)",
		check: (v) => (SNOWFLAKE.test(v) ? undefined : "a Discord id is 17-20 digits"),
	},
	{
		key: "env",
		ask: "Environment name",
		check: (v) => (ENV_NAME.test(v) ? undefined : "a short lowercase name such as production"),
	},
	{
		key: "url",
		ask: "An http(s) URL of yours that should answer 200 (e.g. your API's health endpoint)",
		check: (v) => (/^https?:\/\/[^\s]+$/.test(v) && URL.canParse(v) ? undefined : "an http:// or https:// URL"),
	},
];

/**
 * The minimal ops file for these answers; `opsbot.minimal.yaml` is this with placeholder ids (a test keeps them equal).
 */
export function minimalConfig(a: InitAnswers): string {
	return `# The smallest useful opsbot: /health with one HTTP check, and alerts into one channel.
# Copy to opsbot.yaml and put your ids in (Discord: Developer Mode on, right-click > Copy ID);
# keep the quotes around ids. \`npx opsbot init\` writes the same file for you.
# Needs in .env: DISCORD_TOKEN, DISCORD_APPLICATION_ID, WEBHOOK_TOKEN. Every key: docs/configuration.md

discord:
  guildId: "${a.guild}"        # your server
  opsChannels: ["${a.channel}"]  # replies are public here, ephemeral elsewhere
  roles:
    oncall: "${a.role}"       # the role alerts mention and that may press their buttons

access:
  commands:
    health: [everyone]
  actions:
    health.rerun: [everyone]
    alert.ack: [oncall]

environments:
  ${a.env}:
    http:
      - name: website
        url: ${a.url}

alerts:
  listen: { host: 127.0.0.1, port: 9095 }
  defaultChannel: "${a.channel}"
  routes:
    - match: { severity: critical }
      channel: "${a.channel}"
      mentionRole: "${a.role}"
`;
}

/** The `.env` init writes: the Discord secrets to paste, and a webhook token nobody has seen. */
export function initialDotEnv(webhookToken: string): string {
	return `# Written by \`opsbot init\`. Never commit this file.
# Paste from https://discord.com/developers/applications: Bot > Reset Token, and General Information > Application ID.
DISCORD_TOKEN=
DISCORD_APPLICATION_ID=
# AlertManager sends this as its bearer token: put the same value in a file AlertManager reads.
WEBHOOK_TOKEN=${webhookToken}
OPSBOT_CONFIG=./opsbot.yaml
LOG_LEVEL=info
LOG_PRETTY=false
`;
}

/** The problems with `partial`'s answers, by flag; none when all are given and valid. */
export function answerProblems(partial: Partial<Record<keyof InitAnswers, string>>): string[] {
	return QUESTIONS.flatMap(({ key, check }) => {
		const value = partial[key];
		if (value === undefined) return [`--${key}: required`];
		const problem = check(value);
		return problem ? [`--${key}: ${problem}`] : [];
	});
}

/** Asks on the terminal for every answer the flags did not give, again until each is valid. */
export async function askMissing(
	given: Partial<Record<keyof InitAnswers, string>>,
	io: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream },
): Promise<InitAnswers> {
	const rl = createInterface({ input: io.input, output: io.output });
	const answers: Partial<Record<keyof InitAnswers, string>> = { ...given };
	try {
		for (const { key, ask, check } of QUESTIONS) {
			const fallback = key === "env" ? "production" : undefined;
			while (answers[key] === undefined || check(answers[key]!)) {
				let typed: string;
				try {
					typed = (await rl.question(`${ask}${fallback ? ` [${fallback}]` : ""}: `)).trim() || fallback || "";
				} catch {
					// Ctrl-D or Ctrl-C at a question.
					throw new UserFacingError("Stopped: nothing was written.");
				}
				const problem = check(typed);
				if (problem) io.output.write(`  ${problem}\n`);
				else answers[key] = typed;
			}
		}
	} finally {
		rl.close();
	}
	return answers as InitAnswers;
}

/**
 * Writes `opsbot.yaml` and `.env` into `dir`; refuses (UserFacingError) if either exists or the
 * config would not pass the config's own schema. Returns the paths written.
 */
export function writeInitialFiles(dir: string, answers: InitAnswers): { config: string; env: string } {
	const config = join(dir, "opsbot.yaml");
	const env = join(dir, ".env");
	const existing = [config, env].filter((p) => existsSync(p));
	if (existing.length > 0) {
		throw new UserFacingError(
			`${existing.join(" and ")} already exist${existing.length === 1 ? "s" : ""}: init writes only new files. ` +
				`Move ${existing.length === 1 ? "it" : "them"} away, or edit by hand (docs/configuration.md).`,
		);
	}
	const yaml = minimalConfig(answers);
	const parsed = OpsFileSchema.safeParse(parseDocument(yaml).toJS());
	if (!parsed.success)
		throw new UserFacingError(
			`init would write an invalid config: ` +
				`${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
		);
	// "wx": fail rather than overwrite a file created since the check above.
	writeFileSync(config, yaml, { flag: "wx" });
	writeFileSync(env, initialDotEnv(randomBytes(24).toString("base64url")), { flag: "wx", mode: 0o600 });
	return { config, env };
}
