import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ActionRowBuilder, ButtonBuilder } from "discord.js";
import { logs, logsNewer, logsOlder, pageRange, type LogsQueryState } from "../../src/commands/logs.ts";
import type { ComponentInteraction, HandlerContext } from "../../src/commands/types.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { createAccessPolicy } from "../../src/discord/access.ts";
import { decodeCustomId } from "../../src/discord/custom-id.ts";
import { createPendingStore } from "../../src/discord/pending.ts";
import { UserFacingError } from "../../src/errors.ts";
import { createLogsService } from "../../src/services/logs.ts";
import { startLokiDouble, type LokiDouble } from "../loki-double/index.ts";
import { fakeDocker, startSshd, type TestSshd } from "../support/sshd.ts";

const silent = pino({ level: "silent" });
const MINUTE_NS = 60_000_000_000n;
const nsOf = (d: Date) => BigInt(d.getTime()) * 1_000_000n;

interface Reply {
	components?: ActionRowBuilder<ButtonBuilder>[];
}

function fakeCommand(options: Record<string, string | number>) {
	const replies: Reply[] = [];
	const interaction = {
		options: {
			getString: (name: string) => (typeof options[name] === "string" ? options[name] : null),
			getInteger: (name: string) => (typeof options[name] === "number" ? options[name] : null),
		},
		editReply: async (reply: Reply) => {
			replies.push(reply);
		},
	};
	return { interaction: interaction as unknown as Parameters<typeof logs.execute>[0], replies };
}

function fakePress() {
	const replies: Reply[] = [];
	const interaction = { editReply: async (reply: Reply) => void replies.push(reply) };
	return { interaction: interaction as unknown as ComponentInteraction, replies };
}

function customIds(reply: Reply | undefined): string[] {
	return (reply?.components ?? []).flatMap((row) => row.toJSON().components.map((c) => ("custom_id" in c ? c.custom_id : ""))).filter(Boolean);
}

describe("/logs Older and Newer re-check the cursor against the original search on every press", () => {
	let loki: LokiDouble;
	let sshd: TestSshd;
	let docker: ReturnType<typeof fakeDocker>;
	let ctx: HandlerContext;

	beforeAll(async () => {
		[loki, sshd] = await Promise.all([startLokiDouble(), startSshd()]);
		const now = BigInt(Date.now()) * 1_000_000n;
		loki.add({ service: "api" }, [40n, 30n, 20n, 10n, 5n].map((m) => ({ ns: now - m * MINUTE_NS, line: `line ${m} minutes ago` })));
		const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().replace("Z", "000000Z");
		docker = fakeDocker(sshd.binDir, `${iso(600_000)} first\n${iso(300_000)} second\n${iso(60_000)} third\n`);
		const ops = OpsFileSchema.parse({
			discord: { guildId: "100000000000000001" },
			access: { commands: { logs: ["everyone"] } },
			defaultEnvironment: "production",
			environments: {
				production: { loki: { url: loki.url, tenant: "team-a" } },
				staging: { ssh: { host: "127.0.0.1", port: sshd.port, user: "root", keyFileEnv: "KEY", hostKey: sshd.hostKey, containers: ["api"] } },
			},
			logs: { maxRangeHours: 24 },
		});
		const secrets = new Map([["KEY", sshd.privateKeyPath]]);
		// Built as context.ts builds it: the service itself is not told the configured maximum range.
		const services = { logs: createLogsService({ environments: ops.environments, secret: (n) => secrets.get(n), maxRangeHours: ops.logs.maxRangeHours, log: silent }), logQueries: createPendingStore<LogsQueryState>(15 * 60_000) };
		ctx = { config: { ops, env: {}, secrets }, log: silent, access: createAccessPolicy(ops), services, actor: { userId: "200000000000000001", username: "oncall", roleIds: [] }, ephemeral: true } as unknown as HandlerContext;
	});
	afterAll(async () => {
		await Promise.all([loki?.close(), sshd?.stop()]);
	});

	async function search(options: Record<string, string | number>) {
		const before = Date.now();
		const { interaction, replies } = fakeCommand(options);
		await logs.execute(interaction, ctx);
		const ids = customIds(replies[0]);
		const older = ids.find((id) => id.startsWith("logs:older:"))!;
		const token = decodeCustomId(older)!.args[0]!;
		return { ids, token, older, newer: ids.find((id) => id.startsWith("logs:newer:"))!, before, after: Date.now() };
	}

	async function press(handler: typeof logsOlder, customId: string) {
		const { interaction, replies } = fakePress();
		const error = await handler.handle(interaction, decodeCustomId(customId)!, ctx).then(
			() => undefined,
			(err: unknown) => err,
		);
		return { error, replies };
	}

	const lokiRanges = () => loki.requests.filter((r) => r.path === "/loki/api/v1/query_range").map((r) => ({ start: BigInt(r.params.start!), end: BigInt(r.params.end!) }));

	it("refuses forged Loki cursors with a clear message and never asks Loki for more than the original range", async () => {
		const first = await search({ service: "api", since: "1h", limit: 2 });
		const requestsAfterSearch = lokiRanges().length;
		const [original] = lokiRanges().slice(-1);
		const forged = ["0", "1", String(original!.start - 1n), String(original!.end + 1n), "99999999999999999999", "abc", ""];

		const refusals = [];
		for (const cursor of forged) {
			for (const handler of [logsOlder, logsNewer]) refusals.push(await press(handler, `logs:${handler.action}:${first.token}${cursor ? `:${cursor}` : ""}`));
		}
		const older = await press(logsOlder, first.older);
		const newerCustomId = customIds(older.replies[0]).find((id) => id.startsWith("logs:newer:"))!;
		const newer = await press(logsNewer, newerCustomId);

		for (const r of refusals) {
			expect(r.error).toBeInstanceOf(UserFacingError);
			expect((r.error as Error).message).toMatch(/That page (is not valid|lies outside this search's time range)/);
		}
		expect(older.error).toBeUndefined();
		expect(newer.error).toBeUndefined();
		const ranges = lokiRanges();
		expect(ranges).toHaveLength(requestsAfterSearch + 2);
		expect(original!.end - original!.start).toBe(60n * MINUTE_NS);
		for (const range of ranges.slice(requestsAfterSearch - 1)) {
			expect(range.start).toBeGreaterThanOrEqual(original!.start);
			expect(range.end).toBeLessThanOrEqual(original!.end);
		}
		expect(ranges.at(-2)).toEqual({ start: original!.start, end: BigInt(first.older.split(":").at(-1)!) });
		expect(ranges.at(-1)).toEqual({ start: BigInt(newerCustomId.split(":").at(-1)!), end: original!.end });
	});

	it("refuses forged cursors on the docker logs path, so no --since 0 ever reaches the host", async () => {
		const first = await search({ service: "api", since: "1h", env: "staging", limit: 1 });
		const callsAfterSearch = docker.calls().length;
		const sinceOf = (call: string[]) => Number(call[call.indexOf("--since") + 1]);
		const untilOf = (call: string[]) => Number(call[call.indexOf("--until") + 1]);
		const originalCall = docker.calls().at(-1)!;

		const newerZero = await press(logsNewer, `logs:newer:${first.token}:0`);
		const olderZero = await press(logsOlder, `logs:older:${first.token}:0`);
		const olderFuture = await press(logsOlder, `logs:older:${first.token}:${BigInt(Date.now() + 86_400_000) * 1_000_000n}`);
		const older = await press(logsOlder, first.older);

		for (const r of [newerZero, olderZero, olderFuture]) expect(r.error).toBeInstanceOf(UserFacingError);
		expect(older.error).toBeUndefined();
		const calls = docker.calls();
		expect(calls).toHaveLength(callsAfterSearch + 1);
		for (const call of calls.slice(callsAfterSearch - 1)) {
			expect(sinceOf(call)).toBeGreaterThanOrEqual(sinceOf(originalCall));
			expect(untilOf(call)).toBeLessThanOrEqual(untilOf(originalCall));
		}
		expect(sinceOf(originalCall)).toBeGreaterThan(first.before / 1000 - 3_600 - 1);
	});

	it("refuses paging state whose range is longer than the configured maximum", () => {
		const state: LogsQueryState = { title: "x", request: { environment: "production", service: "api", start: new Date(0), end: new Date(), limit: 10 } };

		expect(() => pageRange(state, "newer", "1", 24)).toThrow("This search's time range is not valid any more; run /logs again.");
		expect(() => pageRange({ ...state, request: { ...state.request, start: new Date(Date.now() - 3_600_000) } }, "newer", String(nsOf(new Date()) - MINUTE_NS), 24)).not.toThrow();
	});
});
