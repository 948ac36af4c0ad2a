import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The message samples in docs/*.md are the terminal goldens themselves: a `<!-- golden: NAME.txt -->`
 * line is followed by a block fenced with four backticks that must equal test/render/golden/reports/NAME.txt, so a
 * sample
 * cannot drift from what opsbot prints. `UPDATE_GOLDEN=1` rewrites the blocks from the goldens.
 */
// A function, not one shared /g regex: test() on a global regex keeps state between calls.
// Four backticks: a golden may hold three (a log line quoting markdown).
const marker = () => /<!-- golden: ([\w.-]+\.txt) -->\n````\n([\s\S]*?)````/g;
const GOLDEN_DIR = "test/render/golden/reports";

describe("message samples in docs/ are the goldens", () => {
	const docs = readdirSync("docs").filter((f) => f.endsWith(".md"));
	const marked = docs.filter((f) => marker().test(readFileSync(join("docs", f), "utf8")));

	it("has samples taken from goldens", () => {
		expect(marked.length).toBeGreaterThan(0);
	});

	it.each(docs)("docs/%s shows each marked sample exactly as the golden has it", (file) => {
		const path = join("docs", file);
		const text = readFileSync(path, "utf8");
		const golden = (name: string) => readFileSync(join(GOLDEN_DIR, name), "utf8").replace(/\n?$/, "\n");
		if (process.env.UPDATE_GOLDEN === "1") {
			writeFileSync(
				path,
				text.replace(marker(), (_, name: string) => `<!-- golden: ${name} -->\n\`\`\`\`\n${golden(name)}\`\`\`\``),
			);
			return;
		}
		for (const [, name, block] of text.matchAll(marker())) expect(block, `${file}: sample ${name}`).toBe(golden(name!));
	});
});
