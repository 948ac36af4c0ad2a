import type { Counter, Gauge, Histogram, Registry } from "prom-client";

/** How an interaction ended, as counted in metrics. */
export type InteractionResult = "ok" | "refused" | "error" | "outside-guild";

/**
 * opsbot's own metrics, in Prometheus text format on the webhook port (`GET /metrics`). One
 * registry per process (not prom-client's global one), so tests and replicas never share state.
 */
export interface Metrics {
	/** What `GET /metrics` serves (empty in unservedMetrics). */
	readonly registry: Pick<Registry, "contentType" | "metrics">;
	/** Slash commands, buttons, forms and autocompletes by kind, name and result. */
	readonly interactions: Counter<"kind" | "name" | "result">;
	/** Seconds from receiving an interaction to its first response (the deferral). */
	readonly interactionFirstResponse: Histogram<"kind" | "name">;
	/** Seconds from receiving an interaction to its final answer. */
	readonly interactionDuration: Histogram<"kind" | "name">;
	/** Webhook requests by HTTP status. */
	readonly webhooks: Counter<"status">;
	/** Discord API requests by route (ids replaced), method and status: 429s and 5xx visible. */
	readonly discordRequests: Counter<"route" | "method" | "status">;
	/** Alert messages that could not be sent, by kind (refused by Discord, transient, local bug). */
	readonly deliveryFailures: Counter<"kind">;
	/** Restarts and silences from alert buttons, by result. */
	readonly alertActions: Counter<"action" | "result">;
	/**
	 * 1 while a channel's alert delivery is stopped after a failure, mostly of the alert store (disk full, database down).
	 */
	readonly deliveryStopped: Gauge<"channel">;
	/**
	 * Adds a gauge whose value is read when Prometheus scrapes (state held elsewhere, e.g. the store).
	 * A read that fails never fails the scrape: the series last read are reported as NaN (stale) and
	 * `onError` hears why, so process and Discord metrics still arrive when the store is stuck.
	 */
	gaugeAtScrape<L extends string>(
		name: string,
		help: string,
		labelNames: readonly L[],
		read: () => Promise<readonly { labels: Record<L, string>; value: number }[]>,
		onError?: (err: unknown) => void,
	): void;
}

// Interactions answer in milliseconds to seconds; Discord's deadline for the first response is 3 s.
const INTERACTION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30];

/**
 * Creates the process's metrics with Node's default process metrics (memory, CPU, event loop lag, GC).
 * prom-client (with the OpenTelemetry API it loads, about 90 modules) is loaded here, only by a
 * process that serves /metrics.
 */
export async function createMetrics(): Promise<Metrics> {
	const { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } = await import("prom-client");
	const registry = new Registry();
	collectDefaultMetrics({ register: registry });
	const registers = [registry];
	return {
		registry,
		interactions: new Counter({
			name: "opsbot_interactions_total",
			help: "Discord interactions handled, by kind, name and result.",
			labelNames: ["kind", "name", "result"],
			registers,
		}),
		interactionFirstResponse: new Histogram({
			name: "opsbot_interaction_first_response_seconds",
			help: "Time from receiving an interaction to its first response.",
			labelNames: ["kind", "name"],
			buckets: INTERACTION_BUCKETS,
			registers,
		}),
		interactionDuration: new Histogram({
			name: "opsbot_interaction_duration_seconds",
			help: "Time from receiving an interaction to its final answer.",
			labelNames: ["kind", "name"],
			buckets: INTERACTION_BUCKETS,
			registers,
		}),
		webhooks: new Counter({
			name: "opsbot_webhooks_total",
			help: "AlertManager webhook requests, by HTTP status.",
			labelNames: ["status"],
			registers,
		}),
		discordRequests: new Counter({
			name: "opsbot_discord_requests_total",
			help: "Discord API requests, by route, method and status.",
			labelNames: ["route", "method", "status"],
			registers,
		}),
		deliveryFailures: new Counter({
			name: "opsbot_alert_delivery_failures_total",
			help: "Alert messages that could not be sent, by kind (refused, transient, local).",
			labelNames: ["kind"],
			registers,
		}),
		alertActions: new Counter({
			name: "opsbot_alert_actions_total",
			help: "Restarts and silences from alert buttons, by action and result.",
			labelNames: ["action", "result"],
			registers,
		}),
		deliveryStopped: new Gauge({
			name: "opsbot_alert_delivery_stopped",
			help:
				"1 while a channel's alert delivery is stopped after a failure, mostly of the alert store (disk full, " +
				"database down).",
			labelNames: ["channel"],
			registers,
		}),
		gaugeAtScrape(name, help, labelNames, read, onError) {
			let last: Awaited<ReturnType<typeof read>> = [];
			new Gauge({
				name,
				help,
				labelNames: [...labelNames],
				registers,
				async collect() {
					this.reset();
					try {
						last = await read();
						for (const { labels, value } of last) this.set(labels, value);
					} catch (err) {
						for (const { labels } of last) this.set(labels, Number.NaN);
						onError?.(err);
					}
				},
			});
		},
	};
}

/**
 * Metrics for a process that serves no /metrics (no `alerts` section: the webhook port is where they
 * are served): every instrument records nothing, so prom-client is never loaded (bench/RESULTS.md).
 */
export function unservedMetrics(): Metrics {
	const nothing = { inc() {}, set() {}, observe() {} } as unknown;
	return {
		registry: { contentType: "text/plain; version=0.0.4; charset=utf-8", metrics: async () => "" },
		interactions: nothing as Counter<"kind" | "name" | "result">,
		interactionFirstResponse: nothing as Histogram<"kind" | "name">,
		interactionDuration: nothing as Histogram<"kind" | "name">,
		webhooks: nothing as Counter<"status">,
		discordRequests: nothing as Counter<"route" | "method" | "status">,
		deliveryFailures: nothing as Counter<"kind">,
		alertActions: nothing as Counter<"action" | "result">,
		deliveryStopped: nothing as Gauge<"channel">,
		gaugeAtScrape() {},
	};
}

/** A Discord API path with its ids and tokens replaced, so the route label stays bounded. */
export function discordRoute(path: string): string {
	return path
		.replace(/^\/api\/v\d+/, "")
		.replace(/\/\d{15,21}(?=\/|$)/g, "/:id")
		.replace(/\/(webhooks\/:id)\/[^/?]+/, "/$1/:token")
		.replace(/\/(interactions\/:id)\/[^/?]+/, "/$1/:token")
		.split("?")[0]!
		.slice(0, 80);
}
