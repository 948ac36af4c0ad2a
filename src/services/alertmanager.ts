import { z } from "zod";
import { formatMatcher } from "../alerts/matchers.ts";
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
	/** "active", "suppressed" (silenced or inhibited) or "unprocessed"; silencedBy lists silence ids. */
	readonly status: { readonly state: string; readonly silencedBy?: readonly string[] | undefined };
}

const AlertsSchema = z.array(
	z.looseObject({
		fingerprint: z.string(),
		labels: z.record(z.string(), z.string()),
		status: z.looseObject({ state: z.string(), silencedBy: z.array(z.string()).optional() }),
	}),
);

const SilenceSchema = z.looseObject({
	id: z.string(),
	status: z.looseObject({ state: z.string() }),
	matchers: z.array(
		z.looseObject({ name: z.string(), value: z.string(), isRegex: z.boolean(), isEqual: z.boolean().default(true) }),
	),
	startsAt: z.string(),
	endsAt: z.string(),
	updatedAt: z.string().optional(),
	createdBy: z.string(),
	comment: z.string(),
});

/** A silence as AlertManager lists it (`GET /api/v2/silences`): whoever made it, with whatever tool. */
export interface AlertManagerSilence {
	readonly id: string;
	/** "active", "pending" or "expired". */
	readonly state: string;
	readonly matchers: readonly Matcher[];
	/** AlertManager's own timestamps, kept as it wrote them: an update in place must send startsAt back unchanged. */
	readonly startsAt: string;
	readonly endsAt: string;
	/** When it was made or last changed (AlertManager's clock); absent in answers that lack it. */
	readonly updatedAt?: string | undefined;
	readonly createdBy: string;
	readonly comment: string;
}

function toSilence(raw: z.infer<typeof SilenceSchema>): AlertManagerSilence {
	return {
		id: raw.id,
		state: raw.status.state,
		matchers: raw.matchers.map(({ name, value, isRegex, isEqual }) => ({ name, value, isRegex, isEqual })),
		startsAt: raw.startsAt,
		endsAt: raw.endsAt,
		updatedAt: raw.updatedAt,
		createdBy: raw.createdBy,
		comment: raw.comment,
	};
}

/** One AlertManager (API v2). Each call has the configured timeout; no answer in time is a ServiceUnavailableError. */
export interface AlertManagerClient {
	/** Where it is; the silence watch asks each AlertManager once per pass. */
	readonly url: string;
	/**
	 * Creates a silence through `POST /api/v2/silences`; returns its id. AlertManager's 400 text is
	 * returned as the error message. With `id` it updates that silence: in place (same id) when the
	 * matchers are unchanged and, for an active one, `startsAt` is exactly AlertManager's own;
	 * otherwise AlertManager expires it and answers a new id.
	 */
	createSilence(silence: {
		id?: string;
		matchers: readonly Matcher[];
		startsAt: Date | string;
		endsAt: Date;
		createdBy: string;
		comment: string;
	}): Promise<string>;
	/** Every silence AlertManager holds (active, pending and expired ones it still keeps). */
	listSilences(): Promise<AlertManagerSilence[]>;
	/** One silence, or undefined when AlertManager does not know the id. */
	getSilence(id: string): Promise<AlertManagerSilence | undefined>;
	/** Expires a silence (`DELETE /api/v2/silence/{id}`); an unknown id is 500 in 0.25 and 404 later, both "already gone". */
	expireSilence(id: string): Promise<"expired" | "unknown">;
	/** A silence's state: "active", "pending", "expired", or "unknown" when AlertManager no longer knows the id (404, or 0.25's 500 "not found"). */
	silenceState(id: string): Promise<string>;
	/**
	 * The alerts AlertManager holds that carry every given label (equality matchers) and, if given, go
	 * to `receiver` (a regex; the webhook's receiver name is already regex-quoted). AlertManager lists
	 * only alerts that have not resolved: active, silenced, inhibited and unprocessed ones alike.
	 */
	listAlerts(query: {
		labels?: Readonly<Record<string, string>>;
		matchers?: readonly Matcher[];
		receiver?: string;
	}): Promise<AlertManagerAlert[]>;
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
	// A 400 carries AlertManager's reason (a bad filter regex), which callers may show.
	const ok = (answer: HttpAnswer) => {
		if (answer.status !== 200) throw new HttpStatusError(SERVICE, answer.status, answer.text.slice(0, 200));
		return answer;
	};
	return {
		url: config.url,
		async createSilence(silence) {
			const answer = await call("POST", "api/v2/silences", {
				...silence,
				startsAt: typeof silence.startsAt === "string" ? silence.startsAt : silence.startsAt.toISOString(),
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
				parseAnswer(SERVICE, ok(answer), z.object({ status: z.object({ state: z.string() }).optional() })).status
					?.state ?? "unknown"
			);
		},
		async listAlerts(query) {
			const params = new URLSearchParams();
			for (const [name, value] of Object.entries(query.labels ?? {}))
				params.append("filter", formatMatcher({ name, value, isRegex: false, isEqual: true }));
			for (const matcher of query.matchers ?? []) params.append("filter", formatMatcher(matcher));
			if (query.receiver !== undefined) params.set("receiver", query.receiver);
			return parseAnswer(SERVICE, ok(await call("GET", `api/v2/alerts?${params.toString()}`)), AlertsSchema);
		},
		async listSilences() {
			const answer = ok(await call("GET", "api/v2/silences"));
			return parseAnswer(SERVICE, answer, z.array(SilenceSchema)).map(toSilence);
		},
		async getSilence(id) {
			if (!SILENCE_ID.test(id)) return undefined;
			const answer = await call("GET", `api/v2/silence/${id}`);
			if (isUnknown(answer)) return undefined;
			return toSilence(parseAnswer(SERVICE, ok(answer), SilenceSchema));
		},
		async startedAt() {
			const { uptime } = parseAnswer(SERVICE, ok(await call("GET", "api/v2/status")), z.object({ uptime: z.string() }));
			const startedAt = Date.parse(uptime);
			if (!Number.isFinite(startedAt)) throw new Error("AlertManager's status has no uptime");
			return startedAt;
		},
	};
}
