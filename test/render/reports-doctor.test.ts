import { describe, it } from "vitest";
import { testAlertReport } from "../../src/commands/alerts.ts";
import { doctorReport } from "../../src/commands/doctor.ts";
import type { DoctorResult } from "../../src/services/doctor.ts";
import { expectReportGolden } from "../support/golden.ts";

const startedAt = new Date("2026-11-24T13:00:00Z");
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDDHAQ4E0iAg1GzUczZ7Newqkwv3p14PP2CWlsXhrfmY";

describe("opsbot doctor's report", () => {
	it("names each broken piece with what to do, the key to pin and the AlertManager receiver", () => {
		const result: DoctorResult = {
			startedAt,
			durationMs: 812,
			configPath: "./opsbot.yaml",
			findings: [
				{
					area: "config",
					subject: "config",
					state: "ok",
					detail: "./opsbot.yaml is valid: 1 environment (production)",
				},
				{
					area: "config",
					subject: "production · optional parts",
					state: "off",
					detail: "not configured: loki (/logs from Loki)",
					fix: 'README, "Adding your systems"',
				},
				{ area: "discord", subject: "token", state: "ok", detail: "valid: logged in as opsbot" },
				{
					area: "discord",
					subject: "channel #alerts",
					state: "broken",
					detail: "the bot lacks Embed Links (alerts.routes.0)",
					fix: "Edit Channel > Permissions: allow these for the opsbot role, or for @everyone",
				},
				{
					area: "discord",
					subject: "role admins",
					state: "broken",
					detail: "300000000000000999 is not a role of this server (discord.roles.admins)",
					fix: "Server Settings > Roles, right-click the role > Copy Role ID (Developer Mode on)",
				},
				{
					area: "discord",
					subject: "slash commands",
					state: "degraded",
					detail: "registered in server 100000000000000001 differ from the code: /audit missing",
					fix: "node deploy-commands.ts --guild 100000000000000001 (--dry-run first shows the change)",
				},
				{
					area: "service",
					subject: "production · backend",
					state: "broken",
					detail: "http: connection refused",
					fix: "check that the URL answers from this machine (environments.production.http)",
				},
				{
					area: "ssh",
					subject: "production · ssh prod.internal:22",
					state: "broken",
					detail:
						"answers, but no host key is pinned, so opsbot will not connect; it presents ssh-ed25519 " +
						"SHA256:v6ZWixgZCc3Qkar6thhPApDIXJKv5isnDRgl9B7B8d0",
					fix:
						"compare it with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub there), then pin " +
						"it: the hostKey line below",
				},
			],
			hostKeys: [
				{
					environment: "production",
					host: "prod.internal",
					fingerprint: "SHA256:v6ZWixgZCc3Qkar6thhPApDIXJKv5isnDRgl9B7B8d0",
					configLine: `hostKey: ${KEY}`,
				},
			],
			alertmanagerSnippet:
				"receivers:\n  - name: opsbot\n    webhook_configs:\n      - url: http://opsbot.internal:9095/alerts\n" +
				"        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n" +
				"            # holds the value of WEBHOOK_TOKEN\n            credentials_file: /etc/alertmanager/opsbot-token",
		};
		expectReportGolden("doctor-faults", doctorReport(result));
	});

	it("says all good when nothing is wrong", () => {
		expectReportGolden(
			"doctor-ok",
			doctorReport({
				startedAt,
				durationMs: 95,
				configPath: "./opsbot.yaml",
				hostKeys: [],
				findings: [
					{
						area: "config",
						subject: "config",
						state: "ok",
						detail: "./opsbot.yaml is valid: 1 environment (production)",
					},
					{ area: "discord", subject: "token", state: "ok", detail: "valid: logged in as opsbot" },
				],
			}),
		);
	});
});

describe("the test alert's report", () => {
	it("says where the TEST group went and when it resolves (/alerts test)", () => {
		expectReportGolden(
			"test-alert-sent",
			testAlertReport({
				channels: ["400000000000000001", "400000000000000002"],
				severity: "critical",
				resolvesInSeconds: 60,
			}),
		);
	});

	it("says it is resolved (opsbot test-alert, once done)", () => {
		expectReportGolden(
			"test-alert-resolved",
			testAlertReport({ channels: ["400000000000000001"], severity: "warning", resolvesInSeconds: 0 }),
		);
	});
});
