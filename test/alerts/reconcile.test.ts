import { describe, expect, it } from "vitest";
import { acceptJob, payloadSignature } from "../../src/alerts/group-machine.ts";
import {
	foundPayload,
	labelSetString,
	openGroup,
	planReconcile,
	quoteMeta,
	startReconciler,
	unquoteMeta,
} from "../../src/alerts/reconcile.ts";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import type { GroupState } from "../../src/alerts/store.ts";
import type { AlertingOps } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import type { AlertManagerClient, AlertManagerGroup } from "../../src/services/alertmanager.ts";
import { ServiceUnavailableError } from "../../src/services/http.ts";

const NOW = Date.parse("2026-12-06T10:00:00Z");
const ops = {
	environments: { production: {} },
	alerts: { environmentLabel: "env", routes: [], defaultChannel: "400000000000000001" },
} as unknown as AlertingOps;

function stored(name: string, fingerprints: string[], receiver = "opsbot"): GroupState {
	const payload = WebhookPayload.parse({
		version: "4",
		groupKey: `{}/{team="db"}:{alertname="${name}"}`,
		status: "firing",
		receiver,
		groupLabels: { alertname: name },
		commonLabels: { alertname: name, env: "production" },
		alerts: fingerprints.map((fingerprint) => ({
			status: "firing",
			labels: { alertname: name, env: "production", fp: fingerprint },
			startsAt: new Date(NOW - 3_600_000).toISOString(),
			fingerprint,
		})),
	});
	return {
		groupId: `id-${name}`,
		channel: "400000000000000001",
		episode: 1,
		status: "firing",
		firstFiringAt: NOW - 3_600_000,
		messageId: null,
		payload,
		ack: null,
		silence: null,
		restart: null,
		signature: payloadSignature(payload),
	};
}

function held(name: string, alerts: { fingerprint: string; state?: string; ageMs?: number }[]): AlertManagerGroup {
	return {
		labels: { alertname: name },
		receiver: "opsbot",
		alerts: alerts.map((a) => ({
			fingerprint: a.fingerprint,
			labels: { alertname: name, env: "production", fp: a.fingerprint },
			annotations: {},
			startsAt: new Date(NOW - (a.ageMs ?? 3_600_000)).toISOString(),
			generatorURL: "",
			state: a.state ?? "active",
		})),
	};
}

const options = { graceMs: 60_000, now: NOW, externalURL: "http://127.0.0.1:9093" };

describe("planReconcile", () => {
	it("counts a group as held whatever its alerts' state, and missing only when AlertManager holds none of it", () => {
		const open = [stored("Held", ["a1"]), stored("Silenced", ["b1"]), stored("Gone", ["c1"])].map((g) =>
			openGroup(ops, g),
		);
		const plan = planReconcile(
			open,
			[held("Held", [{ fingerprint: "a1" }]), held("Silenced", [{ fingerprint: "b1", state: "suppressed" }])],
			options,
		);
		expect(plan.missing.map((g) => g.group.groupId)).toEqual(["id-Gone"]);
		expect(plan.found).toEqual([]);
	});

	it("finds only active alerts past the grace: not suppressed (never notified), not young ones (its to send)", () => {
		const plan = planReconcile(
			[],
			[
				held("Young", [{ fingerprint: "y1", ageMs: 59_000 }]),
				held("Muted", [{ fingerprint: "m1", state: "suppressed" }]),
				held("Lost", [{ fingerprint: "l1" }, { fingerprint: "l2", state: "suppressed" }]),
			],
			options,
		);
		expect(plan.found.map((p) => p.groupLabels.alertname)).toEqual(["Lost"]);
		expect(plan.found[0]).toMatchObject({
			groupKey: '{}:{alertname="Lost"}',
			receiver: "opsbot",
			status: "firing",
			opsbotReconciled: "found",
			commonLabels: { alertname: "Lost", env: "production" },
		});
		expect(plan.found[0]?.alerts.map((a) => `${a.fingerprint}:${a.status}`)).toEqual(["l1:firing", "l2:firing"]);
	});

	it("adds a lost alert to its open group under the group's key, and resolves the alerts AlertManager dropped", () => {
		const group = stored("Partly", ["p1", "p2"]);
		const plan = planReconcile(
			[openGroup(ops, group)],
			[held("Partly", [{ fingerprint: "p1" }, { fingerprint: "p3" }])],
			options,
		);
		expect(plan.missing).toEqual([]);
		expect(plan.found).toHaveLength(1);
		expect(plan.found[0]?.groupKey).toBe(group.payload.groupKey);
		expect(plan.found[0]?.alerts.map((a) => `${a.fingerprint}:${a.status}`)).toEqual([
			"p1:firing",
			"p3:firing",
			"p2:resolved",
		]);
	});

	it("learns the receiver's route key from its open groups: a group found anew gets AlertManager's groupKey", () => {
		const plan = planReconcile(
			[openGroup(ops, stored("Known", ["k1"]))],
			[held("Known", [{ fingerprint: "k1" }]), held("New", [{ fingerprint: "n1" }])],
			options,
		);
		expect(plan.found.map((p) => p.groupKey)).toEqual(['{}/{team="db"}:{alertname="New"}']);
	});

	it("reads AlertManager's quoting of receiver names and label sets as Go writes them", () => {
		expect(quoteMeta("team.a+b")).toBe("team\\.a\\+b");
		expect(unquoteMeta(quoteMeta("a.b*(c)|[d]{e}^$?\\"))).toBe("a.b*(c)|[d]{e}^$?\\");
		expect(labelSetString({ b: "2", a: 'say "hi"' })).toBe('{a="say \\"hi\\"", b="2"}');
	});

	it("builds a payload with the signature of AlertManager's later notification, which is then a duplicate", () => {
		const payload = foundPayload(held("Same", [{ fingerprint: "s1" }]), undefined, "{}", options);
		const real = WebhookPayload.parse({ ...payload, opsbotReconciled: undefined });
		expect(payload && acceptJob(payload, [], NOW).signature).toBe(acceptJob(real, [], NOW).signature);
	});
});

describe("startReconciler", () => {
	const log = createLogger({ level: "silent", pretty: false });
	const unreachable = (url: string): AlertManagerClient =>
		({
			url,
			listGroups: async () => {
				throw new ServiceUnavailableError("AlertManager", "unreachable", "connection refused", 1_000);
			},
			startedAt: async () => 0,
		}) as unknown as AlertManagerClient;
	const answering = (url: string, groups: AlertManagerGroup[]): AlertManagerClient =>
		({ url, listGroups: async () => groups, startedAt: async () => 0 }) as unknown as AlertManagerClient;

	function run(members: AlertManagerClient[], graceMs = 0) {
		const resolved: string[] = [];
		const accepted: WebhookPayload[] = [];
		const group = stored("Open", ["o1"]);
		const reconciler = startReconciler({
			store: {
				openGroups: async (after) => (after === "" ? [group] : []),
				resolveGroup: async (id) => {
					resolved.push(id);
					return true;
				},
			},
			ops,
			alertmanager: { clusters: () => [{ environments: ["production"], members }] },
			log,
			accept: async (payload) => {
				accepted.push(payload);
				return { queued: 1, duplicates: 0 };
			},
			intervalMs: 3_600_000,
			graceMs,
			settleMs: 0,
			now: () => NOW,
		});
		return { reconciler, resolved, accepted };
	}

	it("never reads an unreachable cluster as 'nothing fires': resolves nothing and names the environments", async () => {
		const { reconciler, resolved } = run([unreachable("http://a"), unreachable("http://b")]);
		const outcome = await reconciler.pass();
		await reconciler.stop();
		expect(outcome).toEqual({ resolved: 0, found: 0, unanswered: ["production"] });
		expect(resolved).toEqual([]);
	});

	it("asks the members in order and takes the first answer", async () => {
		const { reconciler, resolved } = run([unreachable("http://a"), answering("http://b", []), unreachable("http://c")]);
		const outcome = await reconciler.pass();
		await reconciler.stop();
		expect(outcome).toEqual({ resolved: 1, found: 0, unanswered: [] });
		expect(resolved).toEqual(["id-Open"]);
	});

	it("resolves a missing group only once it has been missing for the grace, counted across passes", async () => {
		let now = NOW;
		const resolved: string[] = [];
		const reconciler = startReconciler({
			store: {
				openGroups: async (after) => (after === "" ? [stored("Open", ["o1"])] : []),
				resolveGroup: async (id) => {
					resolved.push(id);
					return true;
				},
			},
			ops,
			alertmanager: { clusters: () => [{ environments: ["production"], members: [answering("http://a", [])] }] },
			log,
			accept: async () => ({ queued: 0, duplicates: 1 }),
			intervalMs: 3_600_000,
			graceMs: 60_000,
			settleMs: 0,
			now: () => now,
		});
		expect((await reconciler.pass()).resolved).toBe(0);
		now += 59_000;
		expect((await reconciler.pass()).resolved).toBe(0);
		now += 1_000;
		expect((await reconciler.pass()).resolved).toBe(1);
		await reconciler.stop();
		expect(resolved).toEqual(["id-Open"]);
	});
});
