import { createHash, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import type { OpsFile } from "../config.ts";
import type { Logger } from "../log.ts";
import { routeGroup } from "./routing.ts";
import { WebhookPayload } from "./schema.ts";
import type { AlertStore } from "./store.ts";

/** Credentials AlertManager must present: a bearer token, or basic auth as user:password. */
export interface WebhookAuth {
	readonly bearerToken?: string | undefined;
	readonly basicAuth?: string | undefined;
}

// Comparing digests keeps the comparison constant-time whatever the lengths.
function sameSecret(given: string, expected: string): boolean {
	const a = createHash("sha256").update(given).digest();
	const b = createHash("sha256").update(expected).digest();
	return timingSafeEqual(a, b);
}

/** Checks the Authorization header against the configured secrets; the body has not been read yet. */
export function authorized(header: string | undefined, auth: WebhookAuth): boolean {
	if (!header) return false;
	const [scheme, value = ""] = header.split(" ", 2);
	if (auth.bearerToken && scheme?.toLowerCase() === "bearer") return sameSecret(value, auth.bearerToken);
	if (auth.basicAuth && scheme?.toLowerCase() === "basic") return sameSecret(Buffer.from(value, "base64").toString("utf8"), auth.basicAuth);
	return false;
}

/** Dependencies of the webhook receiver. */
export interface ReceiverDeps {
	readonly config: NonNullable<OpsFile["alerts"]>;
	readonly auth: WebhookAuth;
	readonly store: AlertStore;
	readonly log: Logger;
	/** Called after a payload is durably queued, to wake delivery. */
	readonly onQueued: () => void;
	/** Discord connected (for /readyz). */
	readonly discordReady: () => boolean;
}

/**
 * The AlertManager webhook receiver: POST /alerts, GET /healthz, GET /readyz. 2xx only once the
 * group is committed to the store; 5xx (which AlertManager retries) when it could not be.
 */
export function createReceiver(deps: ReceiverDeps): FastifyInstance {
	const app = Fastify({ bodyLimit: deps.config.maxBodyBytes, logger: false, return503OnClosing: true });
	app.addHook("onRequest", async (request, reply) => {
		if (request.url.split("?")[0] !== "/alerts") return;
		if (!authorized(request.headers.authorization, deps.auth)) {
			deps.log.warn({ ip: request.ip }, "webhook refused: bad or missing credentials");
			return reply.code(401).header("www-authenticate", 'Bearer realm="opsbot"').send({ error: "unauthorized" });
		}
		// AlertManager always sends JSON; anything else is refused before its body is read.
		if (!/^application\/json\s*(;|$)/i.test(request.headers["content-type"] ?? "")) {
			return reply.code(415).send({ error: "content type must be application/json" });
		}
	});
	app.setErrorHandler((err: { statusCode?: number; code?: string }, _request, reply) => {
		const status = err.statusCode ?? 500;
		if (status === 413) return reply.code(413).send({ error: `body larger than ${deps.config.maxBodyBytes} bytes` });
		if (status === 415) return reply.code(415).send({ error: "content type must be application/json" });
		if (status === 400) return reply.code(400).send({ error: "body is not valid JSON" });
		deps.log.error({ err }, "webhook failed");
		return reply.code(500).send({ error: "internal error" });
	});
	app.post("/alerts", async (request, reply) => {
		const parsed = WebhookPayload.safeParse(request.body);
		if (!parsed.success) {
			const problems = parsed.error.issues.slice(0, 10).map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`);
			return reply.code(400).send({ error: "invalid AlertManager webhook payload", problems });
		}
		const payload = parsed.data;
		const targets = routeGroup({ ...payload.groupLabels, ...payload.commonLabels }, deps.config);
		try {
			const result = await deps.store.accept(payload, targets);
			deps.log.info({ groupKey: payload.groupKey.slice(0, 200), status: payload.status, alerts: payload.alerts.length, ...result }, "alert group accepted");
			deps.onQueued();
			return reply.code(202).send({ queued: result.queued, duplicates: result.duplicates });
		} catch (err) {
			deps.log.error({ err }, "could not store an alert group");
			return reply.code(500).send({ error: "could not store the alert group; retry" });
		}
	});
	app.get("/healthz", async () => ({ status: "alive" }));
	app.get("/readyz", async (_request, reply) => {
		const discord = deps.discordReady();
		const store = await deps.store.writable();
		return reply.code(discord && store ? 200 : 503).send({ discord: discord ? "connected" : "not connected", store: store ? "writable" : "not writable" });
	});
	return app;
}
