import type { TLSSocket } from "node:tls";
import { Agent, buildConnector, request, type Dispatcher } from "undici";

/** What an HTTP endpoint answered to a probe. */
export interface HttpProbe {
	readonly status: number;
	readonly latencyMs: number;
	/** When the server's TLS certificate expires (https only). */
	readonly tlsExpiresAt?: Date;
	/** The first bytes of the body, for plain-text readiness answers such as Loki's `/ready`. */
	readonly bodySnippet: string;
}

/** A non-2xx answer from an HTTP API, with the start of its body for diagnosis (not for users). */
export class HttpStatusError extends Error {
	readonly status: number;
	readonly body: string;
	constructor(url: string, status: number, body: string) {
		super(`${new URL(url).pathname} answered HTTP ${status}`);
		this.name = "HttpStatusError";
		this.status = status;
		this.body = body;
	}
}

/** Options shared by every outgoing HTTP call: each has a deadline and a bounded body. */
export interface HttpCallOptions {
	readonly timeoutMs: number;
	readonly headers?: Record<string, string>;
	readonly maxBytes?: number;
	readonly signal?: AbortSignal;
	readonly dispatcher?: Dispatcher;
}

const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Sends one GET and reports status, latency and certificate expiry. A dedicated agent is used so
 * the certificate can be read off the socket and the connection is closed afterwards, never leaked.
 */
export async function probeHttp(url: string, options: HttpCallOptions): Promise<HttpProbe> {
	let peerCertificateExpiry: Date | undefined;
	const connect = buildConnector({ timeout: options.timeoutMs });
	const agent = new Agent({
		connect: (opts, callback) =>
			connect(opts, (err, socket) => {
				if (!err && socket && "getPeerCertificate" in socket) {
					const cert = (socket as TLSSocket).getPeerCertificate();
					if (cert?.valid_to) peerCertificateExpiry = new Date(cert.valid_to);
				}
				callback(err as Error, socket as never);
			}),
	});
	const started = performance.now();
	try {
		const { statusCode, body } = await request(url, {
			method: "GET",
			dispatcher: agent,
			headers: { "user-agent": "opsbot-health", ...options.headers },
			signal: combineSignals(options.signal, AbortSignal.timeout(options.timeoutMs)),
			headersTimeout: options.timeoutMs,
			bodyTimeout: options.timeoutMs,
		});
		const text = await readBounded(body, 512);
		return {
			status: statusCode,
			latencyMs: Math.round(performance.now() - started),
			bodySnippet: text,
			...(peerCertificateExpiry ? { tlsExpiresAt: peerCertificateExpiry } : {}),
		};
	} finally {
		await agent.destroy().catch(() => undefined);
	}
}

/** GETs a URL and returns the parsed JSON; non-2xx answers throw HttpStatusError. */
export async function getJson(url: string, options: HttpCallOptions): Promise<unknown> {
	const { statusCode, body } = await request(url, {
		method: "GET",
		headers: { accept: "application/json", "user-agent": "opsbot", ...options.headers },
		signal: combineSignals(options.signal, AbortSignal.timeout(options.timeoutMs)),
		headersTimeout: options.timeoutMs,
		bodyTimeout: options.timeoutMs,
		...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
	});
	const text = await readBounded(body, options.maxBytes ?? DEFAULT_MAX_BYTES);
	if (statusCode < 200 || statusCode > 299) throw new HttpStatusError(url, statusCode, text.slice(0, 500));
	try {
		return JSON.parse(text) as unknown;
	} catch (err) {
		throw new Error(`${new URL(url).pathname} did not answer JSON`, { cause: err });
	}
}

/** Reads at most `maxBytes` of a body as text and discards the rest, so a huge answer cannot exhaust memory. */
export async function readBounded(body: Dispatcher.ResponseData["body"], maxBytes: number): Promise<string> {
	const chunks: Buffer[] = [];
	let size = 0;
	for await (const chunk of body) {
		const buf = chunk as Buffer;
		if (size + buf.length > maxBytes) {
			chunks.push(buf.subarray(0, maxBytes - size));
			size = maxBytes;
			body.destroy();
			break;
		}
		chunks.push(buf);
		size += buf.length;
	}
	return Buffer.concat(chunks).toString("utf8");
}

function combineSignals(a: AbortSignal | undefined, b: AbortSignal): AbortSignal {
	return a ? AbortSignal.any([a, b]) : b;
}

/** Plain words for an undici / network failure, safe to show a user (no URLs, no credentials). */
export function describeHttpFailure(err: unknown): string {
	const code = errorCode(err);
	switch (code) {
		case "ECONNREFUSED":
			return "connection refused";
		case "ENOTFOUND":
		case "EAI_AGAIN":
			return "host name not found";
		case "ECONNRESET":
		case "UND_ERR_SOCKET":
			return "connection reset";
		case "UND_ERR_CONNECT_TIMEOUT":
			return "connect timed out";
		case "UND_ERR_HEADERS_TIMEOUT":
		case "UND_ERR_BODY_TIMEOUT":
		case "ABORT_ERR":
		case "TimeoutError":
			return "timed out";
		case "CERT_HAS_EXPIRED":
			return "TLS certificate expired";
		case "DEPTH_ZERO_SELF_SIGNED_CERT":
		case "SELF_SIGNED_CERT_IN_CHAIN":
		case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
			return "TLS certificate not trusted";
		case "ERR_TLS_CERT_ALTNAME_INVALID":
			return "TLS certificate does not match the host name";
		default:
			if (err instanceof HttpStatusError) return `HTTP ${err.status}`;
			return "request failed";
	}
}

function errorCode(err: unknown): string | undefined {
	let current: unknown = err;
	for (let depth = 0; depth < 5 && current; depth++) {
		if (typeof current === "object" && current !== null) {
			const c = current as { code?: unknown; name?: unknown; cause?: unknown };
			if (typeof c.code === "string") return c.code;
			if (c.name === "TimeoutError" || c.name === "AbortError") return "TimeoutError";
			current = c.cause;
		} else break;
	}
	return undefined;
}
