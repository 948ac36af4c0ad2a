import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/** Biome formats at this width (biome.json) but leaves long strings, templates and comments alone. */
const MAX_CHARACTERS = 120;

const tracked = execFileSync("git", ["ls-files", "*.ts", "*.js", "*.mjs"], { encoding: "utf8" })
	.split("\n")
	.filter(Boolean);

describe("line length", () => {
	it(`keeps every line of tracked .ts, .js and .mjs files within ${MAX_CHARACTERS} characters`, () => {
		const long: string[] = [];
		for (const file of tracked) {
			readFileSync(file, "utf8")
				.split("\n")
				.forEach((line, i) => {
					const characters = [...line].length;
					if (characters > MAX_CHARACTERS) long.push(`${file}:${i + 1} has ${characters} characters`);
				});
		}
		expect(long, "split the string, reflow the comment or name a part of the expression").toEqual([]);
	});
});
