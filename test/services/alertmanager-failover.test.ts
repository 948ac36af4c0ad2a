import { describe, expect, it } from "vitest";
import { type AlertManagerClient, failoverClient } from "../../src/services/alertmanager.ts";
import { HttpStatusError, ServiceUnavailableError } from "../../src/services/http.ts";

const silence = {
	matchers: [{ name: "alertname", value: "X", isRegex: false, isEqual: true }],
	startsAt: new Date(0),
	endsAt: new Date(3_600_000),
	createdBy: "alice",
	comment: "test",
};

/** A member whose createSilence and listSilences fail with `failure`, or answer when there is none. */
function member(name: string, calls: string[], failure?: Error): AlertManagerClient {
	const answer = async <T>(value: T): Promise<T> => {
		calls.push(name);
		if (failure) throw failure;
		return value;
	};
	return {
		url: `http://${name}`,
		createSilence: () => answer(`${name}-silence`),
		listSilences: () => answer([]),
	} as unknown as AlertManagerClient;
}

const refused = () => new ServiceUnavailableError("AlertManager", "unreachable", "connection refused", 1_000);

describe("an AlertManager HA cluster", () => {
	it("creates a silence on the next member only when the first never got the request", async () => {
		const calls: string[] = [];
		const cluster = failoverClient([member("a", calls, refused()), member("b", calls)]);

		expect(await cluster.createSilence(silence)).toBe("b-silence");
		expect(calls).toEqual(["a", "b"]);
	});

	it.each([
		["a 503 (perhaps from a proxy, after the silence was made)", new HttpStatusError("AlertManager", 503, "")],
		["a timeout", new ServiceUnavailableError("AlertManager", "timeout", "timed out", 1_000)],
		["a reset connection", new ServiceUnavailableError("AlertManager", "unreachable", "connection reset", 1_000)],
	])("does not create it a second time after %s", async (_, failure) => {
		const calls: string[] = [];
		const cluster = failoverClient([member("a", calls, failure), member("b", calls)]);

		await expect(cluster.createSilence(silence)).rejects.toBe(failure);
		expect(calls).toEqual(["a"]);
	});

	it("still reads from the next member after a 503 or a timeout", async () => {
		const calls: string[] = [];
		const cluster = failoverClient([
			member("a", calls, new HttpStatusError("AlertManager", 503, "")),
			member("b", calls),
		]);

		expect(await cluster.listSilences()).toEqual([]);
		expect(calls).toEqual(["a", "b"]);
	});
});
