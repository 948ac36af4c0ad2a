import { describe, expect, it } from "vitest";
import {
	checkSilenceMatchers,
	formatMatchers,
	MatcherError,
	matchesLabels,
	parseMatchers,
} from "../../src/alerts/matchers.ts";

const eq = (name: string, value: string) => ({ name, value, isRegex: false, isEqual: true });
const ne = (name: string, value: string) => ({ name, value, isRegex: false, isEqual: false });
const re = (name: string, value: string) => ({ name, value, isRegex: true, isEqual: true });
const nre = (name: string, value: string) => ({ name, value, isRegex: true, isEqual: false });

describe("parseMatchers reads AlertManager's matcher syntax (its own parser's cases)", () => {
	it.each([
		["{}", []],
		["{foo='}", [eq("foo", "'")]],
		["{foo=`}", [eq("foo", "`")]],
		['{foo=\\"}', [eq("foo", '"')]],
		["{foo=bar}", [eq("foo", "bar")]],
		['{foo="bar"}', [eq("foo", "bar")]],
		["{foo=~bar.*}", [re("foo", "bar.*")]],
		['{foo=~"bar.*"}', [re("foo", "bar.*")]],
		["{foo!=bar}", [ne("foo", "bar")]],
		['{foo!~"bar.*"}', [nre("foo", "bar.*")]],
		['{foo="bar", baz!~"quux.*"}', [eq("foo", "bar"), nre("baz", "quux.*")]],
		['{foo="bar",baz!~".*quux", derp="wat"}', [eq("foo", "bar"), nre("baz", ".*quux"), eq("derp", "wat")]],
		['{foo=""}', [eq("foo", "")]],
		['{foo="bar,quux", job="job1"}', [eq("foo", "bar,quux"), eq("job", "job1")]],
		['{foo = "bar", dings != "bums", }', [eq("foo", "bar"), ne("dings", "bums")]],
		["foo=bar,dings!=bums", [eq("foo", "bar"), ne("dings", "bums")]],
		[
			'{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
			[eq("quote", 'She said: "Hi, ladies! That\'s gender-neutral…"')],
		],
		['statuscode=~"5.."', [re("statuscode", "5..")]],
		["tricky=~~~", [re("tricky", "~~")]],
		['trickier==\\\\=\\=\\"', [eq("trickier", '=\\=\\="')]],
		[
			'contains_quote != "\\"" , contains_comma !~ "foo,bar" , ',
			[ne("contains_quote", '"'), nre("contains_comma", "foo,bar")],
		],
		["{foo=bar}}", [eq("foo", "bar}")]],
		["{foo=,bar=}}", [eq("foo", ""), eq("bar", "}")]],
		["job=", [eq("job", "")]],
		["{foo=", [eq("foo", "")]],
		["{foo=}b", [eq("foo", "}b")]],
		['msg="line\\nbreak"', [eq("msg", "line\nbreak")]],
	])("%s", (input, want) => {
		expect(parseMatchers(input)).toEqual(want);
	});

	it.each([
		['job="value', "opens a double quote and never closes it"],
		['job=value"', "has a double quote inside it"],
		['trickier==\\\\=\\=\\""', "has a double quote inside it"],
		['contains_unescaped_quote = foo"bar', "has a double quote inside it"],
		['{invalid-name = "valid label"}', "is not a matcher"],
		['{foo=~"invalid[regexp"}', "does not compile"],
		['"{foo=\\"bar"}', "is not a matcher"],
		['"foo="bar""', "is not a matcher"],
		["{{foo=", "is not a matcher"],
		// Silences are stricter than the parser: no colon in a label name.
		['job:rate5m="1"', "not a label name AlertManager accepts in a silence"],
		// RE2 has no lookaround or backreferences; JavaScript would accept them.
		['path=~"(?!/health).*"', "lookahead or lookbehind"],
		['x=~"(a)\\1"', "backreferences"],
		["a=b,".repeat(21), "at most 20 matchers"],
	])("refuses %s", (input, message) => {
		expect(() => parseMatchers(input)).toThrow(MatcherError);
		expect(() => parseMatchers(input)).toThrow(message);
	});

	it("leaves RE2-only syntax JavaScript cannot read (a leading (?i)) for AlertManager to judge", () => {
		expect(parseMatchers('alertname=~"(?i)apidown"')).toEqual([re("alertname", "(?i)apidown")]);
	});

	it("writes matchers back so they parse to the same set", () => {
		const set = [eq("a", 'q"uo\\te'), nre("b", "x|y"), ne("c", "line\nbreak"), re("d", "5..")];
		expect(parseMatchers(formatMatchers(set))).toEqual(set);
	});
});

describe("checkSilenceMatchers refuses sets that would mute everything", () => {
	it.each([
		[[], "at least one matcher"],
		[[eq("foo", "")], "would mute every alert"],
		[[re("alertname", ".*")], "would mute every alert"],
		[[re("alertname", ".*"), ne("env", "prod")], "would mute every alert"],
		[[ne("env", "prod")], "would mute every alert"],
		[[re("alertname", ".+")], "only exclude, or accept any value"],
		[[re("alertname", ".+"), nre("env", "dev")], "only exclude, or accept any value"],
	])("%j", (set, message) => {
		expect(() => checkSilenceMatchers(set)).toThrow(message);
	});

	it.each([
		[[eq("alertname", "ApiDown")]],
		[[re("alertname", "Api.*")]],
		[[eq("env", "prod"), re("alertname", ".*")]],
		[[re("service", "api|worker"), ne("env", "dev")]],
	])("accepts %j", (set) => {
		expect(() => checkSilenceMatchers(set)).not.toThrow();
	});
});

describe("matchesLabels judges labels as AlertManager does", () => {
	it("anchors regexes and treats a missing label as the empty string", () => {
		expect(matchesLabels([re("env", "prod")], { env: "production" })).toBe(false);
		expect(matchesLabels([re("env", "prod.*")], { env: "production" })).toBe(true);
		expect(matchesLabels([ne("env", "prod")], {})).toBe(true);
		expect(matchesLabels([eq("env", "")], {})).toBe(true);
		expect(matchesLabels([re("env", "(?i)prod")], { env: "prod" })).toBeUndefined();
	});
});
