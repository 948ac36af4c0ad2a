import type { TestProject } from "vitest/node";
import { startPgBouncer, type TestPgBouncer } from "./pgbouncer.ts";
import { startPostgres, type TestPostgres } from "./postgres.ts";

type Shared<T> = Omit<T, "stop">;

declare module "vitest" {
	export interface ProvidedContext {
		postgres: Shared<TestPostgres>;
		pgbouncer: Shared<TestPgBouncer>;
	}
}

/** Starts one PostgreSQL and one PgBouncer for the whole run; stops exactly those at the end. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
	const postgres = await startPostgres();
	let pgbouncer: TestPgBouncer;
	try {
		pgbouncer = await startPgBouncer(postgres);
	} catch (err) {
		await postgres.stop();
		throw err;
	}
	const { stop: _p, ...sharedPostgres } = postgres;
	const { stop: _b, ...sharedPgBouncer } = pgbouncer;
	project.provide("postgres", sharedPostgres);
	project.provide("pgbouncer", sharedPgBouncer);
	return async () => {
		await pgbouncer.stop();
		await postgres.stop();
	};
}
