import type { AuditTableConfig } from "../config.ts";
import { UserFacingError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { parseTimeSpec } from "../time.ts";
import { type Database, pgUserFacingError } from "./postgres.ts";

/** One audit_log row, as opsbot shows it. */
export interface AuditEvent {
	readonly id: string;
	readonly at: Date;
	readonly correlationId: string | null;
	readonly action: string;
	readonly resourceType: string;
	readonly resourceId: string | null;
	readonly userId: number | null;
	readonly username: string | null;
	readonly userEmail: string | null;
	readonly ipAddress: string | null;
	readonly userAgent: string | null;
	readonly function: string | null;
	readonly requestPath: string | null;
	readonly requestMethod: string | null;
	readonly success: boolean;
	readonly error: string | null;
	readonly durationMs: number | null;
}

/** The answer to "who deleted this?": the deletes, or what is known when there are none. */
export interface WhoDeletedResult {
	readonly resourceType: string;
	readonly resourceId: string;
	readonly deletes: readonly AuditEvent[];
	/** When nothing was deleted: the resource's latest actions of any kind. */
	readonly lastActions: readonly AuditEvent[];
	/** When nothing was deleted: the same id under other resource types, with how many rows each. */
	readonly otherTypes: readonly { resourceType: string; rows: number }[];
}

/** Filters of /audit; all optional, bounded by the config. */
export interface AuditFilters {
	readonly user?: string;
	readonly action?: string;
	readonly resourceType?: string;
	readonly resourceId?: string;
	readonly since: Date;
	readonly until: Date;
	readonly failedOnly?: boolean;
}

/** A keyset position: the last row of the previous page. */
export interface AuditCursor {
	readonly at: string;
	readonly id: string;
}

/** One page of /audit, newest first, with the cursor for the next one. */
export interface AuditPage {
	readonly events: readonly AuditEvent[];
	readonly next?: AuditCursor;
}

/**
 * Filters from raw option values (/audit's options, the CLI's flags): the last 24 hours unless since/until say
 * otherwise.
 */
export function auditFilters(
	raw: {
		user?: string | null;
		action?: string | null;
		type?: string | null;
		id?: string | null;
		since?: string | null;
		until?: string | null;
		failedOnly?: boolean | null;
	},
	now = new Date(),
): AuditFilters {
	const until = raw.until ? parseTimeSpec(raw.until, now) : now;
	const since = raw.since ? parseTimeSpec(raw.since, now) : new Date(until.getTime() - 86_400_000);
	return {
		since,
		until,
		...(raw.user ? { user: raw.user } : {}),
		...(raw.action ? { action: raw.action } : {}),
		...(raw.type ? { resourceType: raw.type } : {}),
		...(raw.id ? { resourceId: raw.id } : {}),
		...(raw.failedOnly ? { failedOnly: true } : {}),
	};
}

/** Server-side state behind /audit's paging and CSV buttons (customIds carry only a token). */
export interface AuditQueryState {
	readonly environment: string;
	readonly filters: AuditFilters;
	/** cursors[n] is where page n starts; cursors[0] is the top. */
	readonly cursors: (AuditCursor | undefined)[];
}

/** `a•••@example.com`: enough to recognise a colleague, not enough to harvest addresses. */
export function maskEmail(email: string): string {
	const at = email.indexOf("@");
	if (at < 1) return "•••";
	return `${email[0]}•••${email.slice(at)}`;
}

/** `203.0.x.x` / `2001:db8:x`: the network, not the host. */
export function maskIp(ip: string): string {
	if (ip.includes(".")) return `${ip.split(".").slice(0, 2).join(".")}.x.x`;
	return `${ip.split(":").slice(0, 2).join(":")}:x`;
}

/** "Chrome 120", "Firefox 121", "curl 8.4" — the part of a user agent a person can read. */
export function shortUserAgent(agent: string | null): string {
	if (!agent) return "unknown client";
	for (const [name, pattern] of [
		["Edge", /Edg\/(\d+)/],
		["Firefox", /Firefox\/(\d+)/],
		["Chrome", /Chrome\/(\d+)/],
		["Safari", /Version\/(\d+)[\d.]* .*Safari\//],
	] as const) {
		const m = pattern.exec(agent);
		if (m) return `${name} ${m[1]}`;
	}
	const tool = /^([A-Za-z][\w.-]{0,30})\/([\d.]{1,12})/.exec(agent);
	return tool ? `${tool[1]} ${tool[2]}` : agent.slice(0, 40);
}

/** Looks things up in the application's audit_log, read-only. */
export interface AuditService {
	whoDeleted(environment: string, resourceType: string, resourceId: string): Promise<WhoDeletedResult>;
	search(environment: string, filters: AuditFilters, page: { size: number; after?: AuditCursor }): Promise<AuditPage>;
	/**
	 * Every matching event up to audit.maxRows, newest first, read page by page with the keyset cursor; `truncated` when
	 * more match.
	 */
	searchAll(environment: string, filters: AuditFilters): Promise<{ events: AuditEvent[]; truncated: boolean }>;
	/** Resource types present in the table, from a cache refreshed in the background. */
	resourceTypes(environment: string): readonly string[];
	refreshResourceTypes(environment: string): Promise<readonly string[]>;
	/** The SQL and parameters whoDeleted runs (for EXPLAIN in tests and `opsbot audit --explain`). */
	whoDeletedQuery(resourceType: string, resourceId: string): { sql: string; params: unknown[] };
	searchQuery(filters: AuditFilters, page: { size: number; after?: AuditCursor }): { sql: string; params: unknown[] };
	/** Indexes that would serve these filters better than the API's own; opsbot never creates them. */
	suggestIndexes(filters: AuditFilters): string[];
}

// The widest text we let into a query parameter; audit_log's own columns are at most 500 characters.
const MAX_INPUT = 500;
const MAX_DELETES = 25;

function quoteIdent(name: string): string {
	return `"${name.replace(/"/g, '""')}"`;
}

function cleanInput(value: string, what: string): string {
	// NUL cannot be stored in PostgreSQL text; lone surrogates cannot be encoded as UTF-8.
	const cleaned = value
		.replace(/\u0000/g, "")
		.toWellFormed()
		.trim();
	if (cleaned.length === 0) throw new UserFacingError(`The ${what} is empty.`);
	if (cleaned.length > MAX_INPUT)
		throw new UserFacingError(
			`The ${what} is ${cleaned.length} characters long; audit_log stores at most ${MAX_INPUT}.`,
		);
	return cleaned;
}

/** Dependencies of the audit service. */
export interface AuditDeps {
	readonly database: (environment: string) => Database | undefined;
	readonly table: AuditTableConfig;
	readonly log: Logger;
	/** How often the resource-type cache refreshes in the background. */
	readonly refreshMs?: number;
}

/** Creates the audit service over the configured table and column names (validated identifiers, quoted). */
export function createAuditService(deps: AuditDeps): AuditService {
	const c = Object.fromEntries(Object.entries(deps.table.columns).map(([k, v]) => [k, quoteIdent(v)])) as Record<
		keyof AuditTableConfig["columns"],
		string
	>;
	const table = `${quoteIdent(deps.table.schema)}.${quoteIdent(deps.table.table)}`;
	// Aliases must not shadow column names: ORDER BY would sort by the alias (id as text) instead of the column.
	const select =
		`SELECT ${c.id}::text AS row_id, ${c.timestamp} AS at, ${c.correlationId} AS correlation_id, ` +
		`${c.action} AS action,
		${c.resourceType} AS resource_type, ${c.resourceId} AS resource_id, ${c.userId} AS user_id, ${c.username} AS username,
		${c.userEmail} AS user_email, host(${c.ipAddress}) AS ip_address, ${c.userAgent} AS user_agent, ` +
		`${c.function} AS function,
		${c.requestPath} AS request_path, ${c.requestMethod} AS request_method, ${c.success} AS success, ${c.error} AS error,
		${c.durationMs}::float8 AS duration_ms, ${c.timestamp}::text AS at_text FROM ${table}`;
	const typeCache = new Map<
		string,
		{ types: readonly string[]; loadedAt: number; loading?: Promise<readonly string[]> }
	>();
	const refreshMs = deps.refreshMs ?? 10 * 60_000;

	function db(environment: string): Database {
		const found = deps.database(environment);
		if (!found) throw new UserFacingError(`No PostgreSQL is configured for ${environment}.`);
		return found;
	}

	/**
	 * Every audit query goes through here, so /whodeleted, /audit and the CLI all get the same plain
	 * explanation when PostgreSQL is down, refuses opsbot, is full or too slow (never pg's own text).
	 */
	async function read<Row extends object = AuditRow>(
		environment: string,
		sql: string,
		params: unknown[],
		onTimeout?: string,
	): Promise<Row[]> {
		const timeoutMs = deps.table.statementTimeoutMs;
		try {
			return await db(environment).read<Row>(sql, params, { timeoutMs });
		} catch (err) {
			if (onTimeout && (err as { code?: string }).code === "57014")
				throw new UserFacingError(onTimeout, { cause: err });
			throw pgUserFacingError(err, environment, timeoutMs) ?? err;
		}
	}

	function whoDeletedQuery(resourceType: string, resourceId: string) {
		return {
			// Served by the API's (resource_type, resource_id) index.
			sql:
				`${select} WHERE ${c.resourceType} = $1 AND ${c.resourceId} = $2 AND ${c.action} = 'DELETE' ORDER BY ` +
				`${c.timestamp} DESC, ${c.id} DESC LIMIT ${MAX_DELETES}`,
			params: [resourceType, resourceId],
		};
	}

	function searchQuery(filters: AuditFilters, page: { size: number; after?: AuditCursor }) {
		const where: string[] = [];
		const params: unknown[] = [];
		const add = (clause: (p: string) => string, value: unknown) => {
			params.push(value);
			where.push(clause(`$${params.length}`));
		};
		add((p) => `${c.timestamp} >= ${p}`, filters.since);
		add((p) => `${c.timestamp} < ${p}`, filters.until);
		if (filters.user !== undefined) {
			const user = cleanInput(filters.user, "user");
			if (/^\d{1,9}$/.test(user)) add((p) => `${c.userId} = ${p}::int`, user);
			else if (user.includes("@")) add((p) => `lower(${c.userEmail}) = lower(${p})`, user);
			else add((p) => `${c.username} = ${p}`, user);
		}
		if (filters.action !== undefined)
			add((p) => `${c.action} = ${p}`, cleanInput(filters.action, "action").toUpperCase());
		if (filters.resourceType !== undefined)
			add((p) => `${c.resourceType} = ${p}`, cleanInput(filters.resourceType, "resource type"));
		if (filters.resourceId !== undefined)
			add((p) => `${c.resourceId} = ${p}`, cleanInput(filters.resourceId, "resource id"));
		if (filters.failedOnly) where.push(`NOT ${c.success}`);
		if (page.after) {
			params.push(page.after.at, page.after.id);
			// Keyset pagination: rows strictly after the last one shown, in (timestamp, id) order; no OFFSET.
			where.push(`(${c.timestamp}, ${c.id}) < ($${params.length - 1}::timestamptz, $${params.length}::bigint)`);
		}
		params.push(page.size + 1);
		return {
			sql: `${select} WHERE ${where.join(" AND ")} ORDER BY ${c.timestamp} DESC, ${c.id} DESC LIMIT $${params.length}`,
			params,
		};
	}

	async function refreshResourceTypes(environment: string): Promise<readonly string[]> {
		const entry = typeCache.get(environment);
		if (entry?.loading) return entry.loading;
		// A loose index scan over (resource_type, resource_id): one index probe per distinct type, not a scan of every row.
		const loading = read<{ v: string }>(
			environment,
			`WITH RECURSIVE t(v) AS (
				(SELECT ${c.resourceType} FROM ${table} ORDER BY 1 LIMIT 1)
				UNION ALL
				SELECT (SELECT ${c.resourceType} FROM ${table} WHERE ${c.resourceType} > t.v ORDER BY 1 LIMIT 1) ` +
				`FROM t WHERE t.v IS NOT NULL
			) SELECT v FROM t WHERE v IS NOT NULL LIMIT 500`,
			[],
		)
			.then((rows) => {
				const types = rows.map((r) => r.v);
				typeCache.set(environment, { types, loadedAt: Date.now() });
				return types;
			})
			.catch((err: unknown) => {
				deps.log.warn({ err, environment }, "audit: could not load resource types");
				const previous = typeCache.get(environment);
				typeCache.set(environment, { types: previous?.types ?? [], loadedAt: previous?.loadedAt ?? 0 });
				throw err;
			});
		typeCache.set(environment, { types: entry?.types ?? [], loadedAt: entry?.loadedAt ?? 0, loading });
		return loading;
	}

	async function search(
		environment: string,
		filters: AuditFilters,
		page: { size: number; after?: AuditCursor },
	): Promise<AuditPage> {
		const rangeDays = (filters.until.getTime() - filters.since.getTime()) / 86_400_000;
		if (rangeDays <= 0) throw new UserFacingError([{ code: "since" }, " must be before ", { code: "until" }, "."]);
		if (rangeDays > deps.table.maxRangeDays)
			throw new UserFacingError(
				`That range is ${Math.ceil(rangeDays)} days; the most opsbot searches at once is ` +
					`${deps.table.maxRangeDays} days. Narrow since/until.`,
			);
		const size = Math.min(Math.max(1, page.size), deps.table.maxRows);
		const query = searchQuery(filters, { ...page, size });
		const rows = await read(
			environment,
			query.sql,
			query.params,
			"That search would scan too much of audit_log and was stopped. Narrow the time range, or search by user id, " +
				"resource type and id (those are indexed).",
		);
		const shown = rows.slice(0, size);
		const last = shown.at(-1);
		return {
			events: shown.map(toEvent),
			...(rows.length > size && last ? { next: { at: last.at_text, id: last.row_id } } : {}),
		};
	}

	async function searchAll(
		environment: string,
		filters: AuditFilters,
	): Promise<{ events: AuditEvent[]; truncated: boolean }> {
		const max = deps.table.maxRows;
		const events: AuditEvent[] = [];
		let after: AuditCursor | undefined;
		for (;;) {
			const page = await search(environment, filters, {
				size: Math.min(1_000, max - events.length),
				...(after ? { after } : {}),
			});
			events.push(...page.events);
			if (!page.next) return { events, truncated: false };
			if (events.length >= max) return { events, truncated: true };
			after = page.next;
		}
	}

	return {
		whoDeletedQuery,
		searchQuery,
		refreshResourceTypes,
		resourceTypes(environment) {
			const entry = typeCache.get(environment);
			if (!entry || (Date.now() - entry.loadedAt > refreshMs && !entry.loading))
				void refreshResourceTypes(environment).catch(() => undefined);
			return entry?.types ?? [];
		},
		async whoDeleted(environment, rawType, rawId) {
			const resourceType = cleanInput(rawType, "resource type");
			const resourceId = cleanInput(rawId, "resource id");
			const query = whoDeletedQuery(resourceType, resourceId);
			const deletes = (await read(environment, query.sql, query.params)).map(toEvent);
			if (deletes.length > 0) return { resourceType, resourceId, deletes, lastActions: [], otherTypes: [] };
			const types = typeCache.get(environment)?.types.length
				? (typeCache.get(environment)?.types ?? [])
				: await refreshResourceTypes(environment).catch(() => []);
			const [lastActions, otherTypes] = await Promise.all([
				read(
					environment,
					`${select} WHERE ${c.resourceType} = $1 AND ${c.resourceId} = $2 ` +
						`ORDER BY ${c.timestamp} DESC, ${c.id} DESC LIMIT 5`,
					[resourceType, resourceId],
				),
				// One index probe per known type, each capped, instead of a scan for the id alone (it has no index).
				read<{ resource_type: string; rows: number }>(
					environment,
					`SELECT t AS resource_type, (SELECT count(*) FROM (SELECT 1 FROM ${table} WHERE ${c.resourceType} = t AND ` +
						`${c.resourceId} = $2 LIMIT 1000) x)::int AS rows
					 FROM unnest($1::text[]) t`,
					[types.filter((t) => t !== resourceType), resourceId],
				),
			]);
			return {
				resourceType,
				resourceId,
				deletes,
				lastActions: lastActions.map(toEvent),
				otherTypes: otherTypes.filter((r) => r.rows > 0).map((r) => ({ resourceType: r.resource_type, rows: r.rows })),
			};
		},
		search,
		searchAll,
		suggestIndexes(filters) {
			const name = (cols: string) => `${deps.table.table}_${cols.replace(/[^a-z_]+/gi, "_")}_idx`.slice(0, 63);
			const suggestions: string[] = [];
			const user = filters.user?.trim();
			if (user && !/^\d{1,9}$/.test(user)) {
				const column = user.includes("@") ? `lower(${c.userEmail})` : c.username;
				suggestions.push(
					`CREATE INDEX CONCURRENTLY ${quoteIdent(name(user.includes("@") ? "email_ts" : "username_ts"))} ON ` +
						`${table} ((${column}), ${c.timestamp} DESC);`,
				);
			}
			// The API indexes user_id alone: over days, PostgreSQL walks the timestamp index and filters by user.
			if (user && /^\d{1,9}$/.test(user) && filters.until.getTime() - filters.since.getTime() > 86_400_000) {
				suggestions.push(
					`CREATE INDEX CONCURRENTLY ${quoteIdent(name("user_id_ts"))} ON ${table} (${c.userId}, ${c.timestamp} DESC);`,
				);
			}
			if (filters.resourceId && !filters.resourceType)
				suggestions.push(`CREATE INDEX CONCURRENTLY ${quoteIdent(name("resource_id"))} ON ${table} (${c.resourceId});`);
			if (filters.failedOnly)
				suggestions.push(
					`CREATE INDEX CONCURRENTLY ${quoteIdent(name("failed_ts"))} ON ${table} (${c.timestamp} DESC) WHERE NOT ` +
						`${c.success};`,
				);
			return suggestions;
		},
	};
}

interface AuditRow {
	row_id: string;
	at: Date;
	at_text: string;
	correlation_id: string | null;
	action: string;
	resource_type: string;
	resource_id: string | null;
	user_id: number | null;
	username: string | null;
	user_email: string | null;
	ip_address: string | null;
	user_agent: string | null;
	function: string | null;
	request_path: string | null;
	request_method: string | null;
	success: boolean;
	error: string | null;
	duration_ms: number | null;
}

function toEvent(r: AuditRow): AuditEvent {
	return {
		id: r.row_id,
		at: r.at,
		correlationId: r.correlation_id,
		action: r.action,
		resourceType: r.resource_type,
		resourceId: r.resource_id,
		userId: r.user_id,
		username: r.username,
		userEmail: r.user_email,
		ipAddress: r.ip_address,
		userAgent: r.user_agent,
		function: r.function,
		requestPath: r.request_path,
		requestMethod: r.request_method,
		success: r.success,
		error: r.error,
		durationMs: r.duration_ms,
	};
}
