import { createHash } from "node:crypto";
import type { AlertingOps } from "../config.ts";
import type { Logger } from "../log.ts";
import { type Report, reportToEmbed } from "../render/report.ts";
import type {
	AlertManagerAlert,
	AlertManagerClient,
	AlertManagerService,
	AlertManagerSilence,
} from "../services/alertmanager.ts";
import { isMaintenance, MAINTENANCE_COMMENT, silenceAuthor, silenceTool } from "../services/silences.ts";
import { formatMatchers } from "./matchers.ts";
import type { MessageOutbox } from "./message-outbox.ts";
import { startPeriodicPass } from "./periodic-pass.ts";
import { routeGroup } from "./routing.ts";
import type { AlertStore, GroupState } from "./store.ts";

/**
 * No silence goes unnoticed. Each pass reads every AlertManager's silences and alerts and queues, in
 * the message outbox:
 * - a silence made outside opsbot (AlertManager's UI, amtool, its API): announced in the channels of
 *   the routes it mutes;
 * - a maintenance window: announced when made, when it starts (if made for later) and when it ends;
 * - a silence ending within `alerts.silences.remindBeforeMinutes` while alerts it mutes still fire:
 *   a reminder as a reply on those alerts' cards.
 * What was announced is remembered only by the outbox's dedupe keys: a key queued before is a no-op,
 * so replicas and restarts never post twice, and no other record of "seen" silences is kept.
 */

/** Silences made outside opsbot are announced only if made (or changed) this recently: a first start stays quiet. */
export const ANNOUNCE_WITHIN_MS = 24 * 3_600_000;
/** Cards searched for a reminder, at most. */
const CARD_SCAN_LIMIT = 2_000;

export interface SilenceAnnouncerDeps {
	readonly store: AlertStore;
	readonly messages: MessageOutbox;
	readonly ops: AlertingOps;
	readonly alertmanager: Pick<AlertManagerService, "forEnvironment">;
	readonly log: Logger;
	readonly intervalMs: number;
	/** Whether this replica should read AlertManager now (the one holding the gateway); the keys make any replica safe. */
	readonly active?: () => boolean;
	readonly now?: () => number;
}

export interface SilenceAnnouncer {
	/** Runs one pass now (or waits for the one running); resolves with the number of messages queued. */
	pass(): Promise<number>;
	stop(): Promise<void>;
}

const alerts = (n: number) => `${n} alert${n === 1 ? "" : "s"}`;

/** A silence made outside opsbot, as announced in the channels it mutes: who silenced what, until when, why. */
export function silenceAnnouncementReport(s: AlertManagerSilence, mutingNow: number): Report {
	const pending = s.state === "pending";
	return {
		title: "🔕 Silence made outside opsbot",
		level: "info",
		summary: [
			{ strong: silenceAuthor(s.createdBy) },
			" silenced ",
			{ code: formatMatchers(s.matchers) },
			...(pending ? [" from ", { time: new Date(s.startsAt), style: "clock" } as const] : []),
			" until ",
			{ time: new Date(s.endsAt), style: "clock" },
			`; it mutes ${alerts(mutingNow)} now.`,
		],
		fields: [{ label: "Comment", value: s.comment || "(none)", inline: false }],
		footer: `Silence ${s.id}, made in AlertManager's UI, with amtool or its API. /silence list shows every silence.`,
	};
}

/** A maintenance window made, started or ended: what it mutes, when, why and by whom. */
export function maintenanceReport(s: AlertManagerSilence, phase: "scheduled" | "started" | "ended"): Report {
	const what = s.comment.slice(MAINTENANCE_COMMENT.length);
	const title = {
		scheduled: "🛠️ Maintenance window scheduled",
		started: "🛠️ Maintenance window started",
		ended: "✅ Maintenance window ended",
	}[phase];
	const when =
		phase === "scheduled"
			? [
					" from ",
					{ time: new Date(s.startsAt), style: "clock" } as const,
					" until ",
					{ time: new Date(s.endsAt), style: "clock" } as const,
					".",
				]
			: phase === "started"
				? [" silenced until ", { time: new Date(s.endsAt), style: "clock" } as const, "."]
				: [": its alerts notify again."];
	return {
		title,
		level: phase === "ended" ? "ok" : "info",
		summary: [{ code: formatMatchers(s.matchers) }, ...when],
		fields: [
			{ label: "Why", value: what || "(none)" },
			{ label: "By", value: silenceAuthor(s.createdBy) },
		],
		footer: `Silence ${s.id}`,
	};
}

/** The reminder on a card before the silence over its alerts ends: when, and the command that extends it. */
export function silenceReminderReport(s: AlertManagerSilence, firing: number): Report {
	return {
		title: "⏰ Silence ends soon",
		level: "warn",
		summary: [
			"The silence of ",
			{ code: formatMatchers(s.matchers) },
			` by ${silenceAuthor(s.createdBy)} ends `,
			{ time: new Date(s.endsAt), style: "clock" },
			`; ${alerts(firing)} it mutes still fire${firing === 1 ? "s" : ""}.\n`,
			"Extend it with ",
			{ code: `/silence extend id:${s.id} by:1h` },
			", or let the alerts notify again.",
		],
	};
}

// Keys are at most 200 characters: AlertManager is named by a short hash of its URL.
const amKey = (url: string) => createHash("sha256").update(url).digest("hex").slice(0, 12);

export function startSilenceAnnouncer(deps: SilenceAnnouncerDeps): SilenceAnnouncer {
	const now = deps.now ?? Date.now;
	const remindMs = deps.ops.alerts.silences.remindBeforeMinutes * 60_000;

	/** The channels of the routes a silence mutes: routed by the alerts it mutes now, else by its equality matchers. */
	function channelsOf(s: AlertManagerSilence, muted: readonly AlertManagerAlert[]): string[] {
		const labelSets =
			muted.length > 0
				? muted.map((a) => a.labels)
				: [Object.fromEntries(s.matchers.filter((m) => m.isEqual && !m.isRegex).map((m) => [m.name, m.value]))];
		return [...new Set(labelSets.flatMap((labels) => routeGroup(labels, deps.ops.alerts).map((t) => t.channel)))];
	}

	const post = (key: string, channel: string, report: Report, replyTo?: string) =>
		deps.messages.enqueue({
			kind: "post",
			key,
			target: replyTo ? { channel, replyTo } : { channel },
			embeds: [reportToEmbed(report).toJSON()],
		});

	/** The firing cards holding any of these alerts (by fingerprint), with a message to reply to. */
	async function cardsOf(fingerprints: ReadonlySet<string>): Promise<GroupState[]> {
		const found: GroupState[] = [];
		let after = "";
		for (let scanned = 0; scanned < CARD_SCAN_LIMIT; ) {
			const page = await deps.store.listGroups(after, 200);
			if (page.length === 0) break;
			scanned += page.length;
			after = page.at(-1)!.groupId;
			for (const group of page)
				if (
					group.status !== "resolved" &&
					group.messageId &&
					group.payload.alerts.some((a) => a.status === "firing" && fingerprints.has(a.fingerprint))
				)
					found.push(group);
		}
		return found;
	}

	async function announce(client: AlertManagerClient): Promise<number> {
		const [silences, alerts] = await Promise.all([client.listSilences(), client.listAlerts({ silencedOnly: true })]);
		const mutedBy = new Map<string, AlertManagerAlert[]>();
		for (const alert of alerts)
			for (const id of alert.status.silencedBy ?? []) mutedBy.set(id, [...(mutedBy.get(id) ?? []), alert]);
		const am = amKey(client.url);
		const at = now();
		let queued = 0;
		const count = (ok: boolean) => void (ok && queued++);
		for (const s of silences) {
			const muted = mutedBy.get(s.id) ?? [];
			const channels = channelsOf(s, muted);
			const recent = s.updatedAt === undefined || at - Date.parse(s.updatedAt) < ANNOUNCE_WITHIN_MS;
			if (isMaintenance(s)) {
				for (const channel of channels) {
					const made = `maint:${am}:${s.id}:made:${channel}`;
					if (s.state !== "expired" && recent) count(await post(made, channel, maintenanceReport(s, "scheduled")));
					const announced = await deps.messages.outcome(made);
					// Started: only for a window announced before it began (one made for "now" says so when made).
					if (s.state === "active" && announced?.state === "sent" && announced.at < Date.parse(s.startsAt))
						count(await post(`maint:${am}:${s.id}:started:${channel}`, channel, maintenanceReport(s, "started")));
					if (s.state === "expired" && announced)
						count(await post(`maint:${am}:${s.id}:ended:${channel}`, channel, maintenanceReport(s, "ended")));
				}
				continue;
			}
			if (s.state !== "expired" && recent && silenceTool(s.createdBy) === "outside opsbot")
				for (const channel of channels)
					count(
						await post(`silence:${am}:${s.id}:outside:${channel}`, channel, silenceAnnouncementReport(s, muted.length)),
					);
			const left = Date.parse(s.endsAt) - at;
			const firing = muted.filter((a) => a.status.state !== "unprocessed");
			if (s.state === "active" && left > 0 && left <= remindMs && firing.length > 0) {
				// The end is in the key: a silence extended past it is reminded again before its new end.
				const base = `remind:${am}:${s.id}:${Date.parse(s.endsAt)}`;
				const cards = await cardsOf(new Set(firing.map((a) => a.fingerprint)));
				for (const card of cards)
					count(
						await post(
							`${base}:${card.groupId}`,
							card.channel,
							silenceReminderReport(s, firing.length),
							card.messageId ?? undefined,
						),
					);
				if (cards.length === 0)
					for (const channel of channels)
						count(await post(`${base}:${channel}`, channel, silenceReminderReport(s, firing.length)));
			}
		}
		return queued;
	}

	async function pass(): Promise<number> {
		const clients = new Map<string, AlertManagerClient>();
		for (const name of Object.keys(deps.ops.environments)) {
			const client = deps.alertmanager.forEnvironment(name);
			if (client) clients.set(client.url, client);
		}
		let queued = 0;
		for (const client of clients.values()) {
			try {
				queued += await announce(client);
			} catch (err) {
				deps.log.warn({ err, alertmanager: client.url }, "could not read AlertManager's silences; will retry");
			}
		}
		return queued;
	}

	const loop = startPeriodicPass({
		run: pass,
		intervalMs: deps.intervalMs,
		...(deps.active ? { active: deps.active } : {}),
		log: deps.log,
		failed: { msg: "silence announcer pass failed; will retry", value: 0 },
	});
	return { pass: loop.pass, stop: loop.stop };
}
