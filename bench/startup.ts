import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DiscordDouble, startDiscordDouble } from "../test/discord-double/index.ts";
import { npmStartArgs } from "../test/support/main-process.ts";
import { withConnectedProcess } from "./connected-process.ts";
import { cpuOf } from "./proc-stat.ts";
import { type BenchRow, percentile, round } from "./types.ts";

const STARTS = 7;

/** The CPU `npm start`'s process uses from its start until it says it is connected to the double. */
function botStartCpu(double: DiscordDouble, dir: string, env: Record<string, string>): Promise<number> {
	return withConnectedProcess(
		double,
		npmStartArgs(),
		{ env: { OPSBOT_CONFIG: join(dir, "opsbot.yaml"), ...env }, cwd: dir },
		cpuOf,
	);
}

// Put in front of bin/opsbot.js: at exit the process prints the CPU it used.
const PRINT_CPU_AT_EXIT = `data:text/javascript,${encodeURIComponent(
	"process.on('exit', () => { const u = process.cpuUsage(); " +
		"process.stderr.write('CPU ' + (u.user + u.system) / 1000 + '\\n'); });",
)}`;

/** The CPU one `npx opsbot ARGS` run uses (its own process, from start to exit). */
function cliCpu(args: string[]): Promise<number> {
	return new Promise((resolve, reject) => {
		execFile(
			process.execPath,
			["--import", PRINT_CPU_AT_EXIT, "bin/opsbot.js", ...args],
			{ env: { PATH: process.env.PATH ?? "" } },
			(_err, _stdout, stderr) => {
				const cpu = /^CPU ([\d.]+)$/m.exec(stderr)?.[1];
				if (cpu) resolve(Number(cpu));
				else reject(new Error(`no CPU figure from the CLI:\n${stderr}`));
			},
		);
	});
}

async function median(times: number, measure: () => Promise<number>): Promise<number> {
	const samples: number[] = [];
	for (let i = 0; i < times; i++) samples.push(await measure());
	return percentile(
		samples.sort((a, b) => a - b),
		50,
	);
}

/**
 * What a start costs in CPU: the bot (npm start's command until it is connected to the Discord double)
 * with the compile cache switched on before the entry module loads (NODE_COMPILE_CACHE, as the image
 * sets it) and without (src/main.ts switches it on itself, so only the entry module is stripped again),
 * and a CLI run that needs no service (`opsbot --help`: what every command pays before its own work).
 */
export async function run(): Promise<BenchRow[]> {
	const double = await startDiscordDouble();
	const dir = mkdtempSync(join(tmpdir(), "opsbot-startup-"));
	writeFileSync(join(dir, "opsbot.yaml"), `discord: { guildId: "${double.guildId}" }\nenvironments:\n  local: {}\n`);
	const cache = join(dir, "compile-cache");
	try {
		await botStartCpu(double, dir, { NODE_COMPILE_CACHE: cache }); // fills the cache
		const warm = await median(STARTS, () => botStartCpu(double, dir, { NODE_COMPILE_CACHE: cache }));
		const entryStripped = await median(STARTS, () => botStartCpu(double, dir, {}));
		await cliCpu(["--help"]);
		const cli = await median(STARTS, () => cliCpu(["--help"]));
		const note = `median of ${STARTS}, user + system`;
		return [
			{
				bench: "startup",
				metric: "bot start to connected, NODE_COMPILE_CACHE set",
				value: round(warm),
				unit: "ms CPU",
				note,
			},
			{
				bench: "startup",
				metric: "bot start to connected, no NODE_COMPILE_CACHE",
				value: round(entryStripped),
				unit: "ms CPU",
				note,
			},
			{ bench: "startup", metric: "`opsbot --help`, start to exit", value: round(cli), unit: "ms CPU", note },
		];
	} finally {
		await double.close();
		rmSync(dir, { recursive: true, force: true });
	}
}
