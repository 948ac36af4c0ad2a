import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { acceptPayload } from "../src/alerts/receiver.ts";
import { startReconciler } from "../src/alerts/reconcile.ts";
import { WebhookPayload } from "../src/alerts/schema.ts";
import { openAlertStore } from "../src/alerts/store.ts";
import type { AlertingOps } from "../src/config.ts";
import { createLogger } from "../src/log.ts";
import { type AlertManagerClient, createAlertManagerClient } from "../src/services/alertmanager.ts";
import { postAlerts, startAlertManager } from "../test/support/alertmanager.ts";
import { type BenchRow, percentile, round } from "./types.ts";

/** Open groups opsbot holds, and the groups AlertManager holds for its receiver (one alert each). */
const GROUPS = Number(process.env.RECONCILE_BENCH_GROUPS ?? 5_000);
const PASSES = 7;
const CHANNEL = "400000000000000001";

const ops = {
	environments: { production: {} },
	alerts: { environmentLabel: "env", routes: [], defaultChannel: CHANNEL },
} as unknown as AlertingOps;

function webhook(i: number, startsAt: string): WebhookPayload {
	const name = `Bench${String(i).padStart(5, "0")}`;
	return WebhookPayload.parse({
		version: "4",
		groupKey: `{}:{alertname="${name}"}`,
		status: "firing",
		receiver: "opsbot",
		groupLabels: { alertname: name },
		commonLabels: { alertname: name, severity: "warning", env: "production" },
		commonAnnotations: { summary: `${name} is unhappy` },
		alerts: [
			{
				status: "firing",
				labels: { alertname: name, severity: "warning", env: "production" },
				annotations: { summary: `${name} is unhappy` },
				startsAt,
				fingerprint: `f${String(i).padStart(15, "0")}`,
			},
		],
	});
}

/**
 * One reconciliation pass over GROUPS open groups in the embedded store against a real AlertManager
 * 0.25 holding the same groups: the pass's event-loop time (ELU active time, which includes SQLite's
 * synchronous reads, JSON and schema parsing of AlertManager's answer) and the AlertManager requests it
 * makes. The fingerprints the store starts with are not AlertManager's (it computes its own), so the
 * first pass finds every group's alert "lost" and updates all GROUPS groups (the worst case); the
 * later passes are the steady state, where everything matches.
 */
export async function run(): Promise<BenchRow[]> {
	const alertmanager = await startAlertManager({ groupWait: "1h", groupInterval: "1h" });
	const store = openAlertStore(join(mkdtempSync(join(tmpdir(), "opsbot-reconcile-bench-")), "alerts.sqlite"));
	try {
		const startsAt = new Date(Date.now() - 3_600_000).toISOString();
		for (let i = 0; i < GROUPS; i += 500) {
			const batch = Array.from({ length: Math.min(500, GROUPS - i) }, (_, j) => webhook(i + j, startsAt));
			await postAlerts(
				alertmanager.url,
				batch.map((p) => ({ labels: p.alerts[0]!.labels, annotations: p.alerts[0]!.annotations, startsAt })),
			);
			await Promise.all(batch.map((p) => acceptPayload({ config: ops.alerts, store }, p)));
		}
		let requests = 0;
		const real = createAlertManagerClient({ url: alertmanager.url, timeoutMs: 30_000 });
		const counted: AlertManagerClient = {
			...real,
			listGroups: (receiver) => {
				requests++;
				return real.listGroups(receiver);
			},
			startedAt: () => {
				requests++;
				return real.startedAt();
			},
		};
		const reconciler = startReconciler({
			store,
			ops,
			alertmanager: { clusters: () => [{ environments: ["production"], members: [counted] }] },
			log: createLogger({ level: "silent", pretty: false }),
			accept: (payload) => acceptPayload({ config: ops.alerts, store }, payload),
			onChange: () => {},
			intervalMs: 3_600_000,
			graceMs: 0,
			settleMs: 0,
		});
		const busy: number[] = [];
		const wall: number[] = [];
		const perPass: number[] = [];
		let found = 0;
		for (let pass = 0; pass < PASSES; pass++) {
			requests = 0;
			const before = performance.eventLoopUtilization();
			const start = performance.now();
			const outcome = await reconciler.pass();
			wall.push(performance.now() - start);
			busy.push(performance.eventLoopUtilization(before).active);
			perPass.push(requests);
			if (pass === 0) found = outcome.found;
		}
		await reconciler.stop();
		// The first pass writes what it found; the later ones are the steady state.
		const steady = busy.slice(1).sort((a, b) => a - b);
		const steadyWall = wall.slice(1).sort((a, b) => a - b);
		const note = `${GROUPS} open groups, AlertManager 0.25 holding ${GROUPS}, ${PASSES - 1} passes`;
		return [
			{
				bench: "reconcile",
				metric: "pass event-loop time, median",
				value: round(percentile(steady, 50)),
				unit: "ms",
				note,
			},
			{
				bench: "reconcile",
				metric: "pass event-loop time, worst",
				value: round(steady.at(-1) ?? Number.NaN),
				unit: "ms",
				note: "target < 1000 ms",
			},
			{ bench: "reconcile", metric: "pass wall time, median", value: round(percentile(steadyWall, 50)), unit: "ms" },
			{
				bench: "reconcile",
				metric: "first pass event-loop time",
				value: round(busy[0] ?? Number.NaN),
				unit: "ms",
				note: `accepts ${found} found groups`,
			},
			{
				bench: "reconcile",
				metric: "AlertManager requests per pass, most",
				value: Math.max(...perPass),
				unit: "req",
				note: "one cluster",
			},
		];
	} finally {
		await store.close();
		await alertmanager.stop();
	}
}
