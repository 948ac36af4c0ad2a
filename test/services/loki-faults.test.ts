import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OpsFileSchema } from "../../src/config.ts";
import type { UserFacingError } from "../../src/errors.ts";
import { textToMarkdown } from "../../src/render/report.ts";
import {
	compareEntries,
	entryId,
	type LogEntry,
	type LogSearchRequest,
	type LogsService,
	type PageFetch,
	pageExactly,
} from "../../src/services/logs.ts";
import { LokiError } from "../../src/services/loki.ts";
import { type LokiDouble, startLokiDouble } from "../loki-double/index.ts";
import { freePort } from "../support/proc.ts";
import { logsService } from "../support/services.ts";

const silent = pino({ level: "silent" });

// Faults the real Loki cannot be made to show on demand: a stall, 5xx, garbage. The double serves them.
describe("/logs when Loki stalls, fails or answers garbage", () => {
	let double: LokiDouble;
	let halfAnswer: Server;
	let service: LogsService;
	const now = Date.now();

	beforeAll(async () => {
		double = await startLokiDouble();
		double.add(
			"team-a",
			{ service: "api" },
			Array.from({ length: 40 }, (_, i) => ({ ns: BigInt(now - 60_000 - i * 1_000) * 1_000_000n, line: `line ${i}` })),
		);
		// Sends headers and the start of a body, then nothing.
		halfAnswer = createServer((_req, res) => {
			res.writeHead(200, { "content-type": "application/json" });
			res.write('{"status":"success","data":{');
		});
		await new Promise<void>((resolve) => halfAnswer.listen(0, "127.0.0.1", resolve));
		const closed = `http://127.0.0.1:${await freePort()}`;
		const ops = OpsFileSchema.parse({
			discord: { guildId: "100000000000000001" },
			environments: {
				double: { loki: { url: double.url, tenant: "team-a", timeoutMs: 500 } },
				half: {
					loki: {
						url: `http://127.0.0.1:${(halfAnswer.address() as AddressInfo).port}`,
						tenant: "team-a",
						timeoutMs: 500,
					},
				},
				down: { loki: { url: closed, tenant: "team-a" } },
			},
		});
		service = logsService({ environments: ops.environments, secret: () => undefined, maxRangeHours: 24, log: silent });
	});
	afterAll(async () => {
		halfAnswer?.closeAllConnections();
		await new Promise((resolve) => halfAnswer?.close(resolve));
		await double?.close();
	});

	const request = (environment: string, extra: Partial<LogSearchRequest> = {}): LogSearchRequest => ({
		environment,
		service: "api",
		start: new Date(now - 3_600_000),
		end: new Date(now),
		limit: 20,
		...extra,
	});
	const failure = async (work: Promise<unknown>) => {
		const began = performance.now();
		const err = await work.then(
			() => undefined,
			(e: unknown) => e,
		);
		return { err: err as LokiError, ms: performance.now() - began };
	};

	it(
		"says Loki did not answer in time, not that it could not be reached, when it stalls before or during its " +
			"answer (defect 4)",
		async () => {
			double.stallNext();
			const stalled = await failure(service.search(request("double")));
			const halfway = await failure(service.search(request("half")));

			for (const { err, ms } of [stalled, halfway]) {
				expect(err).toBeInstanceOf(LokiError);
				expect(err.message).toBe(
					"Loki did not answer within 0.5 s (loki.timeoutMs). Narrow the search, or check Loki with /health.",
				);
				expect(textToMarkdown(err.text)).toBe(
					"Loki did not answer within 0.5 s \\(`loki.timeoutMs`\\). Narrow the search, or check Loki with /health.",
				);
				expect(err.status).toBe(0);
				expect((err as UserFacingError).unavailable).toBe(true);
				expect(ms).toBeLessThan(3_000);
			}
		},
	);

	it("tells a refused connection apart", async () => {
		const { err } = await failure(service.search(request("down")));

		expect(err.message).toBe("Loki is not reachable (connection refused). Check Loki with /health.");
		expect((err as UserFacingError).unavailable).toBe(true);
	});

	it("explains 5xx and overload answers and counts them as Loki being unavailable", async () => {
		const cases: [number, string, string][] = [
			[502, "Bad Gateway", "Loki answered HTTP 502. Try again; if it persists, check Loki's health with /health."],
			[503, "Ingester not ready", "Loki is not ready (Ingester not ready). Try again shortly."],
			[
				429,
				"too many outstanding requests",
				"Loki is busy (too many outstanding requests). Try again in a moment or narrow the search.",
			],
			[
				504,
				"request timed out, decrease the duration of the request",
				"The search took too long in Loki. Narrow the time range or add a filter.",
			],
		];
		for (const [status, body, message] of cases) {
			double.failNext(status, body);

			const { err } = await failure(service.search(request("double")));

			expect(err.message).toBe(message);
			expect((err as UserFacingError).unavailable).toBe(true);
		}
	});

	it("says plainly when the answer is not JSON or not a query result", async () => {
		double.failNext(200, "<html>login page</html>", 1, "text/html");
		const html = await failure(service.search(request("double")));
		double.failNext(
			200,
			JSON.stringify({
				status: "success",
				data: { resultType: "streams", result: [{ stream: {}, values: [[1, "ns as a number"]] }] },
			}),
			1,
			"application/json",
		);
		const shape = await failure(service.search(request("double")));

		expect(html.err.message).toBe(
			"Loki answered with something that is not JSON. Check loki.url points at Loki, or check Loki with /health.",
		);
		expect(shape.err.message).toBe(
			"Loki's answer is not a query result this opsbot understands. Check loki.url points at Loki.",
		);
	});

	it("asks for no more lines than a Loki with a lower max_entries_limit_per_query allows, once told", async () => {
		double.failNext(400, "max entries limit per query exceeded, limit > max_entries_limit (60 > 30)");
		const before = double.requests.length;

		const first = await service.search(request("double", { limit: 20 }));
		const second = await service.search(request("double", { limit: 20 }));

		expect(first.entries.map((e) => e.line)).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i}`));
		expect(second.entries).toEqual(first.entries);
		expect(double.requests.slice(before).map((r) => r.params.limit)).toEqual(["60", "30", "30", "30", "30"]);
	});
});

describe("paging never trusts a cut-off Loki answer to be the true first N", () => {
	const base = 1_700_000_000_000_000_000n;
	const lines: LogEntry[] = Array.from({ length: 100 }, (_, i) => {
		const ns = base + BigInt(Math.floor(i / 3)) * 1_000n;
		const labels = { pod: `p${i % 4}` };
		return { ns, id: entryId(labels, ns, `l${i}`), line: `l${i}`, labels };
	});
	const truth = [...lines].sort((a, b) => compareEntries(b, a));

	/**
	 * A Loki whose cut-off answers drop the newest line but one and take an older one instead; complete answers are right.
	 */
	function unreliable(max = 5_000): PageFetch & { calls: { start: bigint; end: bigint; limit: number }[] } {
		const calls: { start: bigint; end: bigint; limit: number }[] = [];
		const fetch = async (range: { start: bigint; end: bigint; limit: number; direction: "backward" | "forward" }) => {
			calls.push(range);
			const limit = Math.min(range.limit, max);
			const inRange = lines
				.filter((l) => l.ns >= range.start && l.ns < range.end)
				.sort((a, b) => (range.direction === "backward" ? compareEntries(b, a) : compareEntries(a, b)));
			if (inRange.length <= limit) return { lines: inRange, limit };
			const answer = [...inRange.slice(0, 1), ...inRange.slice(2, limit), inRange[limit]!];
			return { lines: answer.reverse(), limit };
		};
		return Object.assign(fetch, { calls });
	}

	it("re-asks the range that must hold the page and uses only a complete answer", async () => {
		const fetch = unreliable();

		const page = await pageExactly(fetch, {
			startNs: base,
			endNs: base + 1_000_000n,
			direction: "backward",
			count: 10,
		});

		expect(page.entries.map((e) => e.line)).toEqual(truth.slice(0, 10).map((e) => e.line));
		expect(page.more).toBe(true);
		expect(fetch.calls).toHaveLength(2);
	});

	it("pages the whole range exactly, both ways, with a Loki that never allows more than 25 lines", async () => {
		const fetch = unreliable(25);
		const older: LogEntry[] = [];
		let before: LogEntry | undefined;
		for (;;) {
			const page = await pageExactly(fetch, {
				startNs: base,
				endNs: base + 1_000_000n,
				before,
				direction: "backward",
				count: 7,
			});
			older.push(...page.entries);
			if (!page.more) break;
			before = page.entries.at(-1);
		}
		const newer: LogEntry[] = [];
		let after: LogEntry | undefined;
		for (;;) {
			const page = await pageExactly(fetch, {
				startNs: base,
				endNs: base + 1_000_000n,
				after,
				direction: "forward",
				count: 11,
			});
			newer.push(...page.entries);
			if (!page.more) break;
			after = page.entries.at(-1);
		}

		expect(older.map((e) => e.line)).toEqual(truth.map((e) => e.line));
		expect(newer.map((e) => e.line)).toEqual([...truth].reverse().map((e) => e.line));
	});
});
