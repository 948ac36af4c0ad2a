import { describe, expect, it } from "vitest";
import {
	autocompleteInput,
	autocompleteSubcommandInput,
	environmentOption,
	type OptionDef,
	readOptions,
	readSubcommand,
	type SubcommandDef,
	slashCommand,
} from "../../src/commands/options.ts";
import { UserFacingError } from "../../src/errors.ts";

const OPTIONS = [
	{ type: "string", name: "service", description: "Service", autocomplete: true, maxLength: 100 },
	{
		type: "string",
		name: "level",
		description: "Level",
		choices: [
			{ name: "info", value: "info" },
			{ name: "error", value: "error" },
		],
	},
	{ type: "string", name: "id", description: "Id", required: true },
	{ type: "integer", name: "limit", description: "Limit", min: 1, max: 20 },
	{ type: "boolean", name: "failed-only", description: "Failed only" },
	environmentOption("Environment"),
] as const satisfies readonly OptionDef[];

const SUBCOMMANDS = [
	{ name: "list", description: "List", options: [environmentOption("Environment")] },
	{
		name: "extend",
		description: "Extend",
		options: [
			{ type: "string", name: "id", description: "Id", required: true, autocomplete: true },
			{ type: "string", name: "by", description: "By", required: true },
		],
	},
] as const satisfies readonly SubcommandDef[];

/** discord.js's resolver as far as opsbot reads it: a missing required option throws, as discord.js does. */
function resolver(given: Record<string, string | number | boolean>, extra: { sub?: string; focused?: string } = {}) {
	const get =
		<T>(kind: string) =>
		(name: string, required?: boolean): T | null => {
			const value = given[name];
			if (value === undefined) {
				if (required) throw new TypeError(`option ${name} not found`);
				return null;
			}
			if (typeof value !== kind) throw new TypeError(`option ${name} is not a ${kind}`);
			return value as T;
		};
	return {
		getString: get<string>("string"),
		getInteger: get<number>("number"),
		getBoolean: get<boolean>("boolean"),
		getSubcommand: (required?: boolean) => {
			if (!extra.sub && required) throw new TypeError("no subcommand");
			return extra.sub ?? null;
		},
		getFocused: (_full: true) => ({ name: extra.focused ?? "", value: String(given[extra.focused ?? ""] ?? "") }),
	};
}

describe("typed slash-command options", () => {
	it("reads each option by its definition: present values, null for the optional ones not given", () => {
		const values = readOptions(resolver({ id: "42", limit: 5, "failed-only": true, level: "error" }), OPTIONS);
		expect(values).toEqual({
			service: null,
			level: "error",
			id: "42",
			limit: 5,
			"failed-only": true,
			env: null,
		});
		// The types follow the definitions: a required option is a string, a choice is its union.
		const id: string = values.id;
		const level: "info" | "error" | null = values.level;
		expect([id, level]).toEqual(["42", "error"]);
	});

	it("refuses a value outside an option's choices in words naming the option", () => {
		expect(() => readOptions(resolver({ id: "1", level: "loud" }), OPTIONS)).toThrow(
			new UserFacingError("Unknown level; use one of info, error."),
		);
	});

	it("reads the subcommand used and only its options", () => {
		const used = readSubcommand(resolver({ id: "abc", by: "1h" }, { sub: "extend" }), SUBCOMMANDS);
		expect(used).toEqual({ subcommand: "extend", options: { id: "abc", by: "1h" } });
		if (used.subcommand === "extend") expect(used.options.by).toBe("1h");
		expect(() => readSubcommand(resolver({}, { sub: "purge" }), SUBCOMMANDS)).toThrow(UserFacingError);
	});

	it("names the focused option of an autocomplete only when it is an autocompleted one", () => {
		const input = autocompleteInput(resolver({ service: "ap", env: "production" }, { focused: "service" }), OPTIONS);
		expect(input.focused).toEqual({ name: "service", value: "ap" });
		// Required options may be missing while typing: read as null, not an error.
		expect(input.values.id).toBeNull();
		expect(input.values.env).toBe("production");
		expect(autocompleteInput(resolver({ id: "x" }, { focused: "id" }), OPTIONS).focused.name).toBe("");
		const sub = autocompleteSubcommandInput(resolver({ id: "ab" }, { sub: "extend", focused: "id" }), SUBCOMMANDS);
		expect(sub.focused).toEqual({ name: "id", value: "ab" });
	});

	it("builds the registration JSON with the builder's shape", () => {
		const body = slashCommand({ name: "logs", description: "Search", options: OPTIONS });
		expect(body.options?.map((o) => [o.name, o.type, o.required])).toEqual([
			["service", 3, false],
			["level", 3, false],
			["id", 3, true],
			["limit", 4, false],
			["failed-only", 5, false],
			["env", 3, false],
		]);
	});

	it("makes a renamed or misspelled option a type error (checked by tsc)", () => {
		const values = readOptions(resolver({ id: "1" }), OPTIONS);
		// @ts-expect-error: no option is called "servce"
		expect(values.servce).toBeUndefined();
		// @ts-expect-error: a required option is never null
		const notNull: null = values.id;
		expect(notNull).toBe("1");
		const { focused } = autocompleteInput(resolver({}, { focused: "env" }), OPTIONS);
		// @ts-expect-error: "limit" is not autocompleted, so it is never the focused name
		expect(focused.name === "limit").toBe(false);
	});
});
