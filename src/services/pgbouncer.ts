import pg from "pg";

/** One row of PgBouncer's SHOW POOLS, by column name (columns moved between versions). */
export interface PgBouncerPool {
	readonly database: string;
	readonly user: string;
	readonly clientsActive: number;
	readonly clientsWaiting: number;
	readonly serversActive: number;
	readonly serversIdle: number;
	readonly maxWaitSeconds: number;
	readonly poolMode: string;
}

/** Talks to PgBouncer's admin console with the simple query protocol only (PROTOCOLS.md §3.1). */
export interface PgBouncerAdmin {
	/** Runs one SHOW command and returns rows keyed by column name. */
	show(what: "POOLS" | "STATS" | "LISTS" | "DATABASES" | "CLIENTS" | "SERVERS" | "CONFIG" | "VERSION"): Promise<Record<string, unknown>[]>;
	pools(): Promise<PgBouncerPool[]>;
}

/** Creates an admin-console client; each call opens and closes its own connection (the console is not pooled). */
export function createPgBouncerAdmin(options: { url: string; timeoutMs: number }): PgBouncerAdmin {
	async function show(what: string): Promise<Record<string, unknown>[]> {
		const client = new pg.Client({ connectionString: options.url, connectionTimeoutMillis: options.timeoutMs, query_timeout: options.timeoutMs });
		client.on("error", () => undefined);
		try {
			await client.connect();
			// A query with no values goes out as a simple 'Q' message; anything else makes the console disconnect.
			const result = await client.query(`SHOW ${what}`);
			return result.rows as Record<string, unknown>[];
		} finally {
			await client.end().catch(() => undefined);
		}
	}
	return {
		show,
		async pools() {
			const rows = await show("POOLS");
			return rows.map((row) => ({
				database: String(row.database ?? ""),
				user: String(row.user ?? ""),
				clientsActive: toNumber(row.cl_active),
				clientsWaiting: toNumber(row.cl_waiting),
				serversActive: toNumber(row.sv_active),
				serversIdle: toNumber(row.sv_idle),
				maxWaitSeconds: toNumber(row.maxwait) + toNumber(row.maxwait_us) / 1e6,
				poolMode: String(row.pool_mode ?? "unknown"),
			}));
		},
	};
}

// int8 and numeric arrive as strings from node-postgres.
function toNumber(value: unknown): number {
	const n = typeof value === "number" ? value : Number(value ?? 0);
	return Number.isFinite(n) ? n : 0;
}
