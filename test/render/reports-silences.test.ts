import { describe, it } from "vitest";
import {
	maintenanceReport,
	silenceAnnouncementReport,
	silenceReminderReport,
} from "../../src/alerts/silence-announcer.ts";
import {
	silenceCreatedReport,
	silenceExpireReport,
	silenceExtendedReport,
	silenceListReport,
	silencePreviewReport,
} from "../../src/commands/silence.ts";
import type { AlertManagerSilence } from "../../src/services/alertmanager.ts";
import type { ListedSilence, SilenceDraft, SilencePreview } from "../../src/services/silences.ts";
import { expectReportGolden } from "../support/golden.ts";

// Fixed times: the goldens come out the same on any day.
const NOW = Date.parse("2026-11-24T12:34:00Z");
const at = (minutes: number) => new Date(NOW + minutes * 60_000);
const ID = "5b1f0c8e-2d4a-4c3b-9e8f-0a1b2c3d4e5f";
const api = { name: "service", value: "api", isRegex: false, isEqual: true };
const prod = { name: "env", value: "production", isRegex: false, isEqual: true };

const draft: SilenceDraft = {
	environment: "production",
	matchers: [api, { name: "instance", value: "api-[12]", isRegex: true, isEqual: true }],
	startsAt: at(0),
	endsAt: at(90),
	comment: "Rolling back the api release; see #incident-42",
};

const silence = (over: Partial<ListedSilence>): ListedSilence => ({
	id: ID,
	state: "active",
	matchers: [prod, api],
	startsAt: at(-30).toISOString(),
	endsAt: at(60).toISOString(),
	createdBy: "olivia (Discord 200000000000000111) via opsbot",
	comment: "Rolling back the api release",
	environment: "production",
	mutingNow: 3,
	tool: "opsbot",
	...over,
});

describe("silence messages, in both views", () => {
	it("previews a silence that stays within its card", () => {
		const preview: SilencePreview = {
			draft,
			muted: [
				{ fingerprint: "a", alertname: "ApiErrors", environment: "production", alreadyMuted: false },
				{ fingerprint: "b", alertname: "ApiErrors", environment: "production", alreadyMuted: false },
			],
			groups: [{ alertname: "ApiErrors", environment: "production", count: 2 }],
			beyondGroup: 0,
			otherEnvironments: [],
		};
		expectReportGolden("silence-preview", silencePreviewReport(preview, 90 * 60_000, true, NOW));
	});

	it("previews a silence that reaches beyond its card and into another environment", () => {
		const preview: SilencePreview = {
			draft: { ...draft, matchers: [api] },
			muted: [
				{ fingerprint: "a", alertname: "ApiErrors", environment: "production", alreadyMuted: false },
				{ fingerprint: "b", alertname: "ApiErrors", environment: "production", alreadyMuted: false },
				{ fingerprint: "c", alertname: "ApiLatency", environment: "staging", alreadyMuted: true },
			],
			groups: [
				{ alertname: "ApiErrors", environment: "production", count: 2 },
				{ alertname: "ApiLatency", environment: "staging", count: 1 },
			],
			beyondGroup: 1,
			otherEnvironments: ["staging"],
		};
		expectReportGolden("silence-preview-wide", silencePreviewReport(preview, 90 * 60_000, true, NOW));
	});

	it("previews a maintenance window that starts later and mutes nothing yet", () => {
		const window = {
			...draft,
			matchers: [prod, api],
			startsAt: at(120),
			endsAt: at(180),
			comment: "Maintenance window: db upgrade",
		};
		const preview: SilencePreview = { draft: window, muted: [], groups: [], beyondGroup: 0, otherEnvironments: [] };
		expectReportGolden("silence-preview-maintenance", silencePreviewReport(preview, 60 * 60_000, false, NOW));
	});

	it("says a silence was made, and a maintenance window scheduled", () => {
		expectReportGolden("silence-created", silenceCreatedReport(ID, draft, false, NOW));
		const window = {
			...draft,
			matchers: [prod, api],
			startsAt: at(120),
			endsAt: at(180),
			comment: "Maintenance window: db upgrade",
		};
		expectReportGolden("maintenance-scheduled", silenceCreatedReport(ID, window, true, NOW));
	});

	it("lists active and pending silences, who made them with what, and an AlertManager that did not answer", () => {
		const listing = {
			silences: [
				silence({}),
				silence({
					id: "9c8b7a65-4321-4fed-8cba-9876543210ab",
					createdBy: "carol",
					tool: "outside opsbot",
					matchers: [{ name: "alertname", value: "Db.*", isRegex: true, isEqual: true }],
					comment: "schema migration",
					mutingNow: 0,
					endsAt: at(240).toISOString(),
				}),
				silence({
					id: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
					state: "pending",
					createdBy: "deploy@ci via opsbot CLI",
					tool: "opsbot CLI",
					environment: "staging",
					matchers: [
						{ name: "env", value: "staging", isRegex: false, isEqual: true },
						{ name: "service", value: "worker", isRegex: false, isEqual: true },
					],
					startsAt: at(120).toISOString(),
					endsAt: at(180).toISOString(),
					comment: "release 42",
					mutingNow: 0,
				}),
			],
			unavailable: [
				{ environment: "edge", reason: "AlertManager did not answer within 5000 ms; its silences are not listed." },
			],
		};
		expectReportGolden("silence-list", silenceListReport(listing, "every environment"));
		expectReportGolden("silence-list-empty", silenceListReport({ silences: [], unavailable: [] }, "production"));
	});

	it("cuts a long matcher set and comment in the list between whole matchers and words", () => {
		const many = [
			prod,
			{ name: "service", value: "payments-gateway", isRegex: false, isEqual: true },
			{ name: "instance", value: "pay-(eu|us)-west-[0-9]+", isRegex: true, isEqual: true },
			{ name: "alertname", value: "HighLatency|ErrorBudgetBurn", isRegex: true, isEqual: true },
			{ name: "team", value: "checkout", isRegex: false, isEqual: true },
		];
		const comment =
			"Rolling back the payments release after the EU checkout errors; the vendor confirmed an incident " +
			"on their side, see INC-4821. Re-enable once their status page is green for 30 minutes.";
		const listing = { silences: [silence({ matchers: many, comment })], unavailable: [] };
		expectReportGolden("silence-list-long", silenceListReport(listing, "production"));
	});

	it("says a silence was extended in place, or replaced by AlertManager", () => {
		const before: AlertManagerSilence = silence({});
		expectReportGolden(
			"silence-extended",
			silenceExtendedReport({ before, id: ID, endsAt: at(180), inPlace: true }, "production"),
		);
		expectReportGolden(
			"silence-extended-replaced",
			silenceExtendedReport(
				{ before, id: "11111111-2222-4333-8444-555555555555", endsAt: at(180), inPlace: false },
				"production",
			),
		);
	});

	it("asks before expiring a silence, then says it ended (or was already gone)", () => {
		const found: AlertManagerSilence = silence({});
		expectReportGolden("silence-expire-question", silenceExpireReport(found, undefined, "production"));
		expectReportGolden("silence-expired", silenceExpireReport(found, "expired", "production"));
		expectReportGolden("silence-expired-unknown", silenceExpireReport(found, "unknown", "production"));
	});

	it("announces outside silences and maintenance windows, and reminds before a silence ends", () => {
		const outside: AlertManagerSilence = silence({
			createdBy: "dave",
			matchers: [{ name: "alertname", value: "DbReplicaLag", isRegex: false, isEqual: true }],
			comment: "replica rebuild",
		});
		expectReportGolden("silence-announced-outside", silenceAnnouncementReport(outside, 2));
		expectReportGolden(
			"silence-announced-outside-pending",
			silenceAnnouncementReport(
				{ ...outside, state: "pending", startsAt: at(60).toISOString(), endsAt: at(120).toISOString() },
				0,
			),
		);
		const window: AlertManagerSilence = silence({
			matchers: [prod, { name: "service", value: "db", isRegex: false, isEqual: true }],
			startsAt: at(60).toISOString(),
			endsAt: at(90).toISOString(),
			comment: "Maintenance window: failover drill",
		});
		expectReportGolden("maintenance-announced-scheduled", maintenanceReport(window, "scheduled"));
		expectReportGolden("maintenance-announced-started", maintenanceReport(window, "started"));
		expectReportGolden("maintenance-announced-ended", maintenanceReport(window, "ended"));
		expectReportGolden("silence-reminder", silenceReminderReport(outside, 1));
	});
});
