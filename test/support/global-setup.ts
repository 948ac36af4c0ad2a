import type { TestProject } from "vitest/node";
import { warmDiscordSpec } from "../discord-double/spec.ts";
import { launchLoki } from "./loki.ts";
import { startPgBouncer, type TestPgBouncer } from "./pgbouncer.ts";
import { preparePostgresTemplate, startPostgres, type TestPostgres } from "./postgres.ts";
import { useRunTempDir } from "./temp.ts";

type Shared<T> = Omit<T, "stop">;

declare module "vitest" {
	export interface ProvidedContext {
		postgres: Shared<TestPostgres>;
		pgbouncer: Shared<TestPgBouncer>;
		/** Only the address and its log: each worker waits for it and builds its client in sharedLoki(). */
		loki: { url: string; logFile: string };
	}
}

/**
 * Starts one PostgreSQL, one PgBouncer and one Loki for the whole run (files share them through
 * fresh databases and tenants, so they can run in parallel); stops exactly those at the end. Loki is
 * not waited for here: it takes about 10 s to answer, and the files that need it wait (sharedLoki).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
	const removeRunTempDir = useRunTempDir();
	// Every PostgreSQL of the run (this one, and those files start) copies one initdb'd data directory.
	let removeTemplate = () => {};
	const startingPostgres = preparePostgresTemplate().then((remove) => {
		removeTemplate = remove;
		return startPostgres();
	});
	const starting = Promise.allSettled([startingPostgres, launchLoki()]);
	// Compiles the Discord double's request checks once for the run (kept in the temp directory),
	// while the servers start, instead of in each parallel test process.
	warmDiscordSpec();
	const [postgres, loki] = await starting;
	let pgbouncer: TestPgBouncer;
	try {
		if (postgres.status === "rejected") throw postgres.reason;
		if (loki.status === "rejected") throw loki.reason;
		pgbouncer = await startPgBouncer(postgres.value);
	} catch (err) {
		if (postgres.status === "fulfilled") await postgres.value.stop();
		if (loki.status === "fulfilled") await loki.value.stop();
		removeTemplate();
		removeRunTempDir();
		throw err;
	}
	const { stop: _p, ...sharedPostgres } = postgres.value;
	const { stop: _b, ...sharedPgBouncer } = pgbouncer;
	project.provide("postgres", sharedPostgres);
	project.provide("pgbouncer", sharedPgBouncer);
	project.provide("loki", { url: loki.value.url, logFile: loki.value.logFile });
	return async () => {
		await Promise.all([pgbouncer.stop().then(() => postgres.value.stop()), loki.value.stop()]);
		removeTemplate();
		removeRunTempDir();
	};
}
