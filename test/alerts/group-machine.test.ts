import { describe, expect, it } from "vitest";
import {
	type AcceptJob,
	acceptJob,
	type GroupHead,
	groupId,
	type Notification,
	payloadSignature,
	planAccepts,
	resolveByHand,
	severityRank,
	transition,
} from "../../src/alerts/group-machine.ts";
import type { RouteTarget } from "../../src/alerts/routing.ts";
import { payload } from "../support/alert-fixtures.ts";

const T0 = 1_764_000_000_000;

const head = (over: Partial<GroupHead> = {}): GroupHead => ({
	episode: 3,
	status: "firing",
	firstFiringAt: T0,
	signature: "s-old",
	undelivered: [],
	...over,
});
const note = (over: Partial<Notification> = {}): Notification => ({
	status: "firing",
	signature: "s-new",
	startedAt: T0 + 60_000,
	...over,
});

describe("transition: what one notification does to a group", () => {
	it.each([
		{
			case: "a group not stored yet opens episode 1 with the notification's start",
			head: undefined,
			note: note(),
			want: {
				kind: "open",
				episode: 1,
				status: "firing",
				firstFiringAt: T0 + 60_000,
				signature: "s-new",
				resetActions: false,
				keep: [],
				supersede: [],
			},
		},
		{
			case: "a group first seen resolved opens episode 1 resolved",
			head: undefined,
			note: note({ status: "resolved" }),
			want: { kind: "open", episode: 1, status: "resolved", resetActions: false, keep: [], supersede: [] },
		},
		{
			case: "a retry (same signature) is a duplicate",
			head: head({ signature: "s-new", undelivered: [4, 5] }),
			note: note(),
			want: { kind: "duplicate" },
		},
		{
			case: "a resolved notification repeated after the group resolved is a duplicate too",
			head: head({ status: "resolved", signature: "s-new" }),
			note: note({ status: "firing" }),
			want: { kind: "duplicate" },
		},
		{
			case: "a changed firing group updates its episode and keeps its earliest start",
			head: head(),
			note: note(),
			want: {
				kind: "update",
				episode: 3,
				status: "firing",
				firstFiringAt: T0,
				signature: "s-new",
				resetActions: false,
				keep: [],
				supersede: [],
			},
		},
		{
			case: "an update moves the first firing back when an alert started earlier",
			head: head(),
			note: note({ startedAt: T0 - 5_000 }),
			want: { kind: "update", firstFiringAt: T0 - 5_000 },
		},
		{
			case: "an update keeps the episode's one undelivered row: it holds the episode's place",
			head: head({ undelivered: [10] }),
			note: note(),
			want: { kind: "update", keep: [10], supersede: [] },
		},
		{
			case: "an update supersedes every undelivered row but the oldest",
			head: head({ undelivered: [10, 12, 13] }),
			note: note(),
			want: { kind: "update", keep: [10], supersede: [12, 13] },
		},
		{
			case: "a resolve is an update of the same episode, coalesced like any other",
			head: head({ undelivered: [10, 12] }),
			note: note({ status: "resolved" }),
			want: { kind: "update", episode: 3, status: "resolved", resetActions: false, keep: [10], supersede: [12] },
		},
		{
			case: "a resolved group resolved again with other alerts stays in its episode",
			head: head({ status: "resolved", undelivered: [10] }),
			note: note({ status: "resolved" }),
			want: { kind: "update", episode: 3, status: "resolved", keep: [10], supersede: [] },
		},
		{
			case:
				"a resolved group firing again opens the next episode, clears ack, silence and restart, and leaves " +
				"the resolve's rows alone",
			head: head({ status: "resolved", firstFiringAt: T0 - 3_600_000, undelivered: [10, 12] }),
			note: note(),
			want: {
				kind: "reopen",
				episode: 4,
				status: "firing",
				firstFiringAt: T0 + 60_000,
				signature: "s-new",
				resetActions: true,
				keep: [],
				supersede: [],
			},
		},
	])("$case", ({ head, note, want }) => {
		const result = transition(head, note, T0);

		expect(result).toMatchObject(want);
	});

	const regroup = { regroupMs: 15 * 60_000 };
	it.each([
		{
			case: "fired again within the regroup window: the same episode re-opens, counted, keeping ack and silence",
			head: head({
				status: "resolved",
				resolvedAt: T0 - 14 * 60_000,
				flaps: [T0 - 30 * 60_000],
				undelivered: [10, 12],
			}),
			want: {
				kind: "flap",
				episode: 3,
				status: "firing",
				firstFiringAt: T0,
				resolvedAt: null,
				flaps: [T0 - 30 * 60_000, T0],
				resetActions: false,
				keep: [10],
				supersede: [12],
			},
		},
		{
			case: "flaps older than an hour are forgotten",
			head: head({ status: "resolved", resolvedAt: T0 - 60_000, flaps: [T0 - 61 * 60_000, T0 - 59 * 60_000] }),
			want: { kind: "flap", flaps: [T0 - 59 * 60_000, T0] },
		},
		{
			case: "fired again after the window: a new episode, its flaps forgotten",
			head: head({ status: "resolved", resolvedAt: T0 - 15 * 60_000, flaps: [T0 - 20 * 60_000] }),
			want: { kind: "reopen", episode: 4, flaps: [], resetActions: true },
		},
		{
			case: "a resolved group stored before resolvedAt was kept starts a new episode",
			head: head({ status: "resolved" }),
			want: { kind: "reopen", episode: 4 },
		},
	])("$case", ({ head, want }) => {
		expect(transition(head, note(), T0, regroup)).toMatchObject(want);
	});

	it("remembers when an episode resolved, and keeps that time when a second resolution comes", () => {
		expect(transition(head(), note({ status: "resolved" }), T0)).toMatchObject({ resolvedAt: T0 });
		const resolved = head({ status: "resolved", resolvedAt: T0 - 5_000 });
		expect(transition(resolved, note({ status: "resolved" }), T0)).toMatchObject({ resolvedAt: T0 - 5_000 });
	});
});

const job = (over: Partial<AcceptJob> = {}): AcceptJob => ({
	receiver: "opsbot",
	groupKey: "g",
	targets: [{ channel: "1" }],
	now: T0,
	status: "firing",
	signature: "s1",
	startedAt: T0,
	severityRank: 1,
	json: "{}",
	...over,
});
const id = (groupKey = "g", channel = "1") => groupId("opsbot", groupKey, channel);

describe("planAccepts: what a batch of webhooks writes", () => {
	it("opens a new group: inserted, with one outbox row and the webhook's payload and rank", () => {
		const plan = planAccepts([job({ severityRank: 0 })], new Map());

		expect(plan.results).toEqual([{ queued: 1, duplicates: 0 }]);
		expect(plan.groups).toEqual([
			{
				id: id(),
				channel: "1",
				created: true,
				mentionRole: null,
				episode: 1,
				status: "firing",
				firstFiringAt: T0,
				signature: "s1",
				severityRank: 0,
				resolvedAt: null,
				flaps: [],
				resetActions: false,
				job: 0,
			},
		]);
		expect(plan.enqueue).toEqual([{ groupId: id(), episode: 1, job: 0, at: T0 }]);
		expect(plan.supersede).toEqual([]);
	});

	it("writes nothing for a duplicate and counts it", () => {
		const plan = planAccepts([job()], new Map([[id(), head({ signature: "s1" })]]));

		expect(plan).toEqual({ results: [{ queued: 0, duplicates: 1 }], groups: [], supersede: [], enqueue: [] });
	});

	it("updates a stored group, marking done the stored rows the new one supersedes", () => {
		const plan = planAccepts([job({ signature: "s2" })], new Map([[id(), head({ undelivered: [5, 7] })]]));

		expect(plan.groups).toMatchObject([{ created: false, episode: 3 }]);
		expect(plan.supersede).toEqual([7]);
		expect(plan.enqueue).toEqual([{ groupId: id(), episode: 3, job: 0, at: T0 }]);
	});

	it("decides a batch as one by one: the episode's first row keeps its place, only the newest other is written", () => {
		const jobs = [
			job({ signature: "a", now: T0 }),
			job({ groupKey: "other", signature: "x", now: T0 + 1 }),
			job({ signature: "b", now: T0 + 2 }),
			job({ signature: "c", now: T0 + 3 }),
		];

		const plan = planAccepts(jobs, new Map());

		expect(plan.results).toEqual(jobs.map(() => ({ queued: 1, duplicates: 0 })));
		expect(plan.enqueue).toEqual([
			{ groupId: id(), episode: 1, job: 0, at: T0 },
			{ groupId: id("other"), episode: 1, job: 1, at: T0 + 1 },
			{ groupId: id(), episode: 1, job: 3, at: T0 + 3 },
		]);
		expect(plan.groups).toMatchObject([
			{ id: id(), created: true, signature: "c", job: 3 },
			{ id: id("other"), created: true, job: 1 },
		]);
		expect(plan.supersede).toEqual([]);
	});

	it("supersedes a stored row once and drops the batch's own superseded rows unwritten", () => {
		const jobs = [job({ signature: "a" }), job({ signature: "b" }), job({ signature: "c" })];

		const plan = planAccepts(jobs, new Map([[id(), head({ undelivered: [5, 7] })]]));

		expect(plan.supersede).toEqual([7]);
		expect(plan.enqueue.map((r) => r.job)).toEqual([2]);
	});

	it("resolves, reopens and updates within one batch: two episodes, actions cleared, the resolve still sent", () => {
		const jobs = [
			job({ signature: "r", status: "resolved" }),
			job({ signature: "f", startedAt: T0 + 9_000 }),
			job({ signature: "g", startedAt: T0 + 12_000 }),
		];

		const plan = planAccepts(jobs, new Map([[id(), head({ episode: 1, undelivered: [] })]]));

		expect(plan.enqueue).toEqual([
			{ groupId: id(), episode: 1, job: 0, at: T0 },
			{ groupId: id(), episode: 2, job: 1, at: T0 },
			{ groupId: id(), episode: 2, job: 2, at: T0 },
		]);
		expect(plan.groups).toEqual([
			expect.objectContaining({ episode: 2, status: "firing", firstFiringAt: T0 + 9_000, resetActions: true, job: 2 }),
		]);
	});

	it("keeps resetActions once a reopen happened, whatever follows in the batch", () => {
		const jobs = [job({ signature: "f" }), job({ signature: "r", status: "resolved" })];

		const plan = planAccepts(jobs, new Map([[id(), head({ status: "resolved" })]]));

		expect(plan.groups).toMatchObject([{ episode: 4, status: "resolved", resetActions: true }]);
	});

	it("writes one group per target channel, each with its mention role, and a repeated channel as a duplicate", () => {
		const targets: RouteTarget[] = [{ channel: "1" }, { channel: "2", mentionRole: "9" }, { channel: "1" }];

		const plan = planAccepts([job({ targets })], new Map());

		expect(plan.results).toEqual([{ queued: 2, duplicates: 1 }]);
		expect(plan.groups.map((g) => [g.channel, g.mentionRole])).toEqual([
			["1", null],
			["2", "9"],
		]);
		expect(plan.enqueue.map((r) => r.groupId)).toEqual([id("g", "1"), id("g", "2")]);
	});
});

describe("resolveByHand: the resolution opsbot writes for a silenced group", () => {
	const firing = payload(2);
	const signature = payloadSignature(firing);

	it.each([
		{ case: "a group not stored (or without a payload)", group: undefined, expected: signature },
		{
			case: "a group already resolved",
			group: { status: "resolved", signature, payload: firing },
			expected: signature,
		},
		{
			case: "a group changed since the caller saw it",
			group: { status: "firing", signature: "newer", payload: firing },
			expected: signature,
		},
	])("does nothing for $case", ({ group, expected }) => {
		expect(resolveByHand(group, expected, T0)).toBeUndefined();
	});

	it("ends every firing alert now and signs the result as AlertManager's own resolve would be", () => {
		const resolved = resolveByHand({ status: "firing", signature, payload: firing }, signature, T0)!;

		expect(resolved.payload.status).toBe("resolved");
		expect(resolved.payload.alerts.map((a) => [a.status, a.endsAt])).toEqual([
			["resolved", new Date(T0).toISOString()],
			["resolved", new Date(T0).toISOString()],
		]);
		expect(resolved.signature).toBe(payloadSignature(resolved.payload));
		expect(resolved.signature).not.toBe(signature);
	});
});

describe("what accept reads of a payload", () => {
	it.each([
		["critical", 0],
		["CRITICAL", 0],
		["Critical", 0],
		["warning", 1],
		["info", 1],
		[undefined, 1],
	])("ranks severity %s as %i", (severity, rank) => {
		const body = payload(1, {
			commonLabels: severity === undefined ? { alertname: "A" } : { alertname: "A", severity },
		});

		expect(severityRank(body)).toBe(rank);
	});

	it("takes the earliest firing alert's start, or now when none fires", () => {
		const firing = payload(2);
		const body = {
			...firing,
			alerts: [
				{ ...firing.alerts[0]!, startsAt: "2026-11-24T12:05:00Z" },
				{ ...firing.alerts[1]!, startsAt: "2026-11-24T11:55:00Z" },
			],
		};

		expect(acceptJob(body, [], T0).startedAt).toBe(Date.parse("2026-11-24T11:55:00Z"));
		expect(acceptJob(payload(2, {}, "resolved"), [], T0).startedAt).toBe(T0);
	});
});
