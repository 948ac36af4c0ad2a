import { mkdtempSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logs, logsDownload } from "../../src/commands/logs.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { createAccessPolicy } from "../../src/discord/access.ts";
import type { ComponentInteraction, HandlerContext } from "../../src/discord/handler.ts";
import { UserFacingError } from "../../src/errors.ts";
import type { LogsQueryState } from "../../src/services/log-search.ts";
import { createPendingStore } from "../support/pending.ts";
import { pressComponent } from "../support/press.ts";
import { logsService } from "../support/services.ts";
import { sshKeyPair, startSshd, type TestSshd } from "../support/sshd.ts";

const silent = pino({ level: "silent" });
const USER = "200000000000000001";

function contextFor(ssh: { port: number; hostKey: string; timeoutMs: number }, keyPath: string): HandlerContext {
	const ops = OpsFileSchema.parse({
		discord: { guildId: "100000000000000001" },
		access: { commands: { logs: ["everyone"] } },
		environments: {
			staging: {
				ssh: {
					host: "127.0.0.1",
					port: ssh.port,
					user: "root",
					keyFileEnv: "KEY",
					hostKey: ssh.hostKey,
					timeoutMs: ssh.timeoutMs,
					containers: ["api"],
				},
			},
		},
	});
	const secrets = new Map([["KEY", keyPath]]);
	const services = {
		logs: logsService({
			environments: ops.environments,
			secret: (n) => secrets.get(n),
			maxRangeHours: ops.logs.maxRangeHours,
			log: silent,
		}),
		logQueries: createPendingStore<LogsQueryState>(15 * 60_000),
	};
	return {
		config: { ops, env: {}, secrets },
		log: silent,
		access: createAccessPolicy(ops),
		services,
		actor: { userId: USER, username: "oncall", roleIds: [] },
		ephemeral: true,
	} as unknown as HandlerContext;
}

async function failure(work: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
	const began = performance.now();
	const error = await work.then(
		() => undefined,
		(err: unknown) => err,
	);
	return { error, ms: performance.now() - began };
}

/** Presses Download on a stored /logs search of the last hour. */
async function download(ctx: HandlerContext) {
	const now = Date.now();
	const token = await ctx.services.logQueries.put(USER, {
		title: "Logs of api on staging",
		request: {
			environment: "staging",
			service: "api",
			start: new Date(now - 3_600_000),
			end: new Date(now),
			limit: 50,
		},
	});
	const interaction = { editReply: async () => undefined } as unknown as ComponentInteraction;
	return pressComponent(logsDownload, interaction, { area: "logs", action: "download", args: [token] }, ctx);
}

/** Runs /logs service:api env:staging. */
function page(ctx: HandlerContext) {
	const options: Record<string, string> = { service: "api", env: "staging", since: "1h" };
	const interaction = {
		options: { getString: (name: string) => options[name] ?? null, getInteger: () => null },
		editReply: async () => undefined,
	} as unknown as Parameters<typeof logs.execute>[0];
	return logs.execute(interaction, ctx);
}

describe("/logs over SSH says plainly when the host does not answer in time", () => {
	let hanging: Server;
	const sockets: Socket[] = [];
	let keyPath: string;
	let hostKey: string;
	let sshd: TestSshd;

	beforeAll(async () => {
		// Accepts TCP connections and never says a word: the SSH handshake never completes.
		hanging = createServer((socket) => void sockets.push(socket));
		await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
		const dir = mkdtempSync(join(tmpdir(), "opsbot-ssh-timeout-"));
		keyPath = join(dir, "client_key");
		hostKey = sshKeyPair(keyPath);
		sshd = await startSshd();
		// A docker stand-in that takes longer than opsbot waits.
		writeFileSync(join(sshd.binDir, "docker"), "#!/bin/sh\nsleep 10\n", { mode: 0o755 });
	});
	afterAll(async () => {
		for (const s of sockets) s.destroy();
		await new Promise((resolve) => hanging?.close(resolve));
		await sshd?.stop();
	});

	it("explains a handshake that never completes, for Download and for the first page", async () => {
		const ctx = contextFor({ port: (hanging.address() as AddressInfo).port, hostKey, timeoutMs: 500 }, keyPath);

		const pressed = await failure(download(ctx));
		const searched = await failure(page(ctx));

		for (const { error, ms } of [pressed, searched]) {
			expect(error).toBeInstanceOf(UserFacingError);
			expect((error as Error).message).toBe(
				"docker logs on 127.0.0.1 did not answer within 0.5 s (the host may be down or unreachable over SSH). Try " +
					"again, or check /health staging.",
			);
			expect(ms).toBeLessThan(5_000);
		}
	});

	it("explains a docker logs that connects but does not finish in time, for Download and the first page", async () => {
		const ctx = contextFor({ port: sshd.port, hostKey: sshd.hostKey, timeoutMs: 2_000 }, sshd.privateKeyPath);

		const pressed = await failure(download(ctx));
		const searched = await failure(page(ctx));

		for (const { error, ms } of [pressed, searched]) {
			expect(error).toBeInstanceOf(UserFacingError);
			expect((error as Error).message).toBe(
				"docker logs on 127.0.0.1 did not answer within 2 s (there may be too many lines; narrow the time range). " +
					"Try again, or check /health staging.",
			);
			expect(ms).toBeLessThan(8_000);
		}
	});
});
