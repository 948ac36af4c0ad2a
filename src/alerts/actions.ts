import { defaultEnvironment, findEnvironment, type EnvironmentConfig, type OpsFile } from "../config.ts";
import type { AlertActions } from "./render.ts";
import type { WebhookPayload } from "./schema.ts";

/** The environment an alert belongs to: its `alerts.environmentLabel` label, else the default. */
export function alertEnvironment(ops: OpsFile, payload: WebhookPayload): { name: string; config: EnvironmentConfig | undefined } {
	const label = ops.alerts?.environmentLabel ?? "env";
	const name = payload.commonLabels[label] ?? defaultEnvironment(ops);
	return { name, config: findEnvironment(ops, name) };
}

/** The container a group's alerts name, when every alert names the same one and it is allow-listed on that environment's host. */
export function restartableContainer(ops: OpsFile, payload: WebhookPayload): string | undefined {
	const label = ops.alerts?.containerLabel ?? "container";
	const names = new Set(payload.alerts.map((a) => a.labels[label]));
	const [name] = names;
	const { config } = alertEnvironment(ops, payload);
	if (names.size !== 1 || !name || !config?.ssh?.containers.includes(name)) return undefined;
	return name;
}

/** Which buttons the message of a group offers. */
export function alertActions(ops: OpsFile, groupId: string, payload: WebhookPayload): AlertActions {
	const { config } = alertEnvironment(ops, payload);
	return { groupId, restartContainer: restartableContainer(ops, payload), logs: Boolean(config?.loki || config?.ssh) };
}
