import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { whoDeletedReport } from "../../src/commands/whodeleted.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { UserFacingError } from "../../src/errors.ts";
import { reportToText } from "../../src/render/report.ts";
import {
	type AuditCursor,
	auditFilters,
	createAuditService,
	maskEmail,
	maskIp,
	shortUserAgent,
} from "../../src/services/audit.ts";
import { createDatabase, type Database } from "../../src/services/postgres.ts";
import { parseTimeSpec } from "../../src/time.ts";
import { createAuditLog, insertAuditRow } from "../support/audit-log.ts";

const silent = pino({ level: "silent" });
const SCHEMA = `audit_svc_${process.pid}`;
const ROWS = 150_000;
const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000);

describe("audit service against a real audit_log of 150,000 rows", () => {
	const postgres = inject("postgres");
	const pgbouncer = inject("pgbouncer");
	let db: Database;
	let app: pg.Client;
	const table = OpsFileSchema.shape.audit.parse({ schema: SCHEMA, maxRangeDays: 31, maxRows: 5_000 });
	const service = () => createAuditService({ database: () => db, table, log: silent });
	const needles: string[] = [];

	beforeAll(async () => {
		await createAuditLog(postgres.appUrl, SCHEMA, ROWS);
		app = new pg.Client({ connectionString: postgres.appUrl });
		await app.connect();
		const alice = {
			resource_type: "User",
			resource_id: "900123",
			user_id: 4242,
			username: "alice",
			user_email: "alice@corp.example",
			ip_address: "203.0.113.7",
			user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
			request_method: "DELETE",
			request_path: "/api/users/900123",
			function: "delete_user",
		};
		needles.push(
			await insertAuditRow(app, SCHEMA, {
				...alice,
				timestamp: hoursAgo(48),
				action: "DELETE",
				correlation_id: "corr-older",
				success: false,
				error: "ForeignKeyViolation",
				duration_ms: 3.5,
			}),
		);
		needles.push(
			await insertAuditRow(app, SCHEMA, {
				...alice,
				timestamp: hoursAgo(1),
				action: "DELETE",
				correlation_id: "corr-newest",
				duration_ms: 12.25,
			}),
		);
		await insertAuditRow(app, SCHEMA, {
			...alice,
			resource_type: "Game",
			timestamp: hoursAgo(3),
			action: "UPDATE",
			correlation_id: "corr-game",
		});
		db = createDatabase({ url: pgbouncer.opsbotUrl, maxConnections: 2, statementTimeoutMs: 5_000, log: silent });
	});
	afterAll(async () => {
		await app?.end();
		await db?.close();
	});

	it("finds every DELETE of a resource, newest first, with who, where from, the request and the outcome", async () => {
		const result = await service().whoDeleted("local", "User", "900123");

		expect(result.deletes.map((e) => e.id)).toEqual([needles[1], needles[0]]);
		expect(result.deletes[0]).toMatchObject({
			username: "alice",
			userId: 4242,
			userEmail: "alice@corp.example",
			ipAddress: "203.0.113.7",
			requestMethod: "DELETE",
			requestPath: "/api/users/900123",
			function: "delete_user",
			correlationId: "corr-newest",
			success: true,
			durationMs: 12.25,
		});
		expect(result.deletes[1]).toMatchObject({ success: false, error: "ForeignKeyViolation" });
	});

	it("masks emails and IP addresses for roles that may not see them", async () => {
		const result = await service().whoDeleted("local", "User", "900123");

		const masked = reportToText(whoDeletedReport(result, false), { width: Infinity });
		const plain = reportToText(whoDeletedReport(result, true), { width: Infinity });

		expect(masked).not.toContain("alice@corp.example");
		expect(masked).not.toContain("203.0.113.7");
		expect(masked).toContain("a•••@corp.example");
		expect(masked).toContain("203.0.x.x");
		expect(masked).toContain("Firefox 121");
		expect(plain).toContain("alice@corp.example");
		expect(plain).toContain("from 203.0.113.7");
	});

	it("when nothing was deleted, shows the resource's last actions and the same id under other types", async () => {
		const result = await service().whoDeleted("local", "Game", "900123");

		expect(result.deletes).toEqual([]);
		expect(result.lastActions.map((e) => [e.action, e.correlationId])).toEqual([["UPDATE", "corr-game"]]);
		expect(result.otherTypes).toEqual([{ resourceType: "User", rows: 2 }]);
		expect(reportToText(whoDeletedReport(result, true), { width: Infinity })).toContain(
			"The same id under other types: User (2 rows)",
		);
	});

	it("answers input of any shape sensibly and never runs it as SQL", async () => {
		const audit = service();

		const injection = await audit.whoDeleted("local", "User'; DROP TABLE audit_log; --", "1 OR 1=1");
		const unicode = await audit.whoDeleted("local", "ユーザー", "😀\u0000x");
		const tooLong = await audit.whoDeleted("local", "User", "x".repeat(10_000)).catch((err: unknown) => err);
		const empty = await audit.whoDeleted("local", "   ", "1").catch((err: unknown) => err);
		const { rows } = await app.query(`SELECT count(*)::int AS n FROM ${SCHEMA}.audit_log`);

		expect(injection.deletes).toEqual([]);
		expect(reportToText(whoDeletedReport(injection, true), { width: Infinity })).toContain(
			"check the type (it is case-sensitive)",
		);
		expect(unicode.resourceId).toBe("😀x");
		expect(tooLong).toBeInstanceOf(UserFacingError);
		expect((tooLong as Error).message).toBe("The resource id is 10000 characters long; audit_log stores at most 500.");
		expect((empty as Error).message).toBe("The resource type is empty.");
		expect(rows[0].n).toBeGreaterThanOrEqual(ROWS + 3);
	});

	it("uses the (resource_type, resource_id) index for /whodeleted, never a sequential scan", async () => {
		const query = service().whoDeletedQuery("User", "900123");

		const { rows } = await app.query(`EXPLAIN (FORMAT JSON) ${query.sql}`, query.params);
		const plan = JSON.stringify(rows[0]["QUERY PLAN"]);

		expect(plan).not.toContain("Seq Scan");
		expect(plan).toMatch(/audit_log_resource_type_resource_id_idx/);
	});

	it("lists the resource types present, through a loose index scan", async () => {
		const types = await service().refreshResourceTypes("local");

		expect(types).toEqual([
			"Comment",
			"Game",
			"GameRequest",
			"Invite",
			"Match",
			"Payment",
			"Report",
			"Session",
			"Team",
			"Tournament",
			"User",
			"Venue",
		]);
	});

	it("pages by keyset without gaps or repeats while rows are being inserted", async () => {
		const audit = service();
		const filters = { resourceType: "Team", since: hoursAgo(24 * 10), until: new Date() };
		const expected = await app.query<{ id: string }>(
			`SELECT id::text FROM ${SCHEMA}.audit_log WHERE resource_type = 'Team' AND timestamp >= $1 AND timestamp < $2`,
			[filters.since, filters.until],
		);
		let inserting = true;
		const writer = new pg.Client({ connectionString: postgres.appUrl });
		await writer.connect();
		const inserts = (async () => {
			let n = 0;
			while (inserting) {
				// New rows land both before and after the cursor's position in time.
				await insertAuditRow(writer, SCHEMA, {
					resource_type: "Team",
					resource_id: `new-${n}`,
					action: "UPDATE",
					timestamp: hoursAgo(Math.random() * 240),
				});
				n++;
			}
			return n;
		})();

		const seen: string[] = [];
		let after: AuditCursor | undefined;
		let pages = 0;
		do {
			const page = await audit.search("local", filters, { size: 100, ...(after ? { after } : {}) });
			seen.push(...page.events.map((e) => e.id));
			after = page.next;
			pages++;
		} while (after);
		inserting = false;
		const inserted = await inserts;
		await writer.end();

		expect(expected.rows.length).toBeGreaterThan(500);
		expect(inserted).toBeGreaterThan(0);
		expect(pages).toBeGreaterThan(5);
		expect(new Set(seen).size).toBe(seen.length);
		const seenSet = new Set(seen);
		expect(expected.rows.filter((r) => !seenSet.has(r.id))).toEqual([]);
	});

	it("pages through rows that share one timestamp in numeric id order, none lost or repeated", async () => {
		const at = hoursAgo(5);
		const ids: string[] = [];
		for (let i = 0; i < 25; i++)
			ids.push(
				await insertAuditRow(app, SCHEMA, {
					resource_type: "Tie",
					resource_id: String(i),
					action: "UPDATE",
					timestamp: at,
				}),
			);

		const seen: string[] = [];
		let after: AuditCursor | undefined;
		do {
			const page = await service().search(
				"local",
				{ resourceType: "Tie", since: hoursAgo(6), until: new Date() },
				{ size: 4, ...(after ? { after } : {}) },
			);
			seen.push(...page.events.map((e) => e.id));
			after = page.next;
		} while (after);

		expect(seen).toEqual([...ids].sort((a, b) => Number(b) - Number(a)));
	});

	it("reads a whole search page by page up to audit.maxRows, and says when it cut", async () => {
		const audit = createAuditService({ database: () => db, table: { ...table, maxRows: 2_500 }, log: silent });
		const filters = { resourceType: "Team", since: hoursAgo(24 * 30), until: new Date() };
		const expected = await app.query<{ id: string }>(
			`SELECT id::text FROM ${SCHEMA}.audit_log WHERE resource_type = 'Team' AND timestamp >= $1 AND timestamp < ` +
				`$2 ORDER BY timestamp DESC, id DESC`,
			[filters.since, filters.until],
		);

		const all = await audit.searchAll("local", filters);
		const few = await audit.searchAll("local", { user: "alice", since: hoursAgo(72), until: new Date() });

		expect(expected.rows.length).toBeGreaterThan(2_500);
		expect(all.truncated).toBe(true);
		expect(all.events.map((e) => e.id)).toEqual(expected.rows.slice(0, 2_500).map((r) => r.id));
		expect(few.truncated).toBe(false);
		expect(few.events.map((e) => e.correlationId)).toEqual(["corr-newest", "corr-game", "corr-older"]);
	});

	it("filters by user (email, name or id), action and failures, within the configured range", async () => {
		const audit = service();
		const range = { since: hoursAgo(72), until: new Date() };

		const byEmail = await audit.search("local", { ...range, user: "ALICE@corp.example" }, { size: 10 });
		const byName = await audit.search("local", { ...range, user: "alice", action: "delete" }, { size: 10 });
		const byId = await audit.search("local", { ...range, user: "4242", failedOnly: true }, { size: 10 });
		// Exactly 60 days: both ends from one clock reading (a millisecond between them made it "61 days").
		const now = Date.now();
		const tooWide = await audit
			.search("local", { since: new Date(now - 60 * 86_400_000), until: new Date(now) }, { size: 10 })
			.catch((err: unknown) => err);

		expect(byEmail.events.map((e) => e.correlationId)).toEqual(["corr-newest", "corr-game", "corr-older"]);
		expect(byName.events.map((e) => e.correlationId)).toEqual(["corr-newest", "corr-older"]);
		expect(byId.events.map((e) => e.correlationId)).toEqual(["corr-older"]);
		expect((tooWide as Error).message).toBe(
			"That range is 60 days; the most opsbot searches at once is 31 days. Narrow since/until.",
		);
	});

	it("names the index that would serve a search by email, without creating it", async () => {
		const suggestions = service().suggestIndexes({
			user: "alice@corp.example",
			since: hoursAgo(24),
			until: new Date(),
		});

		expect(suggestions).toEqual([
			`CREATE INDEX CONCURRENTLY "audit_log_email_ts_idx" ON "${SCHEMA}"."audit_log" ((lower("user_email")), ` +
				`"timestamp" DESC);`,
		]);
		expect(service().suggestIndexes({ user: "42", since: hoursAgo(24 * 7), until: new Date() })).toEqual([
			`CREATE INDEX CONCURRENTLY "audit_log_user_id_ts_idx" ON "${SCHEMA}"."audit_log" ("user_id", "timestamp" DESC);`,
		]);
		expect(service().suggestIndexes({ user: "42", since: hoursAgo(12), until: new Date() })).toEqual([]);
	});
});

describe("audit events as people see them", () => {
	it("masks an email to its first letter and domain, and an address to its network", () => {
		expect(maskEmail("alice@corp.example")).toBe("a•••@corp.example");
		expect(maskEmail("@corp.example")).toBe("•••");
		expect(maskEmail("not an email")).toBe("•••");
		expect(maskIp("198.51.100.23")).toBe("198.51.x.x");
		expect(maskIp("2001:db8::5")).toBe("2001:db8:x");
	});

	it("names the browser or tool of a user agent", () => {
		expect(
			shortUserAgent(
				"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 " +
					"Safari/537.36 Edg/120.0.2210.91",
			),
		).toBe("Edge 120");
		expect(shortUserAgent("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0")).toBe(
			"Firefox 121",
		);
		expect(
			shortUserAgent(
				"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 " +
					"Safari/605.1.15",
			),
		).toBe("Safari 17");
		expect(shortUserAgent("curl/8.4.0")).toBe("curl 8.4.0");
		expect(shortUserAgent(null)).toBe("unknown client");
		expect(shortUserAgent("x".repeat(100))).toBe("x".repeat(40));
	});

	it("searches the last 24 hours unless since or until say otherwise", () => {
		const now = new Date("2026-11-24T12:00:00Z");

		const plain = auditFilters({}, now);
		const narrowed = auditFilters(
			{ user: "alice", type: "User", id: "", since: "7d", until: "2026-11-24T06:00:00Z", failedOnly: false },
			now,
		);

		expect(plain).toEqual({ since: new Date("2026-11-23T12:00:00Z"), until: now });
		expect(narrowed).toEqual({
			since: new Date("2026-11-17T12:00:00Z"),
			until: new Date("2026-11-24T06:00:00Z"),
			user: "alice",
			resourceType: "User",
		});
	});
});

describe("parseTimeSpec", () => {
	const now = new Date("2026-11-24T12:00:00Z");

	it("reads relative durations and ISO dates", () => {
		expect(parseTimeSpec("15m", now).toISOString()).toBe("2026-11-24T11:45:00.000Z");
		expect(parseTimeSpec("24h", now).toISOString()).toBe("2026-11-23T12:00:00.000Z");
		expect(parseTimeSpec("7d", now).toISOString()).toBe("2026-11-17T12:00:00.000Z");
		expect(parseTimeSpec("2026-11-01", now).toISOString()).toBe("2026-11-01T00:00:00.000Z");
		expect(parseTimeSpec("2026-11-01T08:30:00Z", now).toISOString()).toBe("2026-11-01T08:30:00.000Z");
	});

	it("explains what it accepts when it cannot read a time", () => {
		for (const bad of ["yesterday", "", "15x", "2026-13-45", "1e9d"])
			expect(() => parseTimeSpec(bad, now)).toThrow(/use 15m, 24h, 7d or an ISO date/);
	});
});
