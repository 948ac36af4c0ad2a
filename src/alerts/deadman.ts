import { escapeMarkdown, oneLine } from "../render/limits.ts";
import type { AlertManagerContact } from "../services/alertmanager.ts";
import { formatDuration } from "../time.ts";
import type { HeartbeatState } from "./store.ts";

// The dead man's switch: Prometheus' always-firing Watchdog alert reaches opsbot at every
// repeat_interval; its absence is the alarm. Decided from the stored arrival time only, and posted
// through the message outbox under a key per silence, so it is said once however many replicas ask.

/** What the switch says now, or nothing. */
export type DeadmanNotice =
	| { readonly kind: "down"; readonly key: string; readonly since: number }
	| { readonly kind: "back"; readonly key: string; readonly since: number; readonly at: number };

/**
 * "down" once no heartbeat arrived for `afterMs` (not yet alarmed), "back" once one arrived after the
 * alarmed silence; undefined otherwise.
 */
export function deadmanNotice(
	name: string,
	state: HeartbeatState,
	afterMs: number,
	now: number,
): DeadmanNotice | undefined {
	if (state.alarmedAt === null)
		return now - state.at >= afterMs
			? { kind: "down", key: `deadman:${name}:down:${state.at}`, since: state.at }
			: undefined;
	if (state.at > state.alarmedAt)
		return { kind: "back", key: `deadman:${name}:back:${state.alarmedAt}`, since: state.alarmedAt, at: state.at };
	return undefined;
}

/** What opsbot knows besides the silence: whether AlertManager answers, and the last webhook of any kind. */
export interface DeadmanContext {
	readonly alertmanagers: readonly AlertManagerContact[];
	/** When this process last received a valid webhook; undefined: none since it started. */
	readonly lastWebhookAt: number | undefined;
}

const clock = (ms: number) => `<t:${Math.floor(ms / 1000)}:t>`;
const utc = (ms: number) => `${new Date(ms).toISOString().slice(11, 16)} UTC`;

function alertmanagerWords(contacts: readonly AlertManagerContact[], now: number): string {
	if (contacts.length === 0) return "no AlertManager is configured for opsbot to ask";
	const answering = contacts.filter((c) => c.up);
	if (answering.length > 0) {
		const last = Math.max(...answering.map((c) => c.lastAnswerAt ?? 0));
		return `AlertManager answers opsbot (last ${formatDuration(Math.max(0, now - last), { seconds: true })} ago)`;
	}
	return contacts.some((c) => c.up === false)
		? "AlertManager does not answer opsbot either"
		: "AlertManager not asked yet";
}

/** The notice in Discord markdown (times as Discord timestamps) and in plain words (UTC). */
export function deadmanMessage(
	name: string,
	notice: DeadmanNotice,
	context: DeadmanContext,
	now: number,
): { readonly content: string; readonly text: string } {
	// Markdown-escaped in Discord's words, as written in the terminal's.
	const alert = (markdown: boolean) => (markdown ? escapeMarkdown(oneLine(name)) : oneLine(name));
	if (notice.kind === "back") {
		const silent = formatDuration(notice.at - notice.since, { seconds: true });
		const line = (at: string, markdown: boolean) =>
			`✅ ${alert(markdown)} reaches opsbot again (arrived ${at}, after ${silent} of silence).`;
		return { content: line(clock(notice.at), true), text: line(utc(notice.at), false) };
	}
	const silent = formatDuration(now - notice.since, { seconds: true });
	const webhook = (fmt: (ms: number) => string) =>
		context.lastWebhookAt === undefined
			? "no webhook of any kind since opsbot started"
			: `last webhook of any kind ${fmt(context.lastWebhookAt)}`;
	const line = (fmt: (ms: number) => string, markdown: boolean) =>
		`🚨 No ${alert(markdown)} alert has reached opsbot from AlertManager since ${fmt(notice.since)} (${silent}): ` +
		`the alerting pipeline may be down. ${alertmanagerWords(context.alertmanagers, now)}; ${webhook(fmt)}.`;
	return { content: line(clock, true), text: line(utc, false) };
}
