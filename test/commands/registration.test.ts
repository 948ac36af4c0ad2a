import { describe, expect, it } from "vitest";
import { commandBodies, diffCommands } from "../../deploy-commands.ts";
import { COMMANDS, COMPONENTS } from "../../src/commands/index.ts";
import { COMMAND_NAMES } from "../../src/config.ts";
import { expectGoldenFile } from "../support/golden.ts";

const NAME = /^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u;

function textLength(value: unknown): number {
	if (Array.isArray(value)) return value.reduce((sum: number, v) => sum + textLength(v), 0);
	if (value && typeof value === "object") {
		const o = value as Record<string, unknown>;
		return (
			["name", "description", "value"].reduce(
				(sum, k) => sum + (typeof o[k] === "string" ? (o[k] as string).length : 0),
				0,
			) +
			textLength(o.options) +
			textLength(o.choices)
		);
	}
	return 0;
}

describe("the command list", () => {
	it("registers every command within Discord's documented limits", () => {
		for (const command of COMMANDS) {
			const data = command.data;
			expect(data.name).toMatch(NAME);
			expect(data.name).toBe(command.name);
			expect(data.description.length).toBeGreaterThan(0);
			expect(data.description.length).toBeLessThanOrEqual(100);
			expect((data.options ?? []).length).toBeLessThanOrEqual(25);
			for (const option of data.options ?? []) {
				expect(option.name).toMatch(NAME);
				expect(option.description.length).toBeLessThanOrEqual(100);
			}
			expect(textLength(data)).toBeLessThanOrEqual(8_000);
		}
	});

	it("names only commands the access list knows, each once", () => {
		const names = COMMANDS.map((c) => c.name);

		expect(new Set(names).size).toBe(names.length);
		for (const name of names) expect(COMMAND_NAMES).toContain(name);
	});

	it("registers every command for servers only: guild context, guild install", () => {
		const bodies = commandBodies();

		expect(bodies.map((b) => b.name)).toEqual(COMMANDS.map((c) => c.name));
		for (const body of bodies) {
			expect(body.contexts).toEqual([0]);
			expect(body.integration_types).toEqual([0]);
		}
	});

	it("sends the reviewed registration JSON, byte for byte (what deploy-commands.ts registers)", () => {
		// Options are defined as data (src/commands/options.ts); a change to a name, type or limit shows here.
		expectGoldenFile("slash-commands.registration.json", `${JSON.stringify(commandBodies(), null, 2)}\n`);
	});

	it("gives every component handler a unique area:action", () => {
		const keys = COMPONENTS.map((h) => `${h.area}:${h.action}`);

		expect(new Set(keys).size).toBe(keys.length);
	});
});

describe("deploy-commands diff", () => {
	const health = COMMANDS.find((c) => c.name === "health")!.data;

	it("shows additions, changes, removals and unchanged commands", () => {
		const registered = [
			{ ...health, id: "1", version: "1", default_member_permissions: null },
			{ name: "old", description: "gone", options: [] },
		];
		const changed = { ...health, description: "Something else" };

		expect(diffCommands(registered as never, [health])).toEqual({
			added: [],
			changed: [],
			removed: ["old"],
			unchanged: ["health"],
		});
		expect(diffCommands(registered as never, [changed])).toEqual({
			added: [],
			changed: ["health"],
			removed: ["old"],
			unchanged: [],
		});
		expect(diffCommands([], [health])).toEqual({ added: ["health"], changed: [], removed: [], unchanged: [] });
	});

	it("deploys a change of where a command may be used", () => {
		const [wanted] = commandBodies(COMMANDS.filter((c) => c.name === "health"));
		const registeredEverywhere = { ...health, id: "1", version: "1", contexts: null, integration_types: [0] };
		const registeredInDms = { ...wanted!, id: "1", version: "1", contexts: [0, 1, 2] };
		const registeredSame = { ...wanted!, id: "1", version: "1" };

		expect(diffCommands([registeredEverywhere] as never, [wanted!]).changed).toEqual(["health"]);
		expect(diffCommands([registeredInDms] as never, [wanted!]).changed).toEqual(["health"]);
		expect(diffCommands([registeredSame] as never, [wanted!]).unchanged).toEqual(["health"]);
	});
});
