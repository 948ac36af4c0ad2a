import { type ExecFileOptions, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort, requireBinary, startProcess, userIds, waitUntil } from "./proc.ts";

const PG_BIN = "/usr/lib/postgresql/15/bin";

/** A throwaway PostgreSQL 15 on 127.0.0.1; passwords are generated per run. */
export interface TestPostgres {
	readonly host: string;
	readonly port: number;
	readonly database: string;
	/** Superuser, for test set-up only. */
	readonly superuserUrl: string;
	/** The application's role (owns appdb's tables). */
	readonly appUrl: string;
	/** opsbot's own role: pg_read_all_stats + pg_signal_backend, read-only on appdb. */
	readonly opsbotUrl: string;
	readonly passwords: { readonly app: string; readonly opsbot: string };
	stop(): Promise<void>;
}

const password = () => randomBytes(18).toString("base64url");

/**
 * Where global setup keeps a data directory initdb'd once for the run, which startPostgres copies instead of running
 * initdb again (about 0.9 s of CPU each time); unset (a bench, a file run alone), each server runs its own initdb.
 */
const TEMPLATE_ENV = "OPSBOT_TEST_PG_TEMPLATE";

/** initdb into `dir`/data as the `postgres` user, its superuser password in `dir`/pwfile. */
async function initdb(dir: string, uid: number, gid: number): Promise<void> {
	const pwfile = join(dir, "pwfile");
	writeFileSync(pwfile, `${password()}\n`, { mode: 0o600 });
	chownSync(pwfile, uid, gid);
	const args = ["-D", join(dir, "data"), "-U", "postgres", `--pwfile=${pwfile}`, "-A", "scram-sha-256", "--no-sync"];
	await runToEnd(`${PG_BIN}/initdb`, [...args, "-E", "UTF8", "--locale=C"], { uid, gid }, "initdb");
}

/** Runs `command` to its end without blocking the event loop; a failure says `what` failed, with its stderr. */
function runToEnd(command: string, args: string[], options: ExecFileOptions, what: string): Promise<void> {
	return new Promise((resolve, reject) =>
		execFile(command, args, options, (err, _out, stderr) =>
			err ? reject(new Error(`${what} failed:\n${stderr}`)) : resolve(),
		),
	);
}

/**
 * initdb once for the whole run (global setup): the servers startPostgres starts afterwards, in this process and the
 * test processes it forks, copy this data directory. Returns what removes it.
 */
export async function preparePostgresTemplate(): Promise<() => void> {
	requireBinary(`${PG_BIN}/initdb`, "PostgreSQL server", "postgresql");
	const { uid, gid } = userIds("postgres");
	const dir = mkdtempSync(join(tmpdir(), "opsbot-pg-template-"));
	chownSync(dir, uid, gid);
	try {
		await initdb(dir, uid, gid);
	} catch (err) {
		rmSync(dir, { recursive: true, force: true });
		throw err;
	}
	process.env[TEMPLATE_ENV] = dir;
	return () => {
		delete process.env[TEMPLATE_ENV];
		rmSync(dir, { recursive: true, force: true });
	};
}

/** Starts PostgreSQL from the Debian binaries as the `postgres` user (it refuses to run as root). */
export async function startPostgres(
	options: { maxConnections?: number; settings?: Readonly<Record<string, string>> } = {},
): Promise<TestPostgres> {
	requireBinary(`${PG_BIN}/postgres`, "PostgreSQL server", "postgresql");
	const { uid, gid } = userIds("postgres");
	const dir = mkdtempSync(join(tmpdir(), "opsbot-pg-"));
	chownSync(dir, uid, gid);
	const passwords = { app: password(), opsbot: password() };
	const template = process.env[TEMPLATE_ENV];
	try {
		if (template) {
			// -a keeps the postgres user's ownership and the 0700 mode the server insists on.
			const copied = [join(template, "data"), join(template, "pwfile"), dir];
			await runToEnd("cp", ["-a", ...copied], {}, "copying the PostgreSQL template");
		} else await initdb(dir, uid, gid);
	} catch (err) {
		rmSync(dir, { recursive: true, force: true });
		throw err;
	}
	const superPassword = readFileSync(join(dir, "pwfile"), "utf8").trim();
	const port = await freePort();
	const logFile = join(dir, "postgres.log");
	writeFileSync(logFile, "");
	chownSync(logFile, uid, gid);
	const proc = startProcess(
		`${PG_BIN}/postgres`,
		[
			"-D",
			join(dir, "data"),
			"-p",
			String(port),
			"-c",
			"listen_addresses=127.0.0.1",
			"-c",
			`unix_socket_directories=${dir}`,
			"-c",
			`max_connections=${options.maxConnections ?? 100}`,
			"-c",
			"fsync=off",
			"-c",
			"synchronous_commit=off",
			"-c",
			"full_page_writes=off",
			"-c",
			"shared_buffers=64MB",
			// Server settings a bench needs at start (e.g. shared_preload_libraries=pg_stat_statements).
			...Object.entries(options.settings ?? {}).flatMap(([name, value]) => ["-c", `${name}=${value}`]),
		],
		{ logFile, uid, gid },
	);
	const url = (user: string, pass: string, db = "appdb") =>
		`postgres://${user}:${encodeURIComponent(pass)}@127.0.0.1:${port}/${db}`;
	const superuserUrl = url("postgres", superPassword);
	const stop = async () => {
		await proc.stop();
		rmSync(dir, { recursive: true, force: true });
	};
	try {
		await waitUntil(
			async () => {
				const client = new pg.Client({ connectionString: url("postgres", superPassword, "postgres") });
				await client.connect();
				await client.end();
				return true;
			},
			30_000,
			proc.logTail,
			proc.child,
		);
		const admin = new pg.Client({ connectionString: url("postgres", superPassword, "postgres") });
		await admin.connect();
		await admin.query(`CREATE ROLE app LOGIN PASSWORD '${passwords.app}'`);
		await admin.query(
			`CREATE ROLE opsbot LOGIN PASSWORD '${passwords.opsbot}' IN ROLE pg_read_all_stats, pg_signal_backend`,
		);
		await admin.query("CREATE DATABASE appdb OWNER app");
		await admin.end();
		const appdb = new pg.Client({ connectionString: superuserUrl });
		await appdb.connect();
		await appdb.query("GRANT USAGE ON SCHEMA public TO opsbot");
		await appdb.query("ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO opsbot");
		await appdb.end();
	} catch (err) {
		await stop();
		throw err;
	}
	return {
		host: "127.0.0.1",
		port,
		database: "appdb",
		superuserUrl,
		appUrl: url("app", passwords.app),
		opsbotUrl: url("opsbot", passwords.opsbot),
		passwords,
		stop,
	};
}
