import { ActionRowBuilder, ButtonBuilder } from "@discordjs/builders";
import type { ApplicationCommandOptionChoiceData } from "discord.js";
import { ButtonStyle } from "discord-api-types/v10";
import { defaultEnvironment } from "../config.ts";
import { type Command, component, type HandlerContext, pendingState } from "../discord/handler.ts";
import { editReplyWithFiles } from "../discord/reply.ts";
import { PressRefusedError, UserFacingError } from "../errors.ts";
import { type Inline, joinText, type Report, reportToEmbed, type Text } from "../render/report.ts";
import type { ActionRecord } from "../services/action-log.ts";
import {
	type AuditEvent,
	type AuditFilters,
	type AuditQueryState,
	auditFilters,
	maskEmail,
	maskIp,
	shortUserAgent,
} from "../services/audit.ts";
import {
	autocompleteInput,
	environmentChoices,
	environmentOption,
	type OptionDef,
	readOptions,
	requireEnvironment,
	slashCommand,
} from "./options.ts";

/** Events per /audit page: ten one-liners stay readable on a phone. */
export const PAGE_SIZE = 10;

/** The lines describing one audit event; emails and IPs masked unless `showPii`. */
export function eventLines(e: AuditEvent, showPii: boolean): Text[] {
	const who: Inline[] = [
		e.username ? { strong: e.username } : "unknown user",
		e.userId !== null ? ` (id ${e.userId})` : "",
		e.userEmail ? ` ${showPii ? e.userEmail : maskEmail(e.userEmail)}` : "",
	];
	const from =
		`${e.ipAddress ? (showPii ? e.ipAddress : maskIp(e.ipAddress)) : "unknown address"} · ` +
		`${shortUserAgent(e.userAgent)}`;
	const request: Text[] = [
		...(e.requestMethod ? [e.requestMethod] : []),
		...(e.requestPath ? [{ code: e.requestPath.slice(0, 200) }] : []),
		...(e.function ? [["→ ", { code: e.function.slice(0, 80) }]] : []),
	];
	const outcome = e.success ? "✅ succeeded" : `❌ failed: ${(e.error ?? "no error text").slice(0, 200)}`;
	return [
		["by ", ...who],
		`from ${from}`,
		...(request.length > 0 ? [joinText(request, " ")] : []),
		[
			...(e.correlationId ? ["correlation ", { code: e.correlationId }, " · "] : []),
			outcome,
			e.durationMs !== null ? ` · ${e.durationMs.toFixed(1)} ms` : "",
		],
	];
}

/** A compact one-liner for lists: time, action, resource, who, outcome. */
export function eventLine(e: AuditEvent, showPii: boolean): Text {
	const who = e.username ? e.username : e.userId !== null ? `user ${e.userId}` : "unknown";
	const email = e.userEmail ? ` ${showPii ? e.userEmail : maskEmail(e.userEmail)}` : "";
	// The outcome is the line's one status mark (the report line's icon, or "failed" where there is none).
	return [
		{ time: e.at, style: "absolute" },
		" ",
		{ strong: e.action },
		` ${e.resourceType} `,
		{ code: e.resourceId ?? "-" },
		` by ${who}${email}${e.success ? "" : " · failed"}`,
	];
}

function describeFilters(f: AuditFilters): Text {
	const named = (name: string, value: string | undefined, max: number): Text[] =>
		value ? [[`${name} `, { code: value.slice(0, max) }]] : [];
	const parts = [
		...named("user", f.user, 60),
		...named("action", f.action, 30),
		...named("type", f.resourceType, 60),
		...named("id", f.resourceId, 60),
		...(f.failedOnly ? ["failed only"] : []),
	];
	return [
		...(parts.length > 0 ? joinText(parts, " · ") : ["all events"]),
		" · ",
		{ time: f.since, style: "absolute" },
		" → ",
		{ time: f.until, style: "absolute" },
	];
}

/** One /audit page as a Report. */
export function auditPageReport(
	events: readonly AuditEvent[],
	filters: AuditFilters,
	pageIndex: number,
	hasMore: boolean,
	showPii: boolean,
): Report {
	return {
		title:
			events.length === 0 && pageIndex === 0
				? "Audit log: nothing matches"
				: `Audit log, page ${pageIndex + 1}${hasMore ? "" : " (last)"}`,
		// A lookup: neutral, whatever the events say (each line carries its own mark).
		level: "info",
		summary: describeFilters(filters),
		lines: events.map((e) => ({
			level: e.success ? ("ok" as const) : ("critical" as const),
			label: `#${e.id}`,
			text: eventLine(e, showPii),
		})),
		...(showPii ? {} : { footer: "Emails and IP addresses are masked for your roles." }),
	};
}

/** Newest first, paged as /logs is: ◀ Older on the left, Newer ▶ on the right. */
export function pageButtons(token: string, pageIndex: number, hasMore: boolean) {
	return new ActionRowBuilder<ButtonBuilder>().addComponents(
		new ButtonBuilder()
			.setCustomId(auditPage.id(token, pageIndex + 1, "older"))
			.setLabel("◀ Older")
			.setStyle(ButtonStyle.Secondary)
			.setDisabled(!hasMore),
		new ButtonBuilder()
			.setCustomId(auditPage.id(token, Math.max(0, pageIndex - 1), "newer"))
			.setLabel("Newer ▶")
			.setStyle(ButtonStyle.Secondary)
			.setDisabled(pageIndex === 0),
		new ButtonBuilder()
			.setCustomId(auditCsv.id(token))
			.setLabel("Download CSV")
			.setEmoji({ name: "📄" })
			.setStyle(ButtonStyle.Secondary),
	);
}

/** Asked at every answer and press, never kept with the search: a role taken away takes the addresses with it. */
function maySeePii(ctx: HandlerContext): boolean {
	return ctx.access.mayDo(ctx.actor, "audit.see-pii");
}

async function renderPage(ctx: HandlerContext, token: string, state: AuditQueryState, pageIndex: number) {
	if (pageIndex >= state.cursors.length)
		throw new UserFacingError("That page is not available any more; run /audit again.");
	const after = state.cursors[pageIndex];
	const page = await ctx.services.audit.search(state.environment, state.filters, {
		size: PAGE_SIZE,
		...(after ? { after } : {}),
	});
	if (page.next && state.cursors[pageIndex + 1] === undefined) {
		state.cursors[pageIndex + 1] = page.next;
		// Kept with the token, so Older works on whichever replica takes the next press.
		await ctx.services.auditQueries.update(token, ctx.actor.userId, state);
	}
	const report = auditPageReport(page.events, state.filters, pageIndex, page.next !== undefined, maySeePii(ctx));
	return {
		embeds: [reportToEmbed(report)],
		components:
			page.events.length === 0 && pageIndex === 0 ? [] : [pageButtons(token, pageIndex, page.next !== undefined)],
	};
}

/** RFC 4180 CSV; cells that a spreadsheet would run as a formula are prefixed with a quote. */
export function toCsv(events: readonly AuditEvent[], showPii: boolean): string {
	const header = [
		"id",
		"timestamp",
		"action",
		"resource_type",
		"resource_id",
		"user_id",
		"username",
		"user_email",
		"ip_address",
		"user_agent",
		"request_method",
		"request_path",
		"function",
		"correlation_id",
		"success",
		"error",
		"duration_ms",
	];
	const cell = (value: unknown) => {
		let text = value === null || value === undefined ? "" : value instanceof Date ? value.toISOString() : String(value);
		if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
		return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
	};
	const rows = events.map((e) =>
		[
			e.id,
			e.at,
			e.action,
			e.resourceType,
			e.resourceId,
			e.userId,
			e.username,
			e.userEmail && !showPii ? maskEmail(e.userEmail) : e.userEmail,
			e.ipAddress && !showPii ? maskIp(e.ipAddress) : e.ipAddress,
			e.userAgent,
			e.requestMethod,
			e.requestPath,
			e.function,
			e.correlationId,
			e.success,
			e.error,
			e.durationMs,
		]
			.map(cell)
			.join(","),
	);
	return `${[header.join(","), ...rows].join("\r\n")}\r\n`;
}

const ACTIONS = ["CREATE", "UPDATE", "DELETE", "LOGIN", "LOGOUT"];

/** opsbot's own action log (button presses, allowed or refused) as a Report, newest first. */
export function actionLogReport(records: readonly ActionRecord[]): Report {
	return {
		title: records.length === 0 ? "opsbot action log: empty" : `opsbot action log: last ${records.length}`,
		level: "info",
		lines: records.map((r) => ({
			level:
				r.result === "ok"
					? ("ok" as const)
					: r.result.startsWith("refused") || r.result.startsWith("failed")
						? ("critical" as const)
						: ("warn" as const),
			label: r.action,
			text: [
				{ time: new Date(r.at), style: "absolute" },
				` ${r.actor.username} (${r.actor.userId}) → `,
				{ code: r.target.slice(0, 80) },
				`: ${r.result}`,
			],
		})),
	};
}

/** Resource types from the cache that contain what was typed; the cache refreshes in the background. */
export function resourceTypeChoices(types: readonly string[], typed: string): ApplicationCommandOptionChoiceData[] {
	const needle = typed.toLowerCase();
	return types
		.filter((t) => t.toLowerCase().includes(needle))
		.slice(0, 25)
		.map((t) => ({ name: t.slice(0, 100), value: t.slice(0, 100) }));
}

const AUDIT_OPTIONS = [
	{
		type: "string",
		name: "source",
		description: "The application's audit_log (default) or opsbot's own action log",
		choices: [
			{ name: "application", value: "app" },
			{ name: "opsbot actions", value: "opsbot" },
		],
	},
	{ type: "string", name: "user", description: "Email, username or numeric user id", maxLength: 255 },
	{
		type: "string",
		name: "action",
		description: "CREATE, UPDATE, DELETE, LOGIN, …",
		autocomplete: true,
		maxLength: 50,
	},
	{ type: "string", name: "type", description: "Resource type, e.g. User", autocomplete: true, maxLength: 100 },
	{ type: "string", name: "id", description: "Resource id", maxLength: 100 },
	{ type: "string", name: "since", description: "15m, 24h, 7d or an ISO date (default 24h)", maxLength: 40 },
	{ type: "string", name: "until", description: "15m, 24h, 7d or an ISO date (default now)", maxLength: 40 },
	{ type: "boolean", name: "failed-only", description: "Only failed requests" },
	environmentOption("Environment (default: the configured default)"),
] as const satisfies readonly OptionDef[];

/** `/audit [user] [action] [type] [id] [since] [until] [failed-only] [env]`. */
export const audit: Command = {
	name: "audit",
	data: slashCommand({
		name: "audit",
		description: "Search the audit log: who did what, when",
		options: AUDIT_OPTIONS,
	}),
	async execute(interaction, ctx) {
		const o = readOptions(interaction.options, AUDIT_OPTIONS);
		if (o.source === "opsbot") {
			const records = await ctx.services.actionLog.recent(25, {});
			await interaction.editReply({ embeds: [reportToEmbed(actionLogReport(records))] });
			return;
		}
		const environment = requireEnvironment(ctx.config.ops, o.env, "postgres");
		const filters = auditFilters({ ...o, failedOnly: o["failed-only"] });
		const state: AuditQueryState = { environment, filters, cursors: [undefined] };
		const token = await ctx.services.auditQueries.put(ctx.actor.userId, state);
		await interaction.editReply(await renderPage(ctx, token, state, 0));
	},
	async autocomplete(interaction, ctx) {
		const { focused, values } = autocompleteInput(interaction.options, AUDIT_OPTIONS);
		if (focused.name === "env") return environmentChoices(ctx.config.ops, focused.value);
		if (focused.name === "action")
			return ACTIONS.filter((a) => a.includes(focused.value.toUpperCase())).map((a) => ({ name: a, value: a }));
		const environment = values.env ?? defaultEnvironment(ctx.config.ops);
		return resourceTypeChoices(ctx.services.audit.resourceTypes(environment), focused.value);
	},
};

const auditSearch = pendingState((services) => services.auditQueries, "peek", {
	expired: "This search has expired; run /audit again.",
	otherUser: "These buttons belong to whoever ran /audit; run it yourself.",
});

/** Newer / Older buttons: keyset pages kept server-side under the token. */
export const auditPage = component({
	area: "audit",
	action: "page",
	encode: (token: string, pageIndex: number, direction: "older" | "newer") => [token, String(pageIndex), direction],
	permission: { command: "audit" },
	defer: "update",
	async parse(id, ctx) {
		const search = await auditSearch(id, ctx);
		const pageIndex = Number(search.args[0]);
		if (!Number.isInteger(pageIndex) || pageIndex < 0)
			throw new PressRefusedError("That page is not valid.", { reason: "invalid page" });
		return { ...search, pageIndex };
	},
	async run(interaction, { token, value, pageIndex }, ctx) {
		await interaction.editReply(await renderPage(ctx, token, value, pageIndex));
	},
});

/** Download CSV: the whole result up to audit.maxRows, as an ephemeral attachment. */
export const auditCsv = component({
	area: "audit",
	action: "csv",
	encode: (token: string) => [token],
	permission: { command: "audit" },
	defer: "reply",
	parse: auditSearch,
	async run(interaction, { value }, ctx) {
		const { environment, filters } = value;
		const { events, truncated } = await ctx.services.audit.searchAll(environment, filters);
		const maxRows = ctx.config.ops.audit.maxRows;
		const cut = truncated ? ` (cut at the configured maximum of ${maxRows}; narrow the search for the rest)` : "";
		await editReplyWithFiles(
			interaction,
			{
				content: `${events.length} event${events.length === 1 ? "" : "s"}${cut}.`,
				files: [{ attachment: Buffer.from(toCsv(events, maySeePii(ctx))), name: "audit.csv" }],
			},
			ctx.log,
		);
	},
});
