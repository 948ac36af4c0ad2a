import { describe, it } from "vitest";
import { actionLogReport, auditPageReport, pageButtons } from "../../src/commands/audit.ts";
import { whoDeletedReport } from "../../src/commands/whodeleted.ts";
import type { ActionRecord } from "../../src/services/action-log.ts";
import type { AuditEvent, AuditFilters, WhoDeletedResult } from "../../src/services/audit.ts";
import { expectGoldenFile, expectReportGolden } from "../support/golden.ts";

// Fixed fixtures: example domains and documentation address ranges only. The user text carries
// markdown on purpose (underscores, asterisks, backticks) to show how each view treats it.
const event = (over: Partial<AuditEvent> & Pick<AuditEvent, "id" | "at">): AuditEvent => ({
	correlationId: null,
	action: "DELETE",
	resourceType: "User",
	resourceId: "900123",
	userId: null,
	username: null,
	userEmail: null,
	ipAddress: null,
	userAgent: null,
	function: null,
	requestPath: null,
	requestMethod: null,
	success: true,
	error: null,
	durationMs: null,
	...over,
});

const deleted = event({
	id: "1042",
	at: new Date("2026-11-20T09:15:30.250Z"),
	correlationId: "corr-0001",
	userId: 4242,
	username: "ann_lee",
	userEmail: "ann.lee@corp.example",
	ipAddress: "198.51.100.23",
	userAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
	function: "delete_user",
	requestPath: "/api/users/900123",
	requestMethod: "DELETE",
	durationMs: 12.25,
});
const failed = event({
	id: "1041",
	at: new Date("2026-11-19T23:59:59.000Z"),
	userId: 77,
	ipAddress: "2001:db8::5",
	userAgent: "curl/8.4.0",
	requestPath: "/api/users/`900123`",
	requestMethod: "DELETE",
	success: false,
	error: "ForeignKeyViolation: *games* still reference user_900123",
});
const anonymous = event({
	id: "1040",
	at: new Date("2026-11-18T12:00:00.000Z"),
	username: "**root**",
	userEmail: "x-ops_team@corp.example",
	userAgent: "SomeInternalTool (no version)",
	durationMs: 0.5,
});
const updated = event({
	id: "1039",
	at: new Date("2026-11-17T08:30:00.000Z"),
	action: "UPDATE",
	resourceType: "Game_Request",
	resourceId: null,
	userId: 5,
	username: "bob",
	userEmail: "bob@corp.example",
	ipAddress: "203.0.113.9",
	userAgent:
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
	correlationId: "corr-`0002`",
	success: false,
	error: null,
});

const whoDeleted = (over: Partial<WhoDeletedResult>): WhoDeletedResult => ({
	resourceType: "User",
	resourceId: "900123",
	deletes: [],
	lastActions: [],
	otherTypes: [],
	...over,
});

const filters: AuditFilters = {
	since: new Date("2026-11-13T09:00:00.000Z"),
	until: new Date("2026-11-20T09:00:00.000Z"),
	user: "ann.lee@corp.example",
	action: "DELETE",
	resourceType: "User",
	resourceId: "900`123",
	failedOnly: true,
};
const noFilters: AuditFilters = {
	since: new Date("2026-11-19T09:00:00.000Z"),
	until: new Date("2026-11-20T09:00:00.000Z"),
};

describe("audit and whodeleted reports in both views", () => {
	it("shows the deletes of a resource, masked", () => {
		expectReportGolden(
			"whodeleted-deletes-masked",
			whoDeletedReport(whoDeleted({ deletes: [deleted, failed, anonymous] }), false),
		);
	});

	it("shows the deletes of a resource in full to those who may see personal data", () => {
		expectReportGolden(
			"whodeleted-deletes-full",
			whoDeletedReport(whoDeleted({ deletes: [deleted, failed, anonymous] }), true),
		);
	});

	it("shows the first eight of many deletes", () => {
		const many = Array.from({ length: 9 }, (_, i) =>
			event({
				id: String(2000 - i),
				at: new Date(Date.UTC(2026, 10, 20, 9, 0, 0) - i * 60_000),
				userId: i,
				username: `user_${i}`,
			}),
		);

		expectReportGolden("whodeleted-many", whoDeletedReport(whoDeleted({ deletes: many }), true));
	});

	it("shows what is known when nothing was deleted, masked", () => {
		const result = whoDeleted({
			lastActions: [updated, deleted],
			otherTypes: [
				{ resourceType: "Game_Request", rows: 2 },
				{ resourceType: "Team", rows: 1000 },
			],
		});

		expectReportGolden("whodeleted-none-masked", whoDeletedReport(result, false));
	});

	it("shows what is known when nothing was deleted, in full", () => {
		const result = whoDeleted({
			lastActions: [updated, deleted],
			otherTypes: [
				{ resourceType: "Game_Request", rows: 2 },
				{ resourceType: "Team", rows: 1000 },
			],
		});

		expectReportGolden("whodeleted-none-full", whoDeletedReport(result, true));
	});

	it("says when nothing at all is recorded for a resource", () => {
		expectReportGolden(
			"whodeleted-nothing",
			whoDeletedReport(whoDeleted({ resourceType: "Us*er", resourceId: "9_1" }), false),
		);
	});

	it("shows an empty /audit search", () => {
		expectReportGolden("audit-page-empty", auditPageReport([], noFilters, 0, false, false));
	});

	it("shows the only page of an /audit search", () => {
		expectReportGolden(
			"audit-page-one",
			auditPageReport([deleted, failed, anonymous, updated], noFilters, 0, false, false),
		);
	});

	it("shows a middle page of an /audit search with every filter, in full", () => {
		expectReportGolden(
			"audit-page-more",
			auditPageReport([deleted, failed, anonymous, updated], filters, 1, true, true),
		);
		// Paged as /logs is: ◀ Older left, Newer ▶ right.
		expectGoldenFile(
			"audit-page-more.buttons.json",
			`${JSON.stringify(pageButtons("t0k3n", 1, true).toJSON(), null, 2)}\n`,
		);
	});

	it("shows an empty page after the first", () => {
		expectReportGolden("audit-page-past-end", auditPageReport([], filters, 2, false, true));
	});

	it("shows opsbot's action log, empty", () => {
		expectReportGolden("action-log-empty", actionLogReport([]));
	});

	it("shows opsbot's action log with every kind of result", () => {
		const records: ActionRecord[] = [
			{
				at: "2026-11-20T09:15:30.250Z",
				actor: { userId: "300000000000000001", username: "ann_lee" },
				action: "pool.terminate",
				target: "production: 12 sessions",
				result: "ok",
			},
			{
				at: "2026-11-20T09:10:00.000Z",
				actor: { userId: "300000000000000002", username: "*bob*" },
				action: "alert.restart",
				target: "prod-host/`api`",
				result: "refused: missing role",
			},
			{
				at: "2026-11-20T09:05:00.000Z",
				actor: { userId: "300000000000000003", username: "carol" },
				action: "alert.silence",
				target: "x".repeat(100),
				result: "failed: AlertManager did not answer",
			},
			{
				at: "2026-11-20T09:00:00.000Z",
				actor: { userId: "300000000000000001", username: "ann_lee" },
				action: "pool.terminate",
				target: "staging: 3 sessions",
				result: "cancelled",
			},
		];

		expectReportGolden("action-log", actionLogReport(records));
	});
});
