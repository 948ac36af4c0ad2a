import { describe, expect, it } from "vitest";
import { type HostCheckConfig, OpsFileSchema } from "../../src/config.ts";
import {
	formatBytesPair,
	formatUptime,
	type HostFigures,
	hostQuery,
	judgeHost,
	plainScrapeError,
} from "../../src/services/host-resources.ts";

const GiB = 1024 ** 3;

function host(entry: Record<string, unknown>): HostCheckConfig {
	return OpsFileSchema.parse({
		discord: { guildId: "100000000000000001" },
		environments: { e: { prometheus: { url: "http://p:9090" }, hosts: [entry] } },
	}).environments.e!.hosts![0]!;
}

function figures(partial: Partial<HostFigures>): HostFigures {
	return { instance: "prod:9100", up: true, hasNodeMetrics: true, mounts: [], missingMounts: [], ...partial };
}

const root = (usedGiB: number, sizeGiB: number, percent: number) => ({
	mountpoint: "/",
	device: "/dev/sda1",
	fstype: "ext4",
	sizeBytes: sizeGiB * GiB,
	usedBytes: usedGiB * GiB,
	availBytes: (sizeGiB - usedGiB) * GiB,
	percent,
});

describe("host lines", () => {
	it("reads like the team's notes: disk, ram, load per core, uptime", () => {
		const prod = host({ name: "prod", instance: "prod:9100" });

		const judged = judgeHost(prod, [
			figures({
				mounts: [root(24, 38, 63.2)],
				memory: { totalBytes: 5.3 * GiB, usedBytes: 3 * GiB, percent: 56.6 },
				load1: 0.8,
				cores: 2,
				uptimeSeconds: 12.5 * 86_400,
			}),
		]);

		expect(judged).toEqual({
			state: "ok",
			detail: "disk 24/38 GB (63 %) · ram 3.0/5.3 GB (56 %) · load 0.4/core · up 12 d",
		});
	});

	it("applies load thresholds only when configured, and names a configured mount node-exporter does not report", () => {
		const plain = host({ name: "prod", instance: "prod:9100" });
		const strict = host({
			name: "prod",
			instance: "prod:9100",
			mounts: ["/", "/data"],
			loadPerCore: { degraded: 1, down: 3 },
		});
		const busy = figures({ mounts: [root(10, 100, 10)], load1: 8, cores: 2 });

		expect(judgeHost(plain, [busy]).state).toBe("ok");
		expect(judgeHost(strict, [{ ...busy, missingMounts: ["/data"] }])).toEqual({
			state: "down",
			detail: "disk /data not reported, load 4/core (≥ 3/core) — disk / 10/100 GB (10 %) · load 4/core",
		});
	});

	it("shows a floor percent, so 94.9 % is not shown as a 95 % that is only amber", () => {
		const prod = host({ name: "prod", instance: "prod:9100" });

		expect(judgeHost(prod, [figures({ mounts: [root(94.9, 100, 94.9)] })])).toEqual({
			state: "degraded",
			detail: "disk at 94 % (≥ 85 %) — disk 95/100 GB (94 %)",
		});
	});

	it("says when a target answers without node-exporter metrics, or nothing matches", () => {
		const byLabels = host({ name: "db", labels: { job: "node", role: 'd"b' } });

		expect(judgeHost(byLabels, [figures({ hasNodeMetrics: false })])).toEqual({
			state: "degraded",
			detail: "prod:9100 answers but exposes no node-exporter metrics",
		});
		expect(judgeHost(byLabels, [])).toEqual({
			state: "down",
			detail: 'no node-exporter target matches {job="node", role="d\\"b"} in Prometheus',
		});
		expect(hostQuery(byLabels)).toBe(
			'{__name__=~"up|node_filesystem_size_bytes|node_filesystem_free_bytes|node_filesystem_avail_bytes|' +
				"node_memory_MemTotal_bytes|node_memory_MemAvailable_bytes|node_load1|node_boot_time_seconds|" +
				'node_cpu_seconds_total", mode=~"|idle", job="node", role="d\\"b"}',
		);
	});

	it("formats sizes in the total's unit, counted in 1024s, and uptime and scrape errors in plain words", () => {
		expect([
			formatBytesPair(3 * GiB, 5.3 * GiB),
			formatBytesPair(0, 64 * 1024 ** 2),
			formatBytesPair(1.5 * 1024 ** 4, 2 * 1024 ** 4),
			formatBytesPair(0, 0),
		]).toEqual(["3.0/5.3 GB", "0.0/64 MB", "1.5/2.0 TB", "0.0/0.0 B"]);
		expect([formatUptime(59), formatUptime(3 * 3_600 + 5), formatUptime(40 * 86_400)]).toEqual([
			"0 min",
			"3 h",
			"40 d",
		]);
		expect(
			plainScrapeError('Get "http://10.0.0.5:9100/metrics": dial tcp 10.0.0.5:9100: connect: connection refused'),
		).toBe("connection refused");
		expect(plainScrapeError('Get "http://10.0.0.5:9100/metrics": context deadline exceeded')).toBe("scrape timed out");
		expect(plainScrapeError("server returned HTTP status 503 Service Unavailable")).toBe("HTTP 503");
		expect(plainScrapeError('Get "http://10.0.0.5:9100/metrics": EOF')).toBe("connection dropped");
		expect(plainScrapeError("read tcp 127.0.0.1:5->127.0.0.1:9100: read: connection reset by peer")).toBe(
			"connection dropped",
		);
		expect(plainScrapeError("something new")).toBe("scrape failed");
	});
});
