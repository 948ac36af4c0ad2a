import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { PressRefusedError, UserFacingError } from "../src/errors.ts";
import { textToMarkdown } from "../src/render/report.ts";

const SRC = join(import.meta.dirname, "..", "src");

/**
 * The text of every string literal and template (outside `${…}`) in `code`, and the code outside
 * them. A small tokenizer: enough for the argument lists of `new …Error(…)` in this codebase.
 */
function literals(code: string): { strings: string[]; rest: string } {
	const strings: string[] = [];
	let rest = "";
	let i = 0;
	const at = (n: number) => code.charAt(n);
	const readQuoted = (quote: string) => {
		let text = "";
		for (i++; i < code.length && at(i) !== quote; i++) text += at(i) === "\\" ? at(i) + at(++i) : at(i);
		i++;
		strings.push(text);
	};
	const readTemplate = () => {
		let text = "";
		for (i++; i < code.length && code[i] !== "`"; i++) {
			if (at(i) === "\\") text += at(i) + at(++i);
			else if (code[i] === "$" && code[i + 1] === "{") {
				// The expression inside ${…}: its own literals count too.
				let depth = 1;
				const start = i + 2;
				for (i += 2; i < code.length && depth > 0; i++) {
					if (code[i] === "{") depth++;
					else if (code[i] === "}") depth--;
				}
				const inner = literals(code.slice(start, i - 1));
				strings.push(...inner.strings);
				rest += ` ${inner.rest} `;
				i--;
			} else text += code[i];
		}
		i++;
		strings.push(text);
	};
	while (i < code.length) {
		const c = code[i]!;
		if (c === '"' || c === "'") readQuoted(c);
		else if (c === "`") readTemplate();
		else {
			rest += c;
			i++;
		}
	}
	return { strings, rest };
}

/**
 * The argument list of each `new SomethingError(` and `super(` (an error class's own words) in `code`:
 * up to its closing parenthesis, strings skipped over.
 */
function errorArguments(code: string): { at: number; args: string }[] {
	const found: { at: number; args: string }[] = [];
	for (const match of code.matchAll(/\bnew \w*Error\(|\bsuper\(/g)) {
		let depth = 1;
		let i = match.index + match[0].length;
		let quote: string | undefined;
		for (; i < code.length && depth > 0; i++) {
			const c = code[i];
			if (quote) {
				if (c === "\\") i++;
				else if (c === quote) quote = undefined;
			} else if (c === '"' || c === "'" || c === "`") quote = c;
			else if (c === "(") depth++;
			else if (c === ")") depth--;
		}
		found.push({ at: match.index, args: code.slice(match.index + match[0].length, i - 1) });
	}
	return found;
}

describe("error texts are typed like reports", () => {
	it("keeps the parts for Discord and gives the terminal the plain words", () => {
		const err = new UserFacingError([
			{ code: "web-1" },
			" was restarted ",
			{ time: new Date("2026-12-06T10:00:00Z"), style: "relative" },
			"; see ",
			{ strong: "the card" },
			".",
		]);

		expect(err.message).toBe("web-1 was restarted 2026-12-06T10:00:00.000Z; see the card.");
		expect(textToMarkdown(err.text)).toBe("`web-1` was restarted <t:1796551200:R>; see **the card**.");
		expect(new PressRefusedError(["Silence ", { code: "abc" }, " ended."], { reason: "x" }).message).toBe(
			"Silence abc ended.",
		);
	});

	it("escapes user text in a plain part, so it cannot restyle or break out in Discord", () => {
		const err = new UserFacingError(["Unknown environment ", { code: "a`b **c**" }, ". Known: x_y."]);

		expect(textToMarkdown(err.text)).toBe("Unknown environment `aˋb **c**`. Known: x\\_y.");
		expect(err.message).toBe("Unknown environment a`b **c**. Known: x_y.");
	});

	it("no error in src is built from a Discord-markdown string (backticks, **, <t:…>, inlineCode)", () => {
		const files = readdirSync(SRC, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
		const markdown: string[] = [];
		for (const file of files) {
			const code = readFileSync(join(SRC, file), "utf8");
			for (const { at, args } of errorArguments(code)) {
				const { strings, rest } = literals(args);
				if (/\binlineCode\(/.test(rest) || strings.some((s) => /`|\*\*|<t:/.test(s)))
					markdown.push(`${relative(SRC, join(SRC, file))}:${code.slice(0, at).split("\n").length}`);
			}
		}
		expect(markdown).toEqual([]);
	});
});
