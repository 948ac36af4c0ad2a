import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { AlertingOps } from "../config.ts";
import type { Logger } from "../log.ts";
import type { ActionLog } from "../services/action-log.ts";
import { type DeadmanContext, deadmanMessage, deadmanNotice } from "./deadman.ts";
import {
	ackReminderDue,
	ackReminderMessage,
	type ClockMessage,
	escalationDue,
	escalationMessage,
	groupRules,
} from "./escalation.ts";
import type { MessageOutbox } from "./message-outbox.ts";
import { startPeriodicPass } from "./periodic-pass.ts";
import type { AlertStore, GroupState } from "./store.ts";

const PAGE = 500;

/** Dependencies of the clock loop. */
export interface LifecycleDeps {
	readonly store: Pick<AlertStore, "openGroups" | "refresh" | "heartbeat" | "heartbeatState" | "setHeartbeatAlarm">;
	/** The dead man's switch, when configured, and what its notice says besides the silence. */
	readonly deadman?: { readonly name: string; readonly afterMs: number; readonly channel: string };
	readonly deadmanContext?: () => DeadmanContext;
	readonly ops: AlertingOps;
	readonly messages: MessageOutbox;
	readonly actionLog: Pick<ActionLog, "record">;
	readonly log: Logger;
	/** False on a standby replica (the outbox's keys would stop a second post anyway). */
	readonly active?: () => boolean;
	/** How often the clocks are read (alerts.clocks.intervalSeconds): a step goes out within this of its time. */
	readonly intervalMs: number;
	readonly now?: () => number;
}

/** The running clock loop. */
export interface Lifecycle {
	/** One pass now (or the one running): how many mentions it queued. */
	pass(): Promise<number>;
	stop(): Promise<void>;
}

const OPSBOT = { userId: "opsbot", username: "opsbot" };

/**
 * Reads every firing group's clocks (escalation.ts) and queues what is due through the message outbox,
 * each under its step's key: the outbox's unique key is the claim, so a step is posted once across
 * replicas, restarts and kill -9. The replica that queued it (enqueue answered true) records the
 * mention in the action log and redraws the card ("escalated to…", "acknowledgement ran out").
 */
export function startLifecycle(deps: LifecycleDeps): Lifecycle {
	const now = deps.now ?? Date.now;
	const active = deps.active ?? (() => true);

	async function post(group: GroupState, key: string, message: ClockMessage, action: string): Promise<boolean> {
		const queued = await deps.messages.enqueue({
			kind: "post",
			key,
			target: { channel: group.channel, ...(group.messageId ? { replyTo: group.messageId } : {}) },
			content: message.content,
			mentions: { roles: message.mentions.roles, users: message.mentions.users },
		});
		if (!queued) return false;
		await deps.actionLog
			.record({
				actor: OPSBOT,
				action,
				target: group.groupId,
				result: "queued",
				details: { key, roles: message.mentions.roles, users: message.mentions.users, text: message.text },
			})
			.catch((err: unknown) => deps.log.error({ err, key }, "could not record a mention in the action log"));
		await deps.store.refresh(group.groupId, group.episode);
		deps.log.info({ groupId: group.groupId, key }, `${action}: mention queued`);
		return true;
	}

	async function visit(group: GroupState, t: number): Promise<number> {
		const rules = groupRules(deps.ops, group.payload, group.channel);
		if (!rules.escalation && rules.ackTimeoutMs === undefined) return 0;
		const clock = group;
		let queued = 0;
		const reminder = ackReminderDue(clock, rules, t);
		if (reminder && rules.ackTimeoutMs !== undefined) {
			const message = ackReminderMessage(group.payload, reminder.ack, rules.ackTimeoutMs);
			if (await post(group, reminder.key, message, "alert.ack-expired")) queued++;
		}
		const step = escalationDue(clock, rules, t);
		if (step && rules.escalation) {
			const message = escalationMessage(group.payload, step, rules.escalation.mention);
			if (await post(group, step.key, message, "alert.escalate")) queued++;
		}
		return queued;
	}

	/** The dead man's switch: says once that the always-firing alert stopped arriving, and once that it is back. */
	async function checkDeadman(t: number): Promise<number> {
		const deadman = deps.deadman;
		if (!deadman) return 0;
		const state = await deps.store.heartbeatState(deadman.name);
		// The first pass starts the watch: opsbot waits afterMinutes from now for a first heartbeat.
		if (!state) {
			await deps.store.heartbeat(deadman.name, t);
			return 0;
		}
		const notice = deadmanNotice(deadman.name, state, deadman.afterMs, t);
		if (!notice) return 0;
		const context = deps.deadmanContext?.() ?? { alertmanagers: [], lastWebhookAt: undefined };
		const message = deadmanMessage(deadman.name, notice, context, t);
		// Queued first, then marked: a crash between the two queues nothing twice (the key), and marks next pass.
		const queued = await deps.messages.enqueue({
			kind: "post",
			key: notice.key,
			target: { channel: deadman.channel },
			content: message.content,
			mentions: {},
		});
		if (notice.kind === "down") await deps.store.setHeartbeatAlarm(deadman.name, null, state.at);
		else await deps.store.setHeartbeatAlarm(deadman.name, notice.since, null);
		if (queued)
			deps.log[notice.kind === "down" ? "warn" : "info"](
				{ key: notice.key, text: message.text },
				notice.kind === "down"
					? "dead man's switch: the always-firing alert stopped arriving"
					: "dead man's switch: back",
			);
		return queued ? 1 : 0;
	}

	async function runPass(): Promise<number> {
		let queued = await checkDeadman(now());
		let after = "";
		for (;;) {
			const page = await deps.store.openGroups(after, PAGE);
			const t = now();
			for (const group of page) {
				if (loop.stopped()) return queued;
				try {
					queued += await visit(group, t);
				} catch (err) {
					deps.log.warn({ err, groupId: group.groupId }, "could not queue a group's escalation; will retry");
				}
			}
			if (page.length < PAGE) return queued;
			after = page[page.length - 1]!.groupId;
			await yieldToLoop();
		}
	}

	const loop = startPeriodicPass({
		run: runPass,
		intervalMs: deps.intervalMs,
		active,
		log: deps.log,
		failed: { msg: "escalation pass failed; will retry", value: 0 },
		done: (queued) => deps.log.debug({ queued }, "escalation pass done"),
	});
	return { pass: loop.pass, stop: loop.stop };
}
