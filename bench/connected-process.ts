import { spawn } from "node:child_process";
import type { DiscordDouble } from "../test/discord-double/index.ts";

/**
 * Starts `node ARGS` (the bot, or the bare client the memory floor is) against the Discord double with
 * `env` and Discord's settings, waits until it says it is connected, runs `work` with its pid, and stops it.
 */
export async function withConnectedProcess<T>(
	double: DiscordDouble,
	args: string[],
	options: { env: Record<string, string>; cwd: string },
	work: (pid: number) => Promise<T> | T,
): Promise<T> {
	let output = "";
	const child = spawn(process.execPath, args, {
		cwd: options.cwd,
		env: {
			PATH: process.env.PATH ?? "",
			DISCORD_TOKEN: "double-token",
			DISCORD_APPLICATION_ID: double.applicationId,
			DISCORD_API_URL: double.apiUrl,
			...options.env,
		},
		stdio: ["ignore", "pipe", "pipe"],
	});
	child.stdout.on("data", (c: Buffer) => (output += c.toString()));
	child.stderr.on("data", (c: Buffer) => (output += c.toString()));
	const exited = new Promise((resolve) => child.once("exit", resolve));
	try {
		await double.waitFor(() => output.includes("connected to Discord") || child.exitCode !== null, 30_000);
		if (!output.includes("connected to Discord")) throw new Error(`the process did not connect:\n${output}`);
		return await work(child.pid ?? 0);
	} finally {
		child.kill("SIGTERM");
		await exited;
	}
}
