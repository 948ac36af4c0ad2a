import pg from "pg";
import { inject } from "vitest";

let created = 0;

/**
 * A new, empty database on the test PostgreSQL for one alert store (opsbot's state never shares the application's);
 * returns its URL.
 */
export async function freshStateDatabase(name = "opsbot_state"): Promise<string> {
	const postgres = inject("postgres");
	const database = `${name}_${process.pid}_${created++}`;
	const admin = new pg.Client({ connectionString: postgres.superuserUrl });
	await admin.connect();
	await admin.query(`CREATE DATABASE ${database}`);
	await admin.end();
	return postgres.superuserUrl.replace(/\/appdb$/, `/${database}`);
}

/**
 * The two state backends for a `describe.each` through the shipped process: each gives the bot's extra
 * environment (none for the embedded SQLite file; a fresh database named after `name` for PostgreSQL).
 */
export function bothStateBackends(name: string) {
	return [
		["SQLite", async (): Promise<Record<string, string>> => ({})],
		[
			"PostgreSQL",
			async (): Promise<Record<string, string>> => ({ STATE_DATABASE_URL: await freshStateDatabase(name) }),
		],
	] as const;
}
