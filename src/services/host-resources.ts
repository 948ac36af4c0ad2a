import type { HostCheckConfig } from "../config.ts";
import { flattenControls } from "../text.ts";
import { type InstantSample, type PrometheusCallOptions, type PrometheusClient, promqlString } from "./prometheus.ts";

/** One filesystem as `df` counts it: used = size - free, percent = used / (used + available to users). */
export interface MountFigures {
	readonly mountpoint: string;
	readonly device: string;
	readonly fstype: string;
	readonly sizeBytes: number;
	readonly usedBytes: number;
	readonly availBytes: number;
	readonly percent: number;
}

/** What Prometheus knows about one node-exporter instance right now. */
export interface HostFigures {
	readonly instance: string;
	/** false: Prometheus cannot scrape its node-exporter, so there are no current figures. */
	readonly up: boolean;
	/** Why the last scrape failed, in plain words (from /api/v1/targets), when it is down. */
	readonly scrapeError?: string;
	/** false: the target answers but exposes no node-exporter series (wrong instance or job?). */
	readonly hasNodeMetrics: boolean;
	readonly mounts: readonly MountFigures[];
	/** Configured mount points node-exporter does not report. */
	readonly missingMounts: readonly string[];
	readonly memory?: { readonly totalBytes: number; readonly usedBytes: number; readonly percent: number };
	readonly load1?: number;
	readonly cores?: number;
	readonly uptimeSeconds?: number;
}

const FILESYSTEM = ["node_filesystem_size_bytes", "node_filesystem_free_bytes", "node_filesystem_avail_bytes"] as const;
const METRICS = [
	"up",
	...FILESYSTEM,
	"node_memory_MemTotal_bytes",
	"node_memory_MemAvailable_bytes",
	"node_load1",
	"node_boot_time_seconds",
	"node_cpu_seconds_total",
];

// Filesystems that hold no disk; node-exporter reports them (tmpfs is not in its default exclusions) but nobody fills
// them.
const VIRTUAL_FSTYPES = new Set([
	"tmpfs",
	"ramfs",
	"devtmpfs",
	"overlay",
	"aufs",
	"squashfs",
	"nsfs",
	"autofs",
	"iso9660",
	"efivarfs",
	"fuse.lxcfs",
	"fuse.snapfuse",
]);

/** The label matchers that pick the host's node-exporter series, e.g. `instance="prod.internal:9100"`. */
export function hostSelector(host: Pick<HostCheckConfig, "instance" | "labels">): string {
	const labels = host.instance !== undefined ? { instance: host.instance } : (host.labels ?? {});
	return Object.entries(labels)
		.map(([name, value]) => `${name}=${promqlString(value)}`)
		.join(", ");
}

/**
 * One instant query for every figure: the raw series by name. `mode=~"|idle"` keeps one
 * node_cpu_seconds_total series per core (the core count) and every series without a mode label.
 */
export function hostQuery(host: Pick<HostCheckConfig, "instance" | "labels">): string {
	return `{__name__=~"${METRICS.join("|")}", mode=~"|idle", ${hostSelector(host)}}`;
}

/** Reads the host's figures from Prometheus, one entry per node-exporter instance the selector matches. */
export async function readHostFigures(
	prometheus: Pick<PrometheusClient, "queryInstant" | "activeTargets">,
	host: HostCheckConfig,
	options: PrometheusCallOptions,
): Promise<HostFigures[]> {
	const result = await prometheus.queryInstant(hostQuery(host), options);
	if (result.resultType !== "vector") throw new Error(`unexpected ${result.resultType} answer to a selector`);
	const byInstance = new Map<string, InstantSample[]>();
	for (const sample of result.samples) {
		const instance = sample.metric.instance ?? "";
		byInstance.set(instance, [...(byInstance.get(instance) ?? []), sample]);
	}
	const figures = [...byInstance]
		.sort(([a], [b]) => a.localeCompare(b))
		.map(([instance, samples]) => hostFigures(instance, samples, host.mounts));
	if (figures.every((f) => f.up)) return figures;
	// Only a down target needs its reason; ask for it then, not on every run.
	const targets = await prometheus.activeTargets(options).catch(() => []);
	return figures.map((f) => {
		if (f.up) return f;
		const target = targets.find((t) => t.labels.instance === f.instance && t.health === "down");
		return target ? { ...f, scrapeError: plainScrapeError(target.lastError) } : f;
	});
}

function hostFigures(
	instance: string,
	samples: readonly InstantSample[],
	mountsWanted: readonly string[] | undefined,
): HostFigures {
	const named = (name: string) => samples.filter((s) => s.metric.__name__ === name);
	const one = (name: string) => named(name)[0];
	const hasNodeMetrics = samples.some((s) => s.metric.__name__ !== "up");
	// Stale series vanish as soon as a scrape fails, so node_* series present means the target is being scraped.
	const up = hasNodeMetrics || named("up").some((s) => s.value === 1);

	const filesystems = new Map<
		string,
		{ device: string; fstype: string; size?: number; free?: number; avail?: number }
	>();
	for (const name of FILESYSTEM) {
		for (const s of named(name)) {
			const mountpoint = s.metric.mountpoint ?? "";
			const fs = filesystems.get(mountpoint) ?? { device: s.metric.device ?? "", fstype: s.metric.fstype ?? "" };
			if (name === "node_filesystem_size_bytes") fs.size = s.value;
			else if (name === "node_filesystem_free_bytes") fs.free = s.value;
			else fs.avail = s.value;
			filesystems.set(mountpoint, fs);
		}
	}
	const all: MountFigures[] = [];
	for (const [mountpoint, fs] of filesystems) {
		if (fs.size === undefined || fs.free === undefined || fs.avail === undefined) continue;
		const usedBytes = Math.max(0, fs.size - fs.free);
		const denominator = usedBytes + fs.avail;
		all.push({
			mountpoint,
			device: fs.device,
			fstype: fs.fstype,
			sizeBytes: fs.size,
			usedBytes,
			availBytes: fs.avail,
			percent: denominator > 0 ? (usedBytes / denominator) * 100 : 0,
		});
	}
	let mounts: MountFigures[];
	let missingMounts: string[] = [];
	if (mountsWanted) {
		mounts = mountsWanted.flatMap((m) => all.filter((f) => f.mountpoint === m));
		missingMounts = mountsWanted.filter((m) => !all.some((f) => f.mountpoint === m));
	} else {
		// A device mounted twice (bind mounts) is one disk: keep its shortest mount point.
		const byDevice = new Map<string, MountFigures>();
		for (const f of all.filter((f) => !VIRTUAL_FSTYPES.has(f.fstype) && f.sizeBytes > 0)) {
			const key = `${f.device}\u0000${f.fstype}`;
			const seen = byDevice.get(key);
			if (!seen || f.mountpoint.length < seen.mountpoint.length) byDevice.set(key, f);
		}
		mounts = [...byDevice.values()].sort((a, b) => a.mountpoint.localeCompare(b.mountpoint));
	}

	const total = one("node_memory_MemTotal_bytes")?.value;
	const available = one("node_memory_MemAvailable_bytes")?.value;
	const memory =
		total !== undefined && available !== undefined && total > 0
			? { totalBytes: total, usedBytes: total - available, percent: ((total - available) / total) * 100 }
			: undefined;
	const cores = named("node_cpu_seconds_total").length;
	const load1 = one("node_load1")?.value;
	const boot = one("node_boot_time_seconds");
	return {
		instance,
		up,
		hasNodeMetrics,
		mounts,
		missingMounts,
		...(memory ? { memory } : {}),
		...(load1 !== undefined ? { load1 } : {}),
		...(cores > 0 ? { cores } : {}),
		...(boot ? { uptimeSeconds: Math.max(0, boot.at / 1000 - boot.value) } : {}),
	};
}

/** Prometheus' lastError (Go error text with the scrape URL) in plain words. */
export function plainScrapeError(lastError: string): string {
	if (/connection refused/i.test(lastError)) return "connection refused";
	if (/deadline exceeded|timeout|timed out/i.test(lastError)) return "scrape timed out";
	// The exporter closed the connection mid-scrape (it stopped or crashed): Go says EOF or reset by peer.
	if (/connection reset|broken pipe|\bEOF\b/.test(lastError)) return "connection dropped";
	if (/no such host/i.test(lastError)) return "host name not found";
	if (/no route to host|network is unreachable/i.test(lastError)) return "host unreachable";
	const status = /server returned HTTP status (\d{3})/.exec(lastError)?.[1];
	if (status) return `HTTP ${status}`;
	return "scrape failed";
}

type State = "ok" | "degraded" | "down";
const WORSE: Record<State, number> = { ok: 0, degraded: 1, down: 2 };
const worse = (a: State, b: State): State => (WORSE[b] > WORSE[a] ? b : a);

/**
 * The host's state and its line, the reason first: `disk / at 90 % (≥ 85 %) — disk 90/100 GB (90 %) · ram 3.0/5.3
 * GB (56 %) · load 0.4/core · up 12 d`.
 * Several node-exporter instances each get their part, `instance: …`, joined by "; ".
 */
export function judgeHost(host: HostCheckConfig, figures: readonly HostFigures[]): { state: State; detail: string } {
	if (figures.length === 0)
		return { state: "down", detail: `no node-exporter target matches {${hostSelector(host)}} in Prometheus` };
	let state: State = "ok";
	const texts = figures.map((f) => {
		const judged = judgeInstance(host, f);
		state = worse(state, judged.state);
		return figures.length > 1 ? `${f.instance}: ${judged.text}` : judged.text;
	});
	return { state, detail: texts.join("; ") };
}

// Up to this many mounts are listed one by one; beyond it (a storage host, a Kubernetes node with
// 120 volumes) the line counts them, so it stays a line and not a page.
const MOUNTS_LISTED = 4;
// Problems named one by one, the worst first; the rest are counted.
const PROBLEMS_NAMED = 3;

function judgeInstance(host: HostCheckConfig, f: HostFigures): { state: State; text: string } {
	if (!f.up)
		return {
			state: "down",
			text: `node-exporter ${f.instance} is down (${f.scrapeError ?? "not scraped"}): no current figures`,
		};
	if (!f.hasNodeMetrics)
		return { state: "degraded", text: `${f.instance} answers but exposes no node-exporter metrics` };
	let state: State = "ok";
	const problems: { text: string; severity: number }[] = [];
	// Past a threshold: the state worsens and the reason says what, how much and which limit ("ram at 93 % (≥ 90 %)").
	const crossed = (
		value: number,
		degraded: number | undefined,
		down: number | undefined,
		what: string,
		shown: string,
		unit: string,
	) => {
		const limit =
			down !== undefined && value >= down ? down : degraded !== undefined && value >= degraded ? degraded : undefined;
		if (limit === undefined) return;
		state = worse(state, limit === down ? "down" : "degraded");
		problems.push({ text: `${what} ${shown} (≥ ${formatDecimal(limit)}${unit})`, severity: value });
	};
	const parts: string[] = [];
	const alone = f.mounts.length === 1 && f.mounts[0]?.mountpoint === "/" && f.missingMounts.length === 0;
	const diskProblems: typeof problems = [];
	for (const m of f.mounts) {
		const before = problems.length;
		crossed(
			m.percent,
			host.disk.degradedPercent,
			host.disk.downPercent,
			alone ? "disk" : `disk ${flattenControls(m.mountpoint)}`,
			`at ${Math.floor(m.percent)} %`,
			" %",
		);
		diskProblems.push(...problems.splice(before));
	}
	diskProblems.sort((a, b) => b.severity - a.severity);
	problems.push(...diskProblems.slice(0, PROBLEMS_NAMED));
	if (diskProblems.length > PROBLEMS_NAMED)
		problems.push({
			text: `${diskProblems.length - PROBLEMS_NAMED} more mounts ≥ ${host.disk.degradedPercent} %`,
			severity: 0,
		});
	if (f.mounts.length > MOUNTS_LISTED) {
		const fullest = f.mounts.reduce((a, b) => (b.percent > a.percent ? b : a));
		const over = diskProblems.length;
		// The full ones are named in the reason already; with none, the fullest says how much room is left.
		const room =
			over > 0
				? `, ${over} ≥ ${host.disk.degradedPercent} %`
				: ` (fullest ${flattenControls(fullest.mountpoint)} ${Math.floor(fullest.percent)} %)`;
		parts.push(`disk: ${f.mounts.length - over} ok${room}`);
	} else if (f.mounts.length > 0) {
		const mount = (m: MountFigures) =>
			`${alone ? "" : `${flattenControls(m.mountpoint)} `}` +
			`${formatBytesPair(m.usedBytes, m.sizeBytes)} (${Math.floor(m.percent)} %)`;
		parts.push(`disk ${f.mounts.map(mount).join(", ")}`);
	}
	for (const m of f.missingMounts.slice(0, PROBLEMS_NAMED)) {
		state = worse(state, "degraded");
		problems.push({ text: `disk ${flattenControls(m)} not reported`, severity: 0 });
	}
	if (f.missingMounts.length > PROBLEMS_NAMED)
		problems.push({ text: `${f.missingMounts.length - PROBLEMS_NAMED} more mounts not reported`, severity: 0 });
	if (f.memory) {
		parts.push(`ram ${formatBytesPair(f.memory.usedBytes, f.memory.totalBytes)} (${Math.floor(f.memory.percent)} %)`);
		crossed(
			f.memory.percent,
			host.memory.degradedPercent,
			host.memory.downPercent,
			"ram",
			`at ${Math.floor(f.memory.percent)} %`,
			" %",
		);
	}
	if (f.load1 !== undefined && f.cores) {
		const perCore = f.load1 / f.cores;
		parts.push(`load ${formatDecimal(perCore)}/core`);
		crossed(
			perCore,
			host.loadPerCore?.degraded,
			host.loadPerCore?.down,
			"load",
			`${formatDecimal(perCore)}/core`,
			"/core",
		);
	}
	if (f.uptimeSeconds !== undefined) parts.push(`up ${formatUptime(f.uptimeSeconds)}`);
	const text = parts.join(" · ") || "no figures";
	return { state, text: problems.length > 0 ? `${problems.map((p) => p.text).join(", ")} — ${text}` : text };
}

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

/**
 * "24/38 GB", "3.0/5.3 GB": both in the total's unit, counted in 1024s as `df -h` and `free -h`
 * do (the team's notes come from them), one decimal below 10.
 */
export function formatBytesPair(used: number, total: number): string {
	const exponent = Math.min(UNITS.length - 1, Math.max(0, Math.floor(Math.log(Math.max(total, 1)) / Math.log(1024))));
	const scale = 1024 ** exponent;
	const show = (n: number) => (n / scale < 10 ? (n / scale).toFixed(1) : String(Math.round(n / scale)));
	return `${show(used)}/${show(total)} ${UNITS[exponent]}`;
}

/** "12 d", "5 h", "40 min". */
export function formatUptime(seconds: number): string {
	if (seconds >= 86_400) return `${Math.floor(seconds / 86_400)} d`;
	if (seconds >= 3_600) return `${Math.floor(seconds / 3_600)} h`;
	return `${Math.floor(seconds / 60)} min`;
}

/** Two decimals at most, without trailing zeros: 0.4, 0.05, 1.25. */
function formatDecimal(n: number): string {
	return String(Number(n.toFixed(2)));
}
