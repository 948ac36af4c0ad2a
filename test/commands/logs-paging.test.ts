import type { ActionRowBuilder, APIEmbed, ButtonBuilder } from "discord.js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logs, logsNewer, logsOlder } from "../../src/commands/logs.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { createAccessPolicy } from "../../src/discord/access.ts";
import { decodeCustomId } from "../../src/discord/custom-id.ts";
import type { ComponentInteraction, HandlerContext } from "../../src/discord/handler.ts";
import { UserFacingError } from "../../src/errors.ts";
import { grafanaExploreUrl, type LogsQueryState, pageCursor } from "../../src/services/log-search.ts";
import { entryId } from "../../src/services/logs.ts";
import { freshTenant, type TestLoki } from "../support/loki.ts";
import { createPendingStore } from "../support/pending.ts";
import { pressComponent } from "../support/press.ts";
import { logsService } from "../support/services.ts";
import { sharedLoki } from "../support/shared-loki.ts";
import { fakeDocker, startSshd, type TestSshd } from "../support/sshd.ts";

const silent = pino({ level: "silent" });
const SECOND_NS = 1_000_000_000n;
const MINUTE_NS = 60n * SECOND_NS;

interface Reply {
	embeds?: { toJSON(): APIEmbed }[];
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

function buttonsOf(reply: Reply | undefined): { id: string; disabled: boolean; url?: string }[] {
	return (reply?.components ?? []).flatMap((row) =>
		row.toJSON().components.map((c) => ({
			id: "custom_id" in c ? c.custom_id : "",
			disabled: "disabled" in c ? c.disabled === true : false,
			...("url" in c ? { url: c.url } : {}),
		})),
	);
}

/** The log lines an embed shows, as their text after the time (markdown escapes undone). */
function shownLines(reply: Reply | undefined): string[] {
	const description = reply?.embeds?.[0]?.toJSON().description ?? "";
	return description
		.split("\n")
		.slice(1)
		.map((l) => l.replace(/^\S+ `[^`]*` /, "").replace(/\\(.)/g, "$1"));
}

describe("/logs paging by buttons against a real Loki", () => {
	let loki: TestLoki;
	let sshd: TestSshd;
	let docker: ReturnType<typeof fakeDocker>;
	let ctx: HandlerContext;
	const tenant = freshTenant("paging");
	const now = BigInt(Date.now()) * 1_000_000n;

	beforeAll(async () => {
		loki = await sharedLoki();
		sshd = await startSshd();
		// 120 lines, one every 20 s, "line 0" the newest.
		await loki.push(
			tenant,
			{ service: "api" },
			Array.from({ length: 120 }, (_, i) => ({ ns: now - MINUTE_NS - BigInt(i) * 20n * SECOND_NS, line: `line ${i}` })),
		);
		await loki.push(tenant, { service: "worker" }, [
			{
				ns: now - 3n * MINUTE_NS,
				line: JSON.stringify({ level: "info", msg: "job for request", correlation_id: "c-42" }),
			},
		]);
		const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().replace("Z", "000000Z");
		docker = fakeDocker(sshd.binDir, `${iso(600_000)} first\n${iso(300_000)} second\n${iso(60_000)} third\n`);
		const ops = OpsFileSchema.parse({
			discord: { guildId: "100000000000000001" },
			access: { commands: { logs: ["everyone"] } },
			defaultEnvironment: "production",
			environments: {
				production: {
					loki: {
						url: loki.url,
						tenant,
						grafanaUrl: "https://grafana.example.com/",
						grafanaOrgId: 3,
						grafanaDatasource: "loki-prod-uid",
					},
				},
				staging: {
					ssh: {
						host: "127.0.0.1",
						port: sshd.port,
						user: "root",
						keyFileEnv: "KEY",
						hostKey: sshd.hostKey,
						containers: ["api"],
					},
				},
			},
			logs: { maxRangeHours: 24 },
		});
		const secrets = new Map([["KEY", sshd.privateKeyPath]]);
		const services = {
			logs: logsService({
				environments: ops.environments,
				secret: (n) => secrets.get(n),
				maxRangeHours: ops.logs.maxRangeHours,
				log: silent,
			}),
			logQueries: createPendingStore<LogsQueryState>(15 * 60_000),
		};
		ctx = {
			config: { ops, env: {}, secrets },
			log: silent,
			access: createAccessPolicy(ops),
			services,
			actor: { userId: "200000000000000001", username: "oncall", roleIds: [] },
			ephemeral: true,
		} as unknown as HandlerContext;
	});
	afterAll(async () => {
		await sshd?.stop();
	});

	async function search(options: Record<string, string | number>) {
		const { interaction, replies } = fakeCommand(options);
		await logs.execute(interaction, ctx);
		const buttons = buttonsOf(replies[0]);
		const older = buttons.find((b) => b.id.startsWith("logs:older:"))!;
		return {
			reply: replies[0],
			buttons,
			older,
			newer: buttons.find((b) => b.id.startsWith("logs:newer:"))!,
			token: decodeCustomId(older.id)!.args[0]!,
		};
	}

	async function press(customId: string) {
		const id = decodeCustomId(customId)!;
		const handler = id.action === "older" ? logsOlder : logsNewer;
		const replies: Reply[] = [];
		const interaction = {
			editReply: async (reply: Reply) => void replies.push(reply),
		} as unknown as ComponentInteraction;
		const error = await pressComponent(handler, interaction, id, ctx).then(
			() => undefined,
			(err: unknown) => err,
		);
		const buttons = buttonsOf(replies[0]);
		return {
			error,
			reply: replies[0],
			buttons,
			older: buttons.find((b) => b.id.startsWith("logs:older:")),
			newer: buttons.find((b) => b.id.startsWith("logs:newer:")),
		};
	}

	it("pages Older from the last line shown: 120 matches as 0–19, 20–39, …, none skipped (defect 2)", async () => {
		const first = await search({ service: "api", since: "1h" });
		const pages = [shownLines(first.reply)];
		let older = first.older;
		while (!older.disabled) {
			const page = await press(older.id);
			expect(page.error).toBeUndefined();
			pages.push(shownLines(page.reply));
			older = page.older!;
		}

		expect(first.newer.disabled).toBe(true);
		expect(pages.map((p) => p.length)).toEqual([20, 20, 20, 20, 20, 20]);
		expect(pages.flat()).toEqual(Array.from({ length: 120 }, (_, i) => `line ${i}`));
	});

	it("keeps a way back from an empty Older or Newer page (defect 10)", async () => {
		const first = await search({ service: "api", since: "1h" });
		const cursor = (i: number) => {
			const ns = now - MINUTE_NS - BigInt(i) * 20n * SECOND_NS;
			return `${ns}:${entryId({ service: "api" }, ns, `line ${i}`)}`;
		};

		const emptyOlder = await press(`logs:older:${first.token}:${cursor(119)}`);
		const back = await press(emptyOlder.newer!.id);
		const emptyNewer = await press(`logs:newer:${first.token}:${cursor(0)}`);
		const home = await press(emptyNewer.older!.id);

		expect(emptyOlder.reply?.embeds?.[0]?.toJSON().description).toBe(
			"No older lines in this time range. Newer ▶ goes back.",
		);
		expect(emptyOlder.older!.disabled).toBe(true);
		expect(emptyOlder.newer).toEqual({ id: `logs:newer:${first.token}`, disabled: false });
		expect(shownLines(back.reply)).toEqual(Array.from({ length: 20 }, (_, i) => `line ${100 + i}`));
		expect(emptyNewer.reply?.embeds?.[0]?.toJSON().description).toBe(
			"No newer lines in this time range. ◀ Older goes back.",
		);
		expect(emptyNewer.newer!.disabled).toBe(true);
		expect(emptyNewer.older).toEqual({ id: `logs:older:${first.token}`, disabled: false });
		expect(shownLines(home.reply)).toEqual(shownLines(first.reply));
	});

	it("refuses forged cursors with a clear message, never asking Loki for anything outside the first range", async () => {
		const first = await search({ service: "api", since: "1h", limit: 2 });
		const forged = [
			"0:0123456789abcdef",
			"1:0123456789abcdef",
			`${now - 2n * 60n * MINUTE_NS}:0123456789abcdef`,
			`${now + 10n * MINUTE_NS}:0123456789abcdef`,
			"99999999999999999999:0123456789abcdef",
			"abc:0123456789abcdef",
			`${now - MINUTE_NS}:nothex`,
			`${now - MINUTE_NS}`,
		];

		const refusals = [];
		for (const cursor of forged)
			for (const action of ["older", "newer"]) refusals.push(await press(`logs:${action}:${first.token}:${cursor}`));
		const older = await press(first.older.id);

		for (const r of refusals) {
			expect(r.error).toBeInstanceOf(UserFacingError);
			expect((r.error as Error).message).toMatch(/That page (is not valid|lies outside this search's time range)/);
		}
		expect(older.error).toBeUndefined();
		expect(shownLines(older.reply)).toEqual(["line 2", "line 3"]);
	});

	it("refuses forged cursors on the docker logs path, so no --since 0 ever reaches the host", async () => {
		const first = await search({ service: "api", since: "1h", env: "staging", limit: 1 });
		const callsAfterSearch = docker.calls().length;
		const sinceOf = (call: string[]) => Number(call[call.indexOf("--since") + 1]);
		const untilOf = (call: string[]) => Number(call[call.indexOf("--until") + 1]);
		const originalCall = docker.calls().at(-1)!;

		const newerZero = await press(`logs:newer:${first.token}:0:0123456789abcdef`);
		const olderZero = await press(`logs:older:${first.token}:0:0123456789abcdef`);
		const olderFuture = await press(
			`logs:older:${first.token}:${BigInt(Date.now() + 86_400_000) * 1_000_000n}:0123456789abcdef`,
		);
		const older = await press(first.older.id);

		for (const r of [newerZero, olderZero, olderFuture]) expect(r.error).toBeInstanceOf(UserFacingError);
		expect(older.error).toBeUndefined();
		expect(shownLines(first.reply)).toEqual(["third"]);
		expect(shownLines(older.reply)).toEqual(["second"]);
		const calls = docker.calls();
		expect(calls).toHaveLength(callsAfterSearch + 1);
		for (const call of calls.slice(callsAfterSearch - 1)) {
			expect(sinceOf(call)).toBeGreaterThanOrEqual(sinceOf(originalCall));
			expect(untilOf(call)).toBeLessThanOrEqual(untilOf(originalCall));
		}
	});

	it("refuses paging state whose range is longer than the configured maximum", () => {
		const state: LogsQueryState = {
			title: "x",
			request: { environment: "production", service: "api", start: new Date(0), end: new Date(), limit: 10 },
		};
		const fresh: LogsQueryState = { ...state, request: { ...state.request, start: new Date(Date.now() - 3_600_000) } };

		expect(() => pageCursor(state.request, String(now - MINUTE_NS), "0123456789abcdef", 24)).toThrow(
			"This search's time range is not valid any more; run /logs again.",
		);
		expect(pageCursor(fresh.request, String(now - MINUTE_NS), "0123456789abcdef", 24)).toEqual({
			ns: now - MINUTE_NS,
			id: "0123456789abcdef",
		});
		expect(pageCursor(fresh.request, undefined, undefined, 24)).toBeUndefined();
	});

	it("searches every service by correlation id alone from the slash command (defect 12)", async () => {
		const result = await search({ correlation: "c-42", since: "1h" });

		const embed = result.reply?.embeds?.[0]?.toJSON();
		expect(embed?.title).toBe("Logs of request c-42 on production");
		expect(embed?.footer?.text).toMatch(/^LogQL: \{service=~"\.\+"\} \|= "c-42"/);
		expect(shownLines(result.reply)).toEqual(["job for request · correlation_id=c-42"]);
	});

	it("opens Grafana in the configured organisation and data source (defect 13)", async () => {
		const result = await search({ service: "api", since: "1h" });
		const link = result.buttons.find((b) => b.url)?.url ?? "";

		expect(link.startsWith("https://grafana.example.com/explore?orgId=3&left=")).toBe(true);
		expect(JSON.parse(decodeURIComponent(link.split("left=")[1]!))).toMatchObject({
			datasource: "loki-prod-uid",
			queries: [{ refId: "A", expr: '{service="api"}' }],
		});
		expect(grafanaExploreUrl({ grafanaUrl: "https://g.example.com" }, '{a="b"}', 0n, 1n)).toMatch(
			/^https:\/\/g\.example\.com\/explore\?orgId=1&left=.*%22datasource%22%3A%22loki%22/,
		);
	});
});
