import type { ApplicationCommandOptionChoiceData, SlashCommandStringOption } from "discord.js";
import { defaultEnvironment, knownEnvironment, type OpsFile } from "../config.ts";
import { UserFacingError } from "../errors.ts";

/** The shared `env` option: autocompleted from the configured environments. */
export function environmentOption(option: SlashCommandStringOption, description: string): SlashCommandStringOption {
	return option.setName("env").setDescription(description).setAutocomplete(true).setMaxLength(32);
}

/** Environment names that contain what the user typed so far. */
export function environmentChoices(
	ops: Pick<OpsFile, "environments">,
	typed: string,
): ApplicationCommandOptionChoiceData[] {
	const needle = typed.toLowerCase();
	return Object.keys(ops.environments)
		.filter((name) => name.includes(needle))
		.slice(0, 25)
		.map((name) => ({ name, value: name }));
}

/**
 * Resolves the environment a command names (or the default) and checks it has what the command
 * needs, before any service runs.
 */
export function requireEnvironment(
	ops: Pick<OpsFile, "environments" | "defaultEnvironment">,
	requested: string | null | undefined,
	needs?: "postgres",
): string {
	const environment = requested ?? defaultEnvironment(ops as OpsFile);
	const env = knownEnvironment(ops, environment);
	if (needs === "postgres" && !env.postgres)
		throw new UserFacingError(`No PostgreSQL is configured for ${environment}.`);
	return environment;
}
