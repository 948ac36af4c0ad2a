import { describe, it } from "vitest";
import { deadmanMessage } from "../../src/alerts/deadman.ts";
import { ackReminderMessage, escalationMessage } from "../../src/alerts/escalation.ts";
import { type AlertGroupContext, alertGroupReport } from "../../src/alerts/group-report.ts";
import { byUrgency, heldGroup, heldGroupsReport } from "../../src/alerts/held-groups.ts";
import {
	type AlertMessage,
	renderAlertGroup,
	renderStormOver,
	renderStormSummary,
	type StormLine,
	type StormView,
	type SummaryMessage,
	stormReport,
} from "../../src/alerts/render.ts";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import { reportToText } from "../../src/render/report.ts";
import { newTestAlert } from "../../src/test-alert.ts";
import { payload } from "../support/alert-fixtures.ts";
import { expectGoldenFile, expectReportGolden } from "../support/golden.ts";

// Fixed times: every golden must come out the same on any day, in any time zone.
const STARTED = Date.parse("2026-11-24T12:00:00Z");
const NOW = Date.parse("2026-11-24T12:34:00Z");
const GROUP_ID = "0123456789abcdef0123456789abcdef";
const ROLE = "900000000000000009";
const CHART = Buffer.from("not really a png, but 40 bytes of chart.");

/**
 * JSON with object keys sorted: the goldens compare what a message says, not the order a renderer wrote its keys in.
 */
function stableJson(value: unknown): string {
	const sorted = (v: unknown): unknown => {
		if (Buffer.isBuffer(v)) return { bytes: v.length };
		if (Array.isArray(v)) return v.map(sorted);
		if (v && typeof v === "object")
			return Object.fromEntries(
				Object.keys(v)
					.sort()
					.map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
			);
		return v;
	};
	return `${JSON.stringify(sorted(value), null, 2)}\n`;
}

/** The same group's Report in the terminal view (exact values, no markup), beside its Discord golden. */
function expectTerminalGolden(name: string, body: WebhookPayload, context: AlertGroupContext): void {
	expectGoldenFile(`${name}.txt`, `${reportToText(alertGroupReport(body, context).report)}\n`);
}

/**
 * What Discord gets of a message: the text, the embed(s), the components, the attachments' names and sizes (and which
 * groups a storm summary lists).
 */
function messageJson(message: AlertMessage | SummaryMessage, listed?: readonly string[]): string {
	const { content, allowedMentions, components, files } = message;
	return stableJson({
		content,
		allowedMentions,
		...("embed" in message ? { embed: message.embed } : { embeds: message.embeds }),
		components,
		files: files.map((f) => ({ name: f.name, size: f.data.length })),
		...(listed ? { listed } : {}),
	});
}

const ZERO = "0001-01-01T00:00:00Z";

/** A webhook body: what every fixture shares, then its own fields. */
const webhook = (fields: Record<string, unknown>) =>
	WebhookPayload.parse({
		version: "4",
		status: "firing",
		receiver: "opsbot",
		externalURL: "http://alertmanager.example.com:9093",
		...fields,
	});

const critical = webhook({
	groupKey: '{}:{alertname="PostgresDown"}',
	groupLabels: { alertname: "PostgresDown" },
	commonLabels: { alertname: "PostgresDown", severity: "critical", env: "prod", job: "postgres" },
	commonAnnotations: {
		summary: "PostgreSQL is down on prod",
		description: "pg_up == 0 for 2 minutes.",
		runbook_url: "https://runbooks.example.com/postgres-down",
		dashboard_url: "https://grafana.example.com/d/pg",
	},
	alerts: [
		{
			status: "firing",
			labels: { alertname: "PostgresDown", severity: "critical", env: "prod", job: "postgres", instance: "db-1:5432" },
			annotations: { summary: "db-1 is down" },
			startsAt: "2026-11-24T12:00:00Z",
			endsAt: ZERO,
			generatorURL: "http://prometheus.example.com:9090/graph?g0.expr=pg_up+%3D%3D+0&g0.tab=1",
			fingerprint: "a000000000000001",
		},
		{
			status: "firing",
			labels: { alertname: "PostgresDown", severity: "critical", env: "prod", job: "postgres", instance: "db-2:5432" },
			annotations: { summary: "db-2 is down" },
			startsAt: "2026-11-24T12:01:30Z",
			endsAt: ZERO,
			generatorURL: "http://prometheus.example.com:9090/graph?g0.expr=pg_up+%3D%3D+0&g0.tab=1",
			fingerprint: "a000000000000002",
		},
	],
});

const warning = webhook({
	groupKey: '{}:{alertname="ApiErrors"}',
	groupLabels: { alertname: "ApiErrors", env: "staging" },
	commonLabels: { alertname: "ApiErrors", severity: "warning", env: "staging", container: "api" },
	commonAnnotations: { summary: "5xx above 2 %" },
	alerts: [
		{
			status: "firing",
			labels: { alertname: "ApiErrors", severity: "warning", env: "staging", container: "api", route: "/orders" },
			startsAt: "2026-11-24T12:10:00Z",
			endsAt: ZERO,
			generatorURL: "http://prometheus.example.com:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29+%3E+0.02",
			fingerprint: "b000000000000001",
		},
		{
			status: "resolved",
			labels: { alertname: "ApiErrors", severity: "warning", env: "staging", container: "api", route: "/users" },
			startsAt: "2026-11-24T12:05:00Z",
			endsAt: "2026-11-24T12:20:00Z",
			generatorURL: "http://prometheus.example.com:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29+%3E+0.02",
			fingerprint: "b000000000000002",
		},
	],
});

const resolved = WebhookPayload.parse({
	...critical,
	status: "resolved",
	alerts: critical.alerts.map((a) => ({ ...a, status: "resolved", endsAt: "2026-11-24T12:12:00Z" })),
});

/**
 * Untrusted text everywhere it can be: markdown, mentions, @everyone, a link that would break out of its parentheses.
 */
const hostile = webhook({
	groupKey: "{}:{hostile}",
	receiver: "ops_*team*",
	groupLabels: { alertname: "Disk **full** on <@123>", team: "a|b" },
	commonLabels: { alertname: "Disk **full** on <@123>", severity: "critical", team: "a|b", path: "/var/`lib`" },
	commonAnnotations: {
		summary: "@everyone [click](https://evil.example/x) __now__",
		description: "# heading\n> quote\n- item ~~gone~~ ||spoiler||",
		runbook_url: "https://runbooks.example.com/a b)(c",
	},
	externalURL: "javascript:alert(1)",
	alerts: [
		{
			status: "firing",
			labels: {
				alertname: "Disk **full** on <@123>",
				severity: "critical",
				team: "a|b",
				path: "/var/`lib`",
				device: "sd*a*_1",
			},
			annotations: { summary: "<t:0:R> and <#1>" },
			startsAt: "2026-11-24T12:00:00Z",
			endsAt: ZERO,
			generatorURL: "http://prometheus.example.com:9090/graph?g0.expr=x+%3E+1",
			fingerprint: "c000000000000001",
		},
		{
			status: "firing",
			labels: {
				alertname: "Disk **full** on <@123>",
				severity: "critical",
				team: "a|b",
				path: "/var/`lib`",
				device: "sd[b](x)",
			},
			startsAt: "not a time",
			endsAt: ZERO,
			fingerprint: "c000000000000002",
		},
	],
});

describe("alert group messages (golden)", () => {
	it("renders a critical group that pings the on-call role, with links, a chart and every button", () => {
		const message = renderAlertGroup(critical, {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			chart: CHART,
			actions: { groupId: GROUP_ID, restartContainer: "postgres", logs: true },
		});

		expectGoldenFile("alert-critical.discord.json", messageJson(message));
		expectTerminalGolden("alert-critical", critical, {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			chart: true,
		});
	});

	it("renders an acknowledged critical group without the ping", () => {
		const context = {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			ack: { userId: "200000000000000002", username: "alice", at: NOW - 5 * 60_000 },
		};
		const message = renderAlertGroup(critical, { ...context, actions: { groupId: GROUP_ID, logs: false } });

		expectGoldenFile("alert-critical-acked.discord.json", messageJson(message));
		expectTerminalGolden("alert-critical-acked", critical, context);
	});

	it("renders a warning group with its acknowledgement, silence and failed restart, and the matching buttons", () => {
		const message = renderAlertGroup(warning, {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			ack: { userId: "200000000000000002", username: "alice", at: NOW - 10 * 60_000 },
			silence: { id: "silence-1", username: "bob_the_*ops*", until: NOW + 4 * 3_600_000 },
			restart: {
				userId: "200000000000000003",
				container: "api",
				at: NOW - 2 * 60_000,
				ok: false,
				exitCode: 1,
				reason: "Error response from daemon: No such container: api",
			},
			actions: { groupId: GROUP_ID, restartContainer: "api", logs: true },
		});

		expectGoldenFile("alert-warning-acked-silenced.discord.json", messageJson(message));
		expectTerminalGolden("alert-warning-acked-silenced", warning, {
			firstFiringAt: STARTED,
			now: NOW,
			ack: { userId: "200000000000000002", username: "alice", at: NOW - 10 * 60_000 },
			silence: { id: "silence-1", username: "bob_the_*ops*", until: NOW + 4 * 3_600_000 },
			restart: {
				userId: "200000000000000003",
				container: "api",
				at: NOW - 2 * 60_000,
				ok: false,
				exitCode: 1,
				reason: "Error response from daemon: No such container: api",
			},
		});
	});

	it("renders opsbot's own test alert so nobody mistakes it for an incident", () => {
		const routes = { defaultChannel: "400000000000000001", routes: [] };
		const body = newTestAlert(routes, {
			severity: "critical",
			sentBy: "alice@ops-laptop",
			via: "opsbot test-alert",
		}).payload("firing", new Date(NOW));
		const alerts = (body.alerts as Record<string, unknown>[]).map((a) => ({
			...a,
			startsAt: new Date(STARTED).toISOString(),
			fingerprint: "d000000000000001",
		}));
		const test = WebhookPayload.parse({ ...body, groupKey: '{}/{opsbot_test="true"}:{run="0"}', alerts });
		const context = { firstFiringAt: STARTED, now: NOW, mentionRole: ROLE };
		const message = renderAlertGroup(test, { ...context, actions: { groupId: GROUP_ID, logs: false } });

		expectGoldenFile("alert-test.discord.json", messageJson(message));
		expectTerminalGolden("alert-test", test, context);
	});

	it("leaves an expired silence out and offers the Silence menu again", () => {
		const message = renderAlertGroup(warning, {
			firstFiringAt: STARTED,
			now: NOW,
			silence: { id: "silence-1", username: "bob", until: NOW - 1 },
			restart: { userId: "200000000000000003", container: "api", at: NOW - 2 * 60_000, ok: true },
			actions: { groupId: GROUP_ID, restartContainer: "api", logs: false },
		});

		expectGoldenFile("alert-warning-silence-expired.discord.json", messageJson(message));
	});

	it("renders a resolved group: how long it fired, only the Timeline button, no ping", () => {
		const message = renderAlertGroup(resolved, {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			ack: { userId: "200000000000000002", username: "alice", at: NOW - 5 * 60_000 },
			actions: { groupId: GROUP_ID, restartContainer: "postgres", logs: true, episode: 3 },
		});

		expectGoldenFile("alert-resolved.discord.json", messageJson(message));
		expectTerminalGolden("alert-resolved", resolved, {
			firstFiringAt: STARTED,
			now: NOW,
			ack: { userId: "200000000000000002", username: "alice", at: NOW - 5 * 60_000 },
		});
	});

	it("renders a group that flapped: counted over the last hour, with a link to the previous episode's card", () => {
		const context = {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			// The first flap is over an hour old: not counted.
			flaps: [NOW - 61 * 60_000, NOW - 40 * 60_000, NOW - 20 * 60_000, NOW - 5 * 60_000],
			previous: { guildId: "100000000000000001", channelId: "400000000000000001", messageId: "500000000000000007" },
		};
		const message = renderAlertGroup(critical, { ...context, actions: { groupId: GROUP_ID, logs: false } });

		expectGoldenFile("alert-flapped.discord.json", messageJson(message));
		expectTerminalGolden("alert-flapped", critical, context);
	});

	it("renders an escalated group: whom it mentioned and when, on the card", () => {
		const context = {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			clocks: {
				escalated: { at: NOW - 4 * 60_000, to: { roles: ["300000000000000007"], users: ["200000000000000031"] } },
			},
		};
		const message = renderAlertGroup(critical, { ...context, actions: { groupId: GROUP_ID, logs: false } });

		expectGoldenFile("alert-escalated.discord.json", messageJson(message));
		expectTerminalGolden("alert-escalated", critical, context);
	});

	it("renders a group whose acknowledgement ran out: firing again, saying whose ran out when", () => {
		const context = {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			ack: { userId: "200000000000000002", username: "alice", at: NOW - 40 * 60_000 },
			clocks: { ackExpiredAt: NOW - 10 * 60_000 },
		};
		const message = renderAlertGroup(critical, { ...context, actions: { groupId: GROUP_ID, logs: false } });

		expectGoldenFile("alert-ack-expired.discord.json", messageJson(message));
		expectTerminalGolden("alert-ack-expired", critical, context);
	});

	it("renders the escalation mention and the ack reminder: content, whom they may ping, terminal words", () => {
		const step = { key: "k", step: 0, dueAt: NOW, unhandledMs: 12 * 60_000 };
		const targets = { roles: ["300000000000000007"], users: ["200000000000000031"] };
		const messages = {
			escalation: escalationMessage(hostile, step, targets),
			repeated: escalationMessage(critical, { ...step, step: 2, unhandledMs: 72 * 60_000 }, targets),
			ackReminder: ackReminderMessage(critical, { userId: "200000000000000002", username: "a", at: NOW }, 30 * 60_000),
		};

		expectGoldenFile(
			"alert-clock-messages.discord.json",
			stableJson(
				Object.fromEntries(Object.entries(messages).map(([k, m]) => [k, { content: m.content, mentions: m.mentions }])),
			),
		);
		expectGoldenFile(
			"alert-clock-messages.txt",
			`${Object.values(messages)
				.map((m) => m.text)
				.join("\n")}\n`,
		);
	});

	it("renders the dead man's notices: the pipeline silent (AlertManager answering or not), and back", () => {
		const since = NOW - 12 * 60_000;
		const answering = {
			environments: ["prod"],
			url: "http://127.0.0.1:9093",
			lastAnswerAt: NOW - 20_000,
			up: true,
			problem: null,
		};
		const silent = { ...answering, lastAnswerAt: NOW - 30 * 60_000, up: false, problem: "connection refused" };
		const down = { kind: "down" as const, key: "k", since };
		const messages = {
			answering: deadmanMessage("Watchdog", down, { alertmanagers: [answering], lastWebhookAt: NOW - 3 * 60_000 }, NOW),
			unreachable: deadmanMessage("Watch*dog*", down, { alertmanagers: [silent], lastWebhookAt: undefined }, NOW),
			back: deadmanMessage(
				"Watchdog",
				{ kind: "back", key: "k", since, at: NOW },
				{ alertmanagers: [], lastWebhookAt: NOW },
				NOW,
			),
		};

		expectGoldenFile(
			"alert-deadman.discord.json",
			stableJson(Object.fromEntries(Object.entries(messages).map(([k, m]) => [k, { content: m.content }]))),
		);
		expectGoldenFile(
			"alert-deadman.txt",
			`${Object.values(messages)
				.map((m) => m.text)
				.join("\n")}\n`,
		);
	});

	it("renders a group found by reconciliation: AlertManager held it but its webhook never arrived", () => {
		const found = WebhookPayload.parse({ ...warning, opsbotReconciled: "found" });
		const context = { firstFiringAt: STARTED, now: NOW };
		const message = renderAlertGroup(found, { ...context, actions: { groupId: GROUP_ID, logs: false } });

		expectGoldenFile("alert-found-by-reconciliation.discord.json", messageJson(message));
		expectTerminalGolden("alert-found-by-reconciliation", found, context);
	});

	it("renders a group resolved because AlertManager no longer holds it, not as if a resolution came", () => {
		const gone = WebhookPayload.parse({ ...resolved, opsbotReconciled: "gone" });
		const context = { firstFiringAt: STARTED, now: NOW, mentionRole: ROLE };
		const message = renderAlertGroup(gone, { ...context, actions: { groupId: GROUP_ID, logs: true } });

		expectGoldenFile("alert-resolved-gone.discord.json", messageJson(message));
		expectTerminalGolden("alert-resolved-gone", gone, context);
	});

	it("renders a 300-alert group: the list cut with the full list attached, and AlertManager's max_alerts note", () => {
		const message = renderAlertGroup(payload(300, { truncatedAlerts: 12 }), {
			firstFiringAt: STARTED,
			now: NOW,
			chart: CHART,
			actions: { groupId: GROUP_ID, logs: true },
		});

		expectGoldenFile("alert-300.discord.json", messageJson(message));
		expectTerminalGolden("alert-300", payload(300, { truncatedAlerts: 12 }), { firstFiringAt: STARTED, now: NOW });
	});

	it("renders a 300-alert group that Discord would not take files for: it says what is missing", () => {
		const message = renderAlertGroup(payload(300), {
			firstFiringAt: STARTED,
			now: NOW,
			chart: CHART,
			withoutAttachments: true,
			actions: { groupId: GROUP_ID, logs: false },
		});

		expectGoldenFile("alert-300-without-attachments.discord.json", messageJson(message));
	});

	it("renders untrusted text literally: no markup, mention, masked link or @everyone from a payload", () => {
		const message = renderAlertGroup(hostile, {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			actions: { groupId: GROUP_ID, logs: false },
		});

		expectGoldenFile("alert-hostile.discord.json", messageJson(message));
		expectTerminalGolden("alert-hostile", hostile, { firstFiringAt: STARTED, now: NOW });
	});

	it("keeps hostile names on one line, whole emoji at the cut, invisible characters out and URLs in text intact", () => {
		const body = webhook({
			groupKey: "{}:{hostile-lines}",
			groupLabels: { alertname: `${"E".repeat(98)}🔥x\n[OK] Health of production: ok` },
			commonLabels: {
				alertname: `${"E".repeat(98)}🔥x\n[OK] Health of production: ok`,
				severity: "critical",
				env: "prod\r\u2028\u3164\u{E0041}",
			},
			commonAnnotations: {
				summary: `Z${"\u0301".repeat(500)} down\u2029 again`,
				description:
					"Dashboard: https://grafana.example.com/d/api-5xx/checkout_errors?var-env=prod (see also " +
					"https://status.stripe.com)\nlog: \u001b[31mred\u0007",
				runbook_url: "https://runbooks.example.com/a_b-c",
				dashboard_url: "javascript:alert(1)",
			},
			alerts: [
				{
					status: "firing",
					labels: { alertname: "x", severity: "critical", instance: "db\n1\u00AD" },
					annotations: { summary: "line\nbreak" },
					startsAt: "2026-11-24T12:00:00Z",
					endsAt: ZERO,
					generatorURL: "http://prometheus.example.com:9090/graph?g0.expr=up",
					fingerprint: "d000000000000001",
				},
			],
		});
		const message = renderAlertGroup(body, {
			firstFiringAt: STARTED,
			now: NOW,
			mentionRole: ROLE,
			actions: { groupId: GROUP_ID, logs: false },
		});

		expectGoldenFile("alert-hostile-lines.discord.json", messageJson(message));
		expectTerminalGolden("alert-hostile-lines", body, { firstFiringAt: STARTED, now: NOW });
	});
});

const line = (
	i: number,
	severity: string,
	options: { posted?: boolean; name?: string; environment?: string } = {},
): StormLine => ({
	groupId: `g${i}`,
	name: options.name ?? `Group${i}`,
	severity,
	environment: options.environment ?? "",
	firing: 1 + (i % 3),
	since: STARTED + i * 1_000,
	posted: options.posted ?? false,
	url: options.posted
		? `https://discord.com/channels/100000000000000001/400000000000000001/5000000000000000${String(i).padStart(2, "0")}`
		: undefined,
});

describe("storm messages (golden)", () => {
	const small: StormView = {
		startedAt: STARTED,
		firing: [
			line(1, "critical", { posted: true, environment: "prod" }),
			line(2, "critical", { name: "Disk **full** [x](y)\n[OK] Health of production: ok", environment: "prod" }),
			line(3, "warning", { posted: true, environment: "staging" }),
			line(4, "info"),
			line(5, ""),
		],
		resolved: 2,
		total: 7,
	};
	const large: StormView = {
		startedAt: STARTED,
		firing: Array.from({ length: 400 }, (_, i) =>
			line(i, i < 20 ? "critical" : "warning", {
				posted: i % 2 === 0,
				name: ["PostgresDown", "DiskFilling", "ApiErrors", "HighLatency", "CertExpiry", "QueueStuck", "NodeDown"][
					i % 7
				]!,
				environment: i % 3 === 0 ? "prod" : "staging",
			}),
		),
		resolved: 0,
		total: 400,
	};

	it("renders a small storm summary with links to the posted groups", () => {
		const { message, listed } = renderStormSummary(small);

		expectGoldenFile("storm-summary-small.discord.json", messageJson(message, listed));
		expectGoldenFile("storm-summary-small.txt", `${reportToText(stormReport(small))}\n`);
	});

	it("renders a 400-group storm summary over several embeds with the full list attached", () => {
		const { message, listed } = renderStormSummary(large);

		expectGoldenFile("storm-summary-large.discord.json", messageJson(message, listed));
		expectGoldenFile("storm-summary-large.txt", `${reportToText(stormReport(large))}\n`);
	});

	it("renders a 400-group storm summary without attachments", () => {
		const { message, listed } = renderStormSummary(large, { withoutAttachments: true });

		expectGoldenFile("storm-summary-large-without-attachments.discord.json", messageJson(message, listed));
	});

	it("renders a storm summary once every group resolved", () => {
		const { message, listed } = renderStormSummary({ startedAt: STARTED, firing: [], resolved: 3, total: 3 });

		expectGoldenFile("storm-summary-all-resolved.discord.json", messageJson(message, listed));
		expectGoldenFile(
			"storm-summary-all-resolved.txt",
			`${reportToText(stormReport({ startedAt: STARTED, firing: [], resolved: 3, total: 3 }))}\n`,
		);
	});

	it("renders the storm-over record with the groups still firing", () => {
		expectGoldenFile("storm-over-still-firing.discord.json", messageJson(renderStormOver(small, NOW)));
	});

	it("renders the storm-over record once nothing fires", () => {
		expectGoldenFile(
			"storm-over-calm.discord.json",
			messageJson(renderStormOver({ startedAt: STARTED, firing: [], resolved: 1, total: 1 }, NOW)),
		);
	});
});

describe("the groups opsbot holds (golden, both views)", () => {
	const state = (id: string, body: WebhookPayload, rest: Partial<Parameters<typeof heldGroup>[0]> = {}) => ({
		groupId: id,
		channel: "400000000000000001",
		episode: 1,
		status: body.status,
		firstFiringAt: STARTED,
		messageId: null,
		payload: body,
		ack: null,
		silence: null,
		restart: null,
		signature: "",
		...rest,
	});

	it("lists each group with its state, acknowledgement, silence and message link, critical and firing first", () => {
		const groups = [
			state("g1", critical, {
				messageId: "500000000000000001",
				ack: { userId: "200000000000000002", username: "alice", at: NOW - 5 * 60_000 },
			}),
			state("g2", warning, {
				messageId: "500000000000000002",
				silence: { id: "s-1", username: "bob_the_*ops*", until: NOW + 3_600_000 },
			}),
			state("g3", resolved, {
				messageId: "500000000000000003",
				silence: { id: "s-2", username: "carol", until: NOW - 1 },
			}),
			state("g4", hostile),
			state(
				"g5",
				webhook({
					groupKey: "{}:{long}",
					groupLabels: { alertname: "L".repeat(10_000) },
					commonLabels: { alertname: "L".repeat(10_000), severity: "warning" },
					alerts: [
						{
							status: "firing",
							labels: { alertname: "L".repeat(10_000) },
							startsAt: "2026-11-24T12:00:00Z",
							fingerprint: "e000000000000001",
						},
					],
				}),
			),
			state(
				"g6",
				webhook({
					groupKey: "{}:{nl}",
					groupLabels: { alertname: "nl\n[OK] Health of production: ok" },
					commonLabels: { alertname: "nl\n[OK] Health of production: ok", severity: "info", env: "prod" },
					alerts: [
						{
							status: "firing",
							labels: { alertname: "nl\n[OK] Health of production: ok" },
							startsAt: "2026-11-24T12:00:00Z",
							fingerprint: "e000000000000002",
						},
					],
				}),
			),
		]
			.map((g) => heldGroup(g, { guildId: "100000000000000001", now: NOW }))
			.sort(byUrgency);

		expectReportGolden("alerts-held", heldGroupsReport(groups));
	});

	it("says so when it holds none", () => {
		expectReportGolden("alerts-held-none", heldGroupsReport([]));
	});
});
