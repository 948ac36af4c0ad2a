import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Config } from "../../src/config.ts";
import { openState, type State } from "../../src/state/index.ts";
import { freshStateDatabase } from "../alerts/state-database.ts";
import { storeContract } from "../support/alert-fixtures.ts";

const log = pino({ level: "silent" });
const configOf = (stateDir: string, url?: string) =>
	({
		env: url ? { STATE_DATABASE_URL: url } : {},
		ops: { stateDir, replicas: { leaseSeconds: 15, renewSeconds: 5 } },
	}) as unknown as Config;

type Open = (options?: { alerts?: boolean }) => Promise<State>;

/** What every backend of openState must do (the alert store's own contract runs through it below). */
function stateContract(name: string, backend: () => Promise<Open>): void {
	describe(`state (${name})`, () => {
		it("gives a confirmation to its user once, keeps kinds apart, and survives a restart", async () => {
			const open = await backend();
			const first = await open();
			const token = await first.pending<{ n: number }>("confirmation", 60_000).put("alice", { n: 1 });
			await first.close();

			const state = await open();
			const confirmations = state.pending<{ n: number }>("confirmation", 60_000);
			expect(await state.pending("logs", 60_000).take(token, "alice")).toEqual({ ok: false, reason: "unknown" });
			expect(await confirmations.take(token, "bob")).toEqual({ ok: false, reason: "other-user" });
			expect(await confirmations.peek(token, "alice")).toEqual({ ok: true, value: { n: 1 } });
			expect(await confirmations.take(token, "alice")).toEqual({ ok: true, value: { n: 1 } });
			expect(await confirmations.take(token, "alice")).toEqual({ ok: false, reason: "unknown" });
			await state.close();
		});

		it("holds one restart per key, then the cooldown, across a restart", async () => {
			const open = await backend();
			const first = await open();
			expect(await first.restarts.acquire("prod/api", 60_000)).toEqual({ ok: true });
			expect(await first.restarts.acquire("prod/api", 60_000)).toEqual({ ok: false, reason: "running" });
			expect(await first.restarts.acquire("prod/worker", 60_000)).toEqual({ ok: true });
			await first.restarts.release("prod/api");
			await first.restarts.release("prod/worker");
			await first.close();

			const state = await open();
			expect(await state.restarts.acquire("prod/api", 60_000)).toMatchObject({ ok: false, reason: "cooldown" });
			expect(await state.restarts.acquire("prod/api", 0)).toEqual({ ok: true });
			await state.restarts.release("prod/api");
			await state.close();
		});

		it("keeps the action trail, newest first and filtered", async () => {
			const open = await backend();
			const state = await open();
			const actor = (userId: string) => ({ userId, username: `u${userId}` });
			await state.actions.record({ actor: actor("1"), action: "alert.ack", target: "g1", result: "ok" });
			await state.actions.record({ actor: actor("2"), action: "alert.restart", target: "prod/api", result: "failed" });

			expect((await state.actions.recent(10)).map((r) => r.action)).toEqual(["alert.restart", "alert.ack"]);
			expect((await state.actions.recent(10, { userId: "1" })).map((r) => r.target)).toEqual(["g1"]);
			await state.close();
		});

		it("opens the alert store only when asked", async () => {
			const open = await backend();
			const without = await open();
			expect(without.alerts).toBeUndefined();
			await without.close();
			const state = await open({ alerts: true });
			expect(await state.alerts?.pending()).toBe(0);
			await state.close();
		});
	});

	storeContract(`${name}, through openState`, async () => {
		const open = await backend();
		const state = await open({ alerts: true });
		const store = state.alerts!;
		return {
			store: { ...store, close: () => state.close() },
			reopen: async () => {
				const again = await open({ alerts: true });
				return { ...again.alerts!, close: () => again.close() };
			},
		};
	});
}

stateContract("SQLite", async () => {
	const stateDir = mkdtempSync(join(tmpdir(), "opsbot-state-contract-"));
	return (options) => openState(configOf(stateDir), log, options);
});

stateContract("PostgreSQL", async () => {
	const url = await freshStateDatabase("opsbot_state_contract");
	const stateDir = mkdtempSync(join(tmpdir(), "opsbot-state-contract-"));
	return (options) => openState(configOf(stateDir, url), log, options);
});
