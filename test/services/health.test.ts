import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { EnvironmentConfig } from "../../src/config.ts";
import { healthService } from "../support/services.ts";

const silent = pino({ level: "silent" });
const noDatabases = { get: () => undefined };

interface LocalServer {
	url: string;
	server: Server;
	close(): Promise<void>;
}

async function serve(handler: Parameters<typeof createServer>[1]): Promise<LocalServer> {
	const server = createServer(handler);
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as AddressInfo;
	return {
		url: `http://127.0.0.1:${port}`,
		server,
		close: () =>
			new Promise((resolve) => {
				server.closeAllConnections();
				server.close(() => resolve());
			}),
	};
}

async function closedPortUrl(): Promise<string> {
	const s = await serve(() => undefined);
	await s.close();
	return s.url;
}

function http(name: string, url: string, timeoutMs = 1_000, expectStatus = 200): EnvironmentConfig["http"][number] {
	return { name, url, timeoutMs, expectStatus, tlsWarnDays: 14 };
}

function environment(partial: Partial<EnvironmentConfig>): EnvironmentConfig {
	return { http: [], ...partial };
}

describe("health service over HTTP", () => {
	let ok: LocalServer;
	let failing: LocalServer;
	let hanging: LocalServer;
	let refusedUrl: string;

	beforeAll(async () => {
		ok = await serve((req, res) => {
			if (req.url === "/ready") res.end("ready");
			else if (req.url === "/-/ready") res.end("OK");
			else res.end('{"status":"ok"}');
		});
		failing = await serve((req, res) => {
			res.statusCode = req.url === "/ready" ? 503 : 500;
			res.end(req.url === "/ready" ? "Ingester not ready: waiting for 15s after being ready\n" : "boom");
		});
		hanging = await serve(() => undefined); // accepts, never answers
		refusedUrl = await closedPortUrl();
	});
	afterAll(async () => {
		await Promise.all([ok.close(), failing.close(), hanging.close()]);
	});

	it("reports each endpoint in plain words: ok, wrong status, refused, no answer", async () => {
		const service = healthService({
			environments: {
				production: environment({
					http: [
						http("backend", `${ok.url}/api/health`),
						http("broken", failing.url),
						http("gone", refusedUrl),
						http("stuck", hanging.url, 300),
					],
				}),
			},
			databases: noDatabases,
			secret: () => undefined,
			log: silent,
		});

		const snapshot = await service.check("production");

		const byName = Object.fromEntries(snapshot.checks.map((c) => [c.name, c]));
		expect(byName.backend).toMatchObject({ state: "ok", detail: "HTTP 200" });
		expect(byName.broken).toMatchObject({ state: "down", detail: "HTTP 500, expected 200" });
		expect(byName.gone).toMatchObject({ state: "down", detail: "connection refused" });
		expect(byName.stuck).toMatchObject({ state: "down", detail: "no answer within 300 ms" });
	});

	it("runs checks in parallel: four hanging services cost one timeout, not four", async () => {
		const service = healthService({
			environments: {
				slow: environment({ http: [1, 2, 3, 4].map((i) => http(`stuck-${i}`, `${hanging.url}/${i}`, 800)) }),
			},
			databases: noDatabases,
			secret: () => undefined,
			log: silent,
		});

		const snapshot = await service.check("slow");

		expect(snapshot.checks.map((c) => c.detail)).toEqual(Array(4).fill("no answer within 800 ms"));
		// Serial execution would take at least 3,200 ms; the margin absorbs a noisy machine.
		expect(snapshot.durationMs).toBeLessThan(2_400);
	});

	it("leaves no connection open after a check gives up on a hanging server", async () => {
		const service = healthService({
			environments: { slow: environment({ http: [http("stuck", hanging.url, 200)] }) },
			databases: noDatabases,
			secret: () => undefined,
			log: silent,
		});

		await service.check("slow");

		// The aborted request's socket closes a moment after the check gives up.
		await vi.waitFor(
			async () =>
				expect(
					await new Promise<number>((resolve) => hanging.server.getConnections((_, count) => resolve(count))),
				).toBe(0),
			{ timeout: 2_000, interval: 20 },
		);
	});

	it("reads Loki's and AlertManager's readiness, with Loki's reason when not ready", async () => {
		const service = healthService({
			environments: {
				up: environment({
					loki: { url: ok.url, timeoutMs: 1_000, serviceLabel: "service" },
					alertmanager: { url: ok.url, timeoutMs: 1_000 },
				}),
				down: environment({
					loki: { url: failing.url, timeoutMs: 1_000, serviceLabel: "service" },
					alertmanager: { url: refusedUrl, timeoutMs: 1_000 },
				}),
			},
			databases: noDatabases,
			secret: () => undefined,
			log: silent,
		});

		const up = await service.check("up");
		const down = await service.check("down");

		expect(up.checks.map((c) => [c.name, c.state, c.detail])).toEqual([
			["loki", "ok", "ready"],
			["alertmanager", "ok", "ready"],
		]);
		expect(down.checks.map((c) => [c.name, c.state, c.detail])).toEqual([
			["loki", "down", "not ready (HTTP 503: Ingester not ready: waiting for 15s after being ready)"],
			["alertmanager", "down", "connection refused"],
		]);
	});

	it("probes every member of an HA AlertManager and says when the running bot last heard from them", async () => {
		const now = Date.parse("2026-12-06T10:00:00Z");
		const service = healthService({
			environments: {
				ha: environment({ alertmanager: { url: refusedUrl, peers: [ok.url], timeoutMs: 1_000 } }),
				none: environment({ alertmanager: { url: refusedUrl, peers: [failing.url], timeoutMs: 1_000 } }),
			},
			databases: noDatabases,
			secret: () => undefined,
			log: silent,
			now: () => new Date(now),
			alertmanagerContacts: () => [
				{ environments: ["ha"], url: refusedUrl, lastAnswerAt: null, up: false, problem: "connection refused" },
				{ environments: ["ha"], url: ok.url, lastAnswerAt: now - 42_000, up: true, problem: null },
				{ environments: ["none"], url: refusedUrl, lastAnswerAt: null, up: false, problem: "connection refused" },
			],
		});

		const [ha] = (await service.check("ha")).checks;
		const [none] = (await service.check("none")).checks;

		expect([ha?.state, ha?.detail]).toEqual([
			"degraded",
			`1 of 2 ready; ${refusedUrl} connection refused; opsbot last heard from it 42 s ago`,
		]);
		expect([none?.state, none?.detail]).toEqual([
			"down",
			`0 of 2 ready; ${refusedUrl} connection refused; ${failing.url} not ready (HTTP 500: boom); ` +
				"opsbot has not heard from it since it started",
		]);
	});
});
