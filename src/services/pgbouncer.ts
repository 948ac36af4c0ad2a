import { loadPg } from "../pg-pool.ts";

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

type ShowWhat = "POOLS" | "STATS" | "LISTS" | "DATABASES" | "CLIENTS" | "SERVERS" | "CONFIG" | "VERSION";

/** The application's pools as PgBouncer sees them, without opsbot's own clients. */
export interface PgBouncerUsageRead {
	/** Pools of real databases (not the admin console), client figures without opsbot's own clients. */
	readonly pools: PgBouncerPool[];
	/** opsbot's own client connections (by application_name) that were left out of the figures. */
	readonly ownClients: number;
	/** SHOW STATS rows, when asked for. */
	readonly stats: Record<string, unknown>[];
}

/** Talks to PgBouncer's admin console with the simple query protocol only (PROTOCOLS.md §3.1). */
export interface PgBouncerAdmin {
	/** Runs one SHOW command and returns rows keyed by column name. */
	show(what: ShowWhat): Promise<Record<string, unknown>[]>;
	/** SHOW POOLS as it is, opsbot's own clients included. */
	pools(): Promise<PgBouncerPool[]>;
	/**
	 * SHOW CLIENTS and SHOW POOLS (and SHOW STATS) over one admin connection, with the clients whose
	 * application_name is `ownApplicationName` taken out of the client figures: opsbot's own queries
	 * through PgBouncer would otherwise show up as active or waiting clients in the pools it reports.
	 */
	usage(ownApplicationName: string, options?: { stats?: boolean }): Promise<PgBouncerUsageRead>;
}

/** Creates an admin-console client; each call opens and closes its own connection (the console is not pooled). */
export function createPgBouncerAdmin(options: {
	url: string;
	timeoutMs: number;
	applicationName?: string;
}): PgBouncerAdmin {
	async function showAll(whats: readonly ShowWhat[]): Promise<Record<string, unknown>[][]> {
		const client = new (loadPg().Client)({
			connectionString: options.url,
			connectionTimeoutMillis: options.timeoutMs,
			query_timeout: options.timeoutMs,
			...(options.applicationName ? { application_name: options.applicationName } : {}),
		});
		client.on("error", () => undefined);
		try {
			await client.connect();
			const results: Record<string, unknown>[][] = [];
			// A query with no values goes out as a simple 'Q' message; anything else makes the console disconnect.
			for (const what of whats) results.push((await client.query(`SHOW ${what}`)).rows as Record<string, unknown>[]);
			return results;
		} finally {
			await client.end().catch(() => undefined);
		}
	}
	return {
		show: async (what) => (await showAll([what]))[0] ?? [],
		async pools() {
			return ((await showAll(["POOLS"]))[0] ?? []).map(toPool);
		},
		async usage(ownApplicationName, usageOptions = {}) {
			// CLIENTS right before POOLS on the same connection: the two views are microseconds apart.
			const [clients = [], pools = [], stats = []] = await showAll(
				usageOptions.stats ? ["CLIENTS", "POOLS", "STATS"] : ["CLIENTS", "POOLS"],
			);
			const realPools = pools.map(toPool).filter((p) => p.database !== "pgbouncer");
			const own = clients.filter(
				(c) => String(c.application_name ?? "") === ownApplicationName && String(c.database ?? "") !== "pgbouncer",
			);
			const others = clients.filter((c) => !own.includes(c));
			const poolOf = (c: Record<string, unknown>): PgBouncerPool | undefined => {
				const database = String(c.database ?? "");
				const exact = realPools.find((p) => p.database === database && p.user === String(c.user ?? ""));
				if (exact) return exact;
				// With force_user the pool is named after the forced user, not the client's login user.
				const sameDatabase = realPools.filter((p) => p.database === database);
				return sameDatabase.length === 1 ? sameDatabase[0] : undefined;
			};
			return {
				ownClients: own.length,
				stats,
				pools: realPools.map((pool) => {
					const mine = own.filter((c) => poolOf(c) === pool);
					const ownWaiting = mine.filter((c) => c.state === "waiting").length;
					// 1.25 lists logged-in clients with no transaction as `idle`; SHOW POOLS still counts them in cl_active.
					const ownActive = mine.filter((c) => c.state === "active" || c.state === "idle").length;
					const { clientsActive, clientsWaiting } = othersInPool(pool, { active: ownActive, waiting: ownWaiting });
					let maxWaitSeconds = pool.maxWaitSeconds;
					if (clientsWaiting === 0) maxWaitSeconds = 0;
					else if (ownWaiting > 0) {
						// maxwait may be opsbot's own wait: take the longest wait of the other waiting clients instead.
						const waits = others
							.filter((c) => c.state === "waiting" && poolOf(c) === pool)
							.map((c) => toNumber(c.wait) + toNumber(c.wait_us) / 1e6);
						if (waits.length > 0) maxWaitSeconds = Math.max(...waits);
					}
					return {
						...pool,
						clientsActive,
						clientsWaiting,
						maxWaitSeconds,
					};
				}),
			};
		},
	};
}

/**
 * A pool's active and waiting clients without opsbot's own (`own`, as SHOW CLIENTS listed them). SHOW POOLS
 * comes a moment after SHOW CLIENTS, and an own client can move between the two lists meanwhile (waiting for
 * the server connection its first query opens, then active). So the own clients' total is taken out of the
 * pool's total, and the rest split as SHOW POOLS splits it less the own clients listed waiting: opsbot never
 * counts itself as another client, whichever list it was in at either moment.
 */
export function othersInPool(
	pool: Pick<PgBouncerPool, "clientsActive" | "clientsWaiting">,
	own: { readonly active: number; readonly waiting: number },
): { clientsActive: number; clientsWaiting: number } {
	const others = Math.max(0, pool.clientsActive + pool.clientsWaiting - own.active - own.waiting);
	const clientsWaiting = Math.min(others, Math.max(0, pool.clientsWaiting - own.waiting));
	return { clientsActive: others - clientsWaiting, clientsWaiting };
}

function toPool(row: Record<string, unknown>): PgBouncerPool {
	return {
		database: String(row.database ?? ""),
		user: String(row.user ?? ""),
		clientsActive: toNumber(row.cl_active),
		clientsWaiting: toNumber(row.cl_waiting),
		serversActive: toNumber(row.sv_active),
		serversIdle: toNumber(row.sv_idle),
		maxWaitSeconds: toNumber(row.maxwait) + toNumber(row.maxwait_us) / 1e6,
		poolMode: String(row.pool_mode ?? "unknown"),
	};
}

// int8 and numeric arrive as strings from node-postgres.
function toNumber(value: unknown): number {
	const n = typeof value === "number" ? value : Number(value ?? 0);
	return Number.isFinite(n) ? n : 0;
}
