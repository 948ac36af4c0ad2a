import type { ApplicationCommandOptionChoiceData, SlashCommandStringOption } from "discord.js";
import type { OpsFile } from "../config.ts";

/** The shared `env` option: autocompleted from the configured environments. */
export function environmentOption(option: SlashCommandStringOption, description: string): SlashCommandStringOption {
	return option.setName("env").setDescription(description).setAutocomplete(true).setMaxLength(32);
}

/** Environment names that contain what the user typed so far. */
export function environmentChoices(ops: Pick<OpsFile, "environments">, typed: string): ApplicationCommandOptionChoiceData[] {
	const needle = typed.toLowerCase();
	return Object.keys(ops.environments)
		.filter((name) => name.includes(needle))
		.slice(0, 25)
		.map((name) => ({ name, value: name }));
}
