import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, requireBinary, startReadyServer } from "./proc.ts";

const PROMETHEUS = "/usr/bin/prometheus";

/** A throwaway Prometheus 2.42 on 127.0.0.1 that scrapes itself and the given extra targets every second. */
export interface TestPrometheus {
	readonly url: string;
	stop(): Promise<void>;
}

/** Starts Prometheus; `targets` maps a job name to host:port targets (a closed port makes a down target). */
export async function startPrometheus(options: { targets?: Record<string, string[]> } = {}): Promise<TestPrometheus> {
	requireBinary(PROMETHEUS, "Prometheus", "prometheus");
	const dir = mkdtempSync(join(tmpdir(), "opsbot-prom-"));
	const port = await freePort();
	const jobs = Object.entries({ prometheus: [`127.0.0.1:${port}`], ...options.targets });
	writeFileSync(
		join(dir, "prometheus.yml"),
		`global: { scrape_interval: 1s, scrape_timeout: 500ms }\nscrape_configs:\n${jobs.map(([job, targets]) => `  - job_name: ${job}\n    static_configs: [{ targets: [${targets.map((t) => `"${t}"`).join(", ")}] }]`).join("\n")}\n`,
	);
	return startReadyServer(PROMETHEUS, [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"], { dir, logFile: join(dir, "prometheus.log"), url: `http://127.0.0.1:${port}` });
}
