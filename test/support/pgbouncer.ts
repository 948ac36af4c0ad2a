import { randomBytes } from "node:crypto";
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { TestPostgres } from "./postgres.ts";
import { freePort, requireBinary, startProcess, userIds, waitUntil } from "./proc.ts";

const PGBOUNCER = "/usr/sbin/pgbouncer";

/** A throwaway PgBouncer in transaction pooling mode in front of a TestPostgres. */
export interface TestPgBouncer {
	readonly host: string;
	readonly port: number;
	/** Admin console (database `pgbouncer`), user in admin_users. */
	readonly adminUrl: string;
	/** Admin console as a stats_users member (read-only SHOW). */
	readonly statsUrl: string;
	readonly appUrl: string;
	readonly opsbotUrl: string;
	stop(): Promise<void>;
}

/** Starts PgBouncer 1.18 as the `postgres` user (it refuses to run as root). */
export async function startPgBouncer(
	postgres: Pick<TestPostgres, "port" | "passwords">,
	options: { poolSize?: number; databases?: readonly string[] } = {},
): Promise<TestPgBouncer> {
	requireBinary(PGBOUNCER, "PgBouncer", "pgbouncer");
	const { uid, gid } = userIds("postgres");
	const dir = mkdtempSync(join(tmpdir(), "opsbot-pgb-"));
	chownSync(dir, uid, gid);
	const adminPassword = randomBytes(18).toString("base64url");
	const statsPassword = randomBytes(18).toString("base64url");
	const port = await freePort();
	const users = [
		["app", postgres.passwords.app],
		["opsbot", postgres.passwords.opsbot],
		["pgb_admin", adminPassword],
		["pgb_stats", statsPassword],
	];
	const extraDatabases = (options.databases ?? [])
		.map((db) => `${db} = host=127.0.0.1 port=${postgres.port} dbname=${db}\n`)
		.join("");
	const files: Record<string, string> = {
		"userlist.txt": `${users.map(([u, p]) => `"${u}" "${p}"`).join("\n")}\n`,
		"pgbouncer.ini": `[databases]
appdb = host=127.0.0.1 port=${postgres.port} dbname=appdb
${extraDatabases}[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir = ${dir}
auth_type = md5
auth_file = ${dir}/userlist.txt
pool_mode = transaction
default_pool_size = ${options.poolSize ?? 10}
max_client_conn = 400
admin_users = pgb_admin
stats_users = pgb_stats
ignore_startup_parameters = extra_float_digits
logfile = ${dir}/pgbouncer.log
pidfile = ${dir}/pgbouncer.pid
`,
		"pgbouncer.log": "",
	};
	for (const [name, content] of Object.entries(files)) {
		writeFileSync(join(dir, name), content, { mode: 0o600 });
		chownSync(join(dir, name), uid, gid);
	}
	const proc = startProcess(PGBOUNCER, [join(dir, "pgbouncer.ini")], { logFile: join(dir, "stdout.log"), uid, gid });
	const url = (user: string, pass: string, db: string) =>
		`postgres://${user}:${encodeURIComponent(pass)}@127.0.0.1:${port}/${db}`;
	const adminUrl = url("pgb_admin", adminPassword, "pgbouncer");
	const stop = async () => {
		await proc.stop();
		rmSync(dir, { recursive: true, force: true });
	};
	try {
		await waitUntil(
			async () => {
				const client = new pg.Client({ connectionString: adminUrl });
				client.on("error", () => undefined);
				await client.connect();
				// No parameters: the admin console speaks the simple query protocol only.
				await client.query("SHOW POOLS");
				await client.end();
				return true;
			},
			20_000,
			() => `${proc.logTail()}\n${readFileSync(join(dir, "pgbouncer.log"), "utf8").slice(-2_000)}`,
			proc.child,
		);
	} catch (err) {
		await stop();
		throw err;
	}
	return {
		host: "127.0.0.1",
		port,
		adminUrl,
		statsUrl: url("pgb_stats", statsPassword, "pgbouncer"),
		appUrl: url("app", postgres.passwords.app, "appdb"),
		opsbotUrl: url("opsbot", postgres.passwords.opsbot, "appdb"),
		stop,
	};
}
