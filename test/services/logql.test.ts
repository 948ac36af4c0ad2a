import { parser } from "@grafana/lezer-logql";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildLogQuery, escapeRegex, logqlString, LOG_LEVELS } from "../../src/services/logql.ts";
import { parseQuery } from "../loki-double/index.ts";

function parseErrors(query: string): number {
	let errors = 0;
	parser.parse(query).iterate({ enter: (n) => void (n.type.isError && errors++) });
	return errors;
}

describe("LogQL building", () => {
	it("builds a selector with line filters that Grafana's grammar accepts", () => {
		const query = buildLogQuery({ serviceLabel: "service", service: "api", contains: 'say "hi"\n', correlation: "c-1", level: "error" });

		expect(query).toBe('{service="api"} |= "say \\"hi\\"\\n" |= "c-1" |~ "(?i)error"');
		expect(parseErrors(query)).toBe(0);
	});

	it("parses for any user text, and its line filter matches that text literally", () => {
		fc.assert(
			fc.property(fc.string({ unit: "binary", maxLength: 200 }), fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }), fc.constantFrom(undefined, ...LOG_LEVELS), (text, service, level) => {
				const query = buildLogQuery({ serviceLabel: "service", service, ...(text ? { contains: text } : {}), ...(level ? { level } : {}) });
				expect(parseErrors(query)).toBe(0);
				const parsed = parseQuery(query);
				if ("error" in parsed) throw new Error(parsed.error);
				expect(parsed.matchers).toEqual([{ name: "service", op: "=", value: service.toWellFormed() }]);
				if (text) expect(parsed.filters[0]).toEqual({ op: "|=", value: text.toWellFormed() });
			}),
			{ numRuns: 500 },
		);
	});

	it("escapes regex metacharacters so they match literally", () => {
		fc.assert(
			fc.property(fc.string({ maxLength: 50 }), (text) => {
				expect(new RegExp(`^${escapeRegex(text)}$`, "u").test(text) || new RegExp(`^${escapeRegex(text)}$`).test(text)).toBe(true);
				expect(parseErrors(`{a="b"} |~ ${logqlString(escapeRegex(text))}`)).toBe(0);
			}),
		);
	});

	it("refuses a label name that is not one, and an empty service", () => {
		expect(() => buildLogQuery({ serviceLabel: 'x"}', service: "api" })).toThrow(/not a label name/);
		expect(() => buildLogQuery({ serviceLabel: "service", service: "" })).toThrow(/Pick a service/);
	});
});
