import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createReceiver, jsonDepth, RECEIVER_LIMITS, type ReceiverLimits } from "../../src/alerts/receiver.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import type { AlertStore } from "../../src/alerts/store.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { type RawResponse, rawRequest } from "../support/raw-http.ts";

const token = randomBytes(24).toString("hex");
// Built by the config schema, so the defaults follow it.
const config = OpsFileSchema.shape.alerts
	.unwrap()
	.parse({ defaultChannel: "400000000000000001", maxBodyBytes: 1_000_000 });

function validBody(alertname: string, extra: Record<string, unknown> = {}): string {
	return JSON.stringify({
		version: "4",
		groupKey: `{}:{alertname="${alertname}"}`,
		status: "firing",
		receiver: "opsbot",
		alerts: [
			{
				status: "firing",
				labels: { alertname },
				startsAt: "2026-11-24T12:00:00Z",
				fingerprint: randomBytes(8).toString("hex"),
			},
		],
		...extra,
	});
}

function post(
	port: number,
	target: string,
	options: { authorization?: string; contentType?: string | null; body: string; sendBody?: boolean },
): Promise<RawResponse> {
	const headers = [
		`POST ${target} HTTP/1.1`,
		`Host: 127.0.0.1:${port}`,
		...(options.contentType === null ? [] : [`Content-Type: ${options.contentType ?? "application/json"}`]),
		...(options.authorization ? [`Authorization: ${options.authorization}`] : []),
		`Content-Length: ${Buffer.byteLength(options.body)}`,
		"Connection: close",
	];
	return rawRequest(port, `${headers.join("\r\n")}\r\n\r\n${options.sendBody === false ? "" : options.body}`);
}

/** Request targets that differ from "/alerts" on the wire; the router may or may not map each to the handler. */
const targets = (port: number) => [
	"/alerts",
	"/alerts?x",
	"/alerts?",
	"/alerts?x=1#y",
	"/%61lerts",
	"/%61%6c%65%72%74%73",
	"/%41lerts",
	"/alerts#x",
	"/alerts#",
	`http://127.0.0.1:${port}/alerts`,
	"http://evil.example/alerts",
	`http://127.0.0.1:${port}/%61lerts#x`,
	"//alerts",
	"/alerts/",
	"/ALERTS",
	"/alerts;x",
	"/alerts%2F",
	"/%2Falerts",
	"%2Falerts",
	"/alerts%3Fx",
	"/alerts%23x",
	"/./alerts",
	"/x/../alerts",
	"/alerts%00",
	"/alerts/?x",
	"*",
];

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
	const closes = cleanup.reverse();
	cleanup = [];
	for (const close of closes) await close();
});

async function startReceiver(
	limits?: Partial<ReceiverLimits>,
): Promise<{ port: number; store: AlertStore; app: ReturnType<typeof createReceiver> }> {
	const store = openAlertStore(":memory:");
	const app = createReceiver({
		config,
		auth: { bearerToken: token },
		store,
		log: pino({ level: "silent" }),
		discordState: () => "connected",
		...(limits ? { limits } : {}),
	});
	await app.listen({ host: "127.0.0.1", port: 0 });
	cleanup.push(async () => {
		await app.close();
		await store.close();
	});
	return { port: (app.server.address() as { port: number }).port, store, app };
}

describe("webhook authentication whatever the form of the request target", () => {
	it("answers 401 to every unauthenticated form that reaches the handler, and stores nothing", async () => {
		const { port, store } = await startReceiver();
		const unauthenticated: Record<string, number[]> = {};

		for (const target of targets(port)) {
			unauthenticated[target] = [];
			for (const authorization of [
				undefined,
				"Bearer wrong",
				`Bearer ${token}x`,
				`Basic ${Buffer.from(`opsbot:${token}`).toString("base64")}`,
			]) {
				unauthenticated[target].push(
					(await post(port, target, { ...(authorization ? { authorization } : {}), body: validBody("Bypass") })).status,
				);
			}
		}
		const pendingAfterRefusals = await store.pending();
		const authenticated: Record<string, number> = {};
		for (const target of targets(port))
			authenticated[target] = (
				await post(port, target, {
					authorization: `Bearer ${token}`,
					body: validBody(`Good${Object.keys(authenticated).length}`),
				})
			).status;

		expect(pendingAfterRefusals).toBe(0);
		for (const target of [
			"/alerts",
			"/alerts?x",
			"/%61lerts",
			"/alerts#x",
			`http://127.0.0.1:${port}/alerts`,
			"http://evil.example/alerts",
		]) {
			expect(authenticated[target], target).toBe(202);
		}
		for (const target of targets(port)) {
			// Whatever the router sends to the handler must have been authenticated first.
			if (authenticated[target] === 202) expect(unauthenticated[target], target).toEqual([401, 401, 401, 401]);
			for (const status of unauthenticated[target] ?? [])
				expect(status < 200 || status >= 300, `${target} -> ${status}`).toBe(true);
		}
	});

	it("refuses before the body is sent, for every form that reaches the handler", async () => {
		const { port } = await startReceiver();

		const answers = await Promise.all(
			["/alerts", "/%61lerts", "/alerts#x", `http://127.0.0.1:${port}/alerts`].map((target) =>
				post(port, target, { body: validBody("Unsent"), sendBody: false }),
			),
		);

		for (const answer of answers) {
			expect(answer.status).toBe(401);
			expect(answer.headers["www-authenticate"]).toBe('Bearer realm="opsbot"');
			expect(JSON.parse(answer.body)).toEqual({ error: "unauthorized" });
		}
	});

	it("answers 415 to a body that is not JSON on every form that reaches the handler", async () => {
		const { port, store } = await startReceiver();

		const statuses = [];
		for (const target of ["/alerts", "/alerts?x", "/%61lerts", "/alerts#x", `http://127.0.0.1:${port}/alerts`]) {
			statuses.push(
				(
					await post(port, target, {
						authorization: `Bearer ${token}`,
						contentType: "text/plain",
						body: validBody("Plain"),
					})
				).status,
			);
			statuses.push(
				(await post(port, target, { authorization: `Bearer ${token}`, contentType: null, body: validBody("Untyped") }))
					.status,
			);
		}

		expect(statuses.every((s) => s === 415)).toBe(true);
		expect(await store.pending()).toBe(0);
	});
});

/** A connection that trickles its request one byte per `everyMs`; resolves when the server closes it, or after 5 s. */
function trickle(
	port: number,
	what: "body" | "headers" | "nothing",
	everyMs = 50,
): { closed: Promise<{ afterMs: number; status: number }> } {
	const started = Date.now();
	const socket = connect(port, "127.0.0.1");
	const head =
		`POST /alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
		`Authorization: Bearer ${token}\r\nContent-Length: 100000\r\n\r\n`;
	let data = "";
	let sent = 0;
	const text = what === "body" ? "{".repeat(100_000) : head;
	if (what === "body") socket.write(head);
	const timer = setInterval(() => {
		if (what !== "nothing" && !socket.destroyed) socket.write(text[sent++ % text.length] ?? " ");
	}, everyMs);
	socket.on("data", (chunk: Buffer) => (data += chunk.toString("latin1")));
	socket.on("error", () => undefined);
	const giveUp = setTimeout(() => socket.destroy(), 5_000);
	const closed = new Promise<{ afterMs: number; status: number }>((resolve) =>
		socket.on("close", () => {
			clearInterval(timer);
			clearTimeout(giveUp);
			resolve({ afterMs: Date.now() - started, status: Number(data.split(" ")[1] ?? 0) });
		}),
	);
	cleanup.push(async () => {
		clearInterval(timer);
		clearTimeout(giveUp);
		socket.destroy();
	});
	return { closed };
}

describe("webhook receiver against slow clients", () => {
	it("cuts off a body sent one byte at a time at the request deadline, serving webhooks meanwhile", async () => {
		const { port, store } = await startReceiver({
			requestTimeoutMs: 500,
			headersTimeoutMs: 300,
			idleTimeoutMs: 2_000,
			maxConnections: 16,
		});

		const slow = [trickle(port, "body"), trickle(port, "body"), trickle(port, "headers"), trickle(port, "nothing")];
		await new Promise((resolve) => setTimeout(resolve, 150));
		const during = await post(port, "/alerts", {
			authorization: `Bearer ${token}`,
			body: validBody("DuringSlowloris"),
		});
		const cut = await Promise.all(slow.map((s) => s.closed));

		expect(during.status).toBe(202);
		expect(await store.pending()).toBe(1);
		for (const c of cut) {
			expect(c.afterMs).toBeLessThan(2_000);
			expect(c.status).toBe(408);
		}
	});

	it("drops connections beyond the cap, and serves again once idle ones are cut", async () => {
		const { port } = await startReceiver({
			requestTimeoutMs: 500,
			headersTimeoutMs: 300,
			idleTimeoutMs: 2_000,
			maxConnections: 2,
		});
		const idle = [trickle(port, "nothing"), trickle(port, "nothing")];
		await new Promise((resolve) => setTimeout(resolve, 100));

		const overCap = await post(port, "/alerts", { authorization: `Bearer ${token}`, body: validBody("OverCap") });
		await Promise.all(idle.map((s) => s.closed));
		const after = await post(port, "/alerts", { authorization: `Bearer ${token}`, body: validBody("AfterCap") });

		expect(overCap.status).toBe(0);
		expect(after.status).toBe(202);
	});

	it("applies the production limits when none are given", async () => {
		const { app } = await startReceiver();

		expect(RECEIVER_LIMITS.requestTimeoutMs).toBe(10_000);
		expect(app.server.requestTimeout).toBe(RECEIVER_LIMITS.requestTimeoutMs);
		expect(app.server.headersTimeout).toBe(RECEIVER_LIMITS.headersTimeoutMs);
		expect(app.server.timeout).toBe(RECEIVER_LIMITS.idleTimeoutMs);
		expect(app.server.maxConnections).toBe(RECEIVER_LIMITS.maxConnections);
	});
});

describe("webhook receiver against deeply nested JSON", () => {
	const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;
	const arrays = (levels: number) => `${"[".repeat(levels)}${"]".repeat(levels)}`;
	const inValid = (deep: string, where: "body" | "alert" | "label") => {
		const alert =
			`{"status":"firing","labels":{"alertname":"Deep"${where === "label" ? `,"x":${deep}` : ""}},` +
			`"startsAt":"2026-11-24T12:00:00Z","fingerprint":"abc"${where === "alert" ? `,"x":${deep}` : ""}}`;
		return (
			`{"version":"4","groupKey":"{}:{alertname=\\"Deep\\"}","status":"firing","receiver":"opsbot",` +
			`"alerts":[${alert}]${where === "body" ? `,"x":${deep}` : ""}}`
		);
	};

	it.each([10_000, 100_000])(
		"answers 400 naming the nesting to %i levels, wherever they sit, and stores nothing",
		async (levels) => {
			const store = openAlertStore(":memory:");
			const app = createReceiver({
				config: { ...config, maxBodyBytes: 5_000_000 },
				auth: { bearerToken: token },
				store,
				log: pino({ level: "silent" }),
				discordState: () => "connected",
			});
			cleanup.push(async () => {
				await app.close();
				await store.close();
			});
			const bodies = [
				nested(levels),
				arrays(levels),
				inValid(nested(levels), "body"),
				inValid(nested(levels), "alert"),
				inValid(nested(levels), "label"),
				inValid(arrays(levels), "label"),
			];

			const answers = [];
			for (const payload of bodies)
				answers.push(
					await app.inject({
						method: "POST",
						url: "/alerts",
						headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
						payload,
					}),
				);

			for (const answer of answers) {
				expect(answer.statusCode).toBe(400);
				expect(answer.json()).toEqual({ error: "JSON nested deeper than 32 levels" });
			}
			expect(await store.pending()).toBe(0);
		},
	);

	it("still takes a payload with ordinary unknown fields", async () => {
		const { port } = await startReceiver();

		const answer = await post(port, "/alerts", {
			authorization: `Bearer ${token}`,
			body: validBody("Extra", { routeLabels: { team: "db" }, future: [[{ a: [1] }]] }),
		});

		expect(answer.status).toBe(202);
	});

	it("counts nesting outside strings only", () => {
		expect(jsonDepth('{"a":"[[[{{{"}')).toBe(1);
		expect(jsonDepth('{"a":"\\"[[[","b":[{}]}')).toBe(3);
		expect(jsonDepth('"\\\\"')).toBe(0);
		expect(jsonDepth(`${"[".repeat(1_000)}`, 40)).toBe(41);
	});
});
