import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MANIFEST, type PictureEntry, pictureHtml, sha256, sourcesOf } from "../scripts/make-pictures.ts";

const entries = JSON.parse(readFileSync(MANIFEST, "utf8")) as PictureEntry[];

/** The README's pictures are made from the goldens by scripts/make-pictures.ts; no browser is needed here. */
describe("the pictures of real messages", () => {
	it.each(entries.map((e) => [e.picture, e] as const))("%s was re-made since its goldens last changed", (_, entry) => {
		expect(existsSync(join("docs/pictures", entry.picture)), `docs/pictures/${entry.picture} exists`).toBe(true);
		const stale = sourcesOf(entry).filter((source) => entry.sha256?.[source] !== sha256(source));
		expect(
			stale,
			`changed since docs/pictures/${entry.picture} was made: ${stale.join(", ")}. Re-make it: node ` +
				`scripts/make-pictures.ts (needs apt-get install -y chromium)`,
		).toEqual([]);
	});

	it("draws each golden's title and text into the picture's page", () => {
		const html = pictureHtml(entries.find((e) => e.picture === "alert.png")!);

		expect(html).toContain("CRITICAL · PostgresDown · prod");
		expect(html).toContain("RESOLVED · PostgresDown · prod");
		expect(html).toContain('<span class="mention">@oncall</span>');
	});

	it("are the ones the README shows", () => {
		const readme = readFileSync("README.md", "utf8");
		for (const entry of entries) expect(readme).toContain(`](docs/pictures/${entry.picture})`);
	});
});
