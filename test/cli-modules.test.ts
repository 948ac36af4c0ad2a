import { execFile } from "node:child_process";
import { describe, expect, it } from "vitest";

// A module hook put in front of bin/opsbot.js: at exit it prints every module URL the run loaded.
const RECORD_MODULES = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from "node:module";
const urls = [];
registerHooks({ load(url, context, next) { urls.push(url); return next(url, context); } });
process.on("exit", () => process.stderr.write("MODULES " + JSON.stringify(urls) + "\\n"));
`)}`;

function loadedModules(args: string[]): Promise<string[]> {
	return new Promise((resolve, reject) => {
		execFile(
			process.execPath,
			["--import", RECORD_MODULES, "bin/opsbot.js", ...args],
			{ env: { PATH: process.env.PATH ?? "" }, timeout: 20_000 },
			(_err, _stdout, stderr) => {
				const line = stderr.split("\n").find((l) => l.startsWith("MODULES "));
				if (!line) reject(new Error(`no module list in the CLI's output:\n${stderr}`));
				else resolve(JSON.parse(line.slice("MODULES ".length)) as string[]);
			},
		);
	});
}

const packageOf = (url: string) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];

// A CLI run is a short process: what it loads is most of what it costs. The commands import the command
// modules for their reports; those build Discord components with @discordjs/builders, and only the bot
// and `opsbot doctor` (loaded when run) need discord.js's client or its REST client (bench/RESULTS.md).
describe("what a CLI run loads", () => {
	it("loads neither discord.js nor its REST client nor ssh2 for a command that needs none of them", async () => {
		const modules = await loadedModules(["--help"]);
		const packages = new Set(modules.map(packageOf));
		expect(packages).toContain("@discordjs/builders");
		for (const heavy of ["discord.js", "@discordjs/rest", "@discordjs/ws", "ssh2"])
			expect(packages).not.toContain(heavy);
	});
});
