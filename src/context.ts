import type { Config } from "./config.ts";
import { createAccessPolicy, type AccessPolicy } from "./discord/access.ts";
import type { Logger } from "./log.ts";
import { createHealthService, type HealthService } from "./services/health.ts";
import { createDatabaseRegistry, type DatabaseRegistry } from "./services/postgres.ts";

/** The services handlers reach; each built once per process in createContext. */
export interface Services {
	readonly health: HealthService;
	readonly databases: DatabaseRegistry;
}

/** Everything a command, button or CLI run depends on, passed explicitly (no module singletons). */
export interface AppContext {
	readonly config: Config;
	readonly log: Logger;
	readonly access: AccessPolicy;
	readonly services: Services;
}

/** Builds the context. Nothing connects here: pools open lazily on first use. */
export function createContext(config: Config, log: Logger): { ctx: AppContext; close: () => Promise<void> } {
	const environments = config.ops.environments;
	const secret = (name: string) => config.secrets.get(name);
	const databases = createDatabaseRegistry((environment) => {
		const pg = environments[environment]?.postgres;
		const url = pg ? secret(pg.urlEnv) : undefined;
		if (!pg || !url) return undefined;
		return { url, maxConnections: pg.maxConnections, statementTimeoutMs: config.ops.audit.statementTimeoutMs, applicationName: "opsbot" };
	}, log.child({ svc: "postgres" }));
	const services: Services = {
		databases,
		health: createHealthService({ environments, databases, secret, log: log.child({ svc: "health" }) }),
	};
	const ctx: AppContext = { config, log, access: createAccessPolicy(config.ops), services };
	return { ctx, close: () => databases.close() };
}
