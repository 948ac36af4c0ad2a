import { describe, expect, it } from "vitest";
import { deadmanNotice } from "../../src/alerts/deadman.ts";
import {
	ackHolds,
	ackReminderDue,
	type ClockInput,
	cardClocks,
	escalationDue,
	type GroupRules,
	groupRules,
} from "../../src/alerts/escalation.ts";
import type { AlertingOps } from "../../src/config.ts";
import { payload } from "../support/alert-fixtures.ts";

const T0 = Date.parse("2026-12-06T03:00:00Z");
const MIN = 60_000;
const leads = { roles: ["300000000000000007"], users: [] };
const rules: GroupRules = {
	escalation: { afterMs: 10 * MIN, repeatMs: 30 * MIN, mention: leads },
	ackTimeoutMs: 20 * MIN,
};
const group = (over: Partial<ClockInput> = {}): ClockInput => ({
	groupId: "g",
	episode: 2,
	status: "firing",
	firstFiringAt: T0,
	ack: null,
	silence: null,
	...over,
});
const ack = { userId: "200000000000000031", username: "alice", at: T0 + 5 * MIN };

describe("escalationDue: the clock, from stored timestamps only", () => {
	it.each([
		{ case: "before afterMinutes: nothing", at: T0 + 9 * MIN, want: undefined },
		{
			case: "at afterMinutes: step 0",
			at: T0 + 10 * MIN,
			want: { key: "escalation:g:2:fired:0", dueAt: T0 + 10 * MIN },
		},
		{ case: "between repeats: still step 0 (same key)", at: T0 + 39 * MIN, want: { key: "escalation:g:2:fired:0" } },
		{ case: "each repeat: the next step", at: T0 + 40 * MIN, want: { key: "escalation:g:2:fired:1", step: 1 } },
		{
			case: "back after a long outage: only the latest step, once",
			at: T0 + 200 * MIN,
			want: { key: "escalation:g:2:fired:6", dueAt: T0 + 190 * MIN, unhandledMs: 190 * MIN },
		},
	])("$case", ({ at, want }) => {
		const step = escalationDue(group(), rules, at);
		if (want === undefined) expect(step).toBeUndefined();
		else expect(step).toMatchObject(want);
	});

	it("stops while an acknowledgement holds, a silence lasts, or once resolved", () => {
		const at = T0 + 15 * MIN;
		expect(escalationDue(group({ ack }), rules, at)).toBeUndefined();
		expect(escalationDue(group({ silence: { id: "s", username: "bob", until: at + 1 } }), rules, at)).toBeUndefined();
		expect(escalationDue(group({ status: "resolved" }), rules, at)).toBeUndefined();
	});

	it("starts a new clock (new keys) when the acknowledgement runs out", () => {
		expect(ackHolds(ack, rules, T0 + 24 * MIN)).toBe(true);
		expect(escalationDue(group({ ack }), rules, T0 + 34 * MIN)).toBeUndefined();
		expect(escalationDue(group({ ack }), rules, T0 + 35 * MIN)).toMatchObject({
			key: `escalation:g:2:ack${ack.at}:0`,
			dueAt: T0 + 35 * MIN,
			unhandledMs: 10 * MIN,
		});
	});

	it("an acknowledgement without a timeout holds for ever", () => {
		const forever = { escalation: rules.escalation! };
		expect(escalationDue(group({ ack }), forever, T0 + 1_000 * MIN)).toBeUndefined();
	});
});

describe("ackReminderDue and the card's clocks", () => {
	it("reminds the acker once, keyed by the acknowledgement, when it runs out while the group fires", () => {
		expect(ackReminderDue(group({ ack }), rules, T0 + 24 * MIN)).toBeUndefined();
		expect(ackReminderDue(group({ ack }), rules, T0 + 25 * MIN)).toMatchObject({
			key: `ack-expired:g:2:${ack.at}`,
			dueAt: T0 + 25 * MIN,
		});
		expect(ackReminderDue(group({ ack, status: "resolved" }), rules, T0 + 25 * MIN)).toBeUndefined();
	});

	it("tells the card when the acknowledgement ran out and when it escalated", () => {
		expect(cardClocks(group(), rules, T0 + 5 * MIN)).toEqual({});
		expect(cardClocks(group(), rules, T0 + 12 * MIN)).toEqual({ escalated: { at: T0 + 10 * MIN, to: leads } });
		expect(cardClocks(group({ ack }), rules, T0 + 26 * MIN)).toEqual({ ackExpiredAt: T0 + 25 * MIN });
	});
});

describe("groupRules: the route's settings, targets from the config only", () => {
	const ops = {
		discord: { roles: { leads: "300000000000000007" } },
		alerts: {
			ackTimeoutMinutes: 60,
			routes: [
				{ match: { team: "web" }, matchRe: {}, channel: "1", continue: false },
				{
					match: { team: "db" },
					matchRe: {},
					channel: "2",
					continue: false,
					ackTimeoutMinutes: 15,
					escalation: { afterMinutes: 10, mention: ["leads", "user:200000000000000031", "role:300000000000000009"] },
				},
			],
		},
	} as unknown as AlertingOps;
	const db = payload(1, { commonLabels: { alertname: "DbDown", team: "db" } });

	it("reads the escalation and timeout of the route that posted the group to its channel", () => {
		expect(groupRules(ops, db, "2")).toEqual({
			ackTimeoutMs: 15 * MIN,
			escalation: {
				afterMs: 10 * MIN,
				mention: { roles: ["300000000000000007", "300000000000000009"], users: ["200000000000000031"] },
			},
		});
	});

	it("falls back to alerts.ackTimeoutMinutes, and has no escalation off its route", () => {
		expect(groupRules(ops, db, "9")).toEqual({ ackTimeoutMs: 60 * MIN });
	});
});

describe("deadmanNotice: once per silence, from the stored arrival time", () => {
	const after = 10 * MIN;
	it("says nothing while the heartbeat is younger than afterMinutes", () => {
		expect(deadmanNotice("Watchdog", { at: T0, alarmedAt: null }, after, T0 + after - 1)).toBeUndefined();
	});

	it("says 'down' once it is not, keyed by the silence's start", () => {
		expect(deadmanNotice("Watchdog", { at: T0, alarmedAt: null }, after, T0 + after)).toEqual({
			kind: "down",
			key: `deadman:Watchdog:down:${T0}`,
			since: T0,
		});
	});

	it("says nothing more while the alarmed silence lasts, and 'back' once a heartbeat came after it", () => {
		expect(deadmanNotice("Watchdog", { at: T0, alarmedAt: T0 }, after, T0 + 100 * MIN)).toBeUndefined();
		expect(deadmanNotice("Watchdog", { at: T0 + 30 * MIN, alarmedAt: T0 }, after, T0 + 31 * MIN)).toEqual({
			kind: "back",
			key: `deadman:Watchdog:back:${T0}`,
			since: T0,
			at: T0 + 30 * MIN,
		});
	});
});
