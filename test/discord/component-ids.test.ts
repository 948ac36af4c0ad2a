import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { COMPONENTS } from "../../src/commands/index.ts";
import { decodeCustomId } from "../../src/discord/custom-id.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const registered = new Set(COMPONENTS.map((h) => `${h.area}:${h.action}`));

function filesUnder(dir: string, ending: string): string[] {
	return readdirSync(dir, { recursive: true, encoding: "utf8" })
		.filter((f) => f.endsWith(ending))
		.map((f) => join(dir, f));
}

/** Every `custom_id` value anywhere in a JSON document. */
function customIds(value: unknown): string[] {
	if (Array.isArray(value)) return value.flatMap(customIds);
	if (value === null || typeof value !== "object") return [];
	return Object.entries(value).flatMap(([key, inner]) =>
		key === "custom_id" && typeof inner === "string" ? [inner] : customIds(inner),
	);
}

describe("customIds and the handlers that receive them", () => {
	it("no two handlers claim the same area and action", () => {
		expect(registered.size).toBe(COMPONENTS.length);
	});

	it("every button and select in the goldens decodes to a registered handler", () => {
		const seen: string[] = [];
		for (const file of filesUnder(join(ROOT, "test/render/golden"), ".json")) {
			for (const raw of customIds(JSON.parse(readFileSync(file, "utf8")))) {
				const id = decodeCustomId(raw);
				expect(id, `${relative(ROOT, file)}: ${raw}`).toBeDefined();
				expect(registered, `${relative(ROOT, file)}: ${raw}`).toContain(`${id?.area}:${id?.action}`);
				seen.push(raw);
			}
		}
		// The goldens hold the alert card's buttons and select, /pool's and /audit's: the check has material.
		expect(seen.length).toBeGreaterThan(30);
	});

	it("ids are built only by their handler's id(), never spelled out elsewhere in src", () => {
		const spelled = filesUnder(join(ROOT, "src"), ".ts")
			.filter(
				(file) => !file.endsWith(join("discord", "custom-id.ts")) && !file.endsWith(join("discord", "handler.ts")),
			)
			.filter((file) => /\bencodeCustomId\s*\(/.test(readFileSync(file, "utf8")))
			.map((file) => relative(ROOT, file));
		expect(spelled).toEqual([]);
	});

	it("every component handler src declares is in the router's list", async () => {
		// Modules that declare handlers: an id() built by a handler left out of COMPONENTS would answer "not valid".
		const declaring = filesUnder(join(ROOT, "src"), ".ts").filter(
			(file) =>
				!file.endsWith(join("discord", "handler.ts")) &&
				/\b(component|cancelButton)\(\{/.test(readFileSync(file, "utf8")),
		);
		expect(declaring.length).toBeGreaterThan(5);
		const declared = [];
		for (const file of declaring) {
			const module: Record<string, unknown> = await import(file);
			for (const [name, value] of Object.entries(module)) {
				if (value && typeof value === "object" && "area" in value && "action" in value && "id" in value)
					declared.push({ name: `${relative(ROOT, file)} ${name}`, handler: value });
			}
		}
		expect(declared.length).toBe(COMPONENTS.length);
		for (const { name, handler } of declared) expect(COMPONENTS, name).toContain(handler);
	});
});
