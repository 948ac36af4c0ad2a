import pg from "pg";

/** The audit_log table exactly as the API creates it (DESIGN.md), in `schema`, with the API's four indexes. */
export const AUDIT_LOG_DDL = (schema: string) => `
CREATE SCHEMA IF NOT EXISTS ${schema};
CREATE TABLE ${schema}.audit_log (
  id BIGSERIAL PRIMARY KEY,
  timestamp TIMESTAMPTZ NOT NULL DEFAULT now(),
  correlation_id VARCHAR(50),
  action VARCHAR(50) NOT NULL,
  resource_type VARCHAR(100) NOT NULL,
  resource_id VARCHAR(100),
  severity VARCHAR(20) NOT NULL DEFAULT 'MEDIUM',
  user_id INTEGER, username VARCHAR(100), user_email VARCHAR(255),
  ip_address INET, user_agent TEXT, function VARCHAR(255),
  request_path VARCHAR(500), request_method VARCHAR(10),
  arguments JSONB, result JSONB,
  success BOOLEAN NOT NULL DEFAULT TRUE, error TEXT,
  duration_ms NUMERIC(10,2),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ON ${schema}.audit_log (timestamp DESC);
CREATE INDEX ON ${schema}.audit_log (user_id);
CREATE INDEX ON ${schema}.audit_log (action);
CREATE INDEX ON ${schema}.audit_log (resource_type, resource_id);
GRANT USAGE ON SCHEMA ${schema} TO opsbot;
GRANT SELECT ON ALL TABLES IN SCHEMA ${schema} TO opsbot;`;

/** Twelve resource types with a skewed spread, 5,000 users, 500,000 resource ids, over `days` days back from now. */
export const SEED_SQL = (schema: string) => `
INSERT INTO ${schema}.audit_log (timestamp, correlation_id, action, resource_type, resource_id, user_id, username,
  user_email, ip_address, user_agent, function, request_path, request_method, success, error, duration_ms, created_at)
SELECT ts, substr(md5(g::text), 1, 32),
  (ARRAY['UPDATE','UPDATE','UPDATE','CREATE','CREATE','LOGIN','DELETE','UPDATE','CREATE','LOGOUT'])[1 + g % 10],
  (ARRAY['User','Game','Game','GameRequest','Game','Team','Match','Invite','Payment','Session','Comment','Report',
    'Tournament','Venue'])[1 + (g / 7) % 14],
  ((g::bigint * 7919) % 500000)::text,
  1 + (g::bigint * 31) % 5000, 'user' || (1 + (g::bigint * 31) % 5000), 'user' || (1 + (g::bigint * 31) % 5000)
    || '@example.com',
  ('10.' || (g % 200) || '.' || (g % 250) || '.' || (g % 254 + 1))::inet,
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  'handler_' || g % 40, '/api/things/' || g % 1000, (ARRAY['POST','PUT','DELETE','GET'])[1 + g % 4],
  g % 53 <> 0, CASE WHEN g % 53 = 0 THEN 'IntegrityError: duplicate key' END, (g % 5000) / 10.0, ts
FROM generate_series(1, $1::int) g
CROSS JOIN LATERAL (SELECT now() - (g::float8 / $1::int) * ($2::int * interval '1 day')) t(ts)`;

/** Creates the table in a schema of its own and seeds `rows` rows plus ANALYZE; runs as the application's role. */
export async function createAuditLog(appUrl: string, schema: string, rows: number, days = 90): Promise<void> {
	const client = new pg.Client({ connectionString: appUrl });
	await client.connect();
	try {
		const ddl = AUDIT_LOG_DDL(schema);
		// Large seeds load faster with the indexes built afterwards, as a restore would.
		const [table, indexes] = [
			ddl.replace(/CREATE INDEX[^;]*;/g, ""),
			ddl.match(/CREATE INDEX[^;]*;/g)?.join("\n") ?? "",
		];
		await client.query(table);
		if (rows > 0) await client.query(SEED_SQL(schema), [rows, days]);
		await client.query("SET maintenance_work_mem = '256MB'");
		await client.query(indexes);
		await client.query(`ANALYZE ${schema}.audit_log`);
	} finally {
		await client.end();
	}
}

/** Inserts one row (for needles); returns its id. */
export async function insertAuditRow(
	client: pg.ClientBase,
	schema: string,
	row: Record<string, unknown>,
): Promise<string> {
	const columns = Object.keys(row);
	const { rows } = await client.query<{ id: string }>(
		`INSERT INTO ${schema}.audit_log (${columns.join(", ")}) VALUES ` +
			`(${columns.map((_, i) => `$${i + 1}`).join(", ")}) RETURNING id::text`,
		Object.values(row),
	);
	return rows[0]!.id;
}
