import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { freePort } from "../support/proc.ts";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.ts";
import { healthService } from "../support/services.ts";

const silent = pino({ level: "silent" });

describe("health checks against real Prometheus and AlertManager", () => {
	let prometheus: TestPrometheus;
	let alertmanager: TestAlertManager;
	let closedPort: number;

	beforeAll(async () => {
		closedPort = await freePort();
		[prometheus, alertmanager] = await Promise.all([
			startPrometheus({ targets: { "node-exporter": [`127.0.0.1:${closedPort}`] } }),
			startAlertManager(),
		]);
	});
	afterAll(async () => {
		await Promise.all([prometheus?.stop(), alertmanager?.stop()]);
	});

	it("names every down scrape target by job and instance, and reads AlertManager's readiness", async () => {
		const service = healthService({
			environments: {
				production: {
					http: [],
					prometheus: { url: prometheus.url, timeoutMs: 3_000 },
					alertmanager: { url: alertmanager.url, timeoutMs: 3_000 },
				},
			},
			databases: { get: () => undefined },
			secret: () => undefined,
			log: silent,
		});

		// Prometheus reports a target's health only after its first scrape (every 1 s here).
		const snapshot = await vi.waitFor(
			async () => {
				const checked = await service.check("production");
				expect(checked.checks[0]?.detail).toContain("down:");
				return checked;
			},
			{ timeout: 10_000, interval: 200 },
		);

		expect(snapshot.checks.map((c) => [c.name, c.state, c.detail])).toEqual([
			["prometheus", "degraded", `1 target down: node-exporter 127.0.0.1:${closedPort}`],
			["alertmanager", "ok", "ready"],
		]);
	});

	it("reports a Prometheus that is gone as down", async () => {
		const gone = `http://127.0.0.1:${await freePort()}`;
		const service = healthService({
			environments: { production: { http: [], prometheus: { url: gone, timeoutMs: 1_000 } } },
			databases: { get: () => undefined },
			secret: () => undefined,
			log: silent,
		});

		const snapshot = await service.check("production");

		expect(snapshot.checks[0]).toMatchObject({ name: "prometheus", state: "down", detail: "connection refused" });
	});
});
