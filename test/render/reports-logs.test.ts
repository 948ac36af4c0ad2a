import { describe, it } from "vitest";
import { logsReport, logsVerbatimReport } from "../../src/commands/logs.ts";
import { reportToText } from "../../src/render/report.ts";
import type { LogEntry, LogResult } from "../../src/services/logs.ts";
import { expectGoldenFile, expectReportGolden } from "../support/golden.ts";

// Fixed fixtures: fixed nanosecond times, example domains only. The lines and queries carry
// markdown, backticks, backslashes, quotes and control characters on purpose, to show how each
// view treats them. NAME.cli.txt is what `opsbot logs` prints (the terminal view of
// logsVerbatimReport); those goldens were written by the CLI's own text renderer before the
// typed Report parts, so they show that the CLI prints the same bytes as before.
const BASE_NS = 1_795_251_600_123_456_789n; // 2026-11-21T09:00:00.123456789Z
const SECOND_NS = 1_000_000_000n;

let ids = 0;
const entry = (secondsBefore: number, line: string, labels: Record<string, string> = { service: "api" }): LogEntry => ({
	ns: BASE_NS - BigInt(secondsBefore) * SECOND_NS,
	id: (ids++).toString(16).padStart(16, "0"),
	line,
	labels,
});

const result = (over: Partial<LogResult>): LogResult => ({
	source: "loki",
	query: '{service="api"}',
	tenant: "team-a",
	startNs: BASE_NS - 3_600n * SECOND_NS,
	endNs: BASE_NS + 60n * SECOND_NS,
	direction: "backward",
	entries: [],
	more: false,
	...over,
});

const mixed = [
	entry(
		1,
		JSON.stringify({
			level: "error",
			msg: "payment failed: card declined",
			correlation_id: "c-2",
			user_id: 9,
			extra: "not shown",
		}),
	),
	entry(
		2,
		JSON.stringify({
			levelname: "WARNING",
			message: "slow query on *games* took 2_300 ms",
			duration_ms: 2300.5,
			path: "/api/games/`42`",
		}),
	),
	entry(
		3,
		JSON.stringify({
			severity: "info",
			event: "user <@123> logged in; ping @everyone and @here",
			resource_type: "User",
			resource_id: "9_1",
		}),
	),
	entry(4, '2026-11-20 ERROR Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n\tboom()'),
	entry(5, "plain line with a level only in its labels", { service: "api", level: "debug" }),
	entry(
		6,
		'copied `C:\\temp\\new` to "D:\\backup" ```done``` ~~gone~~ > quote # heading | pipe [link](https://example.com)',
	),
	entry(7, "unrelated\twith a tab and an \u001b[31mescape\u0007 and DEL\u007f"),
	entry(8, "   {not json after all: yes}   "),
	entry(9, JSON.stringify({ lvl: "CRITICAL", error: "disk full" })),
	entry(10, JSON.stringify({ msg: "no level anywhere", status: 200, method: "GET" })),
];

const trickyQuery =
	'{service="api"} |= "C:\\\\temp\\\\new" |~ "(?i)*pay*_ment_" != `raw \\ text` | json | level=~"err.+"';

describe("logs reports in both views", () => {
	it("shows lines of every level, JSON and plain, with markdown and control characters", () => {
		const r = result({ entries: mixed, query: trickyQuery, more: true });

		expectReportGolden("logs-lines", logsReport(r, "Logs of api_v2 on production"));
		expectGoldenFile(
			"logs-lines.cli.txt",
			`${reportToText(logsVerbatimReport(r, "Logs of api_v2 on production"), { width: Infinity })}\n`,
		);
	});

	it("shows one line", () => {
		const r = result({ entries: [entry(30, "INFO started")] });

		expectReportGolden("logs-one", logsReport(r, "Logs of api on production"));
		expectGoldenFile(
			"logs-one.cli.txt",
			`${reportToText(logsVerbatimReport(r, "Logs of api on production"), { width: Infinity })}\n`,
		);
	});

	it("names the tenant when nothing matches and Loki has no logs at all for it", () => {
		const r = result({});

		expectReportGolden("logs-empty-tenant", logsReport(r, "Logs of api on production", { tenantHasNoLogs: true }));
		expectGoldenFile(
			"logs-empty-tenant.cli.txt",
			`${reportToText(logsVerbatimReport(r, "Logs of api on production"), { width: Infinity })}\n`,
		);
	});

	it("gives no tenant hint when nothing matches but the tenant has logs", () => {
		expectReportGolden("logs-empty", logsReport(result({}), "Logs of api on production", { tenantHasNoLogs: false }));
	});

	it("says when nothing matches over docker logs", () => {
		const r = result({
			source: "docker",
			tenant: undefined,
			query: "docker logs --timestamps --since 1795248000.123 --until 1795251660.124 --tail 400 api",
		});

		expectReportGolden("logs-empty-docker", logsReport(r, "Logs of api on staging"));
		expectGoldenFile(
			"logs-empty-docker.cli.txt",
			`${reportToText(logsVerbatimReport(r, "Logs of api on staging"), { width: Infinity })}\n`,
		);
	});

	it("keeps a way back from an empty Older page", () => {
		const r = result({ before: { ns: BASE_NS - 3_000n * SECOND_NS, id: "00000000000000aa" } });

		expectReportGolden("logs-empty-older", logsReport(r, "Logs of api on production"));
	});

	it("keeps a way back from an empty Newer page", () => {
		const r = result({ direction: "forward", after: { ns: BASE_NS - 10n * SECOND_NS, id: "00000000000000bb" } });

		expectReportGolden("logs-empty-newer", logsReport(r, "Logs of api on production"));
	});

	it("shows the first twenty of more lines, with older ones to page to", () => {
		const r = result({ entries: Array.from({ length: 25 }, (_, i) => entry(100 + i * 20, `line ${i}`)), more: true });

		expectReportGolden("logs-more-older", logsReport(r, "Logs of api on production"));
		expectGoldenFile(
			"logs-more-older.cli.txt",
			`${reportToText(logsVerbatimReport(r, "Logs of api on production"), { width: Infinity })}\n`,
		);
	});

	it("shows a forward page with newer ones to page to", () => {
		const r = result({
			direction: "forward",
			after: { ns: BASE_NS - 3_000n * SECOND_NS, id: "00000000000000cc" },
			entries: Array.from({ length: 3 }, (_, i) => entry(2_000 + i * 20, `line ${i}`)),
			more: true,
		});

		expectReportGolden("logs-more-newer", logsReport(r, "Logs of api on production"));
	});

	it("cuts long messages and fields", () => {
		const long = JSON.stringify({
			level: "error",
			msg: `${"a_b*".repeat(100)}END`,
			correlation_id: "c".repeat(100),
			resource_id: "r_".repeat(80),
		});
		const r = result({ entries: [entry(1, long), entry(2, `${"plain `tick` ".repeat(40)}END`)] });

		expectReportGolden("logs-long-lines", logsReport(r, "Logs of api on production"));
		expectGoldenFile(
			"logs-long-lines.cli.txt",
			`${reportToText(logsVerbatimReport(r, "Logs of api on production"), { width: Infinity })}\n`,
		);
	});

	it("shows a full page of long lines", () => {
		const r = result({
			entries: Array.from({ length: 20 }, (_, i) => entry(i, `${i} ${"x".repeat(290)}`)),
			more: true,
		});

		expectReportGolden("logs-long-page", logsReport(r, "Logs of api on production"));
	});

	it("shows a long LogQL query", () => {
		const query = `{service="api"} ${Array.from({ length: 200 }, (_, i) => `!= "noise_${i}"`).join(" ")}`;
		const r = result({ entries: [entry(1, "kept")], query });

		expectReportGolden("logs-long-query", logsReport(r, "Logs of query on production"));
		expectGoldenFile(
			"logs-long-query.cli.txt",
			`${reportToText(logsVerbatimReport(r, "Logs of query on production"), { width: Infinity })}\n`,
		);
	});
});
