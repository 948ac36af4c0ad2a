import pg from "pg";
import type { Logger } from "./log.ts";

/**
 * A pg pool whose connections never take the process down. pg-pool listens for a client's 'error'
 * only while the client is idle; a connection the server drops while it is checked out (a DBA's
 * pg_terminate_backend, a restart, a failover, a PgBouncer restart) fails its query, and then the
 * client emits 'error', which without a listener is an uncaught exception. Every client gets a
 * listener for its whole life here; the query's own rejection is what the caller handles, and
 * pg-pool drops the dead client on release, so the next checkout opens a fresh connection.
 */
export function createPool(config: pg.PoolConfig, log: Logger, what: string): pg.Pool {
	const pool = new pg.Pool(config);
	pool.on("connect", (client) => {
		client.on("error", (err) => log.warn({ err }, `${what}: connection lost`));
	});
	// pg-pool re-emits an idle client's error here; the client's own listener above has logged it.
	pool.on("error", () => undefined);
	return pool;
}
