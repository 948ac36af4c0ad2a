import { ActionRowBuilder, type ButtonBuilder } from "@discordjs/builders";
import { defaultEnvironment } from "../config.ts";
import type { Command } from "../discord/handler.ts";
import { type Inline, joinText, type Report, reportToEmbed, type Text } from "../render/report.ts";
import type { WhoDeletedResult } from "../services/audit.ts";
import { eventLine, eventLines, resourceTypeChoices } from "./audit.ts";
import { correlationButton } from "./logs.ts";
import {
	autocompleteInput,
	environmentChoices,
	environmentOption,
	type OptionDef,
	readOptions,
	requireEnvironment,
	slashCommand,
} from "./options.ts";

const SHOWN_DELETES = 8;

/** The answer to /whodeleted as a Report: every delete newest first, or what is known instead. */
export function whoDeletedReport(result: WhoDeletedResult, showPii: boolean): Report {
	const subject: Inline[] = [{ code: result.resourceType }, " ", { code: result.resourceId }];
	const footer = showPii ? undefined : "Emails and IP addresses are masked for your roles.";
	if (result.deletes.length > 0) {
		const shown = result.deletes.slice(0, SHOWN_DELETES);
		return {
			title: `Who deleted ${result.resourceType} ${result.resourceId}`.slice(0, 256),
			level: "info",
			summary: [
				`${result.deletes.length === 1 ? "One DELETE" : `${result.deletes.length} DELETEs`} of `,
				...subject,
				`, newest first${result.deletes.length > SHOWN_DELETES ? ` (showing ${SHOWN_DELETES})` : ""}.`,
			],
			fields: shown.map((e) => ({
				label: `🗑 ${e.success ? "Deleted" : "Delete attempt failed"}`,
				value: joinText([{ time: e.at, style: "full" }, ...eventLines(e, showPii)], "\n"),
				inline: false,
			})),
			...(footer ? { footer } : {}),
		};
	}
	const known: Text[] = [];
	if (result.lastActions.length > 0)
		known.push([
			{ strong: "Last actions on it:" },
			"\n",
			...joinText(
				result.lastActions.map((e) => eventLine(e, showPii)),
				"\n",
			),
		]);
	if (result.otherTypes.length > 0) {
		const types = result.otherTypes.map(
			(t): Text => [{ code: t.resourceType }, ` (${t.rows >= 1000 ? "1000+" : t.rows} rows)`],
		);
		known.push([
			{ strong: "The same id under other types:" },
			" ",
			...joinText(types, ", "),
			". Did you mean one of these?",
		]);
	}
	if (known.length === 0)
		known.push("Nothing at all is recorded for this resource: check the type (it is case-sensitive) and the id.");
	return {
		title: `No delete recorded for ${result.resourceType} ${result.resourceId}`.slice(0, 256),
		level: "info",
		summary: joinText([["No DELETE of ", ...subject, " is recorded in the audit log."], ...known], "\n\n"),
		...(footer ? { footer } : {}),
	};
}

const WHODELETED_OPTIONS = [
	{
		type: "string",
		name: "type",
		description: "Resource type, e.g. User",
		required: true,
		autocomplete: true,
		maxLength: 100,
	},
	{ type: "string", name: "id", description: "Resource id", required: true, maxLength: 100 },
	environmentOption("Environment (default: the configured default)"),
] as const satisfies readonly OptionDef[];

/** `/whodeleted type id [env]`. */
export const whodeleted: Command = {
	name: "whodeleted",
	data: slashCommand({
		name: "whodeleted",
		description: "Who deleted this resource, when, and from where",
		options: WHODELETED_OPTIONS,
	}),
	async execute(interaction, ctx) {
		const o = readOptions(interaction.options, WHODELETED_OPTIONS);
		const environment = requireEnvironment(ctx.config.ops, o.env, "postgres");
		const result = await ctx.services.audit.whoDeleted(environment, o.type, o.id);
		// One "Logs for this request" button per distinct request, newest first, where log search exists.
		const seen = new Set<string>();
		const logButtons = result.deletes
			.filter((e) => e.correlationId && !seen.has(e.correlationId) && seen.add(e.correlationId))
			.map((e) => correlationButton(ctx.config.ops, environment, e.correlationId!, e.at))
			.filter((b): b is ButtonBuilder => b !== undefined)
			.slice(0, 5);
		await interaction.editReply({
			embeds: [reportToEmbed(whoDeletedReport(result, ctx.access.mayDo(ctx.actor, "audit.see-pii")))],
			components: logButtons.length > 0 ? [new ActionRowBuilder<ButtonBuilder>().addComponents(logButtons)] : [],
		});
	},
	async autocomplete(interaction, ctx) {
		const { focused, values } = autocompleteInput(interaction.options, WHODELETED_OPTIONS);
		if (focused.name === "env") return environmentChoices(ctx.config.ops, focused.value);
		const environment = values.env ?? defaultEnvironment(ctx.config.ops);
		return resourceTypeChoices(ctx.services.audit.resourceTypes(environment), focused.value);
	},
};
