import { request } from "undici";
import { readBounded } from "./http.ts";
import { withSlash } from "./prometheus.ts";

/** An AlertManager silence matcher (API v2). */
export interface Matcher {
	readonly name: string;
	readonly value: string;
	readonly isRegex: boolean;
	readonly isEqual: boolean;
}

/** AlertManager could not be asked: it did not answer in time, or could not be reached. The message names no URL. */
export class AlertManagerUnavailableError extends Error {
	readonly code: "ALERTMANAGER_TIMEOUT" | "ALERTMANAGER_UNREACHABLE";
	constructor(code: AlertManagerUnavailableError["code"], message: string, options?: ErrorOptions) {
		super(message, options);
		this.name = "AlertManagerUnavailableError";
		this.code = code;
	}
}

const TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CONNECT_TIMEOUT", "ETIMEDOUT"]);

function isTimeout(err: unknown): boolean {
	const e = err as { name?: unknown; code?: unknown; cause?: unknown };
	return e?.name === "TimeoutError" || (typeof e?.code === "string" && TIMEOUT_CODES.has(e.code)) || (e?.cause !== undefined && e.cause !== err && isTimeout(e.cause));
}

async function call(baseUrl: string, method: "POST" | "DELETE" | "GET", path: string, timeoutMs: number, body?: unknown): Promise<{ status: number; text: string }> {
	// One deadline for the whole exchange: connecting, headers and body.
	const signal = AbortSignal.timeout(timeoutMs);
	try {
		const response = await request(new URL(path, withSlash(baseUrl)).href, {
			method,
			headers: { "content-type": "application/json", accept: "application/json" },
			...(body === undefined ? {} : { body: JSON.stringify(body) }),
			signal,
			headersTimeout: timeoutMs,
			bodyTimeout: timeoutMs,
		});
		return { status: response.statusCode, text: await readBounded(response.body, 1024 * 1024) };
	} catch (err) {
		if (signal.aborted || isTimeout(err)) throw new AlertManagerUnavailableError("ALERTMANAGER_TIMEOUT", `AlertManager did not answer within ${timeoutMs} ms`, { cause: err });
		const code = (err as { code?: unknown }).code;
		if (typeof code === "string" && /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|UND_ERR_SOCKET)$/.test(code)) {
			throw new AlertManagerUnavailableError("ALERTMANAGER_UNREACHABLE", "AlertManager could not be reached", { cause: err });
		}
		throw err;
	}
}

/** Creates a silence through `POST /api/v2/silences`; returns its id. AlertManager's 400 text is returned as the error message. */
export async function createSilence(baseUrl: string, silence: { matchers: readonly Matcher[]; startsAt: Date; endsAt: Date; createdBy: string; comment: string }, timeoutMs = 5_000): Promise<string> {
	const { status, text } = await call(baseUrl, "POST", "api/v2/silences", timeoutMs, { ...silence, startsAt: silence.startsAt.toISOString(), endsAt: silence.endsAt.toISOString() });
	if (status !== 200) throw new Error(`AlertManager refused the silence (HTTP ${status}): ${text.slice(0, 200)}`);
	return (JSON.parse(text) as { silenceID: string }).silenceID;
}

/** Expires a silence (`DELETE /api/v2/silence/{id}`); an unknown id is 500 in 0.25 and 404 later, both "already gone". */
export async function expireSilence(baseUrl: string, id: string, timeoutMs = 5_000): Promise<"expired" | "unknown"> {
	if (!/^[0-9a-f-]{36}$/i.test(id)) throw new Error("not a silence id");
	const { status, text } = await call(baseUrl, "DELETE", `api/v2/silence/${id}`, timeoutMs);
	if (status === 200) return "expired";
	if (status === 404 || (status === 500 && /not found/i.test(text))) return "unknown";
	throw new Error(`AlertManager could not expire the silence (HTTP ${status})`);
}

/** Reads one silence (`GET /api/v2/silence/{id}`). */
export async function getSilence(baseUrl: string, id: string, timeoutMs = 5_000): Promise<{ id: string; status: { state: string }; matchers: Matcher[]; createdBy: string; comment: string; endsAt: string }> {
	const { status, text } = await call(baseUrl, "GET", `api/v2/silence/${id}`, timeoutMs);
	if (status !== 200) throw new Error(`AlertManager answered HTTP ${status}`);
	return JSON.parse(text) as { id: string; status: { state: string }; matchers: Matcher[]; createdBy: string; comment: string; endsAt: string };
}

/** A silence's state: "active", "pending", "expired", or "unknown" when AlertManager no longer knows the id (404, or 0.25's 500 "not found"). */
export async function silenceState(baseUrl: string, id: string, timeoutMs = 5_000): Promise<string> {
	if (!/^[0-9a-f-]{36}$/i.test(id)) return "unknown";
	const { status, text } = await call(baseUrl, "GET", `api/v2/silence/${id}`, timeoutMs);
	if (status === 404 || (status === 500 && /not found/i.test(text))) return "unknown";
	if (status !== 200) throw new Error(`AlertManager answered HTTP ${status}`);
	return (JSON.parse(text) as { status?: { state?: string } }).status?.state ?? "unknown";
}

// Go's matcher syntax: a double-quoted value with \\, \" and \n escaped.
function quoteMatcherValue(value: string): string {
	return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** One alert as `GET /api/v2/alerts` lists it (the fields opsbot reads). */
export interface AlertManagerAlert {
	readonly fingerprint: string;
	readonly labels: Record<string, string>;
	readonly status: { readonly state: string };
}

/**
 * The alerts AlertManager holds that carry every given label (equality matchers) and, if given, go
 * to `receiver` (a regex; the webhook's receiver name is already regex-quoted). AlertManager lists
 * only alerts that have not resolved: active, silenced, inhibited and unprocessed ones alike.
 */
export async function listAlerts(baseUrl: string, query: { labels: Readonly<Record<string, string>>; receiver?: string }, timeoutMs = 5_000): Promise<AlertManagerAlert[]> {
	const params = new URLSearchParams();
	for (const [name, value] of Object.entries(query.labels)) params.append("filter", `${name}=${quoteMatcherValue(value)}`);
	if (query.receiver !== undefined) params.set("receiver", query.receiver);
	const { status, text } = await call(baseUrl, "GET", `api/v2/alerts?${params.toString()}`, timeoutMs);
	if (status !== 200) throw new Error(`AlertManager answered HTTP ${status} to the alert list`);
	const alerts = JSON.parse(text) as unknown;
	if (!Array.isArray(alerts)) throw new Error("AlertManager's alert list is not an array");
	return alerts as AlertManagerAlert[];
}

/** When the AlertManager process started (`GET /api/v2/status`, `uptime`): it keeps alerts only in memory. */
export async function alertManagerStartedAt(baseUrl: string, timeoutMs = 5_000): Promise<number> {
	const { status, text } = await call(baseUrl, "GET", "api/v2/status", timeoutMs);
	if (status !== 200) throw new Error(`AlertManager answered HTTP ${status} to the status request`);
	const startedAt = Date.parse(String((JSON.parse(text) as { uptime?: unknown }).uptime));
	if (!Number.isFinite(startedAt)) throw new Error("AlertManager's status has no uptime");
	return startedAt;
}
