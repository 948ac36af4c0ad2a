import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, requireBinary, startProcess, waitUntil } from "./proc.ts";

const NODE_EXPORTER = "/usr/bin/prometheus-node-exporter";

/** A throwaway prometheus-node-exporter (Debian package) on 127.0.0.1 with the collectors /health reads. */
export interface TestNodeExporter {
	/** host:port, the `instance` label Prometheus gives its target. */
	readonly address: string;
	stop(): Promise<void>;
}

/**
 * Starts node-exporter on a free port: filesystem, meminfo, loadavg, cpu and stat (boot time) only, so a scrape stays
 * cheap.
 */
export async function startNodeExporter(): Promise<TestNodeExporter> {
	requireBinary(NODE_EXPORTER, "prometheus-node-exporter", "prometheus-node-exporter");
	const dir = mkdtempSync(join(tmpdir(), "opsbot-node-exporter-"));
	const port = await freePort();
	const proc = startProcess(
		NODE_EXPORTER,
		[
			`--web.listen-address=127.0.0.1:${port}`,
			"--collector.disable-defaults",
			"--collector.filesystem",
			"--collector.meminfo",
			"--collector.loadavg",
			"--collector.cpu",
			"--collector.stat",
			"--log.level=warn",
		],
		{ logFile: join(dir, "node-exporter.log") },
	);
	const stop = async () => {
		await proc.stop();
		rmSync(dir, { recursive: true, force: true });
	};
	try {
		await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).ok, 15_000, proc.logTail, proc.child);
	} catch (err) {
		await stop();
		throw err;
	}
	return { address: `127.0.0.1:${port}`, stop };
}

/**
 * A tmpfs of a known size mounted in a temp dir (the tests run as root); `fill` sets how many MiB a file in it takes.
 */
export interface TestMount {
	readonly dir: string;
	fill(mib: number): void;
	unmount(): void;
}

/** Mounts `mount -t tmpfs -o size=<mib>m` on a fresh temp dir; fails with the reason when mounting is not permitted. */
export function mountTmpfs(mib: number): TestMount {
	const dir = mkdtempSync(join(tmpdir(), "opsbot-disk-"));
	try {
		execFileSync("mount", ["-t", "tmpfs", "-o", `size=${mib}m`, "tmpfs", dir], { stdio: "pipe" });
	} catch (err) {
		rmSync(dir, { recursive: true, force: true });
		throw new Error(
			`cannot mount a tmpfs for the disk figures (tests need root and mount permission): ` +
				`${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err)}`,
		);
	}
	let mounted = true;
	return {
		dir,
		fill(size) {
			writeFileSync(join(dir, "fill"), Buffer.alloc(size * 1024 * 1024));
		},
		unmount() {
			if (!mounted) return;
			mounted = false;
			execFileSync("umount", [dir], { stdio: "pipe" });
			rmSync(dir, { recursive: true, force: true });
		},
	};
}
