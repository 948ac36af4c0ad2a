import pg from "pg";
import { pino } from "pino";
import { describe, expect, inject, it } from "vitest";
import { startGatewayLease } from "../../src/state/gateway-lease.ts";

const log = pino({ level: "silent" });

async function freshDatabase(name: string): Promise<string> {
	const postgres = inject("postgres");
	const database = `opsbot_lease_${name}_${process.pid}`;
	const admin = new pg.Client({ connectionString: postgres.superuserUrl });
	await admin.connect();
	await admin.query(`CREATE DATABASE ${database}`);
	await admin.end();
	return postgres.superuserUrl.replace(/\/appdb$/, `/${database}`);
}

async function until(probe: () => boolean, timeoutMs: number): Promise<number> {
	const began = Date.now();
	while (!probe()) {
		if (Date.now() - began > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
		await new Promise((resolve) => setTimeout(resolve, 20));
	}
	return Date.now() - began;
}

/** A replica's lease on `url`, polled every 200 ms, recording "NAME" in `events` when it acquires and "NAME lost". */
function leaseOf(url: string, name: string, events: string[], ttlMs?: number) {
	return startGatewayLease({
		url,
		log,
		pollMs: 200,
		...(ttlMs === undefined ? {} : { ttlMs }),
		onAcquired: () => events.push(name),
		onLost: () => events.push(`${name} lost`),
	});
}

describe("gateway lease", () => {
	it("is held by one replica at a time and passes to a standby when the holder stops", async () => {
		const url = await freshDatabase("handover");
		const acquired: string[] = [];
		const first = leaseOf(url, "first", acquired);
		await until(() => first.held(), 5_000);
		const second = leaseOf(url, "second", acquired);
		await new Promise((resolve) => setTimeout(resolve, 600));

		const heldTogether = first.held() && second.held();
		await first.stop();
		const handover = await until(() => second.held(), 5_000);
		await second.stop();

		expect(heldTogether).toBe(false);
		expect(acquired).toEqual(["first", "second"]);
		expect(handover).toBeLessThan(1_000);
	});

	it("keeps the lease through a connection blip: its connection terminated, it renews on a fresh one", async () => {
		const url = await freshDatabase("blip");
		const events: string[] = [];
		const holder = leaseOf(url, "holder", events, 2_000);
		await until(() => holder.held(), 5_000);
		const standby = leaseOf(url, "standby", events, 2_000);
		const admin = new pg.Client({ connectionString: url });
		await admin.connect();

		await admin.query(
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'opsbot-gateway-lease' " +
				"AND datname = current_database()",
		);
		await new Promise((resolve) => setTimeout(resolve, 2_500));
		await admin.end();
		const both = [holder.held(), standby.held()];
		await Promise.all([holder.stop(), standby.stop()]);

		expect(both).toEqual([true, false]);
		expect(events).not.toContain("holder lost");
	});

	it(
		"tells a holder that cannot renew that it lost the lease before it expires; once it is gone a standby " +
			"takes it",
		async () => {
			const url = await freshDatabase("stuck");
			const events: string[] = [];
			const holder = leaseOf(url, "holder", events, 2_000);
			await until(() => holder.held(), 5_000);
			const standby = leaseOf(url, "standby", events, 2_000);
			const admin = new pg.Client({ connectionString: url });
			await admin.connect();

			// A stuck server, as the holder sees it: its renewals wait on the lock until they time out.
			await admin.query("BEGIN; LOCK TABLE opsbot_state.gateway_lease IN ACCESS EXCLUSIVE MODE");
			await until(() => events.includes("holder lost"), 5_000);
			const heldWhenLost = holder.held();
			await admin.query("COMMIT");
			// Lost is final even before the process has shut down: the holder does not renew its row again,
			// so it expires and the standby takes it.
			await until(() => standby.held(), 5_000);
			await holder.stop(); // as main.ts does on onLost
			await admin.end();
			await standby.stop();

			expect(heldWhenLost).toBe(false);

			expect(events).toEqual(["holder", "holder lost", "standby"]);
		},
	);
});
