import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DISCORD_LIMITS } from "../../src/render/limits.ts";
import { fitReportToEmbed, type Report, reportToText } from "../../src/render/report.ts";

describe("a report's list in the Discord view", () => {
	it("shows the items that fit after the summary, counts the rest with the note, and always keeps the notes", () => {
		const items = Array.from({ length: 10 }, (_, i) => [`🔥 item-${i} `, { code: "x".repeat(500) }]);
		const report: Report = {
			title: "t",
			level: "warn",
			summary: "head",
			list: { items, total: 300, more: "full list attached", notes: ["⚠️ a note"] },
		};

		const { embed, listShown } = fitReportToEmbed(report);
		const description = embed.toJSON().description ?? "";

		expect(listShown).toBe(7);
		expect(description.startsWith("head\n\n🔥 item\\-0 `")).toBe(true);
		expect(description.endsWith(`\n… and ${300 - listShown} more (full list attached)\n⚠️ a note`)).toBe(true);
		expect(description.length).toBeLessThanOrEqual(DISCORD_LIMITS.description);
	});

	it("says nothing more when every item fits", () => {
		const { embed, listShown } = fitReportToEmbed({
			title: "t",
			level: "ok",
			list: { items: ["a", "b"], more: "never said" },
		});

		expect(listShown).toBe(2);
		expect(embed.toJSON().description).toBe("a\nb");
	});

	it("stays within Discord's limits and counts what it shows, whatever the list", () => {
		const text = fc.string({ maxLength: 2_000 });
		const item = fc.string({ minLength: 1, maxLength: 800 }).map((s) => `» ${s}`);
		const list = fc.record({
			items: fc.array(item, { maxLength: 40 }),
			total: fc.nat(100_000),
			more: fc.string({ maxLength: 100 }),
			notes: fc.array(text, { maxLength: 4 }),
		});
		// Long titles and fields leave the description less room than its own limit.
		const report = fc
			.tuple(text, text, fc.array(fc.record({ label: text, value: text }), { maxLength: 30 }), list)
			.map(([title, summary, fields, l]): Report => ({ title, level: "warn", summary, fields, list: l }));

		fc.assert(
			fc.property(report, (r) => {
				const { embed, listShown } = fitReportToEmbed(r);
				const json = embed.toJSON();
				const length =
					(json.title?.length ?? 0) +
					(json.description?.length ?? 0) +
					(json.fields ?? []).reduce((sum, f) => sum + f.name.length + f.value.length, 0);

				expect(json.description?.length ?? 0).toBeLessThanOrEqual(DISCORD_LIMITS.description);
				expect(length).toBeLessThanOrEqual(DISCORD_LIMITS.embedTotal);
				expect(listShown).toBeLessThanOrEqual(r.list!.items.length);
				const hidden = Math.max(r.list!.total ?? 0, r.list!.items.length) - listShown;
				if (hidden > 0) expect(json.description).toContain(`… and ${hidden} more`);
			}),
			{ numRuns: 200 },
		);
	});
});

describe("a report's list in the terminal view", () => {
	it("prints every item given, exact, and how many more there are", () => {
		const text = reportToText({
			title: "t",
			level: "ok",
			list: { items: ["a_b", ["c ", { code: "d`" }]], total: 5, more: "Discord only", notes: ["note (x)"] },
		});

		expect(text).toBe("[OK] t\n  a_b\n  c d`\n  … and 3 more\nnote (x)");
	});
});
