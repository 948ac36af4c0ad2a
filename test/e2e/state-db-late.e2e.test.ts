import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { freshStateDatabase } from "../alerts/state-database.ts";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { type MainProcess, spawnMain } from "../support/main-process.ts";
import { freePort } from "../support/proc.ts";

const CHANNEL = "400000000000000001";

/** Makes the real PostgreSQL reachable on `port` (until then nothing listens there: the database is "down"). */
function bringUp(port: number, target: { port: number }): Promise<Server> {
	const server = createServer((socket) => {
		const upstream = createConnection({ host: "127.0.0.1", port: target.port });
		socket.pipe(upstream).pipe(socket);
		socket.on("error", () => upstream.destroy());
		upstream.on("error", () => socket.destroy());
	});
	return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

/** D20: opsbot started while its state database is down waits for it, says so, and carries on when it comes. */
describe("the state database is down when opsbot starts", () => {
	const postgres = inject("postgres");
	let double: DiscordDouble | undefined;
	let main: MainProcess | undefined;
	let proxy: Server | undefined;
	afterAll(async () => {
		if (main && main.child.exitCode === null) {
			main.child.kill("SIGTERM");
			await main.exited;
		}
		proxy?.close();
		await double?.close();
	});

	it("starts anyway: logs why, /readyz 503 with the reason, then connects and answers a command once the " +
		"database is up", {
		timeout: 90_000,
	}, async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
		const [dbPort, webhookPort] = [await freePort(), await freePort()];
		const stateUrl = (await freshStateDatabase("opsbot_state_late")).replace(`:${postgres.port}/`, `:${dbPort}/`);
		const ops = `discord: { guildId: "${double.guildId}" }
access: { commands: { health: [everyone] } }
environments:
  local:
    http: [{ name: nothing, url: "http://127.0.0.1:1/", timeoutMs: 300 }]
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-late-"))}
alerts:
  listen: { host: 127.0.0.1, port: ${webhookPort} }
  defaultChannel: "${CHANNEL}"
`;
		const proc = spawnMain(ops, {
			LOG_LEVEL: "debug",
			DISCORD_TOKEN: "double-token",
			DISCORD_APPLICATION_ID: double.applicationId,
			DISCORD_API_URL: double.apiUrl,
			STATE_DATABASE_URL: stateUrl,
			WEBHOOK_TOKEN: randomBytes(24).toString("hex"),
		});
		main = proc;
		const waiting = () =>
			proc.logs().find((l) => String(l.msg).startsWith("the state database (STATE_DATABASE_URL) is not reachable"));
		await double.waitFor(
			() => waiting() ?? (proc.child.exitCode !== null ? { exited: proc.output() } : undefined),
			20_000,
		);
		const readyz = async () => {
			const res = await fetch(`http://127.0.0.1:${webhookPort}/readyz`);
			return [res.status, await res.json()] as const;
		};
		const whileDown = await double.waitFor(async () => readyz().catch(() => undefined), 10_000);

		proxy = await bringUp(dbPort, postgres);
		await double.waitFor(
			() => proc.logs().some((l) => l.msg === "connected to Discord") || proc.child.exitCode !== null,
			40_000,
		);
		const sent = await double.sendInteraction({
			kind: "command",
			name: "health",
			options: [{ name: "env", type: 3, value: "local" }],
		});
		await sent.response();
		const answer = await double.waitFor(
			() => (double!.originalMessage(sent.id)?.embeds.length ? double!.originalMessage(sent.id) : undefined),
			15_000,
		);
		const ready = await double.waitFor(async () => {
			const r = await readyz().catch(() => undefined);
			return r?.[0] === 200 ? r : undefined;
		}, 15_000);

		expect(waiting()?.msg).toContain("connection refused");
		expect(whileDown).toEqual([
			503,
			{ discord: "not connected", store: "state database not reachable (connection refused)" },
		]);
		expect(proc.child.exitCode).toBeNull();
		expect(JSON.stringify(answer.embeds)).toContain("local");
		expect(ready).toEqual([200, { discord: "connected", store: "writable" }]);
	});
});
