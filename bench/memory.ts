import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DiscordDouble, startDiscordDouble } from "../test/discord-double/index.ts";
import { npmStartArgs } from "../test/support/main-process.ts";
import { withConnectedProcess } from "./connected-process.ts";
import { type BenchRow, round } from "./types.ts";

/** How long after "connected" the start-up garbage is left to settle before RSS is read. */
const SETTLE_MS = 3_000;
const SAMPLES = 5;

const rssMiB = (pid: number) =>
	Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

/**
 * Starts `node <script>` against the double, waits for it to say it is connected, and reads its settled RSS (median of
 * a few samples).
 */
async function settledRss(
	double: DiscordDouble,
	args: string[],
	env: Record<string, string>,
	cwd: string,
): Promise<number> {
	return withConnectedProcess(double, args, { env, cwd }, async (pid) => {
		await new Promise((r) => setTimeout(r, SETTLE_MS));
		const samples: number[] = [];
		for (let i = 0; i < SAMPLES; i++) {
			samples.push(rssMiB(pid));
			await new Promise((r) => setTimeout(r, 200));
		}
		return samples.sort((a, b) => a - b)[Math.floor(SAMPLES / 2)] ?? Number.NaN;
	});
}

/**
 * Idle memory against its floor, in one run: the floor is a bare discord.js client logged in with the
 * Guilds intent (bench/floor-client.mjs); opsbot is `npm start`'s command with a minimal config, started
 * once with an empty compile cache and again with the cache the first start wrote (as in the image,
 * where the Dockerfile warms it).
 */
export async function run(): Promise<BenchRow[]> {
	const double = await startDiscordDouble();
	const dir = mkdtempSync(join(tmpdir(), "opsbot-memory-"));
	const cache = join(dir, "compile-cache");
	const root = process.cwd();
	writeFileSync(join(dir, "opsbot.yaml"), `discord: { guildId: "${double.guildId}" }\nenvironments:\n  local: {}\n`);
	const opsbot = (env: Record<string, string>) =>
		settledRss(double, npmStartArgs(root), { OPSBOT_CONFIG: join(dir, "opsbot.yaml"), ...env }, dir);
	try {
		const floor = await settledRss(double, [join(root, "bench/floor-client.mjs")], {}, root);
		const cold = await opsbot({ NODE_COMPILE_CACHE: cache });
		const warm = await opsbot({ NODE_COMPILE_CACHE: cache });
		return [
			{
				bench: "memory",
				metric: "floor: bare discord.js client, Guilds intent, idle",
				value: round(floor),
				unit: "MiB",
				note: `VmRSS median of ${SAMPLES}, ${SETTLE_MS / 1000} s after ready`,
			},
			{
				bench: "memory",
				metric: "opsbot idle, empty compile cache",
				value: round(cold),
				unit: "MiB",
				note: `floor + ${round(cold - floor)} MiB`,
			},
			{
				bench: "memory",
				metric: "opsbot idle, warm compile cache",
				value: round(warm),
				unit: "MiB",
				note: `floor + ${round(warm - floor)} MiB (target: floor + 15)`,
			},
		];
	} finally {
		await double.close();
		rmSync(dir, { recursive: true, force: true });
	}
}
