import { createRequire } from "node:module";
import type pg from "pg";
import type { Logger } from "./log.ts";

/**
 * The pg driver, loaded at its first use rather than at start: a bot without PostgreSQL (no
 * environment database, embedded state) never pays for it in memory (bench/RESULTS.md "Memory").
 * pg is CommonJS, so require() loads it synchronously where a connection is made.
 */
export function loadPg(): typeof pg {
	return createRequire(import.meta.url)("pg") as typeof pg;
}

/**
 * A pg pool whose connections never take the process down. pg-pool listens for a client's 'error'
 * only while the client is idle; a connection the server drops while it is checked out (a DBA's
 * pg_terminate_backend, a restart, a failover, a PgBouncer restart) fails its query, and then the
 * client emits 'error', which without a listener is an uncaught exception. Every client gets a
 * listener for its whole life here; the query's own rejection is what the caller handles, and
 * pg-pool drops the dead client on release, so the next checkout opens a fresh connection.
 */
export function createPool(config: pg.PoolConfig, log: Logger, what: string): pg.Pool {
	const pool = new (loadPg().Pool)(config);
	pool.on("connect", (client) => {
		client.on("error", (err) => log.warn({ err }, `${what}: connection lost`));
	});
	// pg-pool re-emits an idle client's error here; the client's own listener above has logged it.
	pool.on("error", () => undefined);
	return pool;
}
