import { describe, expect, it } from "vitest";
import { cutWhole, escapeMarkdown, oneLine, stripInvisible, truncate } from "../../src/render/limits.ts";
import {
	type Report,
	reportLinkButtons,
	reportToEmbed,
	reportToText,
	TERMINAL_LABEL_WIDTH,
} from "../../src/render/report.ts";

/** Whether `text` holds a UTF-16 surrogate half without its partner (what Discord cannot store). */
const hasLoneSurrogate = (text: string) => !text.isWellFormed();

describe("cutting text (issue 19 D6)", () => {
	it("never splits a surrogate pair where an emoji straddles the cut", () => {
		const name = `${"E".repeat(98)}🔥x`;

		const cut = truncate(name, 100);

		expect(hasLoneSurrogate(cut)).toBe(false);
		expect(cut.length).toBeLessThanOrEqual(100);
		expect(cut).toBe(`${"E".repeat(98)}…`);
	});

	it("cuts without an ellipsis on the same boundaries (autocomplete values)", () => {
		expect(cutWhole(`${"v".repeat(99)}😀`, 100)).toBe("v".repeat(99));
	});

	it("keeps a grapheme cluster whole (a flag, a family emoji, a letter with its accent)", () => {
		for (const cluster of ["🇩🇪", "👨‍👩‍👧", "e\u0301"]) {
			const text = `${"a".repeat(8)}${cluster}${"b".repeat(10)}`;

			const cut = truncate(text, 10);

			expect(cut).toBe(`${"a".repeat(8)}…`);
		}
	});

	it("cuts a single cluster longer than the room between code points, still well-formed", () => {
		const cut = truncate(`a${"\u0301".repeat(50)}`, 10);

		expect(cut.length).toBeLessThanOrEqual(10);
		expect(hasLoneSurrogate(cut)).toBe(false);
	});

	it("keeps embed titles and field values well-formed when they are cut", () => {
		const embed = reportToEmbed({
			title: `${"T".repeat(254)}😀😀`,
			level: "ok",
			fields: [{ label: "f", value: `${"v".repeat(1_022)}😀😀` }],
		}).toJSON();

		expect(hasLoneSurrogate(embed.title ?? "")).toBe(false);
		expect(hasLoneSurrogate(embed.fields?.[0]?.value ?? "")).toBe(false);
	});
});

describe("one-line values (issue 19 D11)", () => {
	it("maps line and paragraph breaks to spaces", () => {
		expect(oneLine("nl\n[OK] Health of production: ok\r\nx\ry\u2028z\u2029w")).toBe(
			"nl [OK] Health of production: ok x y z w",
		);
	});

	it("strips fillers, tag characters, soft hyphens and the other invisible characters", () => {
		const hidden = "\u3164\u115F\u1160\uFFA0\u00AD\u180E\u034F\u{E0041}\u{E0042}\u202E\u200B";

		expect(stripInvisible(`a${hidden}b`)).toBe("ab");
	});

	it("caps a flood of combining marks at four", () => {
		expect(stripInvisible(`Z${"\u0301".repeat(500)}!`)).toBe(`Z${"\u0301".repeat(4)}!`);
	});

	it("keeps a name with a line break on its own line in both views", () => {
		const report: Report = {
			title: "Groups\nforged",
			level: "ok",
			lines: [{ level: "ok", label: "nl\n[OK] Health of production: ok", text: "fine" }],
		};

		const terminal = reportToText(report).split("\n");
		const embed = reportToEmbed(report).toJSON();

		// Title, then the line: its label (wider than the gutter) on a line of its own, the text under it.
		expect(terminal).toEqual([
			"[OK] Groups forged",
			"  OK    nl [OK] Health of production: ok",
			expect.stringMatching(/^ +fine$/),
		]);
		expect(terminal.some((l) => l.startsWith("[OK] Health"))).toBe(false);
		expect(embed.title).toBe("Groups forged");
		expect(embed.description?.split("\n")).toHaveLength(1);
	});
});

describe("label width in the terminal view (issue 19 D12)", () => {
	it("cuts a long label instead of padding every line to it", () => {
		const report: Report = {
			title: "Alert groups",
			level: "warn",
			lines: [
				{ level: "warn", label: "A".repeat(10_000), text: "firing" },
				{ level: "ok", label: "short", text: "resolved" },
			],
		};

		const lines = reportToText(report).split("\n");

		// The long label stands cut at the line's end on a line of its own; the short one is not padded to it.
		expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(80);
		expect(lines[1]).toBe(`  WARN  ${"A".repeat(80 - 8 - 1)}…`);
		expect(reportToText(report, { width: 40 }).split("\n")[1]).toBe(`  WARN  ${"A".repeat(TERMINAL_LABEL_WIDTH - 1)}…`);
		expect(lines.at(-1)).toBe(`  OK    ${"short".padEnd(14)}  resolved`); // the label gutter is 14 columns at most
	});

	it("keeps code on a line of its own whole for copying, and fills code inside a sentence like words", () => {
		const configLine = `hostKey: ssh-ed25519 ${"A".repeat(68)}`;
		const report: Report = {
			title: "Set-up",
			level: "ok",
			fields: [
				{
					label: "Host key",
					value: ["Pin it with this line, in environments.production.ssh:\n", { code: configLine }],
				},
				{ label: "Snippet", value: { code: "receivers:\n  - name: opsbot\n    webhook_configs: []" } },
				{
					label: "Restart",
					value: ["failed (", { code: "exit 1: Error response from daemon: No such container: api" }, ") just now"],
				},
			],
		};

		const lines = reportToText(report, { width: 60 }).split("\n");

		expect(lines.map((l) => l.trim())).toContain(configLine);
		expect(lines.map((l) => l.trimEnd())).toEqual(
			expect.arrayContaining([
				expect.stringMatching(/ receivers:$/),
				expect.stringMatching(/^ + {2}- name: opsbot$/),
				expect.stringMatching(/^ + {4}webhook_configs: \[\]$/),
			]),
		);
		expect(lines.filter((l) => l !== lines.find((x) => x.includes(configLine))).every((l) => l.length <= 60)).toBe(
			true,
		);
	});
});

describe("escaping for Discord (issue 25 §2)", () => {
	it("keeps bare URLs intact (wrapped in <…>) while escaping the text around them", () => {
		const text =
			"Dashboard: https://grafana.example.com/d/api-5xx/checkout_errors?var-env=prod (see also https://status.stripe.com)";

		expect(escapeMarkdown(text)).toBe(
			"Dashboard: <https://grafana.example.com/d/api-5xx/checkout_errors?var-env=prod> \\(see also " +
				"<https://status.stripe.com>\\)",
		);
	});

	it("leaves no live masked link, mention or @everyone, with or without URLs", () => {
		const escaped = escapeMarkdown("[click](https://evil.example/x) <@123> <https://a.example> @everyone **b**");

		expect(escaped).toBe(
			"\\[click\\]\\(<https://evil.example/x>\\) \\<@123\\> \\<<https://a.example>\\> @\u200beveryone \\*\\*b\\*\\*",
		);
		expect(escaped).not.toMatch(/(?<!\\)\[[^\]]*\]\(/);
		expect(escaped).not.toMatch(/(?<!\\)<[@#]/);
	});

	it("shows control characters as the terminal view does", () => {
		expect(escapeMarkdown("a\u001b[31mb\u0007c\u007fd\u009be")).toBe("a\\\\x1b\\[31mb\\\\x07c\\\\x7fd\\\\x9be");
	});

	it("escapes the markdown Discord renders in titles and field names", () => {
		const embed = reportToEmbed({
			title: "Disk **full** on `sda` ~~x~~ ||y|| _z_",
			level: "critical",
			fields: [{ label: "*f*", value: "v" }],
		}).toJSON();

		expect(embed.title).toBe("Disk \\*\\*full\\*\\* on \\`sda\\` \\~\\~x\\~\\~ \\|\\|y\\|\\| \\_z\\_");
		expect(embed.fields?.[0]?.name).toBe("\\*f\\*");
	});

	it("offers http(s) links as link buttons (style 5, a url, no custom_id) and drops anything else", () => {
		const rows = reportLinkButtons({
			title: "t",
			level: "ok",
			links: [
				{ label: "Runbook", url: "https://runbooks.example.com/pg" },
				{ label: "Bad", url: "javascript:alert(1)" },
				{ label: "Spaced", url: "https://a.example/b c" },
				{ label: "Long", url: `https://a.example/${"x".repeat(600)}` },
			],
		});

		expect(rows).toEqual([
			{ type: 1, components: [{ type: 2, style: 5, url: "https://runbooks.example.com/pg", label: "Runbook" }] },
		]);
	});
});
