import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAlertManagerClient } from "../../src/services/alertmanager.ts";
import { ServiceUnavailableError } from "../../src/services/http.ts";
import { postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startHangingServer } from "../support/raw-http.ts";

describe("AlertManager calls against an AlertManager that never answers", () => {
	it("gives up on a silence after the timeout it is given, with a message that says so", async () => {
		const hanging = await startHangingServer();
		const started = Date.now();

		const alertmanager = createAlertManagerClient({ url: hanging.url, timeoutMs: 300 });

		const failure = await alertmanager
			.createSilence({
				matchers: [{ name: "alertname", value: "X", isRegex: false, isEqual: true }],
				startsAt: new Date(),
				endsAt: new Date(Date.now() + 3_600_000),
				createdBy: "test",
				comment: "test",
			})
			.catch((err: unknown) => err);
		const took = Date.now() - started;
		const expiring = await alertmanager
			.expireSilence("00000000-0000-0000-0000-000000000000")
			.catch((err: unknown) => err);

		expect(failure).toBeInstanceOf(ServiceUnavailableError);
		expect((failure as ServiceUnavailableError).code).toBe("ALERTMANAGER_TIMEOUT");
		expect((failure as Error).message).toBe("AlertManager did not answer within 300 ms");
		expect(took).toBeGreaterThanOrEqual(250);
		expect(took).toBeLessThan(2_000);
		expect((expiring as Error).message).toBe("AlertManager did not answer within 300 ms");
		expect(hanging.requests()).toBe(2);
		await hanging.close();
	});

	it("says AlertManager could not be reached when nothing listens", async () => {
		const hanging = await startHangingServer();
		const url = hanging.url;
		await hanging.close();

		const failure = await createAlertManagerClient({ url, timeoutMs: 1_000 })
			.createSilence({
				matchers: [{ name: "a", value: "b", isRegex: false, isEqual: true }],
				startsAt: new Date(),
				endsAt: new Date(Date.now() + 60_000),
				createdBy: "t",
				comment: "t",
			})
			.catch((err: unknown) => err);

		expect((failure as ServiceUnavailableError).code).toBe("ALERTMANAGER_UNREACHABLE");
		expect((failure as Error).message).toBe("AlertManager is unavailable: connection refused");
	});
});

describe("AlertManager API v2 reads the silence watch relies on (real AlertManager)", () => {
	let am: TestAlertManager;
	beforeAll(async () => {
		am = await startAlertManager();
	});
	afterAll(() => am?.stop());
	const client = () => createAlertManagerClient({ url: am.url, timeoutMs: 2_000 });

	it("lists unresolved alerts with exactly the given labels, quoting awkward values, none once they ended", async () => {
		const labels = { alertname: "Quoted", path: 'C:\\logs "main"', env: "production" };
		await postAlerts(am.url, [{ labels }, { labels: { ...labels, env: "staging" } }]);

		const firing = await client().listAlerts({ labels, receiver: "opsbot" });
		const otherReceiver = await client().listAlerts({ labels, receiver: "someone-else" });
		await postAlerts(am.url, [{ labels, endsAt: new Date(Date.now() - 1_000).toISOString() }]);
		const ended = await client().listAlerts({ labels });

		expect(firing.map((a) => a.labels)).toEqual([labels]);
		expect(otherReceiver).toEqual([]);
		expect(ended).toEqual([]);
	});

	it("reads a silence's state, unknown ids included, and when AlertManager started", async () => {
		const id = await client().createSilence({
			matchers: [{ name: "alertname", value: "Quoted", isRegex: false, isEqual: true }],
			startsAt: new Date(),
			endsAt: new Date(Date.now() + 3_600_000),
			createdBy: "t",
			comment: "t",
		});

		const active = await client().silenceState(id);
		await client().expireSilence(id);
		const expired = await client().silenceState(id);
		const unknown = await client().silenceState("11111111-2222-3333-4444-555555555555");
		const startedAt = await client().startedAt();

		expect([active, expired, unknown]).toEqual(["active", "expired", "unknown"]);
		expect(Date.now() - startedAt).toBeGreaterThanOrEqual(0);
		expect(Date.now() - startedAt).toBeLessThan(120_000);
	});
});
