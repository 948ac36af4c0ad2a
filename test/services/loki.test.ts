import { pino } from "pino";
import { beforeAll, describe, expect, it } from "vitest";
import { logsReport, logsVerbatimReport } from "../../src/commands/logs.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { reportToText, textToPlain } from "../../src/render/report.ts";
import { searchLogs } from "../../src/services/log-search.ts";
import { lineMatches } from "../../src/services/logql.ts";
import {
	compareEntries,
	entryId,
	type LogCursor,
	type LogEntry,
	type LogSearchRequest,
	type LogsService,
} from "../../src/services/logs.ts";
import { LokiError, MetricQueryError } from "../../src/services/loki.ts";
import { freshTenant, type PushEntry, type TestLoki } from "../support/loki.ts";
import { logsService } from "../support/services.ts";
import { sharedLoki } from "../support/shared-loki.ts";

const silent = pino({ level: "silent" });
const NS_PER_SECOND = 1_000_000_000n;
const NS_PER_MINUTE = 60n * NS_PER_SECOND;
const SPLIT = 30n * NS_PER_MINUTE;

/** A line as the tests know it: what was pushed, with the id opsbot orders it by. */
interface Known extends LogCursor {
	readonly line: string;
	readonly labels: Record<string, string>;
}

const text = (e: { ns: bigint; line: string }) => `${e.ns} ${e.line}`;

describe("/logs against a real Loki 2.9.13", () => {
	let loki: TestLoki;
	const tenants = {
		main: freshTenant("main"),
		ties: freshTenant("ties"),
		split: freshTenant("split"),
		walk: freshTenant("walk"),
		mixed: freshTenant("mixed"),
	};
	const known: Record<keyof typeof tenants, Known[]> = { main: [], ties: [], split: [], walk: [], mixed: [] };
	let service: LogsService;
	let ops: ReturnType<typeof OpsFileSchema.parse>;
	const now = BigInt(Date.now()) * 1_000_000n;

	async function push(tenant: keyof typeof tenants, labels: Record<string, string>, entries: PushEntry[]) {
		await loki.push(tenants[tenant], labels, entries);
		known[tenant].push(...entries.map((e) => ({ ...e, labels, id: entryId(labels, e.ns, e.line) })));
	}

	beforeAll(async () => {
		loki = await sharedLoki();
		const env = (tenant: string) => ({
			loki: {
				url: loki.url,
				tenant,
				grafanaUrl: "https://grafana.example.com",
				grafanaOrgId: 7,
				grafanaDatasource: "P8E80F9AEF21F6940",
			},
		});
		ops = OpsFileSchema.parse({
			discord: { guildId: "100000000000000001" },
			environments: {
				...Object.fromEntries(Object.entries(tenants).map(([k, t]) => [k, env(t)])),
				wrongtenant: env("team-that-does-not-exist"),
			},
			logs: { maxRangeHours: 24 },
		});
		service = logsService({ environments: ops.environments, secret: () => undefined, maxRangeHours: 24, log: silent });

		// Five lines at one nanosecond (defect 1).
		const tie = now - 5n * NS_PER_MINUTE;
		await push(
			"ties",
			{ service: "api" },
			[1, 2, 3, 4, 5].map((i) => ({ ns: tie, line: `tied line ${i}` })),
		);
		await push("ties", { service: "api" }, [{ ns: tie - NS_PER_MINUTE, line: "older line" }]);

		// Loki's own answer to a backward query with limit 5 across a 30-minute split is not the newest 5 here (defect 3).
		const b = ((now - 40n * NS_PER_MINUTE) / SPLIT) * SPLIT;
		await push("split", { service: "api", pod: "p1" }, [
			{ ns: b + 2n * NS_PER_SECOND, line: "newest, after the split" },
		]);
		await push("split", { service: "api", pod: "p0" }, [
			{ ns: b - 50n * NS_PER_SECOND, line: "fifth newest" },
			...[30n, 31n, 32n].map((s) => ({ ns: b - s * NS_PER_SECOND, line: `p0 at -${s}s` })),
		]);
		await push("split", { service: "api", pod: "p2" }, [{ ns: b - 60n * NS_PER_SECOND, line: "sixth newest" }]);

		// Several streams over 100 minutes (so across 30-minute splits), with ties within and across streams.
		let seed = 42;
		const random = (n: number) => {
			seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
			return seed % n;
		};
		const shared = Array.from({ length: 12 }, () => now - BigInt(60 + random(5_900)) * NS_PER_SECOND);
		for (let s = 0; s < 5; s++) {
			const entries: PushEntry[] = [];
			for (let i = 0; i < 45; i++) {
				const ns =
					i % 7 === 0
						? shared[random(shared.length)]!
						: now - BigInt(60 + random(6_000)) * NS_PER_SECOND - BigInt(random(3)) * 1_000n;
				entries.push({ ns, line: `stream ${s} line ${i}` });
				if (i % 9 === 0) entries.push({ ns, line: `stream ${s} line ${i} twin` });
			}
			await push("walk", { service: "api", pod: `pod-${s}` }, entries);
		}

		// Mixed JSON and plain lines over two services (defects 8 and 12).
		const m = (minutes: number) => now - BigInt(minutes) * NS_PER_MINUTE;
		await push("mixed", { service: "api" }, [
			{ ns: m(50), line: JSON.stringify({ level: "info", msg: "no errors found", correlation_id: "c-420" }) },
			{ ns: m(40), line: JSON.stringify({ level: "ERROR", msg: "payment failed", correlation_id: "c-42" }) },
			{ ns: m(30), line: "2026-11-24 ERROR plain failure for c-42." },
			{ ns: m(20), line: "2026-11-24 INFO errors counted for c-420" },
			{ ns: m(15), line: "[2026-11-24 12:00] error in a bracketed plain line (c-42)" },
			{
				ns: m(12),
				line: JSON.stringify({ level: "info", msg: "an error mentioned in passing", correlation_id: "c-42" }),
			},
		]);
		await push("mixed", { service: "worker", level: "warn" }, [
			{ ns: m(45), line: JSON.stringify({ level: "error", msg: "job failed", correlation_id: "c-42" }) },
			{ ns: m(25), line: "worker picked up c-42" },
			{ ns: m(22), line: "worker picked up c-4200" },
		]);
		await push("main", { service: "api" }, [{ ns: now - NS_PER_MINUTE, line: "hello" }]);
	});

	const request = (
		environment: keyof typeof tenants | "wrongtenant",
		extra: Partial<LogSearchRequest> = {},
	): LogSearchRequest => ({
		environment,
		service: "api",
		start: new Date(Number((now - 2n * 60n * NS_PER_MINUTE) / 1_000_000n)),
		end: new Date(Number(now / 1_000_000n) + 60_000),
		limit: 20,
		...extra,
	});

	/** Presses Older until there is nothing more: every page, newest first. */
	async function walkOlder(base: LogSearchRequest): Promise<LogEntry[][]> {
		const pages: LogEntry[][] = [];
		let before: LogCursor | undefined;
		for (let i = 0; i < 500; i++) {
			const page = await service.search({ ...base, direction: "backward", ...(before ? { before } : {}) });
			pages.push([...page.entries]);
			if (!page.more || page.entries.length === 0) return pages;
			before = page.entries.at(-1);
		}
		throw new Error("paging did not end");
	}

	/** Presses Newer from the range's start until there is nothing more. */
	async function walkNewer(base: LogSearchRequest): Promise<LogEntry[][]> {
		const pages: LogEntry[][] = [];
		let after: LogCursor | undefined;
		for (let i = 0; i < 500; i++) {
			const page = await service.search({ ...base, direction: "forward", ...(after ? { after } : {}) });
			pages.push([...page.entries]);
			if (!page.more || page.entries.length === 0) return pages;
			after = page.entries[0];
		}
		throw new Error("paging did not end");
	}

	const newestFirst = (lines: Known[]) => [...lines].sort((a, b) => compareEntries(b, a)).map(text);

	it("pages through five lines sharing one nanosecond, three at a time, without losing two (defect 1)", async () => {
		const pages = await walkOlder(request("ties", { limit: 3 }));

		expect(pages.map((p) => p.length)).toEqual([3, 3]);
		expect(pages.flat().map(text)).toEqual(newestFirst(known.ties));
	});

	it("shows the true newest lines even where Loki's own answer across a 30-minute split is not (defect 3)", async () => {
		const b = ((now - 40n * NS_PER_MINUTE) / SPLIT) * SPLIT;
		const params = new URLSearchParams({
			query: '{service="api"}',
			start: (b - 20n * NS_PER_MINUTE).toString(),
			end: (b + 20n * NS_PER_SECOND).toString(),
			limit: "5",
			direction: "backward",
		});
		const raw = (await (
			await fetch(`${loki.url}/loki/api/v1/query_range?${params}`, { headers: { "x-scope-orgid": tenants.split } })
		).json()) as { data: { result: { values: [string, string][] }[] } };
		const rawLines = raw.data.result.flatMap((s) => s.values.map((v) => v[1]));

		const page = await service.search(
			request("split", {
				limit: 5,
				start: new Date(Number((b - 20n * NS_PER_MINUTE) / 1_000_000n)),
				end: new Date(Number((b + 20n * NS_PER_SECOND) / 1_000_000n)),
			}),
		);

		// Loki 2.9.13 drops the fifth newest line for the sixth when it merges its split answers.
		expect(rawLines).toContain("sixth newest");
		expect(rawLines).not.toContain("fifth newest");
		expect(page.entries.map((e) => e.line)).toEqual(
			newestFirst(known.split)
				.slice(0, 5)
				.map((l) => l.split(" ").slice(1).join(" ")),
		);
		expect(page.more).toBe(true);
	});

	it("walks every line once, Older and Newer, over five streams, ties and 30-minute splits (defects 1-3)", async () => {
		const truth = newestFirst(known.walk);

		const older = await walkOlder(request("walk", { limit: 9 }));
		const newer = await walkNewer(request("walk", { limit: 13 }));

		expect(truth.length).toBeGreaterThan(200);
		expect(older.flat().map(text)).toEqual(truth);
		expect(older.slice(0, -1).every((p) => p.length === 9)).toBe(true);
		// Newer pages come oldest-first in time, each shown newest first.
		expect(newer.flatMap((p) => [...p].reverse()).map(text)).toEqual([...truth].reverse());
	});

	it("returns a large result exactly, assembled from checked pages", async () => {
		const result = await service.search(request("walk", { limit: 1_000 }));

		expect(result.entries.map(text)).toEqual(newestFirst(known.walk));
		expect(result.more).toBe(false);
	});

	it(
		"matches level:error on the JSON level field and on plain words, and correlation ids exactly, on mixed " +
			"streams (defect 8)",
		async () => {
			const errors = await service.search(request("mixed", { level: "error" }));
			const requestLines = await service.search(request("mixed", { correlation: "c-42" }));

			expect(errors.entries.map((e) => e.line)).toEqual([
				"[2026-11-24 12:00] error in a bracketed plain line (c-42)",
				"2026-11-24 ERROR plain failure for c-42.",
				JSON.stringify({ level: "ERROR", msg: "payment failed", correlation_id: "c-42" }),
			]);
			expect(requestLines.entries.map((e) => e.line)).toEqual([
				JSON.stringify({ level: "info", msg: "an error mentioned in passing", correlation_id: "c-42" }),
				"[2026-11-24 12:00] error in a bracketed plain line (c-42)",
				"2026-11-24 ERROR plain failure for c-42.",
				JSON.stringify({ level: "ERROR", msg: "payment failed", correlation_id: "c-42" }),
			]);
			// docker logs (filtered by opsbot) agree with Loki on the same lines.
			const apiLines = known.mixed.filter((k) => k.labels.service === "api").sort((a, b) => compareEntries(b, a));
			expect(apiLines.filter((k) => lineMatches({ level: "error" }, k.line)).map((k) => k.line)).toEqual(
				errors.entries.map((e) => e.line),
			);
			expect(apiLines.filter((k) => lineMatches({ correlation: "c-42" }, k.line)).map((k) => k.line)).toEqual(
				requestLines.entries.map((e) => e.line),
			);
		},
	);

	it(
		"searches every service by correlation id alone, the JSON field winning over a stream label of the same " +
			"name (defect 12)",
		async () => {
			const result = await service.search(request("mixed", { service: "", correlation: "c-42", level: "error" }));

			expect(result.query).toMatch(/^\{service=~"\.\+"\}/);
			expect(result.entries.map((e) => [e.labels.service, e.line])).toEqual([
				["api", "[2026-11-24 12:00] error in a bracketed plain line (c-42)"],
				["api", "2026-11-24 ERROR plain failure for c-42."],
				["api", JSON.stringify({ level: "ERROR", msg: "payment failed", correlation_id: "c-42" })],
				["worker", JSON.stringify({ level: "error", msg: "job failed", correlation_id: "c-42" })],
			]);
		},
	);

	it("says which tenant was asked when Loki answers a tenant with no logs with an empty 200 (defect 9)", async () => {
		const result = await service.search(request("wrongtenant"));

		expect(result.entries).toEqual([]);
		expect(result.tenant).toBe("team-that-does-not-exist");
		// The hint only where Loki has nothing at all for the tenant; a tenant with logs gets the plain answer.
		const page = { tenantHasNoLogs: (await service.services("wrongtenant")).length === 0 };
		const knownTenant = await service.search(request("mixed", { contains: "no line contains this" }));
		expect(textToPlain(logsReport(result, "Logs of api on wrongtenant", page).summary ?? "")).toBe(
			"No log lines match in this time range. Loki has no logs at all for tenant team-that-does-not-exist; check " +
				"loki.tenant if you expected some. Widen since or loosen the filters.",
		);
		expect(knownTenant.entries).toEqual([]);
		expect(
			textToPlain(
				logsReport(knownTenant, "Logs of api on mixed", {
					tenantHasNoLogs: (await service.services("mixed")).length === 0,
				}).summary ?? "",
			),
		).toBe("No log lines match in this time range. Widen since or loosen the filters.");
		expect(reportToText(logsVerbatimReport(result, "Logs of api on wrongtenant"), { width: Infinity })).toContain(
			"tenant team-that-does-not-exist",
		);
	});

	it("refuses in the config the tenant ids Loki refuses (defect 9)", async () => {
		const parse = (tenant: string) =>
			OpsFileSchema.safeParse({
				discord: { guildId: "100000000000000001" },
				environments: { p: { loki: { url: loki.url, tenant } } },
			}).success;
		const pushAs = async (tenant: string) =>
			(
				await fetch(`${loki.url}/loki/api/v1/push`, {
					method: "POST",
					headers: { "content-type": "application/json", "x-scope-orgid": tenant },
					body: JSON.stringify({ streams: [{ stream: { service: "x" }, values: [[now.toString(), "x"]] }] }),
				})
			).status;

		expect(await pushAs("a/b")).toBe(400);
		expect(await pushAs("..")).toBe(400);
		expect(["a/b", ".", "..", "a|b", "a b", "ä", "x".repeat(151)].map(parse)).toEqual([
			false,
			false,
			false,
			false,
			false,
			false,
			false,
		]);
		expect(["team-a", "Team_1.prod", "a!*'()", "x".repeat(150)].map(parse)).toEqual([true, true, true, true]);
	});

	it("says that /logs shows log lines when given a metric query, with the Grafana link for it (defect 6)", async () => {
		const metric = request("main", { rawQuery: 'count_over_time({service="api"}[5m])' });

		const direct = await service.search(metric).then(
			() => undefined,
			(err: unknown) => err,
		);
		const viaCommand = await searchLogs({ logs: service, ops }, metric).then(
			() => undefined,
			(err: unknown) => err as Error,
		);

		expect(direct).toBeInstanceOf(MetricQueryError);
		expect((direct as Error).message).toBe(
			"That LogQL is a metric query (Loki answered a matrix of numbers, not log lines); /logs shows log lines. " +
				"Run it in Grafana Explore, or drop the range aggregation to see the lines.",
		);
		expect(viaCommand?.message).toContain("https://grafana.example.com/explore?orgId=7&left=");
		expect(decodeURIComponent(viaCommand?.message ?? "")).toContain('"datasource":"P8E80F9AEF21F6940"');
	});

	it(
		"gives Loki's reason for an invalid regular expression, an empty-compatible selector and a query too long " +
			"(defect 7)",
		async () => {
			const failure = (extra: Partial<LogSearchRequest>) =>
				service.search(request("main", extra)).then(
					() => "no error",
					(err: Error) => err.message,
				);
			const tooLong = `{service="api"} |= ${JSON.stringify("\u0001".repeat(1_000))}`;
			const lokiOnTooLong = await fetch(
				`${loki.url}/loki/api/v1/query_range?${new URLSearchParams({ query: tooLong })}`,
				{ headers: { "x-scope-orgid": tenants.main } },
			);

			expect(await failure({ rawQuery: '{service="api"} |~ "(a"' })).toBe(
				'Loki cannot use the regular expression in |~ "(a": missing closing ): `(a`. Loki uses Go\'s RE2 syntax: no ' +
					"lookahead, lookbehind or backreferences.",
			);
			expect(await failure({ rawQuery: '{service="api"} |~ "(?=a)b"' })).toBe(
				'Loki cannot use the regular expression in |~ "(?=a)b": invalid or unsupported Perl syntax: `(?=`. Loki ' +
					"uses Go's RE2 syntax: no lookahead, lookbehind or backreferences.",
			);
			expect(await failure({ rawQuery: '{service=~"(a"}' })).toBe(
				"Loki cannot use the regular expression: missing closing ): `^(?:(a)$`. Loki uses Go's RE2 syntax: no " +
					"lookahead, lookbehind or backreferences.",
			);
			expect(await failure({ rawQuery: '{service=~".*"}' })).toBe(
				'Loki needs at least one label matcher that cannot match an empty value: service=~".+" works, service=~".*" ' +
					'or service="" alone does not.',
			);
			expect(await failure({ rawQuery: '{service="api"} oops' })).toBe(
				"Loki could not parse the query: parse error at line 1, col 17: syntax error: unexpected IDENTIFIER. Check " +
					"the LogQL syntax.",
			);
			expect(await failure({ contains: "\u0001".repeat(1_000) })).toBe(
				"This search is 6,021 bytes as LogQL once its text is escaped, and Loki refuses queries over 5,120 bytes. " +
					"Shorten contains.",
			);
			expect([lokiOnTooLong.status, await lokiOnTooLong.text()]).toEqual([
				400,
				"parse error : input size too long (6021 > 5120)",
			]);
		},
	);

	it("classes what Loki refuses as the request's fault, not Loki being unavailable", async () => {
		const err = await service.search(request("main", { rawQuery: '{service="api"} |~ "(a"' })).then(
			() => undefined,
			(e: unknown) => e,
		);

		expect(err).toBeInstanceOf(LokiError);
		expect((err as LokiError).unavailable).toBe(false);
	});
});
