import { z } from "zod";
import { stripInvisible } from "../render/limits.ts";

/**
 * PostgreSQL's JSONB cannot hold U+0000 (22P05): a webhook with a NUL anywhere (a label, an annotation,
 * a field opsbot does not know) would be refused by that store, and retried by AlertManager, for ever.
 * Replaced, not removed: U+FFFD is Unicode's mark for a character that cannot be shown, so a reader sees
 * that something was there, and values that differ only by a NUL (a groupKey, which names the group, or a
 * label) stay different instead of merging. Same length in UTF-16, so the schema's limits read the same.
 */
const NUL = /\u0000/g;

/**
 * `value` (parsed JSON) with every NUL in its strings and keys replaced by U+FFFD; the same object when it has none.
 */
export function replaceNul(value: unknown): unknown {
	if (typeof value === "string") return value.includes("\u0000") ? value.replace(NUL, "\uFFFD") : value;
	if (typeof value !== "object" || value === null) return value;
	// Plain loops, no copy until a NUL turns up: this walks every webhook, up to 10,000 alerts.
	if (Array.isArray(value)) {
		let copy: unknown[] | undefined;
		for (let i = 0; i < value.length; i++) {
			const cleaned = replaceNul(value[i]);
			if (cleaned !== value[i]) (copy ??= [...value])[i] = cleaned;
		}
		return copy ?? value;
	}
	const record = value as Record<string, unknown>;
	const keys = Object.keys(record);
	let copy: [string, unknown][] | undefined;
	for (let i = 0; i < keys.length; i++) {
		const key = keys[i]!;
		const cleanKey = key.includes("\u0000") ? key.replace(NUL, "\uFFFD") : key;
		const cleaned = replaceNul(record[key]);
		if (!copy && (cleanKey !== key || cleaned !== record[key])) copy = keys.slice(0, i).map((k) => [k, record[k]]);
		copy?.push([cleanKey, cleaned]);
	}
	// fromEntries defines keys as own properties: a "__proto__" key stays data, never a prototype.
	return copy ? Object.fromEntries(copy) : value;
}

/**
 * A string shown to people: length-checked as received, then cleaned at parse time (stripInvisible:
 * bidi overrides, zero-width characters, fillers, the tag block; combining-mark floods cut), so every
 * view (embed, content, attachment, terminal) gets clean text.
 */
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

/**
 * The AlertManager webhook body; newer fields (notification_reason, routeLabels) pass through. NULs are replaced first
 * (replaceNul).
 */
export const WebhookPayload = z.preprocess(
	replaceNul,
	z.looseObject({
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
		/**
		 * Set by opsbot, never by AlertManager (the receiver drops it from webhooks): "found" when
		 * reconciliation posted alerts whose webhook never arrived, "gone" when it resolved a group
		 * AlertManager no longer holds.
		 */
		opsbotReconciled: z.enum(["found", "gone"]).optional(),
	}),
);

export type WebhookPayload = z.infer<typeof WebhookPayload>;
export type WebhookAlert = z.infer<typeof WebhookAlert>;

/**
 * `labels` with its names in ascending order (by UTF-16 code unit, as AlertManager's Go sorts bytes for ASCII names).
 */
function sortedLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
	return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * `payload` with every label and annotation set in AlertManager's order: Go writes a map's keys sorted,
 * so that is the order opsbot received. PostgreSQL's jsonb keeps keys shortest first instead, so a
 * payload read back from it is put in this order again (a silence's matchers, a card's label lines).
 */
export function inAlertManagerOrder(payload: WebhookPayload): WebhookPayload {
	return {
		...payload,
		groupLabels: sortedLabels(payload.groupLabels),
		commonLabels: sortedLabels(payload.commonLabels),
		commonAnnotations: sortedLabels(payload.commonAnnotations),
		alerts: payload.alerts.map((a) => ({
			...a,
			labels: sortedLabels(a.labels),
			annotations: sortedLabels(a.annotations),
		})),
	};
}
