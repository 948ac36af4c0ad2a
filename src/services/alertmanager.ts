import { z } from "zod";
import { formatMatcher } from "../alerts/matchers.ts";
import type { EnvironmentConfig } from "../config.ts";
import {
	describeHttpFailure,
	type HttpAnswer,
	HttpStatusError,
	httpRequest,
	parseAnswer,
	ServiceUnavailableError,
} from "./http.ts";
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

/** One alert of an AlertManager group (`GET /api/v2/alerts/groups`): what opsbot needs to post it. */
export interface AlertManagerGroupAlert {
	readonly fingerprint: string;
	readonly labels: Record<string, string>;
	readonly annotations: Record<string, string>;
	readonly startsAt: string;
	readonly generatorURL: string;
	/** active, suppressed (silenced or inhibited: AlertManager sends no webhook for it) or unprocessed. */
	readonly state: string;
}

/** One alert group AlertManager holds for a receiver. */
export interface AlertManagerGroup {
	readonly labels: Record<string, string>;
	/** The receiver's name as configured (not regex-quoted as in webhooks). */
	readonly receiver: string;
	readonly alerts: readonly AlertManagerGroupAlert[];
}

const GroupsSchema = z.array(
	z.looseObject({
		labels: z.record(z.string(), z.string()),
		receiver: z.looseObject({ name: z.string() }),
		alerts: z.array(
			z.looseObject({
				fingerprint: z.string(),
				labels: z.record(z.string(), z.string()),
				annotations: z.record(z.string(), z.string()).default({}),
				startsAt: z.string(),
				generatorURL: z.string().default(""),
				status: z.looseObject({ state: z.string() }),
			}),
		),
	}),
);

/**
 * The group list is AlertManager's whole state for the receivers asked about: a few MB with thousands of
 * groups. Larger is refused (an error, never read as "nothing fires").
 */
const MAX_GROUPS_BYTES = 64 * 1024 * 1024;

/** One AlertManager (API v2). Each call has the configured timeout; no answer in time is a ServiceUnavailableError. */
export interface AlertManagerClient {
	/** Where it is (the first member of an HA cluster); the silence watch asks each AlertManager once per pass. */
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
	/**
	 * Expires a silence (`DELETE /api/v2/silence/{id}`); an unknown id is 500 in 0.25 and 404 later, both "already gone".
	 */
	expireSilence(id: string): Promise<"expired" | "unknown">;
	/**
	 * A silence's state: "active", "pending", "expired", or "unknown" when AlertManager no longer knows the id (404, or
	 * 0.25's 500 "not found").
	 */
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
		/**
		 * Only muted alerts (not active or unprocessed ones; an inhibited one that is also silenced stays): a smaller answer.
		 */
		silencedOnly?: boolean;
	}): Promise<AlertManagerAlert[]>;
	/** When the AlertManager process started (`GET /api/v2/status`, `uptime`): it keeps alerts only in memory. */
	startedAt(): Promise<number>;
	/**
	 * Every alert group AlertManager holds for receivers matching `receiver` (an anchored regex), with
	 * silenced and inhibited alerts (`GET /api/v2/alerts/groups`). Bounded by MAX_GROUPS_BYTES.
	 */
	listGroups(receiver: string): Promise<AlertManagerGroup[]>;
}

/** When opsbot last heard from one AlertManager, for /readyz, /metrics and /health. */
export interface AlertManagerContact {
	/** The environments it serves. */
	readonly environments: readonly string[];
	/** Its URL without credentials. */
	readonly url: string;
	/** When it last answered (ms), or null when it never has since opsbot started. */
	readonly lastAnswerAt: number | null;
	/** Whether its last call got an answer; null before the first call. */
	readonly up: boolean | null;
	/** What went wrong with its last call, in plain words (no URL), when it got no answer. */
	readonly problem: string | null;
}

/** One AlertManager cluster (a single AlertManager, or the members of an HA cluster in the order asked). */
export interface AlertManagerCluster {
	readonly environments: readonly string[];
	readonly members: readonly AlertManagerClient[];
}

/** The AlertManager of each environment, built once from the config. */
export interface AlertManagerService {
	/** The environment's AlertManager (its HA members asked in order), or undefined where none is configured. */
	forEnvironment(environment: string): AlertManagerClient | undefined;
	/** Each distinct cluster once, with the environments it serves. */
	clusters(): readonly AlertManagerCluster[];
	/** When each AlertManager last answered. */
	contacts(): readonly AlertManagerContact[];
}

/** A URL as shown in logs, metrics and /readyz: without user:password. */
export function displayUrl(url: string): string {
	const parsed = new URL(url);
	parsed.username = "";
	parsed.password = "";
	return parsed.href.replace(/\/$/, "");
}

/** Creates one client per environment that configures an AlertManager; environments naming the same URLs share it. */
export function createAlertManagerService(
	environments: Readonly<Record<string, Pick<EnvironmentConfig, "alertmanager">>>,
	now: () => number = Date.now,
): AlertManagerService {
	type Member = {
		client: AlertManagerClient;
		contact: { lastAnswerAt: number | null; up: boolean | null; problem: string | null };
	};
	const members = new Map<string, Member>();
	const clusters = new Map<string, { environments: string[]; members: Member[]; client: AlertManagerClient }>();
	const byEnvironment = new Map<string, AlertManagerClient>();
	for (const [name, env] of Object.entries(environments)) {
		const config = env.alertmanager;
		if (!config) continue;
		const urls = [config.url, ...(config.peers ?? [])];
		const key = urls.join(" ");
		let cluster = clusters.get(key);
		if (!cluster) {
			const own = urls.map((url) => {
				let member = members.get(url);
				if (!member) {
					const contact: Member["contact"] = { lastAnswerAt: null, up: null, problem: null };
					const client = createAlertManagerClient(
						{ url, timeoutMs: config.timeoutMs },
						{
							answered: () => Object.assign(contact, { lastAnswerAt: now(), up: true, problem: null }),
							failed: (problem) => Object.assign(contact, { up: false, problem }),
						},
					);
					member = { client, contact };
					members.set(url, member);
				}
				return member;
			});
			cluster = { environments: [], members: own, client: failoverClient(own.map((m) => m.client)) };
			clusters.set(key, cluster);
		}
		cluster.environments.push(name);
		byEnvironment.set(name, cluster.client);
	}
	return {
		forEnvironment: (environment) => byEnvironment.get(environment),
		clusters: () =>
			[...clusters.values()].map((c) => ({ environments: c.environments, members: c.members.map((m) => m.client) })),
		contacts: () =>
			[...members.entries()].map(([url, m]) => ({
				environments: [...clusters.values()].filter((c) => c.members.includes(m)).flatMap((c) => c.environments),
				url: displayUrl(url),
				...m.contact,
			})),
	};
}

/**
 * A member that surely never received the request (refused, not found, unreachable): the only case in
 * which a write may go to the next member. A timeout or a 5xx (perhaps from a proxy) may come after the
 * silence was made, and asking another member then could make it twice.
 */
function neverReached(err: unknown): boolean {
	return (
		err instanceof ServiceUnavailableError &&
		err.reason === "unreachable" &&
		["connection refused", "host name not found", "host unreachable"].includes(err.failure)
	);
}

/** No answer at all (unreachable, timed out) or a 5xx: the next member of the cluster may do better. */
function askNext(err: unknown): boolean {
	return err instanceof ServiceUnavailableError || (err instanceof HttpStatusError && err.status >= 500);
}

/** A client for an HA cluster: each call goes to the members in order until one answers. */
export function failoverClient(members: readonly AlertManagerClient[]): AlertManagerClient {
	const [first] = members;
	if (!first) throw new Error("an AlertManager cluster needs at least one member");
	if (members.length === 1) return first;
	const each =
		<A extends unknown[], R>(call: (client: AlertManagerClient, ...args: A) => Promise<R>, retryable = askNext) =>
		async (...args: A): Promise<R> => {
			let last: unknown;
			for (const member of members) {
				try {
					return await call(member, ...args);
				} catch (err) {
					if (!retryable(err)) throw err;
					last = err;
				}
			}
			throw last;
		};
	return {
		url: first.url,
		// Not idempotent: only past a member that never got the request.
		createSilence: each(
			(c, silence: Parameters<AlertManagerClient["createSilence"]>[0]) => c.createSilence(silence),
			neverReached,
		),
		expireSilence: each((c, id: string) => c.expireSilence(id)),
		silenceState: each((c, id: string) => c.silenceState(id)),
		listAlerts: each((c, query: Parameters<AlertManagerClient["listAlerts"]>[0]) => c.listAlerts(query)),
		startedAt: each((c) => c.startedAt()),
		listSilences: each((c) => c.listSilences()),
		getSilence: each((c, id: string) => c.getSilence(id)),
		listGroups: each((c, receiver: string) => c.listGroups(receiver)),
	};
}

const SILENCE_ID = /^[0-9a-f-]{36}$/i;
const SERVICE = "AlertManager";

// 404 from 0.27 on; 0.25 answers 500 with "silence ... not found".
const isUnknown = (answer: HttpAnswer) =>
	answer.status === 404 || (answer.status === 500 && /not found/i.test(answer.text));

/** A client for the AlertManager at `url`. */
export function createAlertManagerClient(
	config: { readonly url: string; readonly timeoutMs: number },
	heard: { answered(): void; failed(problem: string): void } = { answered() {}, failed() {} },
): AlertManagerClient {
	const call = async (method: "POST" | "DELETE" | "GET", path: string, json?: unknown, maxBytes = 1024 * 1024) => {
		try {
			const answer = await httpRequest(new URL(path, withSlash(config.url)).href, {
				service: SERVICE,
				method,
				timeoutMs: config.timeoutMs,
				maxBytes,
				headers: { accept: "application/json" },
				...(json === undefined ? {} : { json }),
			});
			if (answer.status >= 500 && !isUnknown(answer)) heard.failed(`HTTP ${answer.status}`);
			else heard.answered();
			return answer;
		} catch (err) {
			heard.failed(err instanceof ServiceUnavailableError ? err.message : describeHttpFailure(err));
			throw err;
		}
	};
	// A 400 carries AlertManager's reason (a bad filter regex), which callers may show: the body is that text.
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
			if (query.silencedOnly) for (const flag of ["active", "unprocessed"]) params.set(flag, "false");
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
		async listGroups(receiver) {
			const params = new URLSearchParams({ receiver });
			const answer = await call("GET", `api/v2/alerts/groups?${params.toString()}`, undefined, MAX_GROUPS_BYTES);
			return parseAnswer(SERVICE, ok(answer), GroupsSchema).map((group) => ({
				labels: group.labels,
				receiver: group.receiver.name,
				alerts: group.alerts.map((a) => ({
					fingerprint: a.fingerprint,
					labels: a.labels,
					annotations: a.annotations,
					startsAt: a.startsAt,
					generatorURL: a.generatorURL,
					state: a.status.state,
				})),
			}));
		},
	};
}
