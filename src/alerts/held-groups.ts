import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { oneLine } from "../render/limits.ts";
import { joinText, type Level, type Report, type Text, worstLevel } from "../render/report.ts";
import { readAlertStore } from "../state/index.ts";
import {
	activeSilence,
	cardState,
	groupEnvironment,
	groupLevel,
	groupName,
	groupSeverity,
	stateWord,
} from "./group-report.ts";
import type { GroupState } from "./store.ts";
import { messageUrl } from "./storm.ts";

/** One alert group opsbot holds, as `opsbot alerts --json` prints it: exact values, times in ISO 8601. */
export interface HeldGroup {
	readonly groupId: string;
	readonly name: string;
	readonly channel: string;
	/** "firing" or "resolved": the group's current episode. */
	readonly status: string;
	/** The alerts' common severity label in lower case, or null when they have none in common. */
	readonly severity: string | null;
	/** The environment the group's alerts share (an `env` or `environment` label), or null. */
	readonly environment: string | null;
	readonly firingAlerts: number;
	readonly alerts: number;
	readonly ack: { readonly userId: string; readonly username: string; readonly at: string } | null;
	/** The silence opsbot created; `active` until it ends. */
	readonly silence: {
		readonly id: string;
		readonly username: string;
		readonly until: string;
		readonly active: boolean;
	} | null;
	/** The current episode's Discord message, once posted. */
	readonly messageId: string | null;
	readonly messageUrl: string | null;
}

/** A stored group as `opsbot alerts` shows it. */
export function heldGroup(group: GroupState, context: { guildId: string; now: number }): HeldGroup {
	const { payload, ack, silence } = group;
	return {
		groupId: group.groupId,
		name: groupName(payload),
		channel: group.channel,
		status: group.status,
		severity: groupSeverity(payload) || null,
		environment: groupEnvironment(payload) ?? null,
		firingAlerts: payload.alerts.filter((a) => a.status === "firing").length,
		alerts: payload.alerts.length,
		ack: ack && { userId: ack.userId, username: ack.username, at: new Date(ack.at).toISOString() },
		silence: silence && {
			id: silence.id,
			username: silence.username,
			until: new Date(silence.until).toISOString(),
			active: activeSilence(silence, context.now) !== null,
		},
		messageId: group.messageId,
		messageUrl: group.messageId ? messageUrl(context.guildId, group.channel, group.messageId) : null,
	};
}

const levelOf = (g: HeldGroup): Level => groupLevel(g.status, g.severity ?? "");
const RANK: Record<Level, number> = { critical: 0, warn: 1, ok: 2, info: 3 };

/** The order `opsbot alerts` lists groups in: critical and firing first, then by name. */
export function byUrgency(a: HeldGroup, b: HeldGroup): number {
	return RANK[levelOf(a)] - RANK[levelOf(b)] || a.name.localeCompare(b.name) || a.groupId.localeCompare(b.groupId);
}
// Pages of whole payloads (up to 10,000 alerts each) are read one at a time and kept only as HeldGroups.
const PAGE = 200;

/**
 * Every group the alert store holds, in byUrgency order: read from the store
 * the relay uses (PostgreSQL with STATE_DATABASE_URL, else stateDir/opsbot.sqlite), and never written.
 */
export async function readHeldGroups(config: Config, log: Logger, now = Date.now()): Promise<HeldGroup[]> {
	// Undefined where the relay never ran here: nothing to list, and opening the file would create it.
	const held = await readAlertStore(config, log, async (store) => {
		const groups: HeldGroup[] = [];
		let after = "";
		for (;;) {
			const page = await store.listGroups(after, PAGE);
			groups.push(...page.map((g) => heldGroup(g, { guildId: config.ops.discord.guildId, now })));
			if (page.length < PAGE) return groups;
			after = page.at(-1)!.groupId;
		}
	});
	return (held ?? []).sort(byUrgency);
}

function heldGroupText(g: HeldGroup): Text {
	const firing = g.status === "firing";
	// The words the group's card leads its title with: CRITICAL, ACKED, SILENCED, RESOLVED.
	const state = cardState({ resolved: !firing, acknowledged: g.ack !== null, silenced: g.silence?.active === true });
	const parts: Text[] = [stateWord(state, g.severity ?? ""), ...(g.environment ? [g.environment] : [])];
	parts.push(`${g.firingAlerts} of ${g.alerts} alert${g.alerts === 1 ? "" : "s"} firing`);
	if (g.ack)
		parts.push(["acknowledged by ", oneLine(g.ack.username), " at ", { time: new Date(g.ack.at), style: "clock" }]);
	else if (state === "firing") parts.push("not acknowledged");
	if (g.silence?.active)
		parts.push([
			"silenced by ",
			oneLine(g.silence.username),
			" until ",
			{ time: new Date(g.silence.until), style: "clock" },
		]);
	parts.push(
		g.messageUrl
			? { link: g.messageUrl, label: "message" }
			: ["no message yet in ", { mention: "channel", id: g.channel }],
	);
	return joinText(parts, " · ");
}

/** The groups opsbot holds: one line each with its state, acknowledgement, silence and message link. */
export function heldGroupsReport(groups: readonly HeldGroup[]): Report {
	const firing = groups.filter((g) => g.status === "firing");
	const critical = firing.filter((g) => g.severity === "critical").length;
	const lines = groups.map((g) => ({ level: levelOf(g), label: g.name, text: heldGroupText(g) }));
	return {
		title:
			groups.length === 0
				? "No alert groups"
				: `Alert groups: ${firing.length} firing${critical > 0 ? ` (${critical} critical)` : ""}, ` +
					`${groups.length - firing.length} resolved`,
		level: worstLevel(lines.map((l) => l.level)),
		...(groups.length === 0 ? { summary: "opsbot holds no alert groups." } : {}),
		lines,
	};
}
