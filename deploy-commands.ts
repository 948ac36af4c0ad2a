import { parseArgs } from "node:util";
import {
	ApplicationIntegrationType,
	InteractionContextType,
	REST,
	type RESTPostAPIChatInputApplicationCommandsJSONBody,
	Routes,
} from "discord.js";
import { COMMANDS } from "./src/commands/index.ts";
import { ConfigError, loadDeployEnv } from "./src/config.ts";
import type { Command } from "./src/discord/handler.ts";
import { loadDotEnv } from "./src/env-file.ts";

/**
 * Registers every slash command from the one command list.
 *   node deploy-commands.ts --guild ID   instant, for one guild
 *   node deploy-commands.ts              global
 *   --dry-run                            show what would change, change nothing
 */

/** What a bulk overwrite would do, by command name. */
export interface CommandDiff {
	readonly added: string[];
	readonly changed: string[];
	readonly removed: string[];
	readonly unchanged: string[];
}

/**
 * The registration JSON of the command list. Every command is usable only inside a server and
 * only where opsbot is installed to a server (never in DMs or as a user app): the router serves
 * its configured guild alone, so Discord should not offer the commands anywhere else.
 */
export function commandBodies(
	commands: readonly Command[] = COMMANDS,
): RESTPostAPIChatInputApplicationCommandsJSONBody[] {
	return commands.map((c) => ({
		...c.data,
		contexts: [InteractionContextType.Guild],
		integration_types: [ApplicationIntegrationType.GuildInstall],
	}));
}

/** Compares the registered commands with ours on the fields we set (Discord adds ids, versions and defaults). */
export function diffCommands(
	current: readonly RESTPostAPIChatInputApplicationCommandsJSONBody[],
	wanted: readonly RESTPostAPIChatInputApplicationCommandsJSONBody[],
): CommandDiff {
	const sorted = (values: readonly number[] | null | undefined) => (values ? [...values].sort((a, b) => a - b) : null);
	const comparable = (c: RESTPostAPIChatInputApplicationCommandsJSONBody) =>
		JSON.stringify({
			name: c.name,
			description: c.description,
			contexts: sorted(c.contexts),
			integration_types: sorted(c.integration_types),
			options: normaliseOptions(c.options ?? []),
		});
	const currentByName = new Map(current.map((c) => [c.name, comparable(c)]));
	const wantedNames = new Set(wanted.map((c) => c.name));
	const diff: CommandDiff = { added: [], changed: [], removed: [], unchanged: [] };
	for (const command of wanted) {
		const existing = currentByName.get(command.name);
		if (existing === undefined) diff.added.push(command.name);
		else if (existing !== comparable(command)) diff.changed.push(command.name);
		else diff.unchanged.push(command.name);
	}
	for (const name of currentByName.keys()) if (!wantedNames.has(name)) diff.removed.push(name);
	return diff;
}

function normaliseOptions(options: readonly unknown[]): unknown[] {
	return options.map((o) => {
		const {
			name,
			description,
			type,
			required,
			autocomplete,
			choices,
			min_length,
			max_length,
			min_value,
			max_value,
			options: nested,
		} = o as Record<string, unknown>;
		return {
			name,
			description,
			type,
			required: required ?? false,
			autocomplete: autocomplete ?? false,
			choices: choices ?? [],
			min_length,
			max_length,
			min_value,
			max_value,
			options: normaliseOptions((nested as unknown[] | undefined) ?? []),
		};
	});
}

async function deploy(): Promise<number> {
	const { values } = parseArgs({
		options: { guild: { type: "string" }, "dry-run": { type: "boolean" }, help: { type: "boolean" } },
		strict: true,
	});
	if (values.help) {
		console.log(
			"Usage: node deploy-commands.ts [--guild ID] [--dry-run]\n" +
				"Needs DISCORD_TOKEN and DISCORD_APPLICATION_ID (from the environment or .env).",
		);
		return 0;
	}
	loadDotEnv();
	let discord;
	try {
		discord = loadDeployEnv();
	} catch (err) {
		if (!(err instanceof ConfigError)) throw err;
		console.error(`${err.message}\n(set them in the environment or .env)`);
		return 78;
	}
	const { token, applicationId } = discord;
	if (values.guild !== undefined && !/^\d{17,20}$/.test(values.guild)) {
		console.error("--guild must be a Discord guild id (17-20 digits).");
		return 64;
	}
	const rest = new REST(discord.apiUrl ? { api: discord.apiUrl } : {}).setToken(token);
	const route = values.guild
		? Routes.applicationGuildCommands(applicationId, values.guild)
		: Routes.applicationCommands(applicationId);
	const wanted = commandBodies();
	const current = (await rest.get(route)) as RESTPostAPIChatInputApplicationCommandsJSONBody[];
	const diff = diffCommands(current, wanted);
	const scope = values.guild ? `guild ${values.guild}` : "global (clients pick it up on their next refresh)";
	console.log(`Commands (${scope}):`);
	for (const [label, names] of [
		["add", diff.added],
		["change", diff.changed],
		["remove", diff.removed],
		["keep", diff.unchanged],
	] as const) {
		for (const name of names) console.log(`  ${label.padEnd(6)} /${name}`);
	}
	if (values["dry-run"]) {
		console.log("Dry run: nothing changed.");
		return 0;
	}
	if (diff.added.length + diff.changed.length + diff.removed.length === 0) {
		console.log("Nothing to change.");
		return 0;
	}
	await rest.put(route, { body: wanted });
	console.log(`Registered ${wanted.length} commands.`);
	return 0;
}

if (import.meta.main) {
	deploy().then(
		(code) => {
			process.exitCode = code;
		},
		(err: unknown) => {
			console.error(`deploy failed: ${err instanceof Error ? err.message : String(err)}`);
			process.exitCode = 1;
		},
	);
}
