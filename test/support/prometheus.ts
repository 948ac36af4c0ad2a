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

/** A job's targets with labels added to each of them (as a static_config's `labels`). */
export interface LabelledTargets {
	readonly targets: readonly string[];
	readonly labels: Readonly<Record<string, string>>;
}

/**
 * Starts Prometheus; `targets` maps a job name to host:port targets (a closed port makes a down
 * target), or to groups of targets with extra labels, for selecting hosts by label.
 */
export async function startPrometheus(
	options: {
		targets?: Record<string, readonly string[] | readonly LabelledTargets[]>;
		/** How often the given targets are scraped (Prometheus itself: every second); e.g. "250ms". */
		scrapeInterval?: string;
	} = {},
): Promise<TestPrometheus> {
	requireBinary(PROMETHEUS, "Prometheus", "prometheus");
	const dir = mkdtempSync(join(tmpdir(), "opsbot-prom-"));
	const port = await freePort();
	const jobs = Object.entries({ prometheus: [`127.0.0.1:${port}`], ...options.targets });
	const quoted = (values: readonly string[]) => values.map((v) => JSON.stringify(v)).join(", ");
	const labelled = (groups: readonly string[] | readonly LabelledTargets[]): groups is readonly LabelledTargets[] =>
		groups.some((g) => typeof g !== "string");
	const staticConfigs = (groups: readonly string[] | readonly LabelledTargets[]) =>
		labelled(groups)
			? `[${groups
					.map(
						(g) =>
							`{ targets: [${quoted(g.targets)}], labels: { ${Object.entries(g.labels)
								.map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
								.join(", ")} } }`,
					)
					.join(", ")}]`
			: `[{ targets: [${quoted(groups)}] }]`;
	// A scrape must end within its interval: the given targets time out at their interval.
	const interval = options.scrapeInterval
		? `\n    scrape_interval: ${options.scrapeInterval}\n    scrape_timeout: ${options.scrapeInterval}`
		: "";
	const scrapeConfigs = jobs.map(
		([job, targets]) =>
			`  - job_name: ${job}\n    static_configs: ${staticConfigs(targets)}${job === "prometheus" ? "" : interval}`,
	);
	writeFileSync(
		join(dir, "prometheus.yml"),
		`global: { scrape_interval: 1s, scrape_timeout: 500ms }\nscrape_configs:\n${scrapeConfigs.join("\n")}\n`,
	);
	return startReadyServer(
		PROMETHEUS,
		[
			`--config.file=${join(dir, "prometheus.yml")}`,
			`--storage.tsdb.path=${join(dir, "data")}`,
			`--web.listen-address=127.0.0.1:${port}`,
			"--log.level=warn",
		],
		{ dir, logFile: join(dir, "prometheus.log"), url: `http://127.0.0.1:${port}` },
	);
}
