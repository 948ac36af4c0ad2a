import { join } from "node:path";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { openPostgresAlertStore } from "./pg-store.ts";
import { type AlertStore, openAlertStore } from "./store.ts";

/** Where the embedded alert store lives: stateDir/alerts.sqlite. */
export function alertStoreFile(config: Config): string {
	return join(config.ops.stateDir, "alerts.sqlite");
}

/** The alert store this config names: embedded by default; PostgreSQL (opsbot's own database) when replicas must share the state. */
export async function openConfiguredAlertStore(config: Config, log: Logger): Promise<AlertStore> {
	const url = config.env.STATE_DATABASE_URL;
	const policy = { regroupMs: (config.ops.alerts?.regroupMinutes ?? 0) * 60_000 };
	return url
		? openPostgresAlertStore(url, log.child({ svc: "state" }), { policy })
		: openAlertStore(alertStoreFile(config), { policy });
}
