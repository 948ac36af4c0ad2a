import { parseArgs } from "node:util";
import { summarise } from "./alerts/episodes-summary.ts";
import { heldGroupsReport, readHeldGroups } from "./alerts/held-groups.ts";
import { historyReport } from "./alerts/incident-reports.ts";
import { parseMatchers } from "./alerts/matchers.ts";
import { buildTimeline, parseMessageLink } from "./alerts/timeline.ts";
import { HISTORY_LISTED, historySince, testAlertReport } from "./commands/alerts.ts";
import { actionLogReport, auditPageReport } from "./commands/audit.ts";
import { doctorReport } from "./commands/doctor.ts";
import { HEALTH_DETAIL_HINT, healthReport, healthSummaryReport } from "./commands/health.ts";
import { logsTitle, logsVerbatimReport } from "./commands/logs.ts";
import { requireEnvironment } from "./commands/options.ts";
import { poolReport } from "./commands/pool.ts";
import {
	maintenanceMatchers,
	maintenanceStart,
	silenceCreatedReport,
	silenceExpireReport,
	silenceExtendedReport,
	silenceListReport,
	silencePreviewReport,
} from "./commands/silence.ts";
import { whoDeletedReport } from "./commands/whodeleted.ts";
import { ConfigError, type ConfigMode, readConfig } from "./config.ts";
import { type AppContext, createContext } from "./context.ts";
import { UserFacingError } from "./errors.ts";
import { answerProblems, askMissing, type InitAnswers, writeInitialFiles } from "./init.ts";
import { createLogger } from "./log.ts";
import { type Level, type Report, reportToText, TERMINAL_WIDTH } from "./render/report.ts";
import type { Matcher } from "./services/alertmanager.ts";
import { auditFilters } from "./services/audit.ts";
import { logSearchRequest, searchLogs } from "./services/log-search.ts";
import {
	alertmanagerFor,
	createSilence,
	expireSilence,
	extendSilence,
	listSilences,
	liveSilence,
	maintenanceComment,
	maxSilenceMs,
	parseSilenceDuration,
	previewSilence,
	type RecordSilenceAction,
	silenceComment,
} from "./services/silences.ts";
import { readAlertStore } from "./state/index.ts";
import { newTestAlert, operator, ownWebhook, postWebhook } from "./test-alert.ts";
import { flattenControls } from "./text.ts";

/**
 * Exit codes usable from cron and CI (sysexits.h for the failures): 0 healthy or done, 1 degraded,
 * 2 down; 64 usage (bad arguments, or a request the service refused), 69 unavailable (a service the
 * command needs did not answer: UserFacingError.unavailable, e.g. Loki, PostgreSQL or an SSH host
 * down or too slow), 70 internal failure, 78 config. The README lists them.
 */
export const EXIT: Record<Level, number> & { usage: number; unavailable: number; config: number; failure: number } = {
	info: 0,
	ok: 0,
	warn: 1,
	critical: 2,
	usage: 64,
	unavailable: 69,
	config: 78,
	failure: 70,
};

/** What a CLI subcommand produces: a Report for people and plain data for --json. */
export interface CliResult {
	readonly report: Report;
	readonly data: unknown;
	/** Printed as it is instead of the report (e.g. `incident --markdown`). */
	readonly raw?: string;
}

interface CliCommand {
	readonly usage: string;
	/** Status commands (health, pool) exit 0/1/2 by the report's level, for cron and CI; lookups exit 0. */
	readonly exitByLevel?: boolean;
	/** "bot" for commands that talk to Discord or the bot's webhook: they need its secrets too. */
	readonly configMode?: ConfigMode;
	/**
	 * false: one line per item whatever its length (the verbatim log listing, kept greppable); otherwise fitted to the
	 * terminal.
	 */
	readonly wrap?: false;
	readonly options: NonNullable<Parameters<typeof parseArgs>[0]>["options"];
	run(ctx: AppContext, values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<CliResult>;
}

const CLI_COMMANDS: Record<string, CliCommand> = {
	health: {
		usage: "opsbot health [--env NAME] [--json]",
		exitByLevel: true,
		options: { env: { type: "string" } },
		async run(ctx, values) {
			const environment =
				typeof values.env === "string" && values.env !== "all" ? requireEnvironment(ctx.config.ops, values.env) : "all";
			const snapshots =
				environment === "all" ? await ctx.services.health.checkAll() : [await ctx.services.health.check(environment)];
			return {
				report:
					environment === "all" ? healthSummaryReport(snapshots, HEALTH_DETAIL_HINT.cli) : healthReport(snapshots[0]!),
				data: snapshots,
			};
		},
	},
	whodeleted: {
		usage: "opsbot whodeleted TYPE ID [--env NAME] [--json]",
		options: { env: { type: "string" } },
		async run(ctx, values, positionals) {
			const [type, id] = positionals;
			if (!type || !id || positionals.length > 2)
				throw new UserFacingError("usage: opsbot whodeleted TYPE ID [--env NAME] [--json]");
			const environment = requirePostgresEnv(ctx, values.env);
			const result = await ctx.services.audit.whoDeleted(environment, type, id);
			// The CLI runs with the operator's own database credentials: nothing to mask.
			return { report: whoDeletedReport(result, true), data: result };
		},
	},
	audit: {
		usage:
			"opsbot audit [--user U] [--action A] [--type T] [--id ID] [--since 24h] [--until ISO] [--failed-only] " +
			"[--env NAME] [--json] [--explain]",
		options: {
			env: { type: "string" },
			user: { type: "string" },
			action: { type: "string" },
			type: { type: "string" },
			id: { type: "string" },
			since: { type: "string" },
			until: { type: "string" },
			"failed-only": { type: "boolean" },
			explain: { type: "boolean" },
		},
		async run(ctx, values) {
			const environment = requirePostgresEnv(ctx, values.env);
			const str = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : null);
			const filters = auditFilters({
				user: str("user"),
				action: str("action"),
				type: str("type"),
				id: str("id"),
				since: str("since"),
				until: str("until"),
				failedOnly: values["failed-only"] === true,
			});
			if (values.explain) {
				const query = ctx.services.audit.searchQuery(filters, { size: 10 });
				const plan = await ctx.services.databases
					.get(environment)!
					.read<{ "QUERY PLAN": string }>(`EXPLAIN ${query.sql}`, query.params);
				const suggestions = ctx.services.audit.suggestIndexes(filters);
				const lines = plan.map((r) => r["QUERY PLAN"]);
				return {
					report: {
						title: "How PostgreSQL would run this /audit search",
						level: suggestions.length > 0 ? "warn" : "ok",
						summary: [
							...lines,
							"",
							suggestions.length > 0
								? "An index that would serve this filter (opsbot never creates indexes; ask the application's owners):"
								: "The application's own indexes serve this filter.",
							...suggestions,
						].join("\n"),
					},
					data: { plan: lines, suggestions },
				};
			}
			const { events, truncated } = await ctx.services.audit.searchAll(environment, filters);
			return {
				report: auditPageReport(events.slice(0, 50), filters, 0, events.length > 50, true),
				data: { events, truncated },
			};
		},
	},
	logs: {
		wrap: false,
		usage:
			"opsbot logs (--service S | --correlation ID | --query LOGQL) [--level L] [--contains TEXT] [--since 1h] " +
			"[--limit N] [--env NAME] [--json]",
		options: {
			env: { type: "string" },
			service: { type: "string" },
			level: { type: "string" },
			contains: { type: "string" },
			correlation: { type: "string" },
			since: { type: "string" },
			limit: { type: "string" },
			query: { type: "string" },
		},
		async run(ctx, values) {
			const str = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : null);
			const limit = str("limit");
			if (limit !== null && !/^\d+$/.test(limit)) throw new UserFacingError("--limit must be a whole number");
			// The CLI is run by an operator on the host: raw queries are allowed.
			const request = logSearchRequest(ctx.config.ops, {
				env: str("env"),
				service: str("service"),
				level: str("level"),
				contains: str("contains"),
				correlation: str("correlation"),
				since: str("since"),
				limit: limit === null ? null : Number(limit),
				query: str("query"),
			});
			const result = await searchLogs({ logs: ctx.services.logs, ops: ctx.config.ops }, request);
			const cursor = (c: { ns: bigint; id: string } | undefined) => (c ? { ns: c.ns.toString(), id: c.id } : undefined);
			return {
				// Every line found, verbatim, and the LogQL as it ran; a Discord page shows 20 readable lines.
				report: logsVerbatimReport(result, logsTitle(request)),
				data: {
					...result,
					startNs: result.startNs.toString(),
					endNs: result.endNs.toString(),
					before: cursor(result.before),
					after: cursor(result.after),
					entries: result.entries.map((e) => ({ ...e, ns: e.ns.toString() })),
				},
			};
		},
	},
	actions: {
		usage: "opsbot actions [--action NAME] [--limit N] [--json]",
		options: { action: { type: "string" }, limit: { type: "string" } },
		async run(ctx, values) {
			const limit = typeof values.limit === "string" ? Number(values.limit) : 50;
			if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
				throw new UserFacingError("--limit must be a whole number from 1 to 10000");
			const records = await ctx.services.actionLog.recent(
				limit,
				typeof values.action === "string" ? { action: values.action } : {},
			);
			return { report: actionLogReport(records), data: records };
		},
	},
	pool: {
		usage: "opsbot pool [--env NAME] [--json]",
		exitByLevel: true,
		options: { env: { type: "string" } },
		async run(ctx, values) {
			const environment = requirePostgresEnv(ctx, values.env);
			const snapshot = await ctx.services.pool.snapshot(environment);
			return { report: poolReport(snapshot, ctx.config.ops.pool), data: snapshot };
		},
	},
	doctor: {
		usage: "opsbot doctor [--env NAME] [--json]",
		exitByLevel: true,
		options: { env: { type: "string" } },
		async run(ctx, values) {
			const environment = typeof values.env === "string" ? requireEnvironment(ctx.config.ops, values.env) : undefined;
			// Loaded here: only doctor talks to Discord's REST API, and every other command would pay for loading it.
			const { runDoctor } = await import("./services/doctor.ts");
			const result = await runDoctor(
				{ config: ctx.config, health: ctx.services.health },
				environment ? { environment } : {},
			);
			return { report: doctorReport(result), data: result };
		},
	},
	"test-alert": {
		usage: "opsbot test-alert [--channel ID] [--severity warning|critical|info] [--resolve-after SECONDS] [--json]",
		configMode: "bot",
		options: { channel: { type: "string" }, severity: { type: "string" }, "resolve-after": { type: "string" } },
		async run(ctx, values) {
			const severity = typeof values.severity === "string" ? values.severity : "warning";
			if (!/^[a-z]{1,16}$/.test(severity))
				throw new UserFacingError("--severity must be a lowercase word such as warning, critical or info");
			const channel = typeof values.channel === "string" ? values.channel : undefined;
			if (channel !== undefined && !/^\d{17,20}$/.test(channel))
				throw new UserFacingError("--channel must be a Discord channel id (17-20 digits)");
			const resolveAfter = typeof values["resolve-after"] === "string" ? Number(values["resolve-after"]) : 60;
			if (!Number.isInteger(resolveAfter) || resolveAfter < 0 || resolveAfter > 3_600)
				throw new UserFacingError("--resolve-after must be a whole number of seconds from 0 to 3600");
			const target = ownWebhook(ctx.config);
			const alerts = ctx.config.ops.alerts!;
			const sentBy = operator();
			const alert = newTestAlert(alerts, {
				severity,
				sentBy,
				via: "opsbot test-alert",
				...(channel ? { channel } : {}),
			});
			// Ctrl-C from here on resolves the group (at once) rather than leaving a test alert firing.
			const early = new AbortController();
			const interrupt = () => early.abort();
			process.once("SIGINT", interrupt);
			const record = (result: string, step: string) =>
				ctx.services.actionLog.record({
					actor: { userId: "cli", username: sentBy },
					action: "alert.test",
					target: alert.channels.join(", "),
					result,
					details: { step, severity, groupKey: alert.groupKey },
				});
			await postWebhook(target, alert.payload("firing", new Date())).catch(async (err: unknown) => {
				process.off("SIGINT", interrupt);
				await record("failed", "firing");
				throw err;
			});
			await record("ok", "firing");
			process.stderr.write(
				`Test alert sent to channel ${alert.channels.join(", ")}; resolving it in ${resolveAfter} s (Ctrl-C ` +
					`resolves it now).\n`,
			);
			await new Promise<void>((resolve) => {
				if (early.signal.aborted) return resolve();
				const timer = setTimeout(resolve, resolveAfter * 1_000);
				early.signal.addEventListener(
					"abort",
					() => {
						clearTimeout(timer);
						resolve();
					},
					{ once: true },
				);
			});
			process.off("SIGINT", interrupt);
			await postWebhook(target, alert.payload("resolved", new Date()));
			await record("ok", "resolved");
			const sent = {
				groupKey: alert.groupKey,
				labels: alert.labels,
				channels: alert.channels,
				webhook: target.url,
				resolved: true,
			};
			return { report: testAlertReport({ channels: alert.channels, severity, resolvesInSeconds: 0 }), data: sent };
		},
	},
	silence: {
		usage:
			"opsbot silence list [--env NAME] | create --matchers M --duration 1h --comment TEXT [--env NAME] [--dry-run]" +
			" | extend ID --by 2h | expire ID  [--json]",
		options: {
			env: { type: "string" },
			matchers: { type: "string" },
			duration: { type: "string" },
			comment: { type: "string" },
			by: { type: "string" },
			"dry-run": { type: "boolean" },
		},
		async run(ctx, values, positionals) {
			return runSilenceCli(ctx, values, positionals);
		},
	},
	maintenance: {
		usage:
			"opsbot maintenance --env NAME (--service S | --matchers M) [--start now|+30m|ISO] --duration 1h" +
			" --comment TEXT [--dry-run] [--json]",
		options: {
			env: { type: "string" },
			service: { type: "string" },
			matchers: { type: "string" },
			start: { type: "string" },
			duration: { type: "string" },
			comment: { type: "string" },
			"dry-run": { type: "boolean" },
		},
		async run(ctx, values) {
			const str = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : undefined);
			const environment = requireEnvironment(ctx.config.ops, str("env") ?? null);
			const matchers = maintenanceMatchers(ctx.config.ops, environment, {
				service: str("service") ?? null,
				matchers: str("matchers") ?? null,
			});
			const startsAt = maintenanceStart(str("start"));
			return createFromCli(ctx, environment, matchers, values, startsAt, true);
		},
	},
	alerts: {
		usage: "opsbot alerts [--history [--since 24h] [--name TEXT]] [--json]",
		options: { history: { type: "boolean" }, since: { type: "string" }, name: { type: "string" } },
		async run(ctx, values) {
			if (!values.history) {
				if (values.since !== undefined || values.name !== undefined)
					throw new UserFacingError("--since and --name go with --history.");
				const groups = await readHeldGroups(ctx.config, ctx.log);
				return { report: heldGroupsReport(groups), data: groups };
			}
			const now = Date.now();
			const since = historySince(typeof values.since === "string" ? values.since : undefined, now);
			const name = typeof values.name === "string" && values.name ? values.name : undefined;
			const query = { since, until: now + 1, ...(name ? { name } : {}), limit: HISTORY_LISTED };
			const summary = (await readAlertStore(ctx.config, ctx.log, (store) => store.history.history(query))) ?? {
				...summarise(query, [], []),
			};
			return { report: historyReport(summary, { now, ...(name ? { name } : {}) }), data: summary };
		},
	},
	incident: {
		usage: "opsbot incident MESSAGE-LINK|GROUP-ID [--episode N] [--markdown] [--json]",
		options: { episode: { type: "string" }, markdown: { type: "boolean" } },
		async run(ctx, values, positionals) {
			const [target] = positionals;
			if (!target || positionals.length > 1)
				throw new UserFacingError("Name one alert: its card's message link (Copy Message Link) or its group id.");
			const alerts = ctx.config.ops.alerts;
			if (!alerts)
				throw new UserFacingError([
					"This opsbot has no ",
					{ code: "alerts" },
					" configured, so it holds no incidents.",
				]);
			const episode = values.episode === undefined ? undefined : Number(values.episode);
			if (episode !== undefined && (!Number.isInteger(episode) || episode < 1))
				throw new UserFacingError("--episode is a whole number from 1.");
			const link = parseMessageLink(target);
			if (!link && !/^[0-9a-f]{32}$/.test(target))
				throw new UserFacingError(
					"That is neither a Discord message link (https://discord.com/channels/…) nor a 32-character group id.",
				);
			const timeline = await readAlertStore(ctx.config, ctx.log, async (store) => {
				const found = link ? await store.history.findCard(link.message) : { groupId: target, episode };
				if (!found) return undefined;
				return buildTimeline(store, { ...ctx.config.ops, alerts }, found.groupId, episode ?? found.episode);
			});
			if (!timeline)
				throw new UserFacingError(
					link
						? "opsbot holds no alert whose current card is that message " +
								"(for an earlier episode's card, give the group id and --episode)."
						: "opsbot holds no such alert group or episode.",
				);
			return {
				report: timeline.report,
				data: { episode: timeline.episode, events: timeline.events, links: timeline.links },
				...(values.markdown ? { raw: timeline.markdown } : {}),
			};
		},
	},
};

type CliValues = Record<string, string | boolean | undefined>;

/** Records a CLI silence action under the operator's name, as the Discord side records the user's. */
function recordCli(ctx: AppContext, action: string, target: string, result: string, details: Record<string, unknown>) {
	return ctx.services.actionLog.record({
		actor: { userId: "cli", username: operator() },
		action,
		target,
		result,
		details,
	});
}

/** `opsbot silence create` and `opsbot maintenance`: Discord's checks, a preview, then (not with --dry-run) it. */
async function createFromCli(
	ctx: AppContext,
	environment: string,
	matchers: Matcher[],
	values: CliValues,
	startsAt: Date,
	maintenance: boolean,
): Promise<CliResult> {
	const action = maintenance ? "maintenance.create" : "alert.silence";
	const str = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : "");
	const durationMs = parseSilenceDuration(str("duration"), maxSilenceMs(ctx.config.ops));
	const draft = {
		environment,
		matchers,
		startsAt,
		endsAt: new Date(startsAt.getTime() + durationMs),
		comment: maintenance ? maintenanceComment(silenceComment(str("comment"))) : silenceComment(str("comment")),
	};
	const alertmanager = alertmanagerFor(ctx.services.alertmanager, environment);
	const preview = await previewSilence({ ops: ctx.config.ops, alertmanager }, draft);
	if (values["dry-run"] === true)
		return { report: silencePreviewReport(preview, durationMs, false), data: { preview, created: false } };
	const id = await createSilence(alertmanager, draft, `${operator()} via opsbot CLI`, {
		action,
		target: environment,
		record: (...entry) => recordCli(ctx, ...entry),
	});
	return {
		report: silenceCreatedReport(id, draft, maintenance),
		data: { id, ...draft, mutingNow: preview.muted.length, otherEnvironments: preview.otherEnvironments },
	};
}

/** `opsbot silence list|create|extend|expire`. */
async function runSilenceCli(ctx: AppContext, values: CliValues, positionals: string[]): Promise<CliResult> {
	const [sub, id, ...extra] = positionals;
	const env = typeof values.env === "string" ? requireEnvironment(ctx.config.ops, values.env) : undefined;
	const usage = CLI_COMMANDS.silence!.usage;
	if (extra.length > 0) throw new UserFacingError(`usage: ${usage}`);
	if (sub === "list") {
		const environments = env
			? [env]
			: Object.keys(ctx.config.ops.environments).filter((e) => ctx.config.ops.environments[e]?.alertmanager);
		const listing = await listSilences(ctx.services.alertmanager, environments);
		return {
			report: silenceListReport(listing, env ?? "every environment", 0, Math.max(1, listing.silences.length)),
			data: listing,
		};
	}
	if (sub === "create") {
		if (typeof values.matchers !== "string")
			throw new UserFacingError("--matchers is required, e.g. --matchers 'alertname=\"ApiDown\"'");
		const environment = env ?? requireEnvironment(ctx.config.ops, null);
		return createFromCli(ctx, environment, parseMatchers(values.matchers), values, new Date(), false);
	}
	if ((sub === "extend" || sub === "expire") && id) {
		const environment = env ?? requireEnvironment(ctx.config.ops, null);
		const alertmanager = alertmanagerFor(ctx.services.alertmanager, environment);
		const found = await liveSilence(alertmanager, id);
		const record: RecordSilenceAction = (...entry) => recordCli(ctx, ...entry);
		if (sub === "extend") {
			const maxMs = maxSilenceMs(ctx.config.ops);
			const byMs = parseSilenceDuration(typeof values.by === "string" ? values.by : "", maxMs);
			const extended = await extendSilence(alertmanager, found, byMs, maxMs, { environment, record });
			return { report: silenceExtendedReport(extended, environment), data: extended };
		}
		const outcome = await expireSilence(alertmanager, found.id, { environment, record });
		return { report: silenceExpireReport(found, outcome, environment), data: { id: found.id, outcome } };
	}
	throw new UserFacingError(`usage: ${usage}`);
}

/** The terminal's width when printing to one (at least 40 columns), else the classic 80. */
function terminalWidth(): number {
	return process.stdout.isTTY && process.stdout.columns ? Math.max(40, process.stdout.columns) : TERMINAL_WIDTH;
}

function requirePostgresEnv(ctx: AppContext, requested: unknown): string {
	return requireEnvironment(ctx.config.ops, typeof requested === "string" ? requested : undefined, "postgres");
}

const INIT_USAGE = "opsbot init [--guild ID --channel ID --role ID --env NAME --url URL]";

function usage(): string {
	return `Usage:\n  ${INIT_USAGE}\n${Object.values(CLI_COMMANDS)
		.map((c) => `  ${c.usage}`)
		.join(
			"\n",
		)}\n\nEnvironment: OPSBOT_CONFIG (default ./opsbot.yaml) and the secrets it names; .env is read if present.`;
}

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function runCli(
	argv: string[],
	io: { out: (s: string) => void; err: (s: string) => void } = {
		out: (s) => process.stdout.write(s),
		err: (s) => process.stderr.write(s),
	},
): Promise<number> {
	const [name, ...rest] = argv;
	if (name === "init") return runInit(rest, io);
	const command = name ? CLI_COMMANDS[name] : undefined;
	if (!command) {
		io.err(`${name && name !== "--help" ? `unknown command "${name}"\n` : ""}${usage()}\n`);
		return name === "--help" ? 0 : EXIT.usage;
	}
	let parsed;
	try {
		parsed = parseArgs({
			args: rest,
			options: { ...command.options, json: { type: "boolean" }, help: { type: "boolean" } },
			allowPositionals: true,
			strict: true,
		});
	} catch (err) {
		io.err(`${(err as Error).message}\nUsage: ${command.usage}\n`);
		return EXIT.usage;
	}
	if (parsed.values.help) {
		io.out(`Usage: ${command.usage}\n`);
		return 0;
	}
	const config = readConfig(command.configMode ?? "cli");
	if (config instanceof ConfigError) {
		io.err(`${config.message}\n`);
		return EXIT.config;
	}
	// Logs go to stderr so --json output stays parseable, one plain line each: a person is reading the report.
	const log = createLogger(
		{ level: config.env.LOG_LEVEL === "info" ? "warn" : config.env.LOG_LEVEL, pretty: false },
		plainLogLines(io.err),
	);
	const { ctx, close } = await createContext(config, log, { withAlertStore: false });
	try {
		const result = await command.run(
			ctx,
			parsed.values as Record<string, string | boolean | undefined>,
			parsed.positionals,
		);
		io.out(
			parsed.values.json
				? `${JSON.stringify(result.data, null, 2)}\n`
				: result.raw !== undefined
					? result.raw
					: `${reportToText(result.report, { width: command.wrap === false ? Infinity : terminalWidth() })}\n`,
		);
		return command.exitByLevel ? EXIT[result.report.level] : 0;
	} catch (err) {
		if (err instanceof UserFacingError) {
			io.err(`${err.message}\n`);
			return err.unavailable ? EXIT.unavailable : EXIT.usage;
		}
		log.error({ err }, "cli command failed");
		io.err(`failed: ${err instanceof Error ? err.message : String(err)}\n`);
		return EXIT.failure;
	} finally {
		await close();
	}
}

/**
 * `opsbot init`: writes opsbot.yaml and .env in the current directory from the flags, asking on a
 * terminal for any not given; without a terminal, missing flags are a usage error.
 */
async function runInit(args: string[], io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
	let values;
	try {
		const text = { type: "string" } as const;
		values = parseArgs({
			args,
			options: { guild: text, channel: text, role: text, env: text, url: text, help: { type: "boolean" } },
			strict: true,
		}).values;
	} catch (err) {
		io.err(`${(err as Error).message}\nUsage: ${INIT_USAGE}\n`);
		return EXIT.usage;
	}
	if (values.help) {
		io.out(
			`Usage: ${INIT_USAGE}\nWrites opsbot.yaml and .env here (never over existing files); asks for what the ` +
				`flags leave out.\n`,
		);
		return 0;
	}
	const given = { guild: values.guild, channel: values.channel, role: values.role, env: values.env, url: values.url };
	const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<InitAnswers>;
	const problems = answerProblems(defined);
	const interactive = process.stdin.isTTY && process.stdout.isTTY;
	if (problems.length > 0 && !interactive) {
		io.err(`${problems.map((p) => `${p}\n`).join("")}Usage: ${INIT_USAGE}\n(or run it in a terminal to be asked)\n`);
		return EXIT.usage;
	}
	try {
		const answers =
			problems.length === 0
				? (defined as InitAnswers)
				: await askMissing(defined, { input: process.stdin, output: process.stdout });
		const written = writeInitialFiles(process.cwd(), answers);
		io.out(`Wrote ${written.config} and ${written.env}.
Next:
  1. In .env, paste DISCORD_TOKEN (Developer Portal > Bot > Reset Token) and DISCORD_APPLICATION_ID.
  2. node deploy-commands.ts --guild ${answers.guild}
  3. npm start, then type /health in the channel; npx opsbot doctor and npx opsbot test-alert check the rest.
`);
		return 0;
	} catch (err) {
		if (!(err instanceof UserFacingError)) throw err;
		io.err(`${err.message}\n`);
		return EXIT.usage;
	}
}

const PINO_LEVEL: Record<number, string> = {
	10: "trace",
	20: "debug",
	30: "info",
	40: "warning",
	50: "error",
	60: "fatal",
};
// Control characters (an ESC from an error message could restyle the terminal) become spaces.
const controls = (text: string) => flattenControls(text).trim();

/**
 * A pino destination that writes each record as one plain line ("opsbot warning: pool: postgres read
 * failed (connect ECONNREFUSED 127.0.0.1:5432)"): pino has redacted it already; the stack and the
 * JSON fields stay out of a terminal report. LOG_LEVEL=debug still shows what there is to see.
 */
export function plainLogLines(write: (line: string) => void): { write(record: string): void } {
	return {
		write(record) {
			let parsed: { level?: number; msg?: string; err?: { message?: string } };
			try {
				parsed = JSON.parse(record) as typeof parsed;
			} catch {
				write(`opsbot: ${controls(record)}\n`);
				return;
			}
			const reason = parsed.err?.message ? ` (${controls(parsed.err.message).slice(0, 300)})` : "";
			write(`opsbot ${PINO_LEVEL[parsed.level ?? 30] ?? "log"}: ${controls(parsed.msg ?? "")}${reason}\n`);
		},
	};
}

/**
 * Exits once stdout and stderr have taken everything: the report is the result, and nothing a
 * library leaves behind (a socket's timer, a pool's idle client) may hold the terminal after it.
 */
export async function exitWhenFlushed(code: number): Promise<never> {
	await Promise.all(
		[process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write("", () => resolve()))),
	);
	process.exit(code);
}

if (import.meta.main) {
	await exitWhenFlushed(await runCli(process.argv.slice(2)));
}
