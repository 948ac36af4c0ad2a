import { randomBytes } from "node:crypto";
import { hostname, userInfo } from "node:os";
import { routeGroup } from "./alerts/routing.ts";
import type { AlertsConfig, Config } from "./config.ts";
import { UserFacingError } from "./errors.ts";

/**
 * `opsbot test-alert`: a synthetic AlertManager webhook sent to the running bot's own receiver, so the
 * whole path (webhook -> store -> Discord) is exercised without a real incident. The group is marked
 * as a test everywhere a person looks: alertname `TEST`, the label `opsbot_test="true"`, and a summary
 * saying nothing is wrong. The same group is then resolved.
 */

export const TEST_ALERT_NAME = "TEST";
export const TEST_LABEL = "opsbot_test";

/** One test alert group: its labels, and the webhook body for firing or resolved. */
export interface TestAlert {
	readonly groupKey: string;
	readonly labels: Readonly<Record<string, string>>;
	/** The channels the bot's routes send it to. */
	readonly channels: readonly string[];
	payload(status: "firing" | "resolved", at: Date): Record<string, unknown>;
}

/**
 * The labels of a test alert that the config's routes send to `channel` (default: wherever a test
 * alert of this severity goes). Only routes whose matchers a literal label value can satisfy are used.
 */
export function testAlertLabels(
	alerts: Pick<AlertsConfig, "routes" | "defaultChannel">,
	severity: string,
	channel?: string,
): Record<string, string> {
	const base = { alertname: TEST_ALERT_NAME, severity, [TEST_LABEL]: "true" };
	const reaches = (labels: Record<string, string>) =>
		channel === undefined || routeGroup(labels, alerts).some((t) => t.channel === channel);
	if (reaches(base)) return base;
	for (const route of alerts.routes.filter((r) => r.channel === channel)) {
		const labels: Record<string, string> = { ...base, ...route.match };
		for (const [name, pattern] of Object.entries(route.matchRe)) labels[name] = pattern.split("|")[0] ?? "";
		if (reaches(labels)) return labels;
	}
	const known = [...new Set([alerts.defaultChannel, ...alerts.routes.map((r) => r.channel)])];
	throw new UserFacingError(
		`No route sends a ${severity} test alert to channel ${channel}. Channels alerts reach: ${known.join(", ")} ` +
			`(alerts.defaultChannel, alerts.routes).`,
	);
}

/** A new test alert group (a fresh group key, so every run gets its own message). */
export function newTestAlert(
	alerts: Pick<AlertsConfig, "routes" | "defaultChannel">,
	options: { severity: string; channel?: string; sentBy: string; via: "opsbot test-alert" | "/alerts test" },
): TestAlert {
	const labels = testAlertLabels(alerts, options.severity, options.channel);
	const run = randomBytes(6).toString("hex");
	const groupKey = `{}/{${TEST_LABEL}="true"}:{run="${run}"}`;
	const startsAt = new Date();
	const fingerprint = randomBytes(8).toString("hex");
	return {
		groupKey,
		labels,
		channels: routeGroup(labels, alerts).map((t) => t.channel),
		payload(status, at) {
			const annotations = {
				summary: "opsbot test alert: nothing is wrong",
				// Plain words: annotations are shown as inert text, so markup would appear as it is.
				description:
					`Sent by ${options.sentBy} with ${options.via} to check that alerts reach this channel. It ` +
					`resolves by itself.`,
			};
			return {
				version: "4",
				groupKey,
				truncatedAlerts: 0,
				status,
				receiver: "opsbot",
				groupLabels: { [TEST_LABEL]: "true" },
				commonLabels: labels,
				commonAnnotations: annotations,
				externalURL: "",
				alerts: [
					{
						status,
						labels,
						annotations,
						startsAt: startsAt.toISOString(),
						endsAt: status === "resolved" ? at.toISOString() : "0001-01-01T00:00:00Z",
						generatorURL: "",
						fingerprint,
					},
				],
			};
		},
	};
}

/** Where the running bot takes webhooks on this machine, and the header it wants. */
export function ownWebhook(config: Config): { url: string; authorization: string } {
	const alerts = config.ops.alerts;
	if (!alerts)
		throw new UserFacingError([
			{ code: "alerts" },
			" is not configured, so the bot takes no webhooks: add ",
			{ code: 'alerts: { defaultChannel: "CHANNEL_ID" }' },
			" to the config (README, AlertManager).",
		]);
	const host = ["0.0.0.0", "::", ""].includes(alerts.listen.host) ? "127.0.0.1" : alerts.listen.host;
	const { WEBHOOK_TOKEN: token, WEBHOOK_BASIC_AUTH: basic } = config.env;
	const authorization = token
		? `Bearer ${token}`
		: basic
			? `Basic ${Buffer.from(basic).toString("base64")}`
			: undefined;
	if (!authorization)
		throw new UserFacingError([
			"WEBHOOK_TOKEN is not set: the bot's webhook needs it (put it in .env; ",
			{ code: "npx opsbot init" },
			" writes one).",
		]);
	return { url: `http://${host.includes(":") ? `[${host}]` : host}:${alerts.listen.port}/alerts`, authorization };
}

/** Posts one webhook to the bot; a refusal or no answer becomes words for the operator. */
export async function postWebhook(target: { url: string; authorization: string }, body: unknown): Promise<void> {
	let res: Response;
	try {
		res = await fetch(target.url, {
			method: "POST",
			headers: { "content-type": "application/json", authorization: target.authorization },
			body: JSON.stringify(body),
			signal: AbortSignal.timeout(10_000),
		});
	} catch {
		throw new UserFacingError(`Nothing answers at ${target.url}: is the bot running (npm start) with this config?`, {
			unavailable: true,
		});
	}
	await res.arrayBuffer();
	if (res.status === 401)
		throw new UserFacingError(
			`The bot at ${target.url} refused the webhook token: this WEBHOOK_TOKEN is not the one the bot started with.`,
		);
	if (res.status !== 202 && res.status !== 200)
		throw new UserFacingError(`The bot at ${target.url} answered ${res.status}; its log says why.`, {
			unavailable: res.status >= 500,
		});
}

/** Who sent a test alert, for its text and the action log. */
export function operator(): string {
	let name = "someone";
	try {
		name = userInfo().username;
	} catch {
		// no passwd entry (a container with an arbitrary uid): keep "someone"
	}
	return `${name}@${hostname()}`;
}
