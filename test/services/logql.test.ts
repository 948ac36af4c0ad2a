import { parser } from "@grafana/lezer-logql";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
	buildLogQuery,
	checkQuerySize,
	escapeRegex,
	LOG_LEVELS,
	lineMatches,
	logqlString,
} from "../../src/services/logql.ts";
import { parseQuery } from "../loki-double/index.ts";

function parseErrors(query: string): number {
	let errors = 0;
	parser.parse(query).iterate({ enter: (n) => void (n.type.isError && errors++) });
	return errors;
}

describe("LogQL building", () => {
	it("builds a selector with line filters that Grafana's grammar accepts", () => {
		const query = buildLogQuery({ serviceLabel: "service", service: "api", contains: 'say "hi"\n' });

		expect(query).toBe('{service="api"} |= "say \\"hi\\"\\n"');
		expect(parseErrors(query)).toBe(0);
	});

	it("reads level and correlation id from JSON fields with Loki's json stage, as whole words from plain lines", () => {
		const query = buildLogQuery({ serviceLabel: "service", service: "api", correlation: "c-42", level: "error" });

		expect(query).toBe(
			'{service="api"} |= "c-42" |~ "(?:^|[^A-Za-z0-9_-])c-42(?:$|[^A-Za-z0-9_-])" |~ "(?i)\\\\b(?:error)\\\\b" | ' +
				'json | __error__!="" or ((level_extracted=~"(?i)(?:error)" or (level_extracted="" and ' +
				'level=~"(?i)(?:error)")) and (correlation_id_extracted="c-42" or (correlation_id_extracted="" and ' +
				'correlation_id="c-42"))) | drop __error__, __error_details__',
		);
		expect(parseErrors(query)).toBe(0);
	});

	it("filters docker lines the way the LogQL filters Loki's", () => {
		const lines = [
			JSON.stringify({ level: "info", msg: "no errors found", correlation_id: "c-420" }),
			JSON.stringify({ level: "ERROR", msg: "boom", correlation_id: "c-42" }),
			"2026-11-24 ERROR plain boom for c-42.",
			"2026-11-24 INFO errors counted for c-420",
			"[2026-11-24 12:00] error in bracketed plain line (c-42)",
		];

		expect(lines.filter((l) => lineMatches({ level: "error" }, l))).toEqual([lines[1], lines[2], lines[4]]);
		expect(lines.filter((l) => lineMatches({ correlation: "c-42" }, l))).toEqual([lines[1], lines[2], lines[4]]);
		expect(lines.filter((l) => lineMatches({ correlation: "c-420" }, l))).toEqual([lines[0], lines[3]]);
	});

	it(
		"refuses, before anything is sent, a search whose escaped LogQL is over Loki's 5,120 bytes though its text " +
			"is within 1,000 characters",
		() => {
			const contains = "\u0001".repeat(1_000);
			const query = buildLogQuery({ serviceLabel: "service", service: "api", contains });

			expect(contains.length).toBe(1_000);
			expect(() => checkQuerySize(query, { service: "api", contains })).toThrow(
				"This search is 6,021 bytes as LogQL once its text is escaped, and Loki refuses queries over 5,120 bytes. " +
					"Shorten contains.",
			);
			expect(() =>
				checkQuerySize(buildLogQuery({ serviceLabel: "service", service: "api", contains: "x".repeat(1_000) }), {
					service: "api",
					contains: "x".repeat(1_000),
				}),
			).not.toThrow();
		},
	);

	it("names the option that made the search too long: the one longest once escaped (D21)", () => {
		const service = "s".repeat(100_000);
		const contains = "\u0001".repeat(900); // 5,400 bytes escaped, shorter than the service
		const tooLong = (search: { service: string; contains?: string }) => () =>
			checkQuerySize(buildLogQuery({ serviceLabel: "service", ...search }), search);

		expect(tooLong({ service, contains: "payment" })).toThrow(/Shorten service\.$/);
		expect(tooLong({ service, contains })).toThrow(/Shorten service\.$/);
		expect(tooLong({ service: "api", contains })).toThrow(/Shorten contains\.$/);
		expect(() => checkQuerySize("x".repeat(6_000), { query: "x".repeat(6_000) })).toThrow(/Shorten query\.$/);
	});

	it("parses for any user text, and its line filter matches that text literally", () => {
		fc.assert(
			fc.property(
				fc.string({ unit: "binary", maxLength: 200 }),
				fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }),
				fc.constantFrom(undefined, ...LOG_LEVELS),
				(text, service, level) => {
					const query = buildLogQuery({
						serviceLabel: "service",
						service,
						...(text ? { contains: text } : {}),
						...(level ? { level } : {}),
					});
					expect(parseErrors(query)).toBe(0);
					const parsed = parseQuery(query);
					if ("error" in parsed) throw new Error(parsed.error);
					expect(parsed.matchers).toEqual([{ name: "service", op: "=", value: service.toWellFormed() }]);
					if (text) expect(parsed.filters[0]).toEqual({ op: "|=", value: text.toWellFormed() });
				},
			),
			{ numRuns: 500 },
		);
	});

	it("escapes regex metacharacters so they match literally", () => {
		fc.assert(
			fc.property(fc.string({ maxLength: 50 }), (text) => {
				expect(
					new RegExp(`^${escapeRegex(text)}$`, "u").test(text) || new RegExp(`^${escapeRegex(text)}$`).test(text),
				).toBe(true);
				expect(parseErrors(`{a="b"} |~ ${logqlString(escapeRegex(text))}`)).toBe(0);
			}),
		);
	});

	it("refuses a label name that is not one, and an empty service", () => {
		expect(() => buildLogQuery({ serviceLabel: 'x"}', service: "api" })).toThrow(/not a label name/);
		expect(() => buildLogQuery({ serviceLabel: "service", service: "" })).toThrow(/Pick a service/);
		expect(() => buildLogQuery({ serviceLabel: "service", service: "", correlation: 'c-1" or 1' })).toThrow(
			/A correlation id is/,
		);
	});
});
