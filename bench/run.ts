import type { BenchRow } from "./types.ts";

/**
 * `npm run bench [name…]`: runs each benchmark module and prints one table. Benchmarks live here,
 * never in timed unit tests, because these machines are noisy. Record figures in bench/RESULTS.md.
 */
const BENCHES: Record<string, () => Promise<{ run: () => Promise<BenchRow[]> }>> = {
	health: () => import("./health.ts"),
	pool: () => import("./pool.ts"),
	audit: () => import("./audit.ts"),
	logs: () => import("./logs.ts"),
	storm: () => import("./storm.ts"),
	ingest: () => import("./ingest.ts"),
	"group-commit": () => import("./group-commit.ts"),
	charts: () => import("./charts.ts"),
	history: () => import("./history.ts"),
	memory: () => import("./memory.ts"),
	startup: () => import("./startup.ts"),
	"chart-storm": () => import("./chart-storm.ts"),
	reconcile: () => import("./reconcile.ts"),
	lifecycle: () => import("./lifecycle.ts"),
	threads: () => import("./threads.ts"),
	"replicas-storm": () => import("./replicas-storm.ts"),
};

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : Object.keys(BENCHES);
const rows: BenchRow[] = [];
for (const name of names) {
	const load = BENCHES[name];
	if (!load) {
		console.error(`unknown bench "${name}"; known: ${Object.keys(BENCHES).join(", ")}`);
		process.exit(64);
	}
	process.stderr.write(`running ${name}…\n`);
	rows.push(...(await (await load()).run()));
}

const header = ["bench", "metric", "value", "unit", "note"];
const table = [header, ...rows.map((r) => [r.bench, r.metric, String(r.value), r.unit, r.note ?? ""])];
const widths = header.map((_, i) => Math.max(...table.map((row) => (row[i] ?? "").length)));
const line = (cells: string[]) =>
	`| ${cells.map((c, i) => (i === 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(" | ")} |`;
console.log(line(header));
console.log(`|${widths.map((w, i) => (i === 2 ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`);
for (const row of table.slice(1)) console.log(line(row));
