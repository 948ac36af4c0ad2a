import { ActionRowBuilder, ButtonBuilder } from "@discordjs/builders";
import { ButtonStyle } from "discord-api-types/v10";
import { defaultEnvironment, findEnvironment, type OpsFile } from "../config.ts";
import type { CustomId } from "../discord/custom-id.ts";
import { type Command, component, type HandlerContext, type PendingPress, pendingState } from "../discord/handler.ts";
import { editReplyWithFiles } from "../discord/reply.ts";
import { PermissionDeniedError, PressRefusedError } from "../errors.ts";
import { inlineCode, truncate } from "../render/limits.ts";
import { type Inline, joinText, type Report, reportToEmbed, type Text } from "../render/report.ts";
import { type ReadableLine, readableLine } from "../services/log-lines.ts";
import {
	grafanaExploreUrl,
	type LogsQueryState,
	logSearchRequest,
	pageCursor,
	searchLogs,
} from "../services/log-search.ts";
import { LOG_LEVELS, type LogLevel } from "../services/logql.ts";
import type { LogCursor, LogResult, LogSearchRequest } from "../services/logs.ts";
import {
	autocompleteInput,
	environmentChoices,
	environmentOption,
	type OptionDef,
	readOptions,
	slashCommand,
} from "./options.ts";

const SHOWN_LINES = 20;

const LEVEL_ICON: Record<LogLevel, string> = {
	critical: "🔴",
	error: "🔴",
	warning: "🟠",
	info: "🔵",
	debug: "⚪",
};

/** The time of day in UTC, to the millisecond; the summary line says "times UTC". */
function hhmmss(time: Date): string {
	return time.toISOString().slice(11, 23);
}

/** One line of a page: level icon, time of day, the message on one line and the useful fields, cut to fit an embed. */
export function lineToText(line: ReadableLine): Text {
	const fields = line.fields.map(([k, v]) => `${k}=${v}`).join(" ");
	return [
		`${LEVEL_ICON[line.severity]} `,
		{ code: hhmmss(line.time) },
		` ${truncate(line.message.replace(/\s+/g, " "), 300)}`,
		...(fields ? [` · ${truncate(fields, 200)}`] : []),
	];
}

function formatRange(result: LogResult): string {
	const iso = (ns: bigint) => new Date(Number(ns / 1_000_000n)).toISOString().replace(".000Z", "Z");
	return `${iso(result.startNs)} → ${iso(result.endNs)}${result.tenant ? ` · tenant ${result.tenant}` : ""}`;
}

/** What a page knows beyond the result: whether Loki has no logs at all for the tenant (then an empty page says so). */
export interface PageContext {
	readonly tenantHasNoLogs?: boolean;
	/** The CLI's listing has no buttons: its summary points at its options instead. */
	readonly cli?: boolean;
}

/**
 * What the page holds, in words: "Showing 20 of 25 (newest first) · ◀ Older for more · Download
 * for all 25 · times UTC", or why there are none. The tenant hint only when Loki has nothing at all
 * for the tenant (it answers a tenant it has never seen exactly like a search that matched nothing).
 */
function pageSummary(result: LogResult, shown: number, page: PageContext = {}): Text {
	if (result.entries.length === 0) {
		if (result.before) return "No older lines in this time range. Newer ▶ goes back.";
		if (result.after) return "No newer lines in this time range. ◀ Older goes back.";
		const tenant: Inline[] =
			result.source === "loki" && page.tenantHasNoLogs
				? [
						". Loki has no logs at all for tenant ",
						{ code: result.tenant ?? "(none)" },
						"; check ",
						{ code: "loki.tenant" },
						" if you expected some",
					]
				: [];
		return [
			"No log lines match in this time range",
			...tenant,
			". Widen ",
			{ code: "since" },
			" or loosen the filters.",
		];
	}
	const found = result.entries.length;
	if (page.cli)
		return (
			`${found} line${found === 1 ? "" : "s"} (newest ` +
			`first)${result.more ? "; more match: narrow --since or raise --limit" : ""}`
		);
	const showing = found > shown ? `Showing ${shown} of ${found}` : `Showing ${found} line${found === 1 ? "" : "s"}`;
	const pageFurther = result.direction === "backward" ? " · ◀ Older for more" : " · Newer ▶ for more";
	const more = result.more ? pageFurther : "";
	const download = found > shown ? ` · Download for all ${found}` : result.more ? " · Download for all" : "";
	return `${showing} (newest first)${more}${download} · times UTC`;
}

function queryFooter(result: LogResult, query: string): string {
	return `${result.source === "loki" ? "LogQL" : "Ran"}: ${query}\n${formatRange(result)}`;
}

/**
 * One page of the search as a Report: newest first, readable lines cut to fit an embed, with the
 * query exactly as it ran, the range and the tenant in the footer (which the Discord view cuts).
 */
export function logsReport(result: LogResult, title: string, page: PageContext = {}): Report {
	const lines = result.entries.slice(0, SHOWN_LINES).map(readableLine);
	return {
		title,
		// A lookup, not an alert: neutral whatever its lines say (each line has its own level mark).
		level: "info",
		summary: joinText([pageSummary(result, lines.length, page), ...lines.map(lineToText)], "\n"),
		footer: queryFooter(result, result.query),
	};
}

// C0 controls (an ESC can restyle or move a terminal), DEL and C1 controls; tabs stay.
const CONTROLS = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;

/** Text on one line with its control characters shown as escapes (\n, \r, \xNN). */
function showControls(text: string): string {
	return text.replace(CONTROLS, (c) =>
		c === "\n" ? "\\n" : c === "\r" ? "\\r" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
	);
}

/**
 * The whole result as a Report of every line verbatim, for `opsbot logs`: each line as Loki stored
 * it with its nanosecond time, one per line (control characters shown as escapes, so a line can
 * neither break in two nor restyle the terminal), and the LogQL exactly as it ran. A page in
 * Discord (logsReport) shows readable lines instead; the terminal view of this one is the listing.
 */
export function logsVerbatimReport(result: LogResult, title: string): Report {
	return {
		title: showControls(title),
		level: "info",
		summary: joinText(
			[
				pageSummary(result, result.entries.length, { cli: true }),
				...result.entries.map((e) => `${isoNs(e.ns)}  ${showControls(e.line)}`),
			],
			"\n",
		),
		footer: queryFooter(result, showControls(result.query)),
	};
}

function isoNs(ns: bigint): string {
	const ms = ns / 1_000_000n;
	return new Date(Number(ms))
		.toISOString()
		.replace(/\.\d{3}Z$/, `.${(ns % 1_000_000_000n).toString().padStart(9, "0")}Z`);
}

/** The full result as a text file: one line per entry, ISO time first. */
export function logsFile(result: LogResult): string {
	return `${result.entries.map((e) => `${new Date(Number(e.ns / 1_000_000n)).toISOString()} ${e.line}`).join("\n")}\n`;
}

/** The title a search is shown under. */
export function logsTitle(request: LogSearchRequest): string {
	const what = request.service || (request.correlation ? `request ${request.correlation}` : "query");
	return `Logs of ${what} on ${request.environment}`;
}

function cursorArgs(cursor: LogCursor): string[] {
	return [cursor.ns.toString(), cursor.id];
}

/**
 * Older and Newer follow the one order of lines (time, then id), from the edge of what is shown.
 * An empty page always keeps the way back: after an empty Older, Newer starts again from the
 * range's beginning (there is nothing before the old cursor); after an empty Newer, Older starts
 * from its end.
 */
function buttons(ops: OpsFile, token: string, result: LogResult, environment: string) {
	const oldest = result.entries.at(-1);
	const newest = result.entries[0];
	// undefined: no such page (the button is disabled); null: from the range's edge, without a cursor.
	let older: LogCursor | null | undefined;
	let newer: LogCursor | null | undefined;
	if (oldest && newest) {
		const olderExists = result.direction === "backward" ? result.more : result.after !== undefined;
		const newerExists = result.direction === "forward" ? result.more : result.before !== undefined;
		if (olderExists) older = oldest;
		if (newerExists) newer = newest;
	} else if (result.before) {
		newer = null;
	} else if (result.after) {
		older = null;
	}
	const row = new ActionRowBuilder<ButtonBuilder>();
	row.addComponents(
		new ButtonBuilder()
			.setCustomId(logsOlder.id(token, older ?? undefined))
			.setLabel("◀ Older")
			.setStyle(ButtonStyle.Secondary)
			.setDisabled(older === undefined),
		new ButtonBuilder()
			.setCustomId(logsNewer.id(token, newer ?? undefined))
			.setLabel("Newer ▶")
			.setStyle(ButtonStyle.Secondary)
			.setDisabled(newer === undefined),
		new ButtonBuilder()
			.setCustomId(logsDownload.id(token))
			.setLabel("Download")
			.setEmoji({ name: "📄" })
			.setStyle(ButtonStyle.Secondary),
	);
	const link =
		result.source === "loki"
			? grafanaExploreUrl(findEnvironment(ops, environment)?.loki, result.query, result.startNs, result.endNs)
			: undefined;
	if (link) row.addComponents(new ButtonBuilder().setURL(link).setLabel("Open in Grafana").setStyle(ButtonStyle.Link));
	return row;
}

/** Runs a search and returns the /logs message for it, with its paging state stored for the buttons. */
export async function logsMessage(ctx: HandlerContext, request: LogSearchRequest, title: string) {
	const state: LogsQueryState = { request, title };
	return render(ctx, await ctx.services.logQueries.put(ctx.actor.userId, state), state, request);
}

function searchDeps(ctx: HandlerContext) {
	return { logs: ctx.services.logs, ops: ctx.config.ops };
}

async function render(ctx: HandlerContext, token: string, state: LogsQueryState, request: LogSearchRequest) {
	// One page is what an embed shows; Download has the whole range.
	const result = await searchLogs(searchDeps(ctx), { ...request, limit: Math.min(request.limit, SHOWN_LINES) });
	const firstPageEmpty = result.source === "loki" && result.entries.length === 0 && !result.before && !result.after;
	const page: PageContext = firstPageEmpty ? { tenantHasNoLogs: await tenantHasNoLogs(ctx, request.environment) } : {};
	return {
		embeds: [reportToEmbed(logsReport(result, state.title, page))],
		components: [buttons(ctx.config.ops, token, result, request.environment)],
	};
}

/**
 * Whether Loki has no service at all for the environment's tenant in its recent label values (a wrong `loki.tenant`);
 * unknown counts as no.
 */
async function tenantHasNoLogs(ctx: HandlerContext, environment: string): Promise<boolean> {
	try {
		return (await ctx.services.logs.services(environment)).length === 0;
	} catch {
		return false;
	}
}

const LOGS_OPTIONS = [
	{
		type: "string",
		name: "service",
		description: "Service (or container where there is no Loki)",
		autocomplete: true,
		maxLength: 100,
	},
	{
		type: "string",
		name: "level",
		description: "Only this level",
		choices: LOG_LEVELS.map((l) => ({ name: l, value: l })),
	},
	{
		type: "string",
		name: "contains",
		description: "Text the line must contain (exact, case-sensitive)",
		maxLength: 1000,
	},
	{
		type: "string",
		name: "correlation",
		description: "Correlation id (alone, it searches every service)",
		maxLength: 100,
	},
	{ type: "string", name: "since", description: "15m, 1h, 24h, 7d, or FROM..TO with ISO dates", maxLength: 80 },
	{
		type: "integer",
		name: "limit",
		description: `Lines per page, at most ${SHOWN_LINES} (Download has the whole range)`,
		min: 1,
		max: SHOWN_LINES,
	},
	{ type: "string", name: "query", description: "Raw LogQL (allowed roles only)", maxLength: 1000 },
	environmentOption("Environment (default: the configured default)"),
] as const satisfies readonly OptionDef[];

/** `/logs service [level] [contains] [correlation] [since] [limit] [query] [env]`. */
export const logs: Command = {
	name: "logs",
	data: slashCommand({ name: "logs", description: "Search the logs of a service", options: LOGS_OPTIONS }),
	async execute(interaction, ctx) {
		const o = readOptions(interaction.options, LOGS_OPTIONS);
		if (o.query && !ctx.access.mayDo(ctx.actor, "logs.raw-query"))
			throw new PermissionDeniedError("run raw LogQL queries");
		const request = logSearchRequest(ctx.config.ops, o);
		await interaction.editReply(await logsMessage(ctx, request, logsTitle(request)));
	},
	async autocomplete(interaction, ctx) {
		const { focused, values } = autocompleteInput(interaction.options, LOGS_OPTIONS);
		if (focused.name === "env") return environmentChoices(ctx.config.ops, focused.value);
		const environment = values.env ?? defaultEnvironment(ctx.config.ops);
		const services = await ctx.services.logs.services(environment);
		return services
			.filter((s) => s.toLowerCase().includes(focused.value.toLowerCase()))
			.slice(0, 25)
			.map((s) => ({ name: s.slice(0, 100), value: s.slice(0, 100) }));
	},
};

const logsSearch = pendingState((services) => services.logQueries, "peek", {
	expired: "This search has expired; run /logs again.",
	otherUser: "These buttons belong to whoever ran /logs; run it yourself.",
});

/**
 * The search and the page an Older/Newer press asks for (re-checked against the search, whatever the customId says).
 */
async function pagePress(
	id: CustomId,
	ctx: HandlerContext,
): Promise<PendingPress<LogsQueryState> & { cursor: LogCursor | undefined }> {
	const search = await logsSearch(id, ctx);
	return {
		...search,
		cursor: pageCursor(search.value.request, search.args[0], search.args[1], ctx.config.ops.logs.maxRangeHours),
	};
}

/** Older: the lines before the oldest one shown (or, without a cursor, the newest page). */
export const logsOlder = component({
	area: "logs",
	action: "older",
	encode: (token: string, cursor?: LogCursor) => [token, ...(cursor ? cursorArgs(cursor) : [])],
	permission: { command: "logs" },
	defer: "update",
	parse: pagePress,
	async run(interaction, { token, value, cursor }, ctx) {
		await interaction.editReply(
			await render(ctx, token, value, {
				...value.request,
				direction: "backward",
				...(cursor ? { before: cursor } : {}),
			}),
		);
	},
});

/**
 * Newer: the lines after the newest one shown (or, without a cursor, the oldest page), up to the end of the original
 * search.
 */
export const logsNewer = component({
	area: "logs",
	action: "newer",
	encode: (token: string, cursor?: LogCursor) => [token, ...(cursor ? cursorArgs(cursor) : [])],
	permission: { command: "logs" },
	defer: "update",
	parse: pagePress,
	async run(interaction, { token, value, cursor }, ctx) {
		await interaction.editReply(
			await render(ctx, token, value, { ...value.request, direction: "forward", ...(cursor ? { after: cursor } : {}) }),
		);
	},
});

/**
 * The "Logs for this request" button (from /whodeleted): every service's lines with that correlation id, around the
 * event.
 */
export function correlationButton(
	ops: OpsFile,
	environment: string,
	correlationId: string,
	at: Date,
): ButtonBuilder | undefined {
	if (!findEnvironment(ops, environment)?.loki) return undefined;
	try {
		return new ButtonBuilder()
			.setCustomId(logsCorrelation.id(environment, correlationId, at))
			.setLabel(`Logs for request ${correlationId.slice(0, 24)}`)
			.setEmoji({ name: "🔎" })
			.setStyle(ButtonStyle.Secondary);
	} catch {
		return undefined; // an id with characters a customId cannot carry: no button rather than a wrong one
	}
}

/** Opens the log search for a correlation id, 15 minutes either side of the event. */
export const logsCorrelation = component({
	area: "logs",
	action: "correlation",
	encode: (environment: string, correlationId: string, at: Date) => [
		environment,
		correlationId,
		String(Math.floor(at.getTime() / 1000)),
	],
	permission: { command: "logs" },
	defer: "reply",
	async parse(id, ctx) {
		const [environment = "", correlation = "", seconds = ""] = id.args;
		if (!findEnvironment(ctx.config.ops, environment)?.loki)
			throw new PressRefusedError("Log search is not configured for that environment any more.", {
				reason: "no log search for the environment",
			});
		if (!/^\d{1,12}$/.test(seconds))
			throw new PressRefusedError("That button is not valid.", { reason: "invalid time" });
		return { environment, correlation, at: Number(seconds) * 1000 };
	},
	async run(interaction, { environment, correlation, at }, ctx) {
		const request: LogSearchRequest = {
			environment,
			service: "",
			correlation,
			start: new Date(at - 15 * 60_000),
			end: new Date(at + 15 * 60_000),
			limit: ctx.config.ops.logs.defaultLimit,
		};
		await interaction.editReply(await logsMessage(ctx, request, logsTitle(request)));
	},
});

/** Download: the whole result, up to logs.maxLimit lines, attached as a file. */
export const logsDownload = component({
	area: "logs",
	action: "download",
	encode: (token: string) => [token],
	permission: { command: "logs" },
	defer: "reply",
	parse: logsSearch,
	async run(interaction, { value: state }, ctx) {
		const result = await searchLogs(searchDeps(ctx), { ...state.request, limit: ctx.config.ops.logs.maxLimit });
		const maxLimit = ctx.config.ops.logs.maxLimit;
		const cut = result.more ? ` (the configured maximum of ${maxLimit}; narrow the range for the rest)` : "";
		await editReplyWithFiles(
			interaction,
			{
				content: `${result.entries.length} lines${cut}.\n${inlineCode(truncate(result.query, 300))}`,
				files: [
					{
						attachment: Buffer.from(logsFile(result)),
						name: `logs-${(state.request.service || "query").replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 40)}.txt`,
					},
				],
			},
			ctx.log,
		);
	},
});
