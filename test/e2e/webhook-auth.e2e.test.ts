import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { type MainProcess, spawnMain } from "../support/main-process.ts";
import { freePort } from "../support/proc.ts";
import { rawRequest } from "../support/raw-http.ts";

const CHANNEL = "400000000000000001";
const token = randomBytes(24).toString("hex");

/** Sends `text` exactly as written and returns the status; 0 when no answer comes. */
async function rawStatus(port: number, text: string): Promise<number> {
	return (await rawRequest(port, text)).status;
}

function webhook(alertname: string): string {
	return JSON.stringify({
		version: "4",
		groupKey: `{}:{alertname="${alertname}"}`,
		status: "firing",
		receiver: "opsbot",
		groupLabels: { alertname },
		commonLabels: { alertname, severity: "warning" },
		alerts: [
			{
				status: "firing",
				labels: { alertname, severity: "warning" },
				startsAt: new Date().toISOString(),
				fingerprint: randomBytes(8).toString("hex"),
			},
		],
	});
}

function post(port: number, target: string, body: string, authorization?: string): Promise<number> {
	const head = [
		`POST ${target} HTTP/1.1`,
		`Host: 127.0.0.1:${port}`,
		"Content-Type: application/json",
		...(authorization ? [`Authorization: ${authorization}`] : []),
		`Content-Length: ${Buffer.byteLength(body)}`,
		"Connection: close",
	];
	return rawStatus(port, `${head.join("\r\n")}\r\n\r\n${body}`);
}

describe("the shipped process's webhook refuses unauthenticated alerts whatever the request target looks like", () => {
	let double: DiscordDouble;
	let main: MainProcess;
	let port: number;

	beforeAll(async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
		port = await freePort();
		main = spawnMain(
			`discord: { guildId: "${double.guildId}" }
environments:
  local:
    http: [{ name: nothing, url: "http://127.0.0.1:1/", timeoutMs: 500 }]
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-webhook-auth-"))}
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
`,
			{
				DISCORD_TOKEN: "double-token",
				DISCORD_APPLICATION_ID: double.applicationId,
				DISCORD_API_URL: double.apiUrl,
				WEBHOOK_TOKEN: token,
			},
		);
		await double
			.waitFor(() => main.child.exitCode !== null || main.output().includes("alert receiver listening"), 20_000)
			.catch(() => undefined);
		if (!main.output().includes("alert receiver listening"))
			throw new Error(`opsbot did not start its receiver:\n${main.output()}`);
	});
	afterAll(async () => {
		main?.child.kill("SIGTERM");
		await main?.exited;
		await double?.close();
	});

	const titles = () =>
		double.channelMessages(CHANNEL).map((m) => String((m.embeds[0] as { title?: string } | undefined)?.title ?? ""));

	it(
		"answers 401 to encoded, fragment and absolute-form targets without valid credentials, posts nothing, and " +
			"still relays an authenticated webhook",
		async () => {
			const targets = [
				"/alerts",
				"/alerts?x",
				"/%61lerts",
				"/alerts#x",
				"/alerts#",
				`http://127.0.0.1:${port}/alerts`,
				"http://evil.example/alerts",
			];
			const refused: Record<string, number[]> = {};

			for (const target of targets) {
				refused[target] = [
					await post(port, target, webhook("Bypass")),
					await post(port, target, webhook("Bypass"), "Bearer not-the-token"),
					await post(port, target, webhook("Bypass"), `Basic ${Buffer.from(`opsbot:${token}`).toString("base64")}`),
				];
			}
			const accepted = await post(port, "/%61lerts#x", webhook("Authenticated"), `Bearer ${token}`);
			await double.waitFor(() => titles().some((t) => t.includes("Authenticated")), 20_000);
			// A barrier instead of waiting: one more authenticated webhook, delivered after anything queued before it.
			const barrier = await post(port, "/alerts", webhook("Barrier"), `Bearer ${token}`);
			await double.waitFor(() => titles().some((t) => t.includes("Barrier")), 20_000);

			for (const target of targets) expect(refused[target], target).toEqual([401, 401, 401]);
			expect(accepted).toBe(202);
			expect(barrier).toBe(202);
			expect(titles()).toEqual(["🟠 WARNING · Authenticated", "🟠 WARNING · Barrier"]);
			expect(main.output()).not.toContain(token);
		},
	);
});
