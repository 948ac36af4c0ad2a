import { z } from "zod";

/**
 * Bidirectional overrides and zero-width characters: invisible in Discord, they reorder text
 * (U+202E shows what follows backwards) or hide it, and split words so readers and filters miss
 * them. Stripped at parse time, so every view (embed, content, attachment, terminal) gets clean text.
 */
const INVISIBLE = /[\u061C\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/g;

/** Removes bidi controls and zero-width characters from untrusted alert text. */
export function stripInvisible(text: string): string {
	return text.replace(INVISIBLE, "");
}

/** A string shown to people: length-checked as received, then cleaned of invisible characters. */
const Text = (max: number) => z.string().max(max).transform(stripInvisible);

const Labels = z.record(Text(1_024), Text(16_384));

/** One alert of an AlertManager webhook (version 4, PROTOCOLS.md §1.1); unknown fields are tolerated. */
export const WebhookAlert = z.looseObject({
	status: z.enum(["firing", "resolved"]),
	labels: Labels,
	annotations: Labels.default({}),
	startsAt: z.string().min(1),
	// Firing alerts carry Go's zero time, "0001-01-01T00:00:00Z", until they end.
	endsAt: z.string().default("0001-01-01T00:00:00Z"),
	generatorURL: z.string().transform(stripInvisible).default(""),
	fingerprint: z.string().min(1).max(64),
});

/** The AlertManager webhook body; newer fields (notification_reason, routeLabels) pass through. */
export const WebhookPayload = z.looseObject({
	version: z.literal("4"),
	groupKey: z.string().min(1).max(8_192),
	truncatedAlerts: z.number().int().min(0).default(0),
	status: z.enum(["firing", "resolved"]),
	receiver: z.string().min(1).max(1_024).transform(stripInvisible),
	groupLabels: Labels.default({}),
	commonLabels: Labels.default({}),
	commonAnnotations: Labels.default({}),
	externalURL: z.string().transform(stripInvisible).default(""),
	alerts: z.array(WebhookAlert).min(1).max(10_000),
});

export type WebhookPayload = z.infer<typeof WebhookPayload>;
export type WebhookAlert = z.infer<typeof WebhookAlert>;
