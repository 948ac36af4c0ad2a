import type { AlertingOps } from "../config.ts";
import type { Logger } from "../log.ts";
import type { AlertManagerService } from "../services/alertmanager.ts";
import { alertEnvironment } from "./actions.ts";
import { startPeriodicPass } from "./periodic-pass.ts";
import type { AlertStore, GroupState } from "./store.ts";

/** How often silenced groups are checked in AlertManager. */
export const SILENCE_WATCH_INTERVAL_MS = 30_000;
/** Groups checked per pass; the next pass goes on from where this one stopped. */
export const SILENCE_WATCH_BATCH = 25;

/** Dependencies and tunables of the silence watch (tests shorten the times). */
export interface SilenceWatchDeps {
	readonly store: AlertStore;
	readonly ops: AlertingOps;
	readonly alertmanager: Pick<AlertManagerService, "forEnvironment">;
	readonly log: Logger;
	readonly intervalMs?: number;
	readonly batch?: number;
}

/** The running watch. */
export interface SilenceWatch {
	/** Runs one pass now (or waits for the one running); resolves with the number of groups changed. */
	pass(): Promise<number>;
	stop(): Promise<void>;
}

/**
 * Follows the silences opsbot made. Each pass asks AlertManager (API v2) about a bounded batch of the
 * silenced groups: a silence that expired or was deleted in AlertManager is cleared from the message.
 * (A silenced group whose alerts ended, which AlertManager never notifies, is resolved by
 * reconciliation, reconcile.ts, as every group AlertManager no longer holds.) Failures are logged
 * and the group is tried again next pass.
 */
export function startSilenceWatch(deps: SilenceWatchDeps): SilenceWatch {
	const intervalMs = deps.intervalMs ?? SILENCE_WATCH_INTERVAL_MS;
	const batch = deps.batch ?? SILENCE_WATCH_BATCH;
	let cursor = "";

	async function check(group: GroupState): Promise<boolean> {
		const silence = group.silence;
		const alertmanager = deps.alertmanager.forEnvironment(alertEnvironment(deps.ops, group.payload).name);
		if (!silence || !alertmanager) return false;
		const log = deps.log.child({ groupId: group.groupId, silenceId: silence.id });
		const state = await alertmanager.silenceState(silence.id);
		if (state !== "expired" && state !== "unknown") return false;
		// Read again just before clearing: someone may have silenced it anew from Discord meanwhile.
		const current = await deps.store.group(group.groupId);
		if (current?.silence?.id !== silence.id || current.episode !== group.episode) return false;
		await deps.store.setSilence(group.groupId, null);
		log.info({ state }, "opsbot's silence of an alert group ended in AlertManager; cleared");
		return true;
	}

	async function runPass(): Promise<number> {
		const groups = await deps.store.silencedGroups(cursor, batch);
		cursor = groups.length < batch ? "" : groups[groups.length - 1]!.groupId;
		let changed = 0;
		for (const group of groups) {
			if (loop.stopped()) break;
			try {
				if (await check(group)) changed++;
			} catch (err) {
				deps.log.warn(
					{ err, groupId: group.groupId },
					"could not check a silenced alert group in AlertManager; will retry",
				);
			}
		}
		return changed;
	}

	const loop = startPeriodicPass({
		run: runPass,
		intervalMs,
		log: deps.log,
		failed: { msg: "silence watch pass failed; will retry", value: 0 },
	});
	return { pass: loop.pass, stop: loop.stop };
}
