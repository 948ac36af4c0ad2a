import { describe, expect, it } from "vitest";
import type { Episode, EpisodeEvent, FiringEpisode, HistorySummary } from "../../src/alerts/episodes.ts";
import { firingReport, historyReport, timelineMarkdown, timelineReport } from "../../src/alerts/incident-reports.ts";
import { threadPost, threadPostFiles } from "../../src/alerts/threads.ts";
import { expectGoldenFile, expectReportGolden } from "../support/golden.ts";

// Fixed times: every golden must come out the same on any day, in any time zone.
const T0 = Date.parse("2026-11-24T12:00:00Z");
const NOW = Date.parse("2026-11-24T12:34:00Z");
const GUILD = "100000000000000001";
const CHANNEL = "400000000000000001";
const GROUP = "0123456789abcdef0123456789abcdef";
const ZERO = "0001-01-01T00:00:00Z";

const episode = (fields: Partial<Episode>): Episode => ({
	groupId: GROUP,
	episode: 1,
	channel: CHANNEL,
	name: "ApiDown",
	environment: "prod",
	severity: "critical",
	startedAt: T0,
	endedAt: null,
	ackedAt: null,
	ackedBy: null,
	firingAlerts: 1,
	alertCount: 1,
	eventCount: 1,
	...fields,
});

const firing = (fields: Partial<FiringEpisode>): FiringEpisode => ({
	...episode({}),
	ack: null,
	silence: null,
	messageId: null,
	...fields,
});

describe("/alerts firing (golden)", () => {
	it("lists what fires per environment and severity, worst first, with its state and card", () => {
		const episodes = [
			firing({
				firingAlerts: 2,
				alertCount: 3,
				ack: { username: "olivia", at: T0 + 4 * 60_000 },
				messageId: "500000000000000001",
			}),
			firing({
				groupId: "1123456789abcdef0123456789abcdef",
				name: "QueueStuck",
				environment: "staging",
				startedAt: T0 + 10 * 60_000,
				silence: { username: "adam", until: NOW + 3_600_000 },
				messageId: "500000000000000002",
			}),
			firing({
				groupId: "2123456789abcdef0123456789abcdef",
				name: "Disk *filling* <@&1> @everyone",
				severity: "warning",
				environment: null,
				startedAt: T0 + 20 * 60_000,
			}),
		];
		const counts = [
			{ environment: "prod", severity: "critical", groups: 1 },
			{ environment: "staging", severity: "critical", groups: 1 },
			{ environment: null, severity: "warning", groups: 12 },
		];
		expectReportGolden(
			"alerts-firing",
			firingReport({ total: 14, counts, episodes, offset: 0, filter: {} }, { guildId: GUILD, now: NOW }),
		);
	});

	it("says nothing matches a filter, naming it", () => {
		expectReportGolden(
			"alerts-firing-none",
			firingReport(
				{ total: 0, counts: [], episodes: [], offset: 0, filter: { environment: "prod", name: "api" } },
				{ guildId: GUILD, now: NOW },
			),
		);
	});
});

describe("/alerts history (golden)", () => {
	it("sums up a range: episodes, time to acknowledge and resolve, counts per name, flapping groups", () => {
		const summary: HistorySummary = {
			since: NOW - 86_400_000,
			until: NOW,
			total: 7,
			acknowledged: 5,
			resolved: 6,
			meanTimeToAckMs: 190_000,
			meanTimeToResolveMs: 1_460_000,
			byName: [
				{ name: "QueueStuck", episodes: 4, firing: 0 },
				{ name: "ApiDown", episodes: 3, firing: 1 },
			],
			flapping: [{ groupId: GROUP, name: "QueueStuck", environment: "staging", episodes: 4 }],
			episodes: [
				episode({ ackedAt: T0 + 120_000, ackedBy: "olivia" }),
				episode({
					name: "QueueStuck",
					environment: "staging",
					severity: "warning",
					episode: 4,
					startedAt: T0 - 3_600_000,
					endedAt: T0 - 3_000_000,
				}),
			],
		};
		expectReportGolden("alerts-history", historyReport(summary, { now: NOW }));
	});

	it("says nothing fired in the range", () => {
		const empty: HistorySummary = {
			since: NOW - 86_400_000,
			until: NOW,
			total: 0,
			acknowledged: 0,
			resolved: 0,
			meanTimeToAckMs: null,
			meanTimeToResolveMs: null,
			byName: [],
			flapping: [],
			episodes: [],
		};
		expectReportGolden("alerts-history-none", historyReport(empty, { now: NOW, name: "api" }));
	});
});

describe("episode timeline (golden)", () => {
	const alert = (fingerprint: string, instance: string, endsAt = ZERO) => ({
		fingerprint,
		status: endsAt === ZERO ? ("firing" as const) : ("resolved" as const),
		startsAt: "2026-11-24T12:00:00Z",
		endsAt,
		labels: { alertname: "ApiDown", severity: "critical", env: "prod", instance },
	});
	const olivia = { userId: "200000000000000011", username: "olivia" };
	let id = 0;
	const event = (at: number, kind: EpisodeEvent["kind"], details: EpisodeEvent["details"] = {}, actor = olivia) => ({
		id: ++id,
		groupId: GROUP,
		episode: 2,
		at: T0 + at,
		kind,
		actor: ["fired", "joined", "alerts_resolved", "resolved"].includes(kind) ? null : actor,
		details,
	});
	const events: EpisodeEvent[] = [
		event(5_000, "fired", { alerts: [alert("a1", "api-1:8080")], alertCount: 1, previousEpisode: 1 }),
		event(65_000, "joined", { alerts: [alert("a2", "api-2:8080 | `rm -rf` **bold**")], alertCount: 1 }),
		event(120_000, "acknowledged"),
		event(150_000, "logs", { environment: "prod", service: "api", from: T0 - 900_000, to: T0 + 1_800_000 }),
		event(200_000, "restart", {
			environment: "prod",
			host: "app-1.internal",
			container: "api",
			result: "failed: exit 1",
			exitCode: 1,
			output: "Error response from daemon: ```\ncontainer api is restarting\u001b[31m",
		}),
		event(260_000, "silenced", {
			silenceId: "8b6f0c1e",
			until: T0 + 4 * 3_600_000,
			matchers: [
				{ name: "alertname", value: "ApiDown" },
				{ name: "env", value: "prod" },
			],
			comment: "deploy in progress",
		}),
		event(290_000, "alerts_resolved", { alerts: [alert("a1", "api-1:8080", "2026-11-24T12:04:40Z")], alertCount: 1 }),
		event(330_000, "resolved", {
			alerts: [alert("a1", "api-1:8080", "2026-11-24T12:04:40Z"), alert("a2", "api-2:8080", "2026-11-24T12:05:20Z")],
			alertCount: 2,
			durationMs: 320_000,
		}),
	];
	const ended = episode({
		episode: 2,
		endedAt: T0 + 320_000,
		ackedAt: T0 + 120_000,
		ackedBy: "olivia",
		alertCount: 2,
		firingAlerts: 0,
		eventCount: events.length,
	});
	const links = {
		card: `https://discord.com/channels/${GUILD}/${CHANNEL}/500000000000000001`,
		others: [
			{ label: "Runbook", url: "https://runbooks.example.com/api-down" },
			{ label: "Logs around the start", url: "https://grafana.example.com/explore?orgId=1" },
		],
	};

	it("lists every event with who and when, and the links, in both views", () => {
		expectReportGolden("incident-timeline", timelineReport(ended, events, links));
	});

	it("writes the Markdown file for the postmortem: events, alerts with labels, command output fenced", () => {
		expectGoldenFile("incident-timeline.md", timelineMarkdown(ended, events, links, NOW));
	});

	it("posts each event into the episode's thread: who, what, when, a restart's first lines, the previous thread", () => {
		const posts = events.map((e, i) => threadPost(e, i === 0 ? "600000000000000001" : undefined));
		expectGoldenFile("incident-thread-posts.txt", `${posts.join("\n\n---\n\n")}\n`);
	});

	it("attaches a restart's whole output when its post shows only the first lines; a short one has no file", () => {
		const output = Array.from({ length: 14 }, (_, i) => `step ${i + 1}/14: \`ok\` \u001b[32mdone\u001b[0m`).join("\n");
		const restart = event(200_000, "restart", {
			environment: "prod",
			host: "app-1.internal",
			container: "api",
			result: "ok",
			exitCode: 0,
			output,
		});
		const files = threadPostFiles(restart);
		expect(files.map((f) => f.name)).toEqual(["restart-output.txt"]);
		expect(events.flatMap((e) => threadPostFiles(e))).toEqual([]);
		expectGoldenFile(
			"incident-thread-restart-cut.txt",
			`${threadPost(restart)}\n\n--- attached ${files[0]!.name} ---\n\n${files[0]!.text}`,
		);
	});
});
