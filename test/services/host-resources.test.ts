import { readFileSync, statfsSync } from "node:fs";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type EnvironmentConfig, type HostCheckConfig, OpsFileSchema } from "../../src/config.ts";
import type { CheckResult } from "../../src/services/health.ts";
import { mountTmpfs, startNodeExporter, type TestMount, type TestNodeExporter } from "../support/node-exporter.ts";
import { freePort } from "../support/proc.ts";
import { startPrometheus, type TestPrometheus } from "../support/prometheus.ts";
import { healthService } from "../support/services.ts";

const silent = pino({ level: "silent" });
const MiB = 1024 * 1024;

/** A host entry as the config file would give it, defaults filled in by the real schema. */
function hostConfig(host: Record<string, unknown>): HostCheckConfig {
	const ops = OpsFileSchema.parse({
		discord: { guildId: "100000000000000001" },
		environments: { e: { prometheus: { url: "http://127.0.0.1:1" }, hosts: [host] } },
	});
	return ops.environments.e!.hosts![0]!;
}

describe("host resources from a real node-exporter scraped by a real Prometheus", () => {
	let exporter: TestNodeExporter;
	let leaving: TestNodeExporter;
	let prometheus: TestPrometheus;
	let disk: TestMount;
	let closedPort: number;

	function check(hosts: Record<string, unknown>[], prometheusUrl = prometheus.url) {
		const environment: EnvironmentConfig = {
			http: [],
			prometheus: { url: prometheusUrl, timeoutMs: 3_000 },
			hosts: hosts.map(hostConfig),
		};
		const service = healthService({
			environments: { production: environment },
			databases: { get: () => undefined },
			secret: () => undefined,
			log: silent,
		});
		return async () => (await service.check("production")).checks.filter((c) => c.kind === "host");
	}

	/** Re-runs the check until `done` holds (Prometheus scrapes every second) and returns that run's results. */
	async function until(
		run: () => Promise<CheckResult[]>,
		done: (checks: CheckResult[]) => boolean,
	): Promise<CheckResult[]> {
		return vi.waitFor(
			async () => {
				const checks = await run();
				if (!done(checks)) throw new Error(`not yet: ${JSON.stringify(checks)}`);
				return checks;
			},
			{ timeout: 15_000, interval: 250 },
		);
	}

	beforeAll(async () => {
		disk = mountTmpfs(64);
		closedPort = await freePort();
		[exporter, leaving] = await Promise.all([startNodeExporter(), startNodeExporter()]);
		prometheus = await startPrometheus({
			targets: {
				node: [
					{ targets: [exporter.address], labels: { host: "local" } },
					{ targets: [`127.0.0.1:${closedPort}`], labels: { host: "gone" } },
				],
				leaving: [leaving.address],
			},
		});
	});
	afterAll(async () => {
		await Promise.all([prometheus?.stop(), exporter?.stop(), leaving?.stop()]);
		disk?.unmount();
	});

	it("shows each mount's used/size and percent as df counts them, memory, load per core and uptime", async () => {
		const run = check([{ name: "local", instance: exporter.address, mounts: ["/", disk.dir] }]);

		const [host] = await until(run, ([c]) => c?.state !== "down");

		expect(host?.state).toBe("ok");
		expect(host?.detail).toMatch(
			new RegExp(
				`^disk / \\d+(\\.\\d)?/\\d+(\\.\\d)? [GT]B \\(\\d+ %\\), ${disk.dir} 0\\.0/64 MB \\(0 %\\) · ram ` +
					`\\d+(\\.\\d)?/\\d+(\\.\\d)? GB \\(\\d+ %\\) · load \\d+(\\.\\d+)?/core · up \\d+ (d|h|min)$`,
			),
		);
		const figures = host!.hosts![0]!;
		const [root, tmp] = figures.mounts;
		const fs = statfsSync("/");
		// df: used = size - free; percent = used / (used + available to unprivileged users).
		expect(root?.sizeBytes).toBe(fs.blocks * fs.bsize);
		expect(Math.abs(root!.usedBytes - (fs.blocks - fs.bfree) * fs.bsize)).toBeLessThan(512 * MiB);
		expect(tmp).toMatchObject({ mountpoint: disk.dir, fstype: "tmpfs", sizeBytes: 64 * MiB, usedBytes: 0, percent: 0 });
		const meminfo = readFileSync("/proc/meminfo", "utf8");
		expect(figures.memory?.totalBytes).toBe(Number(/MemTotal:\s+(\d+) kB/.exec(meminfo)?.[1]) * 1024);
		expect(figures.cores).toBe(
			readFileSync("/proc/stat", "utf8")
				.split("\n")
				.filter((l) => /^cpu\d+ /.test(l)).length,
		);
		const bootTime = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1]);
		expect(Math.abs(figures.uptimeSeconds! - (Date.now() / 1000 - bootTime))).toBeLessThan(10);
	});

	it("crosses the disk thresholds both ways as a 64 MiB tmpfs fills and empties", async () => {
		const run = check([{ name: "local", instance: exporter.address, mounts: [disk.dir] }]);
		const detailOf = (checks: CheckResult[]) => checks[0]?.detail ?? "";

		disk.fill(56);
		const degraded = await until(run, (c) => detailOf(c).includes("56/64 MB"));
		disk.fill(62);
		const down = await until(run, (c) => detailOf(c).includes("62/64 MB"));
		disk.fill(0);
		const ok = await until(run, (c) => detailOf(c).includes("0.0/64 MB"));

		expect(degraded[0]).toMatchObject({ state: "degraded" });
		expect(detailOf(degraded)).toMatch(
			new RegExp(`^disk ${disk.dir} at 87 % \\(≥ 85 %\\) — disk .*${disk.dir} 56/64 MB \\(87 %\\) · ram .*$`),
		);
		expect(down[0]).toMatchObject({ state: "down" });
		expect(detailOf(down)).toMatch(
			new RegExp(`^disk ${disk.dir} at 96 % \\(≥ 95 %\\) — disk .*${disk.dir} 62/64 MB \\(96 %\\) · .*$`),
		);
		expect(ok[0]).toMatchObject({ state: "ok" });
		expect(detailOf(ok)).not.toContain("≥");
	});

	it("takes its memory thresholds from the config", async () => {
		const down = check([
			{ name: "local", instance: exporter.address, mounts: [disk.dir], memory: { degradedPercent: 1, downPercent: 2 } },
		]);
		const degraded = check([
			{
				name: "local",
				instance: exporter.address,
				mounts: [disk.dir],
				memory: { degradedPercent: 1, downPercent: 100 },
			},
		]);

		const [d] = await down();
		const [g] = await degraded();

		expect(d).toMatchObject({ state: "down" });
		expect(d?.detail).toMatch(/^ram at \d+ % \(≥ 2 %\) — /);
		expect(g).toMatchObject({ state: "degraded" });
		expect(g?.detail).toMatch(/^ram at \d+ % \(≥ 1 %\) — /);
	});

	it("selects hosts by label, one segment per matched instance, and says which target is down, not 0 %", async () => {
		const run = check([
			{ name: "by-label", labels: { job: "node", host: "local" }, mounts: [disk.dir] },
			{ name: "gone", instance: `127.0.0.1:${closedPort}` },
			{ name: "all-nodes", labels: { job: "node" }, mounts: [disk.dir] },
			{ name: "nowhere", labels: { host: "nowhere" } },
		]);

		const checks = await until(
			run,
			(c) => c.find((x) => x.name === "gone")?.detail.includes("is down") === true && c[0]?.state === "ok",
		);
		const byName = Object.fromEntries(checks.map((c) => [c.name, c]));

		expect(byName["by-label"]?.detail).toMatch(new RegExp(`^disk ${disk.dir} 0\\.0/64 MB \\(0 %\\) · ram `));
		expect(byName.gone).toMatchObject({
			state: "down",
			detail: `node-exporter 127.0.0.1:${closedPort} is down (connection refused): no current figures`,
		});
		expect(byName["all-nodes"]?.state).toBe("down");
		const [first, second] = [exporter.address, `127.0.0.1:${closedPort}`].sort();
		expect(byName["all-nodes"]?.detail).toMatch(new RegExp(`^${first}: .*; ${second}: `));
		expect(byName["all-nodes"]?.detail).toContain(
			`127.0.0.1:${closedPort}: node-exporter 127.0.0.1:${closedPort} is down (connection refused)`,
		);
		expect(byName.nowhere).toMatchObject({
			state: "down",
			detail: 'no node-exporter target matches {host="nowhere"} in Prometheus',
		});
		expect(byName.gone?.detail).not.toMatch(/%/);
	});

	it("stops showing a host's figures once its node-exporter stops, rather than the last ones", async () => {
		const run = check([{ name: "leaving", instance: leaving.address }]);
		const before = await until(run, ([c]) => c?.state === "ok");

		await leaving.stop();
		const after = await until(run, ([c]) => c?.detail.includes("is down") === true);

		expect(before[0]?.detail).toMatch(/^disk .* · ram /);
		// A scrape in flight when the exporter stops ends as a timeout or a dropped connection rather than a refusal.
		const stopReasons = "connection refused|scrape timed out|connection dropped";
		expect(after[0]?.state).toBe("down");
		expect(after[0]?.detail).toMatch(
			new RegExp(`^node-exporter ${leaving.address} is down \\((${stopReasons})\\): no current figures$`),
		);
		expect(after[0]?.hosts?.[0]).toMatchObject({ up: false, mounts: [] });
		expect(after[0]?.hosts?.[0]?.memory).toBeUndefined();
	});

	it("names Prometheus when it is the one not answering", async () => {
		const run = check([{ name: "local", instance: exporter.address }], `http://127.0.0.1:${closedPort}`);

		const [host] = await run();

		expect(host).toMatchObject({ state: "down", detail: "Prometheus: connection refused" });
	});
});
