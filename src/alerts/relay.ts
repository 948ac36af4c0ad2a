import type { Client } from "discord.js";
import { Routes } from "discord-api-types/v10";
import type { Config } from "../config.ts";
import type { Services } from "../context.ts";
import { withTimeout } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { AlertManagerContact, AlertManagerService } from "../services/alertmanager.ts";
import { alertActions } from "./actions.ts";
import { alertChart } from "./chart.ts";
import { type Delivery, startDelivery } from "./delivery.ts";
import { startHistoryPruning } from "./episodes.ts";
import { cardClocks, groupRules } from "./escalation.ts";
import { startLifecycle } from "./lifecycle.ts";
import { acceptPayload, authorized, createReceiver } from "./receiver.ts";
import { startReconciler } from "./reconcile.ts";
import { type DiscordSender, restSender } from "./rest-sender.ts";
import { startSilenceAnnouncer } from "./silence-announcer.ts";
import { startSilenceWatch } from "./silence-watch.ts";
import type { AlertStore } from "./store.ts";
import { startThreadFollower } from "./threads.ts";

/** The running alert relay: receiver, store and delivery. */
export interface AlertRelay {
	readonly url: string;
	readonly store: AlertStore;
	readonly delivery: Delivery;
	close(): Promise<void>;
}

/**
 * Starts the relay when `alerts` is configured: replays what the outbox still holds, then listens; follows the groups
 * opsbot silenced.
 */
export async function startAlertRelay(
	config: Config,
	client: Client,
	log: Logger,
	services: Pick<Services, "alertState" | "metrics" | "alertmanager" | "prometheus" | "actionLog" | "messages">,
	options: { standby?: () => boolean } = {},
	sender: DiscordSender = restSender(client.rest),
): Promise<AlertRelay | undefined> {
	const alerts = config.ops.alerts;
	if (!alerts) return undefined;
	const { alertState, metrics } = services;
	const ops = { ...config.ops, alerts };
	const store = alertState.store;
	if (!store) throw new Error("the context was built without the alert store");
	// Only the replica holding the gateway lease delivers (one pacer and one storm summary per channel); a standby
	// takes webhooks into the shared store and starts delivering when it takes the lease over.
	let running: Delivery | undefined;
	const deliver = () =>
		(running ??= startDelivery({
			store,
			sender,
			log: log.child({ svc: "alert-delivery" }),
			chart: alertChart(ops, services.prometheus),
			actions: (item) => ({ ...alertActions(ops, item.groupId, item.payload), episode: item.episode }),
			clocks: (item) =>
				cardClocks({ ...item, status: item.payload.status }, groupRules(ops, item.payload, item.channel), Date.now()),
			guildId: config.ops.discord.guildId,
			onFailure: (kind) => metrics.deliveryFailures.inc({ kind }),
			onPause: (channel, stopped) => metrics.deliveryStopped.set({ channel }, stopped ? 1 : 0),
		}));
	const standby = options.standby ?? (() => false);
	const takeover = setInterval(() => {
		if (!running && !standby()) {
			log.info("delivering alerts: this replica holds the gateway lease");
			deliver().wake();
		}
	}, 250).unref();
	if (!standby()) deliver();
	const delivery: Delivery = {
		wake: () => running?.wake(),
		drained: () => (running ? running.drained() : Promise.resolve()),
		stop: async () => {
			clearInterval(takeover);
			await running?.stop();
		},
	};
	/** When this process last received a valid webhook (the dead man's notice says it). */
	let lastWebhookAt: number | undefined;
	const receiver = createReceiver({
		config: alerts,
		auth: { bearerToken: config.env.WEBHOOK_TOKEN, basicAuth: config.env.WEBHOOK_BASIC_AUTH },
		store,
		log: log.child({ svc: "alert-receiver" }),
		discordState: () => (client.isReady() ? "connected" : standby() ? "standby" : "not connected"),
		alertmanagers: () => services.alertmanager.contacts(),
		seen: (at) => {
			lastWebhookAt = at;
		},
	});
	// METRICS_TOKEN, when set, is the only credential for /metrics: the scraper's secret cannot post alerts, nor
	// AlertManager's scrape.
	const metricsAuth = config.env.METRICS_TOKEN
		? { bearerToken: config.env.METRICS_TOKEN }
		: { bearerToken: config.env.WEBHOOK_TOKEN, basicAuth: config.env.WEBHOOK_BASIC_AUTH };
	serveAlertManagerContacts(metrics, services.alertmanager);
	serveMetrics(receiver, metrics, store, log.child({ svc: "metrics" }), {
		requireAuth: alerts.metrics.requireAuth,
		auth: metricsAuth,
	});
	const silenceWatch = startSilenceWatch({
		store,
		ops,
		alertmanager: services.alertmanager,
		log: log.child({ svc: "silence-watch" }),
		intervalMs: alerts.silenceWatch.intervalSeconds * 1_000,
	});
	const { reconcile } = alerts;
	const settleSeconds = reconcile.alertmanagerSettleSeconds ?? alerts.silenceWatch.alertmanagerSettleSeconds;
	// Escalations and acknowledgement reminders, through the message outbox (one post per step's key).
	const { messages } = services;
	const lifecycle = messages
		? startLifecycle({
				store,
				ops,
				messages,
				actionLog: services.actionLog,
				log: log.child({ svc: "escalation" }),
				active: () => !standby(),
				intervalMs: alerts.clocks.intervalSeconds * 1_000,
				...(alerts.deadman
					? {
							deadman: {
								name: alerts.deadman.alertname,
								afterMs: alerts.deadman.afterMinutes * 60_000,
								channel: alerts.deadman.channel,
							},
							deadmanContext: () => ({ alertmanagers: services.alertmanager.contacts(), lastWebhookAt }),
						}
					: {}),
			})
		: undefined;
	const reconciler = startReconciler({
		store,
		ops,
		alertmanager: services.alertmanager,
		log: log.child({ svc: "reconcile" }),
		accept: (payload) => acceptPayload({ config: alerts, store }, payload),
		active: () => !standby(),
		intervalMs: reconcile.intervalSeconds * 1_000,
		graceMs: reconcile.graceSeconds * 1_000,
		...(settleSeconds === undefined ? {} : { settleMs: settleSeconds * 1_000 }),
		receivers: reconcile.receivers,
	});
	// Silences made outside opsbot, reminders before one ends, maintenance windows: through the message outbox.
	const announcer = services.messages
		? startSilenceAnnouncer({
				store,
				messages: services.messages,
				ops,
				alertmanager: services.alertmanager,
				log: log.child({ svc: "silence-announcer" }),
				intervalMs: alerts.silenceWatch.intervalSeconds * 1_000,
				active: () => !standby(),
			})
		: undefined;
	const pruning = startHistoryPruning(store.history, alerts.history.days, log.child({ svc: "alert-history" }));
	const threads =
		alerts.threads.enabled && services.messages
			? startThreadFollower({
					store,
					messages: services.messages,
					settings: { openFor: alerts.threads.openFor.map((s) => s.toLowerCase()) },
					archive: async (thread) => {
						await client.rest.patch(Routes.channel(thread), { body: { archived: true } });
					},
					log: log.child({ svc: "alert-threads" }),
				})
			: undefined;
	// New history events come with an outbox row (a card re-render) or a webhook: follow them at once.
	const stopFollowingQueue = threads ? store.onQueued(() => threads.wake()) : undefined;
	const address = await receiver.listen({ host: alerts.listen.host, port: alerts.listen.port });
	log.info({ address, pending: await store.pending() }, "alert receiver listening");
	delivery.wake();
	return {
		url: address,
		store,
		delivery,
		async close() {
			await receiver.close();
			await silenceWatch.stop();
			await announcer?.stop();
			await reconciler.stop();
			await pruning.stop();
			stopFollowingQueue?.();
			await threads?.stop();
			await lifecycle?.stop();
			await delivery.stop(); // the store is the context's: it closes with it
		},
	};
}

/** When each AlertManager last answered, and whether its last call did: a silent pipeline shows here. */
function serveAlertManagerContacts(metrics: Metrics, alertmanager: Pick<AlertManagerService, "contacts">): void {
	const labels = (c: AlertManagerContact) => ({ url: c.url, environments: c.environments.join(",") });
	metrics.gaugeAtScrape(
		"opsbot_alertmanager_last_answer_timestamp_seconds",
		"When each AlertManager last answered opsbot (Unix seconds); absent until it has.",
		["url", "environments"],
		async () =>
			alertmanager
				.contacts()
				.flatMap((c) => (c.lastAnswerAt === null ? [] : [{ labels: labels(c), value: c.lastAnswerAt / 1000 }])),
	);
	metrics.gaugeAtScrape(
		"opsbot_alertmanager_up",
		"1 when opsbot's last call to this AlertManager got an answer, 0 when it did not; absent before the first.",
		["url", "environments"],
		async () =>
			alertmanager.contacts().flatMap((c) => (c.up === null ? [] : [{ labels: labels(c), value: c.up ? 1 : 0 }])),
	);
}

/**
 * How long a scrape waits for the store's figures before reporting them stale: well within Prometheus' 10 s default
 * scrape timeout.
 */
const STORE_STATS_BUDGET_MS = 2_000;

/**
 * `GET /metrics` in Prometheus text format, webhook responses counted by status, and the store's gauges read at scrape
 * time.
 */
function serveMetrics(
	app: ReturnType<typeof createReceiver>,
	metrics: Metrics,
	store: AlertStore,
	log: Logger,
	options: { requireAuth: boolean; auth: Parameters<typeof authorized>[1] },
): void {
	app.addHook("onResponse", async (request, reply) => {
		if (request.routeOptions.url === "/alerts") metrics.webhooks.inc({ status: String(reply.statusCode) });
	});
	let stats: ReturnType<AlertStore["stats"]> | undefined;
	let readable = true;
	// One store read per scrape serves all three gauges, bounded so a locked or sick store cannot fail the scrape.
	const readStats = () =>
		(stats ??= withTimeout(store.stats(), STORE_STATS_BUDGET_MS)
			.then((read) => {
				if (!readable) log.info("the alert store's figures are readable again");
				readable = true;
				return read;
			})
			.finally(() => setTimeout(() => (stats = undefined), 1_000).unref()));
	// Logged once per outage, not per scrape.
	const unreadable = (err: unknown) => {
		if (readable)
			log.warn(
				{ err },
				"could not read the alert store's figures for /metrics; reporting them as NaN until it answers",
			);
		readable = false;
	};
	metrics.gaugeAtScrape(
		"opsbot_alert_groups",
		"Alert groups opsbot holds, by status.",
		["state"],
		async () => (await readStats()).groups.map((g) => ({ labels: { state: g.status }, value: g.count })),
		unreadable,
	);
	metrics.gaugeAtScrape(
		"opsbot_alert_outbox_depth",
		"Alert messages queued for Discord, by channel.",
		["channel"],
		async () => (await readStats()).outbox.map((o) => ({ labels: { channel: o.channel }, value: o.depth })),
		unreadable,
	);
	metrics.gaugeAtScrape(
		"opsbot_alert_outbox_oldest_age_seconds",
		"Age of the oldest queued alert message, by channel.",
		["channel"],
		async () =>
			(await readStats()).outbox.map((o) => ({
				labels: { channel: o.channel },
				value: (Date.now() - o.oldestAt) / 1000,
			})),
		unreadable,
	);
	metrics.gaugeAtScrape(
		"opsbot_alert_store_readable",
		"1 when this scrape read the alert store's figures; 0 when they are stale (NaN).",
		[],
		async () => [
			{
				labels: {},
				value: await readStats().then(
					() => 1,
					() => 0,
				),
			},
		],
	);
	app.get("/metrics", async (request, reply) => {
		const loopback = /^(127\.|::1$|::ffff:127\.)/.test(request.socket.remoteAddress ?? "");
		if ((options.requireAuth || !loopback) && !authorized(request.headers.authorization, options.auth)) {
			return reply.code(401).header("www-authenticate", 'Bearer realm="opsbot"').send({ error: "unauthorized" });
		}
		return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
	});
}
