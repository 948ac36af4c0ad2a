import { join } from "node:path";
import type { Client } from "discord.js";
import type { Config } from "../config.ts";
import type { AlertState } from "../context.ts";
import type { Logger } from "../log.ts";
import { alertActions } from "./actions.ts";
import { alertChart } from "./chart.ts";
import { restSender, startDelivery, type Delivery, type DiscordSender } from "./delivery.ts";
import { createReceiver } from "./receiver.ts";
import { openPostgresAlertStore } from "./pg-store.ts";
import { startSilenceWatch } from "./silence-watch.ts";
import { openAlertStore, type AlertStore } from "./store.ts";

/** The running alert relay: receiver, store and delivery. */
export interface AlertRelay {
	readonly url: string;
	readonly store: AlertStore;
	readonly delivery: Delivery;
	close(): Promise<void>;
}

/** Starts the relay when `alerts` is configured: replays what the outbox still holds, then listens; follows the groups opsbot silenced. */
export async function startAlertRelay(config: Config, client: Client, log: Logger, alertState?: AlertState, sender: DiscordSender = restSender(client.rest)): Promise<AlertRelay | undefined> {
	const alerts = config.ops.alerts;
	if (!alerts) return undefined;
	// Embedded by default; PostgreSQL (opsbot's own database) when replicas must share the state.
	const store = config.env.STATE_DATABASE_URL ? await openPostgresAlertStore(config.env.STATE_DATABASE_URL, log.child({ svc: "state" })) : openAlertStore(join(config.ops.stateDir, "alerts.sqlite"));
	const delivery = startDelivery({ store, sender, log: log.child({ svc: "alert-delivery" }), chart: alertChart(config.ops), actions: (item) => alertActions(config.ops, item.groupId, item.payload), guildId: config.ops.discord.guildId });
	const receiver = createReceiver({
		config: alerts,
		auth: { bearerToken: config.env.WEBHOOK_TOKEN, basicAuth: config.env.WEBHOOK_BASIC_AUTH },
		store,
		log: log.child({ svc: "alert-receiver" }),
		onQueued: () => delivery.kick(),
		discordReady: () => client.isReady(),
	});
	const silenceWatch = startSilenceWatch({ store, ops: config.ops, log: log.child({ svc: "silence-watch" }), onChange: () => delivery.kick(), intervalMs: alerts.silenceWatch.intervalSeconds * 1_000, settleMs: alerts.silenceWatch.alertmanagerSettleSeconds * 1_000 });
	if (alertState) {
		alertState.store = store;
		alertState.kick = () => delivery.kick();
	}
	const address = await receiver.listen({ host: alerts.listen.host, port: alerts.listen.port });
	log.info({ address, pending: await store.pending() }, "alert receiver listening");
	delivery.kick();
	return {
		url: address,
		store,
		delivery,
		async close() {
			await receiver.close();
			await silenceWatch.stop();
			await delivery.stop();
			await store.close();
		},
	};
}
