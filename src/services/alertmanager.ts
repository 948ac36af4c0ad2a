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

async function call(baseUrl: string, method: "POST" | "DELETE" | "GET", path: string, timeoutMs: number, body?: unknown): Promise<{ status: number; text: string }> {
	const response = await request(new URL(path, withSlash(baseUrl)).href, {
		method,
		headers: { "content-type": "application/json", accept: "application/json" },
		...(body === undefined ? {} : { body: JSON.stringify(body) }),
		signal: AbortSignal.timeout(timeoutMs),
		headersTimeout: timeoutMs,
		bodyTimeout: timeoutMs,
	});
	return { status: response.statusCode, text: await readBounded(response.body, 1024 * 1024) };
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
