import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeCustomId, encodeCustomId } from "../../src/discord/custom-id.ts";

describe("customId codec", () => {
	it("round-trips what opsbot encodes", () => {
		expect(decodeCustomId(encodeCustomId("health", "rerun", "production"))).toEqual({
			area: "health",
			action: "rerun",
			args: ["production"],
		});
	});

	it("refuses to encode separators or ids over 100 characters", () => {
		expect(() => encodeCustomId("health", "rerun", "a:b")).toThrow();
		expect(() => encodeCustomId("a", "b", "x".repeat(60), "y".repeat(60))).toThrow(/100/);
	});

	it("rejects arbitrary untrusted strings that are not well-formed ids, and never throws", () => {
		fc.assert(
			fc.property(fc.string({ maxLength: 300 }), (raw) => {
				const id = decodeCustomId(raw);
				if (id === undefined) return true;
				return raw.length <= 100 && [id.area, id.action, ...id.args].join(":") === raw;
			}),
		);
		expect(decodeCustomId("")).toBeUndefined();
		expect(decodeCustomId("health")).toBeUndefined();
		expect(decodeCustomId("health:rerun:'; DROP TABLE x")).toBeUndefined();
		expect(decodeCustomId(`health:rerun:${"x".repeat(120)}`)).toBeUndefined();
	});
});
