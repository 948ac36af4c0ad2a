import type { TLSSocket } from "node:tls";
import { Agent, buildConnector, type Dispatcher, request } from "undici";
import type { z } from "zod";

/** What an HTTP endpoint answered to a probe. */
export interface HttpProbe {
	readonly status: number;
	readonly latencyMs: number;
	/** When the server's TLS certificate expires (https only). */
	readonly tlsExpiresAt?: Date;
	/** The first bytes of the body, for plain-text readiness answers such as Loki's `/ready`. */
	readonly bodySnippet: string;
}

/**
 * An outside HTTP service gave no answer: it could not be reached, or did not answer within the
 * deadline. The message names the service, never its URL, so it can be shown as written.
 */
export class ServiceUnavailableError extends Error {
	/** Stable, per service: `ALERTMANAGER_TIMEOUT`, `LOKI_UNREACHABLE`, ... */
	readonly code: string;
	readonly service: string;
	readonly reason: "timeout" | "unreachable";
	/** Plain words for what went wrong ("connection refused", "timed out"), from describeHttpFailure. */
	readonly failure: string;
	/** The deadline that ran out (timeouts) or applied. */
	readonly timeoutMs: number;
	constructor(
		service: string,
		reason: ServiceUnavailableError["reason"],
		failure: string,
		timeoutMs: number,
		options?: ErrorOptions,
	) {
		super(
			reason === "timeout"
				? `${service} did not answer within ${timeoutMs} ms`
				: `${service} is unavailable: ${failure}`,
			options,
		);
		this.name = "ServiceUnavailableError";
		this.code = `${service.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}_${reason.toUpperCase()}`;
		this.service = service;
		this.reason = reason;
		this.failure = failure;
		this.timeoutMs = timeoutMs;
	}
}

/** A non-2xx answer from an HTTP API, with the start of its body for diagnosis (not for users). */
export class HttpStatusError extends Error {
	readonly service: string;
	readonly status: number;
	readonly body: string;
	constructor(service: string, status: number, body: string) {
		super(`${service} answered HTTP ${status}`);
		this.name = "HttpStatusError";
		this.service = service;
		this.status = status;
		this.body = body;
	}
}

/** A 2xx answer that is not what opsbot reads: not JSON, another shape, or over the size limit. */
export class HttpAnswerError extends Error {
	readonly service: string;
	readonly kind: "not-json" | "unexpected" | "too-large";
	constructor(service: string, kind: HttpAnswerError["kind"], options?: ErrorOptions) {
		super(
			kind === "not-json"
				? `${service} did not answer JSON`
				: kind === "too-large"
					? `${service}'s answer is larger than opsbot reads`
					: `${service}'s answer is not what opsbot expects`,
			options,
		);
		this.name = "HttpAnswerError";
		this.service = service;
		this.kind = kind;
	}
}

/** One outgoing call: every call has a deadline (connect, headers and body together) and a bounded body. */
export interface HttpCall {
	/** The outside system, as errors name it: "Loki", "AlertManager", "Prometheus". */
	readonly service: string;
	readonly timeoutMs: number;
	readonly method?: "GET" | "POST" | "DELETE";
	readonly headers?: Record<string, string>;
	/** Sent as `application/json`. */
	readonly json?: unknown;
	/** Sent as `application/x-www-form-urlencoded` (long PromQL fits where a URL might not). */
	readonly form?: URLSearchParams;
	/** Bytes of body read at most (default 8 MiB); the rest is discarded. */
	readonly maxBytes?: number;
	/** The caller's own cancellation (a health run's), on top of the deadline. */
	readonly signal?: AbortSignal;
	readonly dispatcher?: Dispatcher;
}

/** Status and body text of an answer; `truncated` when the body was longer than `maxBytes`. */
export interface HttpAnswer {
	readonly status: number;
	readonly text: string;
	readonly truncated: boolean;
}

const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Sends one request and reads its body under one deadline, so a server that sends headers and
 * then stalls is as slow as one that sends nothing. Any status is returned; a failure to get an
 * answer at all is a ServiceUnavailableError (undici's codes in plain words).
 */
export async function httpRequest(url: string, call: HttpCall): Promise<HttpAnswer> {
	const deadline = AbortSignal.timeout(call.timeoutMs);
	const headers: Record<string, string> = {
		"user-agent": "opsbot",
		...(call.json !== undefined ? { "content-type": "application/json" } : {}),
		...call.headers,
	};
	try {
		const { statusCode, body } = await request(url, {
			method: call.method ?? (call.form ? "POST" : "GET"),
			headers: call.form ? { ...headers, "content-type": "application/x-www-form-urlencoded" } : headers,
			...(call.json !== undefined
				? { body: JSON.stringify(call.json) }
				: call.form
					? { body: call.form.toString() }
					: {}),
			signal: call.signal ? AbortSignal.any([call.signal, deadline]) : deadline,
			headersTimeout: call.timeoutMs,
			bodyTimeout: call.timeoutMs,
			...(call.dispatcher ? { dispatcher: call.dispatcher } : {}),
		});
		return { status: statusCode, ...(await readBounded(body, call.maxBytes ?? DEFAULT_MAX_BYTES)) };
	} catch (err) {
		// The caller cancelled (not our deadline): theirs to explain.
		if (call.signal?.aborted && !deadline.aborted) throw err;
		const failure = describeHttpFailure(err);
		throw new ServiceUnavailableError(
			call.service,
			deadline.aborted || /timed out$/.test(failure) ? "timeout" : "unreachable",
			failure,
			call.timeoutMs,
			{ cause: err },
		);
	}
}

/** Parses an answer's body as JSON and checks it against `schema`; anything else is an HttpAnswerError. */
export function parseAnswer<S extends z.ZodType>(service: string, answer: HttpAnswer, schema: S): z.infer<S> {
	if (answer.truncated) throw new HttpAnswerError(service, "too-large");
	let json: unknown;
	try {
		json = JSON.parse(answer.text);
	} catch (err) {
		throw new HttpAnswerError(service, "not-json", { cause: err });
	}
	const parsed = schema.safeParse(json);
	if (!parsed.success) throw new HttpAnswerError(service, "unexpected", { cause: parsed.error });
	return parsed.data;
}

/** httpRequest, then a 2xx is required (else HttpStatusError) and the JSON body is checked against `schema`. */
export async function requestJson<S extends z.ZodType>(
	url: string,
	call: HttpCall & { readonly schema: S },
): Promise<z.infer<S>> {
	const answer = await httpRequest(url, { ...call, headers: { accept: "application/json", ...call.headers } });
	if (answer.status < 200 || answer.status > 299)
		throw new HttpStatusError(call.service, answer.status, answer.text.slice(0, 500));
	return parseAnswer(call.service, answer, call.schema);
}

/**
 * Sends one GET and reports status, latency and certificate expiry. A dedicated agent is used so
 * the certificate can be read off the socket and the connection is closed afterwards, never leaked.
 */
export async function probeHttp(
	url: string,
	options: { readonly service: string; readonly timeoutMs: number; readonly signal?: AbortSignal },
): Promise<HttpProbe> {
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
		const answer = await httpRequest(url, {
			...options,
			headers: { "user-agent": "opsbot-health" },
			maxBytes: 512,
			dispatcher: agent,
		});
		return {
			status: answer.status,
			latencyMs: Math.round(performance.now() - started),
			bodySnippet: answer.text,
			...(peerCertificateExpiry ? { tlsExpiresAt: peerCertificateExpiry } : {}),
		};
	} finally {
		await agent.destroy().catch(() => undefined);
	}
}

/** Reads at most `maxBytes` of a body as text and discards the rest, so a huge answer cannot exhaust memory. */
async function readBounded(
	body: Dispatcher.ResponseData["body"],
	maxBytes: number,
): Promise<{ text: string; truncated: boolean }> {
	const chunks: Buffer[] = [];
	let size = 0;
	for await (const chunk of body) {
		const buf = chunk as Buffer;
		if (size + buf.length > maxBytes) {
			chunks.push(buf.subarray(0, maxBytes - size));
			body.destroy();
			return { text: Buffer.concat(chunks).toString("utf8"), truncated: true };
		}
		chunks.push(buf);
		size += buf.length;
	}
	return { text: Buffer.concat(chunks).toString("utf8"), truncated: false };
}

/** Plain words for a socket-level error code any client sees (HTTP, PostgreSQL), or undefined for other codes. */
export function describeNetworkCode(code: string | undefined): string | undefined {
	switch (code) {
		case "ECONNREFUSED":
			return "connection refused";
		case "ENOTFOUND":
		case "EAI_AGAIN":
			return "host name not found";
		case "EHOSTUNREACH":
		case "ENETUNREACH":
			return "host unreachable";
		case "ECONNRESET":
			return "connection reset";
		case "ETIMEDOUT":
			return "timed out";
		default:
			return undefined;
	}
}

/** Plain words for an undici / network failure, safe to show a user (no URLs, no credentials). */
export function describeHttpFailure(err: unknown): string {
	if (err instanceof ServiceUnavailableError) return err.failure;
	const code = errorCode(err);
	const network = describeNetworkCode(code);
	if (network) return network;
	switch (code) {
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
			if (err instanceof HttpAnswerError) return "unexpected answer";
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
