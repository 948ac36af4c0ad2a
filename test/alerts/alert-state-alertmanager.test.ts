import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alertManagerStartedAt, AlertManagerUnavailableError, createSilence, expireSilence, listAlerts, silenceState } from "../../src/services/alertmanager.ts";
import { postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startHangingServer } from "../support/raw-http.ts";

describe("AlertManager calls against an AlertManager that never answers", () => {
	it("gives up on a silence after the timeout it is given, with a message that says so", async () => {
		const hanging = await startHangingServer();
		const started = Date.now();

		const failure = await createSilence(hanging.url, { matchers: [{ name: "alertname", value: "X", isRegex: false, isEqual: true }], startsAt: new Date(), endsAt: new Date(Date.now() + 3_600_000), createdBy: "test", comment: "test" }, 300).catch((err: unknown) => err);
		const took = Date.now() - started;
		const expiring = await expireSilence(hanging.url, "00000000-0000-0000-0000-000000000000", 300).catch((err: unknown) => err);

		expect(failure).toBeInstanceOf(AlertManagerUnavailableError);
		expect((failure as AlertManagerUnavailableError).code).toBe("ALERTMANAGER_TIMEOUT");
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

		const failure = await createSilence(url, { matchers: [{ name: "a", value: "b", isRegex: false, isEqual: true }], startsAt: new Date(), endsAt: new Date(Date.now() + 60_000), createdBy: "t", comment: "t" }, 1_000).catch((err: unknown) => err);

		expect((failure as AlertManagerUnavailableError).code).toBe("ALERTMANAGER_UNREACHABLE");
	});
});

describe("AlertManager API v2 reads the silence watch relies on (real AlertManager)", () => {
	let am: TestAlertManager;
	beforeAll(async () => {
		am = await startAlertManager();
	});
	afterAll(() => am?.stop());

	it("lists the unresolved alerts carrying exactly the given labels, quoting awkward values, and none once they ended", async () => {
		const labels = { alertname: "Quoted", path: 'C:\\logs "main"', env: "production" };
		await postAlerts(am.url, [{ labels }, { labels: { ...labels, env: "staging" } }]);

		const firing = await listAlerts(am.url, { labels, receiver: "opsbot" }, 2_000);
		const otherReceiver = await listAlerts(am.url, { labels, receiver: "someone-else" }, 2_000);
		await postAlerts(am.url, [{ labels, endsAt: new Date(Date.now() - 1_000).toISOString() }]);
		const ended = await listAlerts(am.url, { labels }, 2_000);

		expect(firing.map((a) => a.labels)).toEqual([labels]);
		expect(otherReceiver).toEqual([]);
		expect(ended).toEqual([]);
	});

	it("reads a silence's state, unknown ids included, and when AlertManager started", async () => {
		const id = await createSilence(am.url, { matchers: [{ name: "alertname", value: "Quoted", isRegex: false, isEqual: true }], startsAt: new Date(), endsAt: new Date(Date.now() + 3_600_000), createdBy: "t", comment: "t" }, 2_000);

		const active = await silenceState(am.url, id, 2_000);
		await expireSilence(am.url, id, 2_000);
		const expired = await silenceState(am.url, id, 2_000);
		const unknown = await silenceState(am.url, "11111111-2222-3333-4444-555555555555", 2_000);
		const startedAt = await alertManagerStartedAt(am.url, 2_000);

		expect([active, expired, unknown]).toEqual(["active", "expired", "unknown"]);
		expect(Date.now() - startedAt).toBeGreaterThanOrEqual(0);
		expect(Date.now() - startedAt).toBeLessThan(120_000);
	});
});
