import { existsSync } from "node:fs";
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
	return url ? openPostgresAlertStore(url, log.child({ svc: "state" })) : openAlertStore(alertStoreFile(config));
}

/**
 * Runs `work` on the store the relay uses, for a CLI command that only reads it; undefined where the
 * relay never ran (no STATE_DATABASE_URL and no file: opening it would create one).
 */
export async function readAlertStore<T>(
	config: Config,
	log: Logger,
	work: (store: AlertStore) => Promise<T>,
): Promise<T | undefined> {
	if (!config.env.STATE_DATABASE_URL && !existsSync(alertStoreFile(config))) return undefined;
	const store = await openConfiguredAlertStore(config, log);
	try {
		return await work(store);
	} finally {
		await store.close();
	}
}
