import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { requireBinary } from "../support/proc.ts";

describe("the example Prometheus rules for opsbot itself", () => {
	it("pass promtool's check and its unit tests (each alert fires on the series it is meant for)", () => {
		requireBinary("/usr/bin/promtool", "promtool", "prometheus");

		const check = execFileSync("/usr/bin/promtool", ["check", "rules", "deploy/prometheus/opsbot-rules.yml"], {
			encoding: "utf8",
		});
		const test = execFileSync("/usr/bin/promtool", ["test", "rules", "deploy/prometheus/opsbot-rules.test.yml"], {
			encoding: "utf8",
		});

		expect(check).toContain("SUCCESS: 7 rules found");
		expect(test).toContain("SUCCESS");
	});
});
