import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DISCORD_LIMITS, joinLinesWithin, truncate } from "../../src/render/limits.ts";
import { type Report, reportToEmbed, reportToText, textToMarkdown, textToPlain } from "../../src/render/report.ts";

function embedTextLength(json: ReturnType<ReturnType<typeof reportToEmbed>["toJSON"]>): number {
	return (
		(json.title?.length ?? 0) +
		(json.description?.length ?? 0) +
		(json.footer?.text.length ?? 0) +
		(json.fields ?? []).reduce((sum, f) => sum + f.name.length + f.value.length, 0)
	);
}

describe("reportToEmbed", () => {
	it("keeps any report within Discord's embed limits", () => {
		const text = fc.string({ maxLength: 3000 });
		const report = fc.record({
			title: text,
			level: fc.constantFrom("ok", "warn", "critical"),
			summary: text,
			lines: fc.array(fc.record({ level: fc.constantFrom("ok", "warn", "critical"), label: text, text }), {
				maxLength: 60,
			}),
			fields: fc.array(fc.record({ label: text, value: text }), { maxLength: 40 }),
			footer: text,
		}) as fc.Arbitrary<Report>;

		fc.assert(
			fc.property(report, (r) => {
				const json = reportToEmbed(r).toJSON();
				expect(json.title?.length ?? 0).toBeLessThanOrEqual(DISCORD_LIMITS.title);
				expect(json.description?.length ?? 0).toBeLessThanOrEqual(DISCORD_LIMITS.description);
				expect(json.fields?.length ?? 0).toBeLessThanOrEqual(DISCORD_LIMITS.fields);
				for (const f of json.fields ?? []) {
					expect(f.name.length).toBeLessThanOrEqual(DISCORD_LIMITS.fieldName);
					expect(f.value.length).toBeLessThanOrEqual(DISCORD_LIMITS.fieldValue);
				}
				expect(embedTextLength(json)).toBeLessThanOrEqual(DISCORD_LIMITS.embedTotal);
			}),
			{ numRuns: 200 },
		);
	});

	it("says how many lines did not fit instead of dropping them silently", () => {
		const lines = Array.from({ length: 300 }, (_, i) => ({
			level: "ok" as const,
			label: `check-${i}`,
			text: "x".repeat(40),
		}));

		const description = reportToEmbed({ title: "t", level: "ok", lines }).toJSON().description ?? "";

		expect(description).toMatch(/… and \d+ more$/);
		expect(description.length).toBeLessThanOrEqual(DISCORD_LIMITS.description);
	});

	it("colours by level and marks each line with its state", () => {
		const json = reportToEmbed({
			title: "Health",
			level: "critical",
			lines: [{ level: "critical", label: "db", text: "connection refused" }],
		}).toJSON();

		expect(json.color).toBe(0xe74c3c);
		expect(json.description).toBe("🔴 **db** connection refused");
	});
});

describe("report text parts", () => {
	const text = [
		"Deleted by ",
		{ strong: "a*b" },
		" from ",
		{ code: "10.0.0.1`" },
		", ",
		{ time: new Date(0), style: "full" },
		" — ",
		{ link: "https://example.test/x", label: "trace" },
		" ",
		{ mention: "role", id: "42" },
	] as const;

	it("marks values up in the Discord view and escapes literal text", () => {
		expect(textToMarkdown(text)).toBe(
			"Deleted by **a\\*b** from `10.0.0.1ˋ`, <t:0:f> (<t:0:R>) — [trace](https://example.test/x) <@&42>",
		);
	});

	it("gives exact values in the terminal view", () => {
		expect(textToPlain(text)).toBe(
			"Deleted by a*b from 10.0.0.1`, 1970-01-01T00:00:00.000Z — trace (https://example.test/x) @&42",
		);
	});

	it("shows a link to anything but http(s) as its label only, and lists one item per line", () => {
		expect(textToMarkdown({ link: "javascript:alert(1)", label: "x" })).toBe("x");
		expect(textToMarkdown({ list: ["a", ["b ", { code: "c" }]] })).toBe("• a\n• b `c`");
		expect(textToPlain({ list: ["a", ["b ", { code: "c" }]] })).toBe("- a\n- b c");
	});
});

describe("reportToText", () => {
	it("aligns labels and shows times as ISO times", () => {
		const text = reportToText({
			title: "Health of production: down",
			level: "critical",
			summary: ["ran ", { time: new Date(0) }],
			lines: [
				{ level: "ok", label: "backend", text: "HTTP 200" },
				{ level: "critical", label: "postgresql", text: "connection refused" },
			],
		});

		expect(text).toBe(
			[
				"[CRIT] Health of production: down",
				"ran 1970-01-01T00:00:00.000Z",
				"  OK    backend     HTTP 200",
				"  CRIT  postgresql  connection refused",
			].join("\n"),
		);
	});
});

describe("text cutting", () => {
	it("truncates with an ellipsis and never exceeds the limit", () => {
		fc.assert(fc.property(fc.string(), fc.integer({ min: 1, max: 50 }), (s, max) => truncate(s, max).length <= max));
		expect(truncate("abcdef", 4)).toBe("abc…");
	});

	it("joins whole lines only", () => {
		expect(joinLinesWithin(["aaa", "bbb", "ccc", "ddd"], 20)).toBe("aaa\nbbb\n… and 2 more");
		expect(joinLinesWithin(["aaa", "bbb"], 20)).toBe("aaa\nbbb");
	});
});

describe("long summaries and control characters", () => {
	it("keeps as many summary lines as fit instead of dropping a long summary whole", () => {
		const summary = Array.from({ length: 20 }, (_, i) => `line ${i} ${"x".repeat(290)}`).join("\n");

		const description = reportToEmbed({ title: "Logs", level: "ok", summary }).toJSON().description ?? "";

		expect(description.startsWith("line 0 ")).toBe(true);
		expect(description).toMatch(/\n… and \d+ more$/);
		expect(description.length).toBeLessThanOrEqual(DISCORD_LIMITS.description);
	});

	it("keeps blank lines between a summary's paragraphs", () => {
		expect(reportToEmbed({ title: "t", level: "ok", summary: "first\n\nsecond" }).toJSON().description).toBe(
			"first\n\nsecond",
		);
	});

	it("shows control characters as escapes in the terminal view, so a log line cannot drive the terminal", () => {
		const text = reportToText({ title: "Logs", level: "ok", summary: "red \u001b[31mtext\u0007 tab\tend" });

		expect(text).toBe("[OK] Logs\nred \\x1b[31mtext\\x07 tab\tend");
	});
});
