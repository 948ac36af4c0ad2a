import { z } from "zod";
import type { EnvironmentConfig } from "../config.ts";
import { type HttpAnswer, HttpStatusError, httpRequest, parseAnswer } from "./http.ts";
import { withSlash } from "./prometheus.ts";

/** An AlertManager silence matcher (API v2). */
export interface Matcher {
	readonly name: string;
	readonly value: string;
	readonly isRegex: boolean;
	readonly isEqual: boolean;
}

/** One alert as `GET /api/v2/alerts` lists it (the fields opsbot reads). */
export interface AlertManagerAlert {
	readonly fingerprint: string;
	readonly labels: Record<string, string>;
	readonly status: { readonly state: string };
}

const AlertsSchema = z.array(
	z.looseObject({
		fingerprint: z.string(),
		labels: z.record(z.string(), z.string()),
		status: z.looseObject({ state: z.string() }),
	}),
);

/** One AlertManager (API v2). Each call has the configured timeout; no answer in time is a ServiceUnavailableError. */
export interface AlertManagerClient {
	/** Where it is; the silence watch asks each AlertManager once per pass. */
	readonly url: string;
	/** Creates a silence through `POST /api/v2/silences`; returns its id. AlertManager's 400 text is returned as the error message. */
	createSilence(silence: {
		matchers: readonly Matcher[];
		startsAt: Date;
		endsAt: Date;
		createdBy: string;
		comment: string;
	}): Promise<string>;
	/** Expires a silence (`DELETE /api/v2/silence/{id}`); an unknown id is 500 in 0.25 and 404 later, both "already gone". */
	expireSilence(id: string): Promise<"expired" | "unknown">;
	/** A silence's state: "active", "pending", "expired", or "unknown" when AlertManager no longer knows the id (404, or 0.25's 500 "not found"). */
	silenceState(id: string): Promise<string>;
	/**
	 * The alerts AlertManager holds that carry every given label (equality matchers) and, if given, go
	 * to `receiver` (a regex; the webhook's receiver name is already regex-quoted). AlertManager lists
	 * only alerts that have not resolved: active, silenced, inhibited and unprocessed ones alike.
	 */
	listAlerts(query: { labels: Readonly<Record<string, string>>; receiver?: string }): Promise<AlertManagerAlert[]>;
	/** When the AlertManager process started (`GET /api/v2/status`, `uptime`): it keeps alerts only in memory. */
	startedAt(): Promise<number>;
}

/** The AlertManager of each environment, built once from the config. */
export interface AlertManagerService {
	/** The environment's AlertManager, or undefined where none is configured. */
	forEnvironment(environment: string): AlertManagerClient | undefined;
}

/** Creates one client per environment that configures an AlertManager. */
export function createAlertManagerService(
	environments: Readonly<Record<string, Pick<EnvironmentConfig, "alertmanager">>>,
): AlertManagerService {
	const clients = new Map(
		Object.entries(environments).flatMap(([name, env]) =>
			env.alertmanager ? [[name, createAlertManagerClient(env.alertmanager)] as const] : [],
		),
	);
	return { forEnvironment: (environment) => clients.get(environment) };
}

const SILENCE_ID = /^[0-9a-f-]{36}$/i;
const SERVICE = "AlertManager";

// Go's matcher syntax: a double-quoted value with \\, \" and \n escaped.
function quoteMatcherValue(value: string): string {
	return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

// 404 from 0.27 on; 0.25 answers 500 with "silence ... not found".
const isUnknown = (answer: HttpAnswer) =>
	answer.status === 404 || (answer.status === 500 && /not found/i.test(answer.text));

/** A client for the AlertManager at `url`. */
export function createAlertManagerClient(config: {
	readonly url: string;
	readonly timeoutMs: number;
}): AlertManagerClient {
	const call = (method: "POST" | "DELETE" | "GET", path: string, json?: unknown) =>
		httpRequest(new URL(path, withSlash(config.url)).href, {
			service: SERVICE,
			method,
			timeoutMs: config.timeoutMs,
			maxBytes: 1024 * 1024,
			headers: { accept: "application/json" },
			...(json === undefined ? {} : { json }),
		});
	const ok = (answer: HttpAnswer, what: string) => {
		if (answer.status !== 200) throw new Error(`AlertManager answered HTTP ${answer.status}${what}`);
		return answer;
	};
	return {
		url: config.url,
		async createSilence(silence) {
			const answer = await call("POST", "api/v2/silences", {
				...silence,
				startsAt: silence.startsAt.toISOString(),
				endsAt: silence.endsAt.toISOString(),
			});
			if (answer.status !== 200) throw new HttpStatusError(SERVICE, answer.status, answer.text.slice(0, 200));
			return parseAnswer(SERVICE, answer, z.object({ silenceID: z.string() })).silenceID;
		},
		async expireSilence(id) {
			if (!SILENCE_ID.test(id)) throw new Error("not a silence id");
			const answer = await call("DELETE", `api/v2/silence/${id}`);
			if (answer.status === 200) return "expired";
			if (isUnknown(answer)) return "unknown";
			throw new HttpStatusError(SERVICE, answer.status, answer.text.slice(0, 200));
		},
		async silenceState(id) {
			if (!SILENCE_ID.test(id)) return "unknown";
			const answer = await call("GET", `api/v2/silence/${id}`);
			if (isUnknown(answer)) return "unknown";
			return (
				parseAnswer(SERVICE, ok(answer, ""), z.object({ status: z.object({ state: z.string() }).optional() })).status
					?.state ?? "unknown"
			);
		},
		async listAlerts(query) {
			const params = new URLSearchParams();
			for (const [name, value] of Object.entries(query.labels))
				params.append("filter", `${name}=${quoteMatcherValue(value)}`);
			if (query.receiver !== undefined) params.set("receiver", query.receiver);
			return parseAnswer(
				SERVICE,
				ok(await call("GET", `api/v2/alerts?${params.toString()}`), " to the alert list"),
				AlertsSchema,
			);
		},
		async startedAt() {
			const { uptime } = parseAnswer(
				SERVICE,
				ok(await call("GET", "api/v2/status"), " to the status request"),
				z.object({ uptime: z.string() }),
			);
			const startedAt = Date.parse(uptime);
			if (!Number.isFinite(startedAt)) throw new Error("AlertManager's status has no uptime");
			return startedAt;
		},
	};
}
