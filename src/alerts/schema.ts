import { z } from "zod";

const Labels = z.record(z.string().max(1_024), z.string().max(16_384));

/** One alert of an AlertManager webhook (version 4, PROTOCOLS.md §1.1); unknown fields are tolerated. */
export const WebhookAlert = z.looseObject({
	status: z.enum(["firing", "resolved"]),
	labels: Labels,
	annotations: Labels.default({}),
	startsAt: z.string().min(1),
	// Firing alerts carry Go's zero time, "0001-01-01T00:00:00Z", until they end.
	endsAt: z.string().default("0001-01-01T00:00:00Z"),
	generatorURL: z.string().default(""),
	fingerprint: z.string().min(1).max(64),
});

/** The AlertManager webhook body; newer fields (notification_reason, routeLabels) pass through. */
export const WebhookPayload = z.looseObject({
	version: z.literal("4"),
	groupKey: z.string().min(1).max(8_192),
	truncatedAlerts: z.number().int().min(0).default(0),
	status: z.enum(["firing", "resolved"]),
	receiver: z.string().min(1).max(1_024),
	groupLabels: Labels.default({}),
	commonLabels: Labels.default({}),
	commonAnnotations: Labels.default({}),
	externalURL: z.string().default(""),
	alerts: z.array(WebhookAlert).min(1).max(10_000),
});

export type WebhookPayload = z.infer<typeof WebhookPayload>;
export type WebhookAlert = z.infer<typeof WebhookAlert>;
