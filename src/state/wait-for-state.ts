import { createServer, type Server } from "node:http";
import type { Logger } from "../log.ts";
import { loadPg } from "../pg-pool.ts";
import { describePgFailure } from "../services/postgres.ts";

/** Longest pause between two attempts to reach the state database at start. */
const MAX_BACKOFF_MS = 15_000;

/**
 * Waits until opsbot's own PostgreSQL (STATE_DATABASE_URL) answers, retrying with backoff (1, 2, 4, 8,
 * 15, 15 ... s) instead of exiting, which under `restart: unless-stopped` is a crash loop. Meanwhile,
 * when the alert receiver has a port, that port answers: /healthz 200 (the process is alive),
 * /readyz 503 and webhooks 503 with the reason (AlertManager retries), so an operator sees why.
 * Resolves once a connection succeeded (the port is free again for the receiver); rejects only if
 * `signal` aborts (shutdown).
 */
export async function waitForStateDatabase(
	url: string,
	log: Logger,
	options: { listen?: { host: string; port: number }; signal?: AbortSignal; firstBackoffMs?: number } = {},
): Promise<void> {
	let reason = "";
	let server: Server | undefined;
	const attempt = async (): Promise<boolean> => {
		const client = new (loadPg().Client)({
			connectionString: url,
			connectionTimeoutMillis: 5_000,
			application_name: "opsbot-state",
		});
		client.on("error", () => undefined); // the failed connect below says why
		try {
			await client.connect();
			await client.query("SELECT 1");
			return true;
		} catch (err) {
			reason = describePgFailure(err);
			return false;
		} finally {
			await client.end().catch(() => undefined);
		}
	};
	if (await attempt()) return;
	if (options.listen) server = await serveWaiting(options.listen, () => reason, log);
	try {
		let backoffMs = options.firstBackoffMs ?? 1_000;
		for (let tries = 1; ; tries++) {
			log.error(
				{ reason, retryInSeconds: backoffMs / 1000, tries },
				`the state database (STATE_DATABASE_URL) is not reachable (${reason}): opsbot waits for it, without ` +
					`Discord commands or alert relay until then`,
			);
			await pause(backoffMs, options.signal);
			if (await attempt()) break;
			backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
		}
		log.info("the state database is reachable: starting");
	} finally {
		await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
	}
}

/** The receiver's port while waiting: alive, not ready, and why. */
async function serveWaiting(
	listen: { host: string; port: number },
	reason: () => string,
	log: Logger,
): Promise<Server | undefined> {
	const server = createServer((request, response) => {
		const path = (request.url ?? "").split("?")[0];
		const alive = request.method === "GET" && path === "/healthz";
		response.writeHead(alive ? 200 : 503, {
			"content-type": "application/json",
			...(alive ? {} : { "retry-after": "5" }),
		});
		response.end(
			JSON.stringify(
				alive ? { status: "ok" } : { discord: "not connected", store: `state database not reachable (${reason()})` },
			),
		);
	});
	// Bounded like the receiver: an idle or slow client cannot hold a socket.
	server.requestTimeout = 10_000;
	server.headersTimeout = 10_000;
	server.maxConnections = 128;
	return new Promise((resolve) => {
		server.once("error", (err) => {
			log.warn({ err }, "could not open the alert receiver's port while waiting for the state database");
			resolve(undefined);
		});
		server.listen(listen.port, listen.host, () => resolve(server));
	});
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
	return new Promise((resolve, reject) => {
		if (signal?.aborted) return reject(new Error("stopped while waiting for the state database"));
		const timer = setTimeout(resolve, ms);
		signal?.addEventListener(
			"abort",
			() => {
				clearTimeout(timer);
				reject(new Error("stopped while waiting for the state database"));
			},
			{ once: true },
		);
	});
}
