import { checkSilenceMatchers, matcherAccepts } from "../alerts/matchers.ts";
import { defaultEnvironment, type OpsFile } from "../config.ts";
import { UserFacingError } from "../errors.ts";
import { inlineCode } from "../render/limits.ts";
import { durationMs, formatDuration } from "../time.ts";
import type { AlertManagerClient, AlertManagerService, AlertManagerSilence, Matcher } from "./alertmanager.ts";
import { HttpAnswerError, HttpStatusError, ServiceUnavailableError } from "./http.ts";

/**
 * Silences and maintenance windows, for Discord and the CLI alike: the bounds, the preview (what a
 * silence would mute now), and create / extend / expire against one environment's AlertManager.
 * Every check here runs before any call that changes something.
 */

/** The durations offered first; anything like `90m` or `1h30m` may be typed. */
export const SILENCE_PRESETS = ["30m", "1h", "4h", "12h", "1d", "7d"] as const;

const DEFAULT_MAX_DURATION = "7d";
const MAX_COMMENT = 500;

/** How long silences made through opsbot may last: `alerts.silences.maxDuration` (default 7d). */
export function maxSilenceMs(ops: Pick<OpsFile, "alerts">): number {
	return durationMs(ops.alerts?.silences.maxDuration ?? DEFAULT_MAX_DURATION);
}

/** A typed duration (30m, 1h, 1d, 1h30m), bounded by the configured maximum. */
export function parseSilenceDuration(text: string, maxMs: number): number {
	const ms = durationMs(text);
	if (!Number.isFinite(ms) || ms <= 0)
		throw new UserFacingError(
			`Give the duration as minutes, hours, days or weeks, e.g. ${SILENCE_PRESETS.join(", ")} or 90m.`,
		);
	if (ms > maxMs)
		throw new UserFacingError(
			`A silence made through opsbot lasts at most ${formatDuration(maxMs)} (alerts.silences.maxDuration).`,
		);
	return ms;
}

/** A required comment, trimmed and bounded. */
export function silenceComment(text: string | null | undefined): string {
	const comment = (text ?? "").trim();
	if (!comment) throw new UserFacingError("Say why in the comment: whoever sees the silence later reads it.");
	return comment.slice(0, MAX_COMMENT);
}

/** What a silence is about to be: where, what it matches, from when until when, and why. */
export interface SilenceDraft {
	/** The environment whose AlertManager holds it. */
	readonly environment: string;
	readonly matchers: readonly Matcher[];
	readonly startsAt: Date;
	readonly endsAt: Date;
	readonly comment: string;
}

/** The environment's AlertManager, or a clear refusal. */
export function alertmanagerFor(service: AlertManagerService, environment: string): AlertManagerClient {
	const client = service.forEnvironment(environment);
	if (!client) throw new UserFacingError(`No AlertManager is configured for ${environment}.`);
	return client;
}

/**
 * The environments a silence in `environment`'s AlertManager can reach: those sharing that
 * AlertManager whose name its `alerts.environmentLabel` matchers accept (alerts without the label
 * count as the default environment, as opsbot files them).
 */
export function environmentsReached(
	ops: Pick<OpsFile, "environments" | "alerts" | "defaultEnvironment">,
	environment: string,
	matchers: readonly Matcher[],
): string[] {
	const label = ops.alerts?.environmentLabel ?? "env";
	const url = ops.environments[environment]?.alertmanager?.url;
	const envMatchers = matchers.filter((m) => m.name === label);
	// A regex JavaScript cannot judge may reach it: counted as reaching.
	const accepts = (value: string) => envMatchers.every((m) => matcherAccepts(m, value) !== false);
	const fallback = defaultEnvironment(ops as OpsFile);
	return Object.entries(ops.environments)
		.filter(([name, env]) => name === environment || (url !== undefined && env.alertmanager?.url === url))
		.filter(([name]) => accepts(name) || (name === fallback && accepts("")))
		.map(([name]) => name);
}

/** One alert a silence would mute now. */
export interface MutedAlert {
	readonly fingerprint: string;
	readonly alertname: string;
	readonly environment: string;
	/** Already silenced or inhibited by something else. */
	readonly alreadyMuted: boolean;
}

/** What a silence would mute right now, and how far it reaches. */
export interface SilencePreview {
	readonly draft: SilenceDraft;
	readonly muted: readonly MutedAlert[];
	/** Alerts muted now by alert name and environment, most first. */
	readonly groups: readonly { readonly alertname: string; readonly environment: string; readonly count: number }[];
	/** Muted alerts that are not the card's own (only when previewing from a card). */
	readonly beyondGroup: number;
	/** Environments other than the draft's that it reaches (by its matchers, or by alerts firing now). */
	readonly otherEnvironments: readonly string[];
}

/** AlertManager's failures as words: unavailable stays unavailable; a 400 is its reason, shown. */
export function alertmanagerFailure(err: unknown, nothing: string): unknown {
	if (err instanceof ServiceUnavailableError)
		return new UserFacingError(`${err.message}; ${nothing}.`, { cause: err, unavailable: true });
	if (err instanceof HttpStatusError && err.status === 400)
		return new UserFacingError(
			`AlertManager refused it (${inlineCode(err.body.trim().slice(0, 200) || "HTTP 400")}); ${nothing}.`,
			{ cause: err },
		);
	return err;
}

/** Asks AlertManager which alerts the draft's matchers select now; nothing is created. */
export async function previewSilence(
	deps: { ops: Pick<OpsFile, "environments" | "alerts" | "defaultEnvironment">; alertmanager: AlertManagerClient },
	draft: SilenceDraft,
	ownFingerprints?: ReadonlySet<string>,
): Promise<SilencePreview> {
	checkSilenceMatchers(draft.matchers);
	const label = deps.ops.alerts?.environmentLabel ?? "env";
	const fallback = defaultEnvironment(deps.ops as OpsFile);
	const alerts = await deps.alertmanager
		.listAlerts({ matchers: draft.matchers })
		.catch((err: unknown) => Promise.reject(alertmanagerFailure(err, "nothing was silenced")));
	const muted = alerts.map((a) => ({
		fingerprint: a.fingerprint,
		alertname: a.labels.alertname ?? "(no alertname)",
		environment: a.labels[label] ?? fallback,
		alreadyMuted: a.status.state === "suppressed",
	}));
	const counts = new Map<string, { alertname: string; environment: string; count: number }>();
	for (const alert of muted) {
		const key = `${alert.alertname}\u0000${alert.environment}`;
		const entry = counts.get(key) ?? { alertname: alert.alertname, environment: alert.environment, count: 0 };
		entry.count++;
		counts.set(key, entry);
	}
	const reached = new Set([
		...environmentsReached(deps.ops, draft.environment, draft.matchers),
		...muted.map((a) => a.environment),
	]);
	reached.delete(draft.environment);
	return {
		draft,
		muted,
		groups: [...counts.values()].sort((a, b) => b.count - a.count || a.alertname.localeCompare(b.alertname)),
		beyondGroup: ownFingerprints ? muted.filter((a) => !ownFingerprints.has(a.fingerprint)).length : 0,
		otherEnvironments: [...reached].sort(),
	};
}

/** Where a silence's id goes when AlertManager's answer cannot be read: check before trying again. */
function silencesPage(alertmanager: AlertManagerClient): string {
	return `${alertmanager.url.replace(/\/$/, "")}/#/silences`;
}

/**
 * Creates the silence; its id, or a UserFacingError that says whether it may exist (an answer opsbot
 * cannot read, a 5xx) or not (a refusal, no answer).
 */
export async function createSilence(
	alertmanager: AlertManagerClient,
	draft: SilenceDraft,
	createdBy: string,
): Promise<string> {
	checkSilenceMatchers(draft.matchers);
	try {
		return await alertmanager.createSilence({
			matchers: draft.matchers,
			startsAt: draft.startsAt,
			endsAt: draft.endsAt,
			createdBy,
			comment: draft.comment,
		});
	} catch (err) {
		throw silenceAnswerError(err, silencesPage(alertmanager), "silence was created", "nothing was silenced");
	}
}

/** An answer to a silence write that is neither an id nor "unavailable", in words. */
export function silenceAnswerError(err: unknown, page: string, happened: string, nothing: string): unknown {
	const mayExist = `so opsbot cannot tell whether the ${happened}. Check the silences in AlertManager (${page}) before trying again.`;
	if (err instanceof HttpAnswerError) {
		const what =
			err.kind === "not-json"
				? "something that is not JSON"
				: err.kind === "too-large"
					? "more than opsbot reads"
					: "JSON without a silence id";
		return new UserFacingError(`AlertManager answered ${what}, ${mayExist}`, { cause: err });
	}
	if (err instanceof HttpStatusError && err.status >= 500)
		return new UserFacingError(`AlertManager answered HTTP ${err.status}, ${mayExist}`, { cause: err });
	if (err instanceof HttpStatusError) {
		const reason = err.body.trim().slice(0, 200);
		return new UserFacingError(
			`AlertManager refused it (HTTP ${err.status}${reason ? `: ${inlineCode(reason)}` : ""}); ${nothing}.`,
			{ cause: err },
		);
	}
	return alertmanagerFailure(err, nothing);
}

/** A silence that exists and has not ended, or a clear refusal. */
export async function liveSilence(alertmanager: AlertManagerClient, id: string): Promise<AlertManagerSilence> {
	if (!/^[0-9a-f-]{36}$/i.test(id.trim()))
		throw new UserFacingError(`${inlineCode(id.slice(0, 40))} is not a silence id (see /silence list).`);
	const silence = await alertmanager
		.getSilence(id.trim())
		.catch((err: unknown) => Promise.reject(alertmanagerFailure(err, "nothing was changed")));
	if (!silence) throw new UserFacingError(`AlertManager knows no silence ${inlineCode(id)}.`);
	if (silence.state === "expired") throw new UserFacingError(`Silence ${inlineCode(id)} has already ended.`);
	return silence;
}

/** What an extension did: the id AlertManager answered (the same one when updated in place). */
export interface Extended {
	readonly before: AlertManagerSilence;
	readonly id: string;
	readonly endsAt: Date;
	readonly inPlace: boolean;
}

/**
 * Moves a silence's end `byMs` later, in place: the same matchers and AlertManager's own startsAt
 * sent back with the id, so it keeps its id and there is no moment without it. The silence may not
 * then last more than `maxMs` from now.
 */
export async function extendSilence(
	alertmanager: AlertManagerClient,
	silence: AlertManagerSilence,
	byMs: number,
	maxMs: number,
	now = Date.now(),
): Promise<Extended> {
	const endsAt = new Date(Math.max(Date.parse(silence.endsAt), now) + byMs);
	if (endsAt.getTime() - now > maxMs)
		throw new UserFacingError(
			`That would keep it until ${endsAt.toISOString().slice(0, 16).replace("T", " ")} UTC, more than ` +
				`${formatDuration(maxMs)} from now (alerts.silences.maxDuration); nothing was changed.`,
		);
	try {
		const id = await alertmanager.createSilence({
			id: silence.id,
			matchers: silence.matchers,
			startsAt: silence.startsAt,
			endsAt,
			createdBy: silence.createdBy,
			comment: silence.comment,
		});
		return { before: silence, id, endsAt, inPlace: id === silence.id };
	} catch (err) {
		throw silenceAnswerError(err, silencesPage(alertmanager), "silence was extended", "nothing was changed");
	}
}

/** Expires a silence now; "unknown" when AlertManager no longer knows it. */
export async function expireSilence(alertmanager: AlertManagerClient, id: string): Promise<"expired" | "unknown"> {
	try {
		return await alertmanager.expireSilence(id);
	} catch (err) {
		throw silenceAnswerError(err, silencesPage(alertmanager), "silence was expired", "the silence was not expired");
	}
}

/** Which tool made a silence, read from its createdBy (opsbot writes "… via opsbot" / "… via opsbot CLI"). */
export function silenceTool(createdBy: string): "opsbot" | "opsbot CLI" | "outside opsbot" {
	if (/ via opsbot CLI$/.test(createdBy)) return "opsbot CLI";
	if (/ via opsbot$/.test(createdBy)) return "opsbot";
	return "outside opsbot";
}

/** A silence as /silence list shows it: with the environment it was read from and what it mutes now. */
export interface ListedSilence extends AlertManagerSilence {
	readonly environment: string;
	/** Alerts it mutes right now (AlertManager's silencedBy). */
	readonly mutingNow: number;
	readonly tool: ReturnType<typeof silenceTool>;
}

/** The silences found, and the AlertManagers that did not answer (the others' silences are still listed). */
export interface SilenceListing {
	readonly silences: readonly ListedSilence[];
	readonly unavailable: readonly { readonly environment: string; readonly reason: string }[];
}

/**
 * Active and pending silences in the environments' AlertManagers (each AlertManager asked once, even
 * when several environments share it), soonest end first; each with how many alerts it mutes now.
 * One AlertManager down leaves the others listed; all of them down is an error.
 */
export async function listSilences(
	service: AlertManagerService,
	environments: readonly string[],
): Promise<SilenceListing> {
	const byUrl = new Map<string, { environment: string; client: AlertManagerClient }>();
	for (const environment of environments) {
		const client = service.forEnvironment(environment);
		if (client && !byUrl.has(client.url)) byUrl.set(client.url, { environment, client });
	}
	if (byUrl.size === 0) throw new UserFacingError(`No AlertManager is configured for ${environments.join(", ")}.`);
	const answers = await Promise.allSettled(
		[...byUrl.values()].map(async ({ environment, client }) => {
			const [silences, alerts] = await Promise.all([client.listSilences(), client.listAlerts({})]);
			const muting = new Map<string, number>();
			for (const alert of alerts)
				for (const id of alert.status.silencedBy ?? []) muting.set(id, (muting.get(id) ?? 0) + 1);
			return silences
				.filter((s) => s.state !== "expired")
				.map((s) => ({ ...s, environment, mutingNow: muting.get(s.id) ?? 0, tool: silenceTool(s.createdBy) }));
		}),
	);
	const environmentsAsked = [...byUrl.values()].map((a) => a.environment);
	const failed = answers.flatMap((answer, i) =>
		answer.status === "rejected" ? [{ environment: environmentsAsked[i]!, error: answer.reason as unknown }] : [],
	);
	if (failed.length === answers.length) throw alertmanagerFailure(failed[0]!.error, "no silences could be listed");
	const silences = answers
		.flatMap((answer) => (answer.status === "fulfilled" ? answer.value : []))
		.sort((a, b) => Date.parse(a.endsAt) - Date.parse(b.endsAt) || a.id.localeCompare(b.id));
	return {
		silences,
		unavailable: failed.map(({ environment, error }) => {
			const why = alertmanagerFailure(error, "its silences are not listed");
			return { environment, reason: why instanceof Error ? why.message : String(why) };
		}),
	};
}
