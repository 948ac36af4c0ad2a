import { hash, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import type { OpsFile } from "../config.ts";
import type { Logger } from "../log.ts";
import type { AlertManagerContact } from "../services/alertmanager.ts";
import { routeGroup } from "./routing.ts";
import { WebhookPayload } from "./schema.ts";
import type { AcceptResult, AlertStore } from "./store.ts";

/** Credentials AlertManager must present: a bearer token, or basic auth as user:password. */
export interface WebhookAuth {
	readonly bearerToken?: string | undefined;
	readonly basicAuth?: string | undefined;
}

// Comparing digests keeps the comparison constant-time whatever the lengths.
function sameSecret(given: string, expected: string): boolean {
	return timingSafeEqual(hash("sha256", given, "buffer"), hash("sha256", expected, "buffer"));
}

/** Checks the Authorization header against the configured secrets; the body has not been read yet. */
export function authorized(header: string | undefined, auth: WebhookAuth): boolean {
	if (!header) return false;
	const [scheme, value = ""] = header.split(" ", 2);
	if (auth.bearerToken && scheme?.toLowerCase() === "bearer") return sameSecret(value, auth.bearerToken);
	if (auth.basicAuth && scheme?.toLowerCase() === "basic")
		return sameSecret(Buffer.from(value, "base64").toString("utf8"), auth.basicAuth);
	return false;
}

/** Bounds on how long and how many connections the receiver holds, so slow or idle clients cannot exhaust it. */
export interface ReceiverLimits {
	/** Whole request (headers and body) must arrive within this; a body trickled 1 byte at a time is cut off here. */
	readonly requestTimeoutMs: number;
	/** Headers must arrive within this (at most requestTimeoutMs). */
	readonly headersTimeoutMs: number;
	/** A socket with no traffic either way for this long is closed. */
	readonly idleTimeoutMs: number;
	/** Connections beyond this are dropped on accept. */
	readonly maxConnections: number;
}

/**
 * Production limits. AlertManager's body is a few KB and arrives in milliseconds; its own attempt is
 * bounded by the flush (group_interval, at least 10 s) and a cut-off request is retried, so a 10 s
 * deadline costs it nothing while a trickling client is dropped (a full 2 MiB body needs ~200 KiB/s).
 * A few AlertManager peers need a few connections each; 128 bounds sockets and memory with room.
 */
export const RECEIVER_LIMITS: ReceiverLimits = {
	requestTimeoutMs: 10_000,
	headersTimeoutMs: 5_000,
	idleTimeoutMs: 30_000,
	maxConnections: 128,
};

/**
 * Deepest JSON the receiver parses. An AlertManager body nests 4 levels (body, alerts, alert,
 * labels); anything past 32 is not AlertManager. Deeper unknown fields would pass the schema and
 * overflow the stack when the group is serialised for the store (a 500 AlertManager retries forever).
 */
export const MAX_JSON_DEPTH = 32;

/** Nesting depth of a JSON text (objects and arrays), counted without parsing; stops counting once past `limit`. */
export function jsonDepth(text: string, limit = Number.POSITIVE_INFINITY): number {
	let depth = 0;
	let deepest = 0;
	let inString = false;
	for (let i = 0; i < text.length; i++) {
		const c = text.charCodeAt(i);
		if (inString) {
			if (c === 0x5c)
				i++; // backslash: the next character is escaped
			else if (c === 0x22) inString = false;
		} else if (c === 0x22) inString = true;
		else if (c === 0x7b || c === 0x5b) {
			depth++;
			if (depth > deepest) {
				deepest = depth;
				if (deepest > limit) return deepest;
			}
		} else if (c === 0x7d || c === 0x5d) depth--;
	}
	return deepest;
}

class JsonTooDeepError extends Error {
	readonly statusCode = 400;
	readonly code = "OPSBOT_JSON_TOO_DEEP";
}

/** "standby": another replica holds the Discord gateway; this one takes webhooks and delivers through REST. */
export type DiscordState = "connected" | "standby" | "not connected";

/** Dependencies of the webhook receiver. */
export interface ReceiverDeps {
	readonly config: NonNullable<OpsFile["alerts"]>;
	readonly auth: WebhookAuth;
	readonly store: AlertStore;
	readonly log: Logger;
	/**
	 * Discord as this process sees it (for /readyz): a standby replica delivers through REST while another holds the
	 * gateway.
	 */
	readonly discordState: () => DiscordState;
	/** Told when a valid webhook (of any kind) arrived, for the dead man's notice. */
	readonly seen?: (at: number) => void;
	/** When each AlertManager last answered (for /readyz's detail; it does not decide readiness). */
	readonly alertmanagers?: () => readonly AlertManagerContact[];
	/** Overrides of RECEIVER_LIMITS (tests use short timeouts). */
	readonly limits?: Partial<ReceiverLimits>;
}

/**
 * Routes a notification to its channels and hands it to the store: the one way in for webhooks and for
 * what reconciliation finds, so routing, deduplication, episodes and storms treat both alike.
 */
export function acceptPayload(
	deps: {
		readonly config: Pick<NonNullable<OpsFile["alerts"]>, "routes" | "defaultChannel">;
		readonly store: AlertStore;
	},
	payload: WebhookPayload,
): Promise<AcceptResult> {
	const targets = routeGroup({ ...payload.groupLabels, ...payload.commonLabels }, deps.config);
	return deps.store.accept(payload, targets);
}

/**
 * The AlertManager webhook receiver: POST /alerts, GET /healthz, GET /readyz. 2xx only once the
 * group is committed to the store; 5xx (which AlertManager retries) when it could not be.
 */
export function createReceiver(deps: ReceiverDeps): FastifyInstance {
	const limits = { ...RECEIVER_LIMITS, ...deps.limits };
	const app = Fastify({
		bodyLimit: deps.config.maxBodyBytes,
		logger: false,
		return503OnClosing: true,
		requestTimeout: limits.requestTimeoutMs,
		connectionTimeout: limits.idleTimeoutMs,
		http: {
			requestTimeout: limits.requestTimeoutMs,
			headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
			// Node checks both deadlines only this often (default 30 s, which would triple the 10 s bound).
			connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.requestTimeoutMs / 4))),
		},
	});
	app.server.maxConnections = limits.maxConnections;
	const defaultJsonParser = app.getDefaultJsonParser("error", "error");
	// Refused before parsing: a nesting bound keeps every later walk (schema, store serialisation) off the stack limit.
	app.addContentTypeParser<string>("application/json", { parseAs: "string" }, (request, body, done) => {
		if (jsonDepth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
			done(new JsonTooDeepError(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`), undefined);
			return;
		}
		defaultJsonParser(request, body, done);
	});
	app.setErrorHandler((err: { statusCode?: number; code?: string; message?: string }, _request, reply) => {
		const status = err.statusCode ?? 500;
		if (err.code === "OPSBOT_JSON_TOO_DEEP") return reply.code(400).send({ error: err.message });
		if (status === 413) return reply.code(413).send({ error: `body larger than ${deps.config.maxBodyBytes} bytes` });
		if (status === 415) return reply.code(415).send({ error: "content type must be application/json" });
		if (status === 400) return reply.code(400).send({ error: "body is not valid JSON" });
		deps.log.error({ err }, "webhook failed");
		return reply.code(500).send({ error: "internal error" });
	});
	/**
	 * Validates and routes a webhook and hands it to the store, all before the first await: once this
	 * returns, nothing refers to the parsed payload (the request's body included), so while the webhook
	 * waits for its group commit only what the store writes is kept, not a few hundred KB of objects.
	 */
	function handOver(
		request: FastifyRequest,
	): { problems: string[] } | { summary: Record<string, unknown>; result: Promise<AcceptResult> } {
		const parsed = WebhookPayload.safeParse(request.body);
		request.body = undefined;
		if (!parsed.success)
			return { problems: parsed.error.issues.slice(0, 10).map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`) };
		// Only opsbot's reconciliation may say it found or resolved a group; a webhook claiming so is read without it.
		const { opsbotReconciled: _, ...payload } = parsed.data;
		deps.seen?.(Date.now());
		// The dead man's switch's alert is a heartbeat, never a card.
		const deadman = deps.config.deadman;
		if (deadman && payload.alerts.every((a) => a.labels.alertname === deadman.alertname)) {
			const beat =
				payload.status === "firing" ? deps.store.heartbeat(deadman.alertname, Date.now()) : Promise.resolve();
			return {
				summary: { heartbeat: deadman.alertname, status: payload.status },
				result: beat.then(() => ({ queued: 0, duplicates: 0 })),
			};
		}
		return {
			summary: { groupKey: payload.groupKey.slice(0, 200), status: payload.status, alerts: payload.alerts.length },
			result: acceptPayload(deps, payload),
		};
	}

	app.post(
		"/alerts",
		{
			// A route hook, not a global one matched on the raw URL: it runs for every request the router
			// sends here (/%61lerts, /alerts#x, absolute-form targets...), and before the body is read.
			onRequest: async (request, reply) => {
				if (!authorized(request.headers.authorization, deps.auth)) {
					deps.log.warn({ ip: request.ip }, "webhook refused: bad or missing credentials");
					return reply.code(401).header("www-authenticate", 'Bearer realm="opsbot"').send({ error: "unauthorized" });
				}
				// AlertManager always sends JSON; anything else is refused before its body is read.
				if (!/^application\/json\s*(;|$)/i.test(request.headers["content-type"] ?? "")) {
					return reply.code(415).send({ error: "content type must be application/json" });
				}
			},
		},
		async (request, reply) => {
			const handed = handOver(request);
			if ("problems" in handed)
				return reply.code(400).send({ error: "invalid AlertManager webhook payload", problems: handed.problems });
			try {
				const result = await handed.result;
				deps.log.info({ ...handed.summary, ...result }, "alert group accepted");
				return reply.code(202).send({ queued: result.queued, duplicates: result.duplicates });
			} catch (err) {
				deps.log.error({ err }, "could not store an alert group");
				return reply.code(500).send({ error: "could not store the alert group; retry" });
			}
		},
	);
	app.get("/healthz", async () => ({ status: "alive" }));
	app.get("/readyz", async (_request, reply) => {
		const discord = deps.discordState();
		const store = await deps.store.writable();
		// AlertManager's answers are detail, not readiness: opsbot still takes webhooks when it cannot ask.
		const alertmanagers = deps.alertmanagers?.().map((c) => ({
			url: c.url,
			environments: c.environments,
			lastAnswerAt: c.lastAnswerAt === null ? null : new Date(c.lastAnswerAt).toISOString(),
			state: c.up === null ? "not asked yet" : c.up ? "answering" : `not answering: ${c.problem ?? "no answer"}`,
		}));
		return reply.code(discord !== "not connected" && store ? 200 : 503).send({
			discord,
			store: store ? "writable" : "not writable",
			...(alertmanagers?.length ? { alertmanagers } : {}),
		});
	});
	return app;
}
