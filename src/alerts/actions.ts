import { type AlertingOps, defaultEnvironment, type EnvironmentConfig, findEnvironment } from "../config.ts";
import type { AlertActions } from "./render.ts";
import type { WebhookPayload } from "./schema.ts";

/** The environment an alert belongs to: its `alerts.environmentLabel` label, else the default. */
export function alertEnvironment(
	ops: AlertingOps,
	payload: WebhookPayload,
): { name: string; config: EnvironmentConfig | undefined } {
	const name = payload.commonLabels[ops.alerts.environmentLabel] ?? defaultEnvironment(ops);
	return { name, config: findEnvironment(ops, name) };
}

/**
 * The container a group's alerts name, when every alert names the same one and it is allow-listed on that environment's
 * host.
 */
export function restartableContainer(ops: AlertingOps, payload: WebhookPayload): string | undefined {
	const names = new Set(payload.alerts.map((a) => a.labels[ops.alerts.containerLabel]));
	const [name] = names;
	const { config } = alertEnvironment(ops, payload);
	if (names.size !== 1 || !name || !config?.ssh?.containers.includes(name)) return undefined;
	return name;
}

/** Which buttons the message of a group offers. */
export function alertActions(ops: AlertingOps, groupId: string, payload: WebhookPayload): AlertActions {
	const { config } = alertEnvironment(ops, payload);
	return { groupId, restartContainer: restartableContainer(ops, payload), logs: Boolean(config?.loki || config?.ssh) };
}
