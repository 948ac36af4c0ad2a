import { describe, expect, it } from "vitest";
import { readableLine, severityOf } from "../../src/services/log-lines.ts";
import type { LogEntry } from "../../src/services/logs.ts";

const NS = 1_795_251_600_123_456_789n; // 2026-11-21T09:00:00.123456789Z
const entry = (line: string, labels: Record<string, string> = { service: "api" }): LogEntry => ({
	ns: NS,
	id: "0000000000000001",
	line,
	labels,
});

describe("readableLine", () => {
	it("pulls the message, the level and the useful fields out of a JSON line, in the order the fields are listed", () => {
		const line = readableLine(
			entry(
				JSON.stringify({
					user_id: 9,
					level: "error",
					msg: "payment failed",
					correlation_id: "c-2",
					extra: "x",
					resource_id: null,
				}),
			),
		);

		expect(line).toEqual({
			time: new Date("2026-11-21T09:00:00.123Z"),
			level: "error",
			severity: "error",
			message: "payment failed",
			fields: [
				["correlation_id", "c-2"],
				["user_id", "9"],
			],
		});
	});

	it("takes the first message and level field of a JSON line, and the stream's level label if the line has none", () => {
		const named = readableLine(
			entry(JSON.stringify({ event: "started", message: "the message", levelname: "WARNING", level: 3 })),
		);
		const labelled = readableLine(entry(JSON.stringify({ error: "disk full" }), { service: "api", level: "critical" }));

		expect([named.message, named.level, named.severity]).toEqual(["the message", "WARNING", "warning"]);
		expect([labelled.message, labelled.level, labelled.severity]).toEqual(["disk full", "critical", "critical"]);
	});

	it("keeps a JSON line without a message field whole, and a line that only looks like JSON as plain text", () => {
		expect(readableLine(entry('{"status":200}')).message).toBe('{"status":200}');
		expect(readableLine(entry("  {not json: yes}  "))).toMatchObject({
			message: "{not json: yes}",
			level: undefined,
			severity: "info",
			fields: [],
		});
	});

	it("finds a level word in a plain line, else takes the stream's level label", () => {
		expect(readableLine(entry("2026-11-20 ERROR boom")).severity).toBe("error");
		expect(readableLine(entry("[Warning] slow")).severity).toBe("warning");
		expect(readableLine(entry("terror in the logs")).severity).toBe("info");
		expect(readableLine(entry("no word here", { service: "api", level: "debug" }))).toMatchObject({
			level: "debug",
			severity: "debug",
		});
	});
});

describe("severityOf", () => {
	it("reads levels as loggers spell them, an error before a warning", () => {
		expect(
			["FATAL", "crit", "ERR", "Error", "warn", "WARNING", "DEBUG", "info", "notice", undefined, "warn_err"].map(
				severityOf,
			),
		).toEqual([
			"critical",
			"critical",
			"error",
			"error",
			"warning",
			"warning",
			"debug",
			"info",
			"info",
			"info",
			"error",
		]);
	});
});
