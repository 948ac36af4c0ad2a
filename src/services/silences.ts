import { checkSilenceMatchers, formatMatchers, matcherAccepts } from "../alerts/matchers.ts";
import { defaultEnvironment, type OpsFile } from "../config.ts";
import { UserFacingError } from "../errors.ts";
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

/** How a maintenance window's comment starts: what tells it from other silences (in AlertManager's UI too). */
export const MAINTENANCE_COMMENT = "Maintenance window: ";

/** A maintenance window's comment. */
export function maintenanceComment(comment: string): string {
	return `${MAINTENANCE_COMMENT}${comment}`.slice(0, MAX_COMMENT + MAINTENANCE_COMMENT.length);
}

/** Whether a silence is a maintenance window opsbot made. */
export function isMaintenance(silence: Pick<AlertManagerSilence, "comment">): boolean {
	return silence.comment.startsWith(MAINTENANCE_COMMENT);
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
			["AlertManager refused it (", { code: err.body.trim().slice(0, 200) || "HTTP 400" }, `); ${nothing}.`],
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

/** What to record and tell the user about an answer to a silence write that is neither an id nor "unavailable". */
export interface SilenceAnswer {
	readonly result: string;
	readonly details: Record<string, unknown>;
	readonly error: UserFacingError;
}

/** The words of one kind of silence write: what may have happened, what not to repeat blind, what did not happen. */
export interface SilenceWords {
	readonly happened: string;
	readonly again: string;
	readonly nothing: string;
}

export const CREATE_WORDS: SilenceWords = {
	happened: "the silence was created",
	again: "silencing again",
	nothing: "nothing was silenced",
};
const EXTEND_WORDS: SilenceWords = {
	happened: "the silence was extended",
	again: "extending it again",
	nothing: "nothing was changed",
};
const EXPIRE_WORDS: SilenceWords = {
	happened: "the silence was expired",
	again: "expiring it again",
	nothing: "the silence was not expired",
};

/**
 * A silence write's answer that is neither an id nor "unavailable". A 4xx is AlertManager refusing,
 * so nothing happened; a 2xx opsbot cannot read, or a 5xx (perhaps from a proxy in front of it), may
 * come after it happened: the user is sent to AlertManager's silences `page` to check.
 */
export function silenceAnswer(err: unknown, page: string, words: SilenceWords): SilenceAnswer | undefined {
	const mayExist =
		`so opsbot cannot tell whether ${words.happened}. ` +
		`Check the silences in AlertManager (${page}) before ${words.again}.`;
	if (err instanceof HttpAnswerError) {
		const what =
			err.kind === "not-json"
				? "something that is not JSON"
				: err.kind === "too-large"
					? "more than opsbot reads"
					: "JSON without a silence id";
		return {
			result: "unknown: unexpected AlertManager answer",
			details: { answer: err.kind },
			error: new UserFacingError(`AlertManager answered ${what}, ${mayExist}`, { cause: err }),
		};
	}
	if (err instanceof HttpStatusError && err.status >= 500)
		return {
			result: `unknown: AlertManager answered HTTP ${err.status}`,
			details: { status: err.status },
			error: new UserFacingError(`AlertManager answered HTTP ${err.status}, ${mayExist}`, { cause: err }),
		};
	if (err instanceof HttpStatusError) {
		const reason = err.body.trim().slice(0, 200);
		return {
			result: `refused: AlertManager answered HTTP ${err.status}`,
			details: { status: err.status },
			error: new UserFacingError(
				[
					`AlertManager refused it (HTTP ${err.status}`,
					...(reason ? [": ", { code: reason }] : []),
					`); ${words.nothing}.`,
				],
				{ cause: err },
			),
		};
	}
	return undefined;
}

/** Records a silence action in opsbot's action log (the Discord user's, or the CLI operator's). */
export type RecordSilenceAction = (
	action: string,
	target: string,
	result: string,
	details: Record<string, unknown>,
) => Promise<void>;

/** Runs one silence write, recording its outcome either way; a failure becomes the user's words. */
async function recorded<T>(
	write: () => Promise<T>,
	what: { alertmanager: AlertManagerClient; words: SilenceWords; action: string; target: string },
	record: RecordSilenceAction,
	details: Record<string, unknown>,
	ok: (value: T) => { result: string; details: Record<string, unknown> },
): Promise<T> {
	let value: T;
	try {
		value = await write();
	} catch (err) {
		const answer = silenceAnswer(err, silencesPage(what.alertmanager), what.words);
		const result =
			answer?.result ?? (err instanceof ServiceUnavailableError ? "failed: AlertManager unavailable" : "failed");
		await record(what.action, what.target, result, { ...details, ...answer?.details });
		throw answer?.error ?? alertmanagerFailure(err, what.words.nothing);
	}
	const done = ok(value);
	await record(what.action, what.target, done.result, { ...details, ...done.details });
	return value;
}

/** Creates the silence and records it (`action`: alert.silence or maintenance.create); returns its id. */
export function createSilence(
	alertmanager: AlertManagerClient,
	draft: SilenceDraft,
	createdBy: string,
	log: { action: string; target: string; record: RecordSilenceAction },
): Promise<string> {
	checkSilenceMatchers(draft.matchers);
	return recorded(
		() =>
			alertmanager.createSilence({
				matchers: draft.matchers,
				startsAt: draft.startsAt,
				endsAt: draft.endsAt,
				createdBy,
				comment: draft.comment,
			}),
		{ alertmanager, words: CREATE_WORDS, action: log.action, target: log.target },
		log.record,
		{ environment: draft.environment, matchers: formatMatchers(draft.matchers) },
		(id) => ({ result: "ok", details: { silenceId: id, endsAt: draft.endsAt.toISOString() } }),
	);
}

/** A silence that exists and has not ended, or a clear refusal. */
export async function liveSilence(alertmanager: AlertManagerClient, id: string): Promise<AlertManagerSilence> {
	if (!/^[0-9a-f-]{36}$/i.test(id.trim()))
		throw new UserFacingError([{ code: id.slice(0, 40) }, " is not a silence id (see /silence list)."]);
	const silence = await alertmanager
		.getSilence(id.trim())
		.catch((err: unknown) => Promise.reject(alertmanagerFailure(err, "nothing was changed")));
	if (!silence) throw new UserFacingError(["AlertManager knows no silence ", { code: id }, "."]);
	if (silence.state === "expired") throw new UserFacingError(["Silence ", { code: id }, " has already ended."]);
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
	log: { environment: string; record: RecordSilenceAction },
	now = Date.now(),
): Promise<Extended> {
	const endsAt = new Date(Math.max(Date.parse(silence.endsAt), now) + byMs);
	if (endsAt.getTime() - now > maxMs)
		throw new UserFacingError(
			`That would keep it until ${endsAt.toISOString().slice(0, 16).replace("T", " ")} UTC, more than ` +
				`${formatDuration(maxMs)} from now (alerts.silences.maxDuration); nothing was changed.`,
		);
	const id = await recorded(
		() =>
			alertmanager.createSilence({
				id: silence.id,
				matchers: silence.matchers,
				startsAt: silence.startsAt,
				endsAt,
				createdBy: silence.createdBy,
				comment: silence.comment,
			}),
		{ alertmanager, words: EXTEND_WORDS, action: "silence.extend", target: silence.id },
		log.record,
		{ environment: log.environment },
		(newId) => ({
			result: "ok",
			details: { silenceId: newId, endsAt: endsAt.toISOString(), inPlace: newId === silence.id },
		}),
	);
	return { before: silence, id, endsAt, inPlace: id === silence.id };
}

/** Expires a silence now and records it; "unknown" when AlertManager no longer knows it. */
export function expireSilence(
	alertmanager: AlertManagerClient,
	id: string,
	log: { environment: string; record: RecordSilenceAction },
): Promise<"expired" | "unknown"> {
	return recorded(
		() => alertmanager.expireSilence(id),
		{ alertmanager, words: EXPIRE_WORDS, action: "silence.expire", target: id },
		log.record,
		{ environment: log.environment, silenceId: id },
		(outcome) => ({ result: outcome === "expired" ? "ok" : "already gone", details: {} }),
	);
}

/** Which tool made a silence, read from its createdBy (opsbot writes "… via opsbot" / "… via opsbot CLI"). */
export function silenceTool(createdBy: string): "opsbot" | "opsbot CLI" | "outside opsbot" {
	if (/ via opsbot CLI$/.test(createdBy)) return "opsbot CLI";
	if (/ via opsbot$/.test(createdBy)) return "opsbot";
	return "outside opsbot";
}

/**
 * Who made a silence, for people to read: AlertManager's createdBy without the Discord id opsbot
 * records beside the name ("olivia (Discord 2000…) via opsbot" reads "olivia via opsbot").
 */
export function silenceAuthor(createdBy: string): string {
	return createdBy.replace(/ \(Discord \d+\)(?= via opsbot$)/, "").trim() || "someone";
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
			const [silences, alerts] = await Promise.all([client.listSilences(), client.listAlerts({ silencedOnly: true })]);
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
