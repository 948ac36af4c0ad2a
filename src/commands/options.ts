import { SlashCommandBuilder, type SlashCommandSubcommandBuilder } from "@discordjs/builders";
import type { ApplicationCommandOptionChoiceData } from "discord.js";
import type { RESTPostAPIChatInputApplicationCommandsJSONBody } from "discord-api-types/v10";
import { type CommandName, defaultEnvironment, knownEnvironment, type OpsFile } from "../config.ts";
import { UserFacingError } from "../errors.ts";

/**
 * Slash-command options as data: one definition gives both the registration JSON (`slashCommand`)
 * and the typed values a handler reads (`readOptions`, `readSubcommand`, `autocompleteInput`), so a
 * renamed or retyped option is a type error where it is read, never a silent null.
 */
export interface StringOptionDef {
	readonly type: "string";
	readonly name: string;
	readonly description: string;
	readonly required?: boolean;
	readonly autocomplete?: boolean;
	readonly minLength?: number;
	readonly maxLength?: number;
	/** Fixed choices: the value read is one of theirs (checked, typed as their union). */
	readonly choices?: readonly { readonly name: string; readonly value: string }[];
}

export interface IntegerOptionDef {
	readonly type: "integer";
	readonly name: string;
	readonly description: string;
	readonly required?: boolean;
	readonly min?: number;
	readonly max?: number;
}

export interface BooleanOptionDef {
	readonly type: "boolean";
	readonly name: string;
	readonly description: string;
	readonly required?: boolean;
}

export type OptionDef = StringOptionDef | IntegerOptionDef | BooleanOptionDef;

export interface SubcommandDef {
	readonly name: string;
	readonly description: string;
	readonly options: readonly OptionDef[];
}

type ValueOf<D extends OptionDef> = D extends { readonly choices: readonly { readonly value: infer V }[] }
	? V
	: D extends StringOptionDef
		? string
		: D extends IntegerOptionDef
			? number
			: boolean;

/** What a handler reads from options `Ds`: required ones always present, the others null when not given. */
export type OptionValues<Ds extends readonly OptionDef[]> = {
	readonly [D in Ds[number] as D["name"]]: D extends { readonly required: true } ? ValueOf<D> : ValueOf<D> | null;
};

/** The subcommand used and its options' values, one member per subcommand of `Ss`. */
export type SubcommandValues<Ss extends readonly SubcommandDef[]> = {
	[K in keyof Ss]: Ss[K] extends SubcommandDef
		? { readonly subcommand: Ss[K]["name"]; readonly options: OptionValues<Ss[K]["options"]> }
		: never;
}[number];

/** The names of the autocompleted options among `Ds`. */
export type AutocompleteName<Ds extends readonly OptionDef[]> = Extract<
	Ds[number],
	{ readonly autocomplete: true }
>["name"];

/** The part of discord.js's option resolver this module reads (command and autocomplete interactions both have it). */
export interface OptionResolver {
	getString(name: string, required?: boolean): string | null;
	getInteger(name: string, required?: boolean): number | null;
	getBoolean(name: string, required?: boolean): boolean | null;
}

interface SubcommandResolver extends OptionResolver {
	getSubcommand(required?: boolean): string | null;
}

interface FocusedResolver extends OptionResolver {
	getFocused(getFull: true): { name: string; value: string | number };
}

/** The registration JSON of a command: its options, or its subcommands with theirs. */
export function slashCommand(
	spec: { readonly name: CommandName; readonly description: string } & (
		| { readonly options: readonly OptionDef[] }
		| { readonly subcommands: readonly SubcommandDef[] }
	),
): RESTPostAPIChatInputApplicationCommandsJSONBody {
	const builder = new SlashCommandBuilder().setName(spec.name).setDescription(spec.description);
	if ("options" in spec) for (const option of spec.options) addOption(builder, option);
	else
		for (const sub of spec.subcommands)
			builder.addSubcommand((s) => {
				s.setName(sub.name).setDescription(sub.description);
				for (const option of sub.options) addOption(s, option);
				return s;
			});
	return builder.toJSON();
}

function addOption(builder: SlashCommandBuilder | SlashCommandSubcommandBuilder, def: OptionDef): void {
	if (def.type === "string")
		builder.addStringOption((o) => {
			o.setName(def.name).setDescription(def.description);
			if (def.required) o.setRequired(true);
			if (def.autocomplete) o.setAutocomplete(true);
			if (def.choices) o.addChoices(...def.choices);
			if (def.minLength !== undefined) o.setMinLength(def.minLength);
			if (def.maxLength !== undefined) o.setMaxLength(def.maxLength);
			return o;
		});
	else if (def.type === "integer")
		builder.addIntegerOption((o) => {
			o.setName(def.name).setDescription(def.description);
			if (def.required) o.setRequired(true);
			if (def.min !== undefined) o.setMinValue(def.min);
			if (def.max !== undefined) o.setMaxValue(def.max);
			return o;
		});
	else
		builder.addBooleanOption((o) => {
			o.setName(def.name).setDescription(def.description);
			if (def.required) o.setRequired(true);
			return o;
		});
}

/**
 * The values of options `defs` in a command interaction. A value outside an option's choices (which
 * Discord should never send) is refused with the option's name rather than passed on.
 */
export function readOptions<const Ds extends readonly OptionDef[]>(
	options: OptionResolver,
	defs: Ds,
): OptionValues<Ds> {
	return readValues(options, defs, true) as OptionValues<Ds>;
}

/** The subcommand used, with its options' values (see readOptions). */
export function readSubcommand<const Ss extends readonly SubcommandDef[]>(
	options: SubcommandResolver,
	subcommands: Ss,
): SubcommandValues<Ss> {
	const name = options.getSubcommand(true);
	const sub = subcommands.find((s) => s.name === name);
	if (!sub)
		throw new UserFacingError(["The subcommand ", { code: name ?? "" }, " is not known to this version of opsbot."]);
	return { subcommand: sub.name, options: readValues(options, sub.options, true) } as SubcommandValues<Ss>;
}

/**
 * What an autocomplete request asks: the focused option (one of the autocompleted ones of `defs`) and
 * what it typed so far, and the other options filled in so far (any may be missing yet, so all may
 * be null; choices are not checked).
 */
export interface AutocompleteInput<Ds extends readonly OptionDef[]> {
	readonly focused: { readonly name: AutocompleteName<Ds>; readonly value: string };
	readonly values: { readonly [N in keyof OptionValues<Ds>]: NonNullable<OptionValues<Ds>[N]> | null };
}

export function autocompleteInput<const Ds extends readonly OptionDef[]>(
	options: FocusedResolver,
	defs: Ds,
): AutocompleteInput<Ds> {
	const focused = options.getFocused(true);
	// A focused option opsbot does not autocomplete matches none of the names a handler compares with.
	const known = defs.some((d) => d.name === focused.name && d.type === "string" && d.autocomplete);
	return {
		focused: { name: (known ? focused.name : "") as AutocompleteName<Ds>, value: String(focused.value) },
		values: readValues(options, defs, false) as AutocompleteInput<Ds>["values"],
	};
}

/** autocompleteInput for a command with subcommands: the options of the subcommand being typed. */
export function autocompleteSubcommandInput<const Ss extends readonly SubcommandDef[]>(
	options: FocusedResolver & Pick<SubcommandResolver, "getSubcommand">,
	subcommands: Ss,
): AutocompleteInput<Ss[number]["options"]> {
	const name = options.getSubcommand(false);
	return autocompleteInput(options, subcommands.find((s) => s.name === name)?.options ?? []);
}

function readValues(
	options: OptionResolver,
	defs: readonly OptionDef[],
	complete: boolean,
): Record<string, string | number | boolean | null> {
	const values: Record<string, string | number | boolean | null> = {};
	for (const def of defs) {
		const required = complete && def.required === true;
		const value =
			def.type === "string"
				? options.getString(def.name, required)
				: def.type === "integer"
					? options.getInteger(def.name, required)
					: options.getBoolean(def.name, required);
		if (
			complete &&
			def.type === "string" &&
			def.choices &&
			value !== null &&
			!def.choices.some((c) => c.value === value)
		)
			throw new UserFacingError(`Unknown ${def.name}; use one of ${def.choices.map((c) => c.value).join(", ")}.`);
		values[def.name] = value;
	}
	return values;
}

/** The shared `env` option: autocompleted from the configured environments. */
export function environmentOption<const R extends boolean = false>(
	description: string,
	required?: R,
): { type: "string"; name: "env"; description: string; autocomplete: true; maxLength: 32; required: R } {
	return {
		type: "string",
		name: "env",
		description,
		autocomplete: true,
		maxLength: 32,
		required: (required ?? false) as R,
	};
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
