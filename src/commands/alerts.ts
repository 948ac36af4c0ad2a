import { ActionRowBuilder, ButtonBuilder } from "@discordjs/builders";
import { ButtonStyle } from "discord-api-types/v10";
import type { EpisodeHistory, FiringFilter } from "../alerts/episodes.ts";
import { FIRING_PAGE, firingReport, historyReport } from "../alerts/incident-reports.ts";
import { type Command, component, type HandlerContext, pendingState, recordAction } from "../discord/handler.ts";
import { PressRefusedError, UserFacingError } from "../errors.ts";
import { type Report, reportToEmbed } from "../render/report.ts";
import { newTestAlert, ownWebhook, postWebhook } from "../test-alert.ts";
import { parseTimeSpec } from "../time.ts";
import {
	autocompleteSubcommandInput,
	environmentChoices,
	environmentOption,
	type OptionDef,
	readSubcommand,
	type SubcommandDef,
	slashCommand,
} from "./options.ts";

/** What a test alert did, for its report in Discord and the terminal. */
export interface TestAlertSent {
	readonly channels: readonly string[];
	readonly severity: string;
	/** Seconds until it resolves; 0 once it has. */
	readonly resolvesInSeconds: number;
}

/** The answer to `/alerts test` and `opsbot test-alert`. */
export function testAlertReport(sent: TestAlertSent): Report {
	const where = sent.channels.flatMap((id, i) => [...(i > 0 ? [", "] : []), { mention: "channel" as const, id }]);
	return {
		title: sent.resolvesInSeconds > 0 ? "Test alert sent" : "Test alert sent and resolved",
		level: "ok",
		summary: [
			`A `,
			{ strong: "TEST" },
			` group (${sent.severity}) went through opsbot's own webhook to `,
			...where,
			sent.resolvesInSeconds > 0 ? `. It resolves in ${sent.resolvesInSeconds} s.` : `, and is resolved.`,
			" Both steps are in the action log (alert.test).",
		],
	};
}

/** What /alerts firing's page buttons refer to. */
export interface FiringQueryState {
	readonly filter: FiringFilter;
}

/** The episode history, or a plain refusal where this opsbot does not relay alerts. */
export function historyOf(ctx: Pick<HandlerContext, "services">): EpisodeHistory {
	const store = ctx.services.alertState.store;
	if (!store) throw new UserFacingError("The alert relay is not running in this opsbot, so it holds no alerts.");
	return store.history;
}

/** Episodes `/alerts history` lists (its figures cover the whole range). */
export const HISTORY_LISTED = 15;
/** How far back a history reaches at most: the longest retention. */
const HISTORY_MAX_DAYS = 3_650;

/** `since` as a time (default 24 h ago), refused when it is not a time or lies ahead. */
export function historySince(spec: string | null | undefined, now: number): number {
	const since = parseTimeSpec(spec ?? "24h", new Date(now)).getTime();
	if (since >= now)
		throw new UserFacingError([{ code: "since" }, " must lie in the past, e.g. 24h, 7d or 2026-11-24."]);
	return Math.max(since, now - HISTORY_MAX_DAYS * 86_400_000);
}

async function firingPage(ctx: HandlerContext, token: string, filter: FiringFilter, offset: number) {
	const page = await historyOf(ctx).firing(filter, offset, FIRING_PAGE);
	const report = firingReport(
		{ ...page, offset, filter },
		{ guildId: ctx.config.ops.discord.guildId, now: Date.now() },
	);
	const more = offset + page.episodes.length < page.total;
	return {
		embeds: [reportToEmbed(report)],
		components:
			offset === 0 && !more
				? []
				: [
						new ActionRowBuilder<ButtonBuilder>().addComponents(
							new ButtonBuilder()
								.setCustomId(alertsPage.id(token, Math.max(0, offset - FIRING_PAGE), "prev"))
								.setLabel("◀ Previous")
								.setStyle(ButtonStyle.Secondary)
								.setDisabled(offset === 0),
							new ButtonBuilder()
								.setCustomId(alertsPage.id(token, offset + FIRING_PAGE, "next"))
								.setLabel("Next ▶")
								.setStyle(ButtonStyle.Secondary)
								.setDisabled(!more),
						),
					],
	};
}

const FIRING_OPTIONS = [
	environmentOption("Only this environment"),
	{
		type: "string",
		name: "severity",
		description: "Only this severity",
		choices: [
			{ name: "critical", value: "critical" },
			{ name: "warning", value: "warning" },
			{ name: "info", value: "info" },
		],
	},
	{ type: "string", name: "name", description: "Only alert names containing this", maxLength: 100 },
] as const satisfies readonly OptionDef[];

const ALERTS_SUBCOMMANDS = [
	{
		name: "firing",
		description: "What fires now, worst first, with who acknowledged or silenced it",
		options: FIRING_OPTIONS,
	},
	{
		name: "history",
		description: "What fired: episodes, time to acknowledge and resolve, flapping groups",
		options: [
			{ type: "string", name: "since", description: "From when: 24h (default), 7d, 2026-11-24", maxLength: 40 },
			{ type: "string", name: "name", description: "Only alert names containing this", maxLength: 100 },
		],
	},
	{
		name: "test",
		description: "Send a test alert through the webhook to a channel; it resolves by itself",
		options: [
			{
				type: "string",
				name: "severity",
				description: "Severity label (default warning)",
				choices: [
					{ name: "warning", value: "warning" },
					{ name: "critical", value: "critical" },
					{ name: "info", value: "info" },
				],
			},
			{
				type: "string",
				name: "channel",
				description: "Channel id (default: where the routes send it)",
				minLength: 17,
				maxLength: 20,
			},
			{
				type: "integer",
				name: "resolve_after",
				description: "Seconds until it resolves (default 60)",
				min: 1,
				max: 3_600,
			},
		],
	},
] as const satisfies readonly SubcommandDef[];

/**
 * `/alerts test`: the same synthetic group as `opsbot test-alert`, through the bot's own webhook, so
 * a channel's set-up (routes, permissions, role mention) is checked without a real incident. The
 * resolution is sent by this process after `resolve_after` seconds; a restart before then leaves
 * the test group firing until the next test or a manual resolve.
 */
export const alerts: Command = {
	name: "alerts",
	data: slashCommand({ name: "alerts", description: "The AlertManager relay", subcommands: ALERTS_SUBCOMMANDS }),
	async autocomplete(interaction, ctx) {
		return environmentChoices(
			ctx.config.ops,
			autocompleteSubcommandInput(interaction.options, ALERTS_SUBCOMMANDS).focused.value,
		);
	},
	async execute(interaction, ctx) {
		const used = readSubcommand(interaction.options, ALERTS_SUBCOMMANDS);
		if (used.subcommand === "firing") {
			const { env, severity, name } = used.options;
			const filter: FiringFilter = {
				...(env ? { environment: env } : {}),
				...(severity ? { severity } : {}),
				...(name ? { name } : {}),
			};
			historyOf(ctx); // refused before a token is stored where no relay runs
			const token = await ctx.services.alertQueries.put(ctx.actor.userId, { filter });
			await interaction.editReply(await firingPage(ctx, token, filter, 0));
			return;
		}
		if (used.subcommand === "history") {
			const now = Date.now();
			const since = historySince(used.options.since, now);
			const name = used.options.name ?? undefined;
			const summary = await historyOf(ctx).history({
				since,
				until: now + 1,
				...(name ? { name } : {}),
				limit: HISTORY_LISTED,
			});
			await interaction.editReply({
				embeds: [reportToEmbed(historyReport(summary, { now, ...(name ? { name } : {}) }))],
			});
			return;
		}
		const severity = used.options.severity ?? "warning";
		const channel = used.options.channel ?? undefined;
		if (channel !== undefined && !/^\d{17,20}$/.test(channel))
			throw new UserFacingError([
				{ code: "channel" },
				" must be a channel id (right-click the channel > Copy Channel ID).",
			]);
		const resolveAfter = used.options.resolve_after ?? 60;
		const target = ownWebhook(ctx.config);
		const alert = newTestAlert(ctx.config.ops.alerts!, {
			severity,
			sentBy: `@${ctx.actor.username}`,
			via: "/alerts test",
			...(channel ? { channel } : {}),
		});
		const details = { severity, groupKey: alert.groupKey };
		await postWebhook(target, alert.payload("firing", new Date())).catch(async (err: unknown) => {
			await recordAction(ctx, "alert.test", alert.channels.join(", "), "failed", { ...details, step: "firing" });
			throw err;
		});
		await recordAction(ctx, "alert.test", alert.channels.join(", "), "ok", { ...details, step: "firing" });
		setTimeout(() => {
			postWebhook(target, alert.payload("resolved", new Date()))
				.then(() => recordAction(ctx, "alert.test", alert.channels.join(", "), "ok", { ...details, step: "resolved" }))
				.catch((err: unknown) => ctx.log.warn({ err, groupKey: alert.groupKey }, "could not resolve a test alert"));
		}, resolveAfter * 1_000).unref();
		await interaction.editReply({
			embeds: [reportToEmbed(testAlertReport({ channels: alert.channels, severity, resolvesInSeconds: resolveAfter }))],
		});
	},
};

const firingSearch = pendingState((services) => services.alertQueries, "peek", {
	expired: "This list has expired; run /alerts firing again.",
	otherUser: "These buttons belong to whoever ran /alerts firing; run it yourself.",
});

/** Previous / Next on /alerts firing: the same filters, another page (read again: what fires changes). */
export const alertsPage = component({
	area: "alerts",
	action: "page",
	encode: (token: string, offset: number, direction: "prev" | "next") => [token, String(offset), direction],
	permission: { command: "alerts" },
	defer: "update",
	async parse(id, ctx) {
		const search = await firingSearch(id, ctx);
		const offset = Number(search.args[0]);
		if (!Number.isInteger(offset) || offset < 0 || offset > 100_000)
			throw new PressRefusedError("That page is not valid.", { reason: "invalid page", target: "?" });
		return { ...search, offset };
	},
	async run(interaction, { token, value, offset }, ctx) {
		await interaction.editReply(await firingPage(ctx, token, value.filter, offset));
	},
});
