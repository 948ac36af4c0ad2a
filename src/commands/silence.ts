import { ActionRowBuilder, ButtonBuilder } from "@discordjs/builders";
import type { ApplicationCommandOptionChoiceData, ChatInputCommandInteraction } from "discord.js";
import { ButtonStyle } from "discord-api-types/v10";
import { noteSilenceOnCard } from "../alerts/card-events.ts";
import { formatMatchers, parseMatchers } from "../alerts/matchers.ts";
import type { ActionName, OpsFile } from "../config.ts";
import { CONFIRMATION_TTL_MS, type Confirmation } from "../context.ts";
import {
	type Command,
	type ComponentHandler,
	type ComponentInteraction,
	cancelButton,
	component,
	confirmationOf,
	type HandlerContext,
	recordAction,
} from "../discord/handler.ts";
import { PermissionDeniedError, PressRefusedError, UserFacingError } from "../errors.ts";
import { oneLine, truncate } from "../render/limits.ts";
import { type Inline, type Report, reportToEmbed } from "../render/report.ts";
import type { AlertManagerSilence, Matcher } from "../services/alertmanager.ts";
import {
	alertmanagerFor,
	createSilence,
	type Extended,
	environmentsReached,
	expireSilence,
	extendSilence,
	isMaintenance,
	type ListedSilence,
	listSilences,
	liveSilence,
	MAINTENANCE_COMMENT,
	maintenanceComment,
	maxSilenceMs,
	parseSilenceDuration,
	previewSilence,
	type RecordSilenceAction,
	type SilenceDraft,
	type SilenceListing,
	type SilencePreview,
	silenceAuthor,
	silenceComment,
} from "../services/silences.ts";
import { formatDuration, parseTimeSpec } from "../time.ts";
import {
	autocompleteInput,
	autocompleteSubcommandInput,
	environmentChoices,
	environmentOption,
	type OptionDef,
	readOptions,
	readSubcommand,
	requireEnvironment,
	type SubcommandDef,
	slashCommand,
} from "./options.ts";

/** Silences per /silence list page: each takes three lines. */
export const SILENCE_PAGE_SIZE = 5;

const shortId = (id: string) => id.slice(0, 8);

const alerts = (n: number) => `${n} alert${n === 1 ? "" : "s"}`;

/** A list item's matchers and comment stay short: a page of silences is read at a glance, also on a phone. */
const LIST_MATCHERS_MAX = 72;
const LIST_COMMENT_MAX = 100;

/**
 * Matchers in a list: the whole matchers that fit LIST_MATCHERS_MAX characters (at least one), the
 * rest counted after the code, so a cut never lands inside a matcher. /silence expire shows them all.
 */
function listedMatchers(matchers: readonly Matcher[]): Inline[] {
	let shown = matchers.length;
	while (shown > 1 && formatMatchers(matchers.slice(0, shown)).length > LIST_MATCHERS_MAX) shown--;
	if (shown === matchers.length) return [{ code: formatMatchers(matchers) }];
	return [
		{ code: `${formatMatchers(matchers.slice(0, shown)).slice(0, -1)}, …}` },
		` (+${matchers.length - shown} more)`,
	];
}

/** A comment in a list: one line, cut at a word (the whole comment is in /silence expire's question). */
function listedComment(comment: string): string {
	const line = oneLine(comment);
	if (line.length <= LIST_COMMENT_MAX) return line;
	const space = line.lastIndexOf(" ", LIST_COMMENT_MAX - 1);
	return space > LIST_COMMENT_MAX / 2 ? `${line.slice(0, space)} …` : truncate(line, LIST_COMMENT_MAX);
}

/**
 * The lines a silence takes in a list: until when, where and what it mutes now; its matchers and
 * comment; who made it (with what) and its id, last: the id is for copying, not for reading.
 */
function silenceItem(s: ListedSilence): Inline[] {
	const when: Inline[] =
		s.state === "pending"
			? [
					"⏳ ",
					{ strong: s.environment },
					" starts ",
					{ time: new Date(s.startsAt), style: "clock" },
					", ends ",
					{ time: new Date(s.endsAt), style: "time" },
				]
			: ["🔕 ", { strong: s.environment }, " until ", { time: new Date(s.endsAt), style: "clock" }];
	return [
		...when,
		` · mutes ${alerts(s.mutingNow)} now`,
		"\n",
		...listedMatchers(s.matchers),
		" — ",
		listedComment(s.comment),
		"\n",
		`by ${silenceAuthor(s.createdBy)}${s.tool === "outside opsbot" ? " · made outside opsbot" : ""} · `,
		{ code: s.id },
	];
}

/** `/silence list` and `opsbot silence list`: active and pending silences, soonest end first, one page. */
export function silenceListReport(
	listing: SilenceListing,
	where: string,
	page = 0,
	pageSize = SILENCE_PAGE_SIZE,
): Report {
	const { silences } = listing;
	const pages = Math.max(1, Math.ceil(silences.length / pageSize));
	const shown = silences.slice(page * pageSize, (page + 1) * pageSize);
	const pending = silences.filter((s) => s.state === "pending").length;
	return {
		title: `Silences in ${where}`,
		level: "info",
		summary:
			silences.length === 0
				? "No active or pending silences."
				: `${silences.length - pending} active, ${pending} pending` +
					(pages > 1 ? ` · page ${page + 1} of ${pages}` : ""),
		...(shown.length > 0 || listing.unavailable.length > 0
			? {
					list: {
						// A blank line between silences (each takes three lines), and before what could not be listed.
						items: shown.map((item, i) => (i === 0 ? silenceItem(item) : ["\n", ...silenceItem(item)])),
						notes: listing.unavailable.map(
							(u, i) => `${i === 0 && shown.length > 0 ? "\n" : ""}⚠️ ${u.environment}: ${u.reason}`,
						),
					},
				}
			: {}),
		...(listing.unavailable.length > 0 ? { level: "warn" as const } : {}),
	};
}

const isAre = (n: number) => (n === 1 ? "is" : "are");

/** What a silence is called in a title: a maintenance window or a silence. */
const kindOf = (draft: Pick<SilenceDraft, "comment">) => (isMaintenance(draft) ? "Maintenance window" : "Silence");
/** A comment as people read it: a maintenance window's without the prefix its title already says. */
const commentOf = (comment: string) =>
	(isMaintenance({ comment }) ? comment.slice(MAINTENANCE_COMMENT.length) : comment) || "(none)";

/** The timing and comment of a draft, for the preview. */
function draftFields(draft: SilenceDraft, durationMs: number, now: number): Report["fields"] {
	return [
		{ label: "Matchers", value: { code: formatMatchers(draft.matchers) }, inline: false },
		{
			label: "When",
			value:
				draft.startsAt.getTime() > now + 60_000
					? [{ time: draft.startsAt, style: "clock" }, ` for ${formatDuration(durationMs)}`]
					: `for ${formatDuration(durationMs)} from confirmation`,
		},
		{ label: "Comment", value: commentOf(draft.comment), inline: false },
	];
}

/** The preview before a silence is made: what it mutes now, and where it reaches too far. */
export function silencePreviewReport(
	preview: SilencePreview,
	durationMs: number,
	fromCard: boolean,
	now = Date.now(),
): Report {
	const firing = preview.muted.length;
	const warnings = [
		...(fromCard && preview.beyondGroup > 0
			? [
					{
						level: "warn" as const,
						label: "Beyond card",
						text:
							`${preview.beyondGroup} of the ${firing} alerts it mutes now ${isAre(preview.beyondGroup)} not on ` +
							"this card.",
					},
				]
			: []),
		...(preview.otherEnvironments.length > 0
			? [
					{
						level: "warn" as const,
						label: "Other env",
						text: `It also reaches ${preview.otherEnvironments.join(", ")}.`,
					},
				]
			: []),
	];
	const already = preview.muted.filter((a) => a.alreadyMuted).length;
	return {
		title: `${kindOf(preview.draft)} preview · ${preview.draft.environment}: mutes ${alerts(firing)} now`,
		level: warnings.length > 0 ? "warn" : "info",
		summary:
			(firing === 0 ? "Nothing fires now that it would mute; it mutes what matches later. " : "") +
			(already > 0 ? `${already} of them ${isAre(already)} already silenced or inhibited. ` : "") +
			"Nothing is created until you confirm.",
		lines: warnings,
		...(preview.groups.length > 0
			? { list: { items: preview.groups.map((g) => `${g.alertname} · ${g.environment} · ${g.count} firing`) } }
			: {}),
		fields: draftFields(preview.draft, durationMs, now),
	};
}

/** The silence's id, where each message keeps it: last, for copying into /silence extend or expire. */
const idFooter = (id: string) => `Silence ${id}`;

/** A silence (or maintenance window) made: what it mutes, until when (or from when), why. */
export function silenceCreatedReport(id: string, draft: SilenceDraft, maintenance = false, now = Date.now()): Report {
	const future = draft.startsAt.getTime() > now + 60_000;
	return {
		title: `${maintenance ? "Maintenance window scheduled" : "Silence created"} · ${draft.environment}`,
		level: "ok",
		summary: [
			maintenance ? "🛠️ Mutes " : "🔕 Mutes ",
			{ code: formatMatchers(draft.matchers) },
			...(future ? [" from ", { time: draft.startsAt, style: "clock" } as const] : []),
			" until ",
			{ time: draft.endsAt, style: "clock" },
			".",
		],
		fields: [{ label: "Comment", value: commentOf(draft.comment), inline: false }],
		footer: idFooter(id),
	};
}

/** A silence extended: what it mutes, the new end and the old one. */
export function silenceExtendedReport(extended: Extended, environment?: string): Report {
	return {
		title: `Silence extended${environment ? ` · ${environment}` : ""}`,
		level: "ok",
		summary: [
			"🔕 ",
			{ code: formatMatchers(extended.before.matchers) },
			" now ends ",
			{ time: extended.endsAt, style: "clock" },
			" (was ",
			{ time: new Date(extended.before.endsAt), style: "time" },
			").\n",
			extended.inPlace
				? "Same silence, updated in place: no gap."
				: "AlertManager replaced it with a new id, without a gap.",
		],
		footer: extended.inPlace ? idFooter(extended.id) : `${idFooter(extended.id)} (was ${extended.before.id})`,
	};
}

/** The question before a silence is expired, and the answer after. */
export function silenceExpireReport(
	silence: AlertManagerSilence,
	done?: "expired" | "unknown",
	environment?: string,
): Report {
	const where = environment ? ` in ${environment}` : "";
	const matchers: Inline = { code: formatMatchers(silence.matchers) };
	return {
		title: done ? `Silence expired${environment ? ` · ${environment}` : ""}` : `Expire this silence${where}?`,
		level: done ? "ok" : "warn",
		summary: done
			? done === "expired"
				? ["🔔 ", matchers, " is no longer silenced: its alerts notify again."]
				: ["AlertManager no longer had this silence (", matchers, "); nothing was left to expire."]
			: [
					"🔕 ",
					matchers,
					" until ",
					{ time: new Date(silence.endsAt), style: "clock" },
					`, by ${silenceAuthor(silence.createdBy)}.\nExpiring it makes its alerts notify again at once.`,
				],
		fields: [{ label: "Comment", value: commentOf(silence.comment), inline: false }],
		footer: idFooter(silence.id),
	};
}

/** The action log, for the silence service: what this Discord user did. */
export function recorder(ctx: HandlerContext): RecordSilenceAction {
	return (action, target, result, details) => recordAction(ctx, action, target, result, details);
}

/** Who made a silence, as AlertManager records it: the Discord user, marked as made through opsbot. */
export function discordCreatedBy(ctx: HandlerContext): string {
	return `${ctx.actor.username} (Discord ${ctx.actor.userId}) via opsbot`;
}

/** Refuses (and records) a silence reaching into an environment the person may not act on. */
export async function requireEnvironmentsAllowed(
	ctx: HandlerContext,
	action: string,
	environments: readonly string[],
	nothing: string,
): Promise<void> {
	const refused = environments.filter((env) => !ctx.access.mayActOn(ctx.actor, env));
	if (refused.length === 0) return;
	await recordAction(ctx, action, refused.join(", "), "refused: environment not allowed", { environments });
	throw new UserFacingError(
		`This reaches ${refused.join(", ")}, which your roles may not act on (access.environments); ${nothing}.`,
	);
}

/** The silence preview with Confirm and Cancel, stored server-side for a minute. */
export async function showSilencePreview(
	interaction: ComponentInteraction | ChatInputCommandInteraction,
	ctx: HandlerContext,
	confirmation: Extract<Confirmation, { kind: "alert.silence" }>,
	ownFingerprints?: ReadonlySet<string>,
): Promise<void> {
	const draft = draftOf(confirmation, Date.now());
	await requireEnvironmentsAllowed(
		ctx,
		"alert.silence",
		environmentsReached(ctx.config.ops, draft.environment, draft.matchers),
		"nothing was silenced",
	);
	const alertmanager = alertmanagerFor(ctx.services.alertmanager, draft.environment);
	const preview = await previewSilence({ ops: ctx.config.ops, alertmanager }, draft, ownFingerprints);
	// Alerts firing now in an environment the person may not act on count as reaching it.
	await requireEnvironmentsAllowed(ctx, "alert.silence", preview.otherEnvironments, "nothing was silenced");
	const token = await ctx.services.confirmations.put(ctx.actor.userId, confirmation);
	const embed = reportToEmbed(silencePreviewReport(preview, confirmation.durationMs, ownFingerprints !== undefined));
	const expires = Math.floor((Date.now() + CONFIRMATION_TTL_MS) / 1000);
	const message = {
		content: `Confirm within a minute (<t:${expires}:R>).`,
		embeds: [embed],
		components: [
			new ActionRowBuilder<ButtonBuilder>().addComponents(
				new ButtonBuilder()
					.setCustomId((confirmation.maintenance ? maintenanceConfirm : silenceConfirm).id(token))
					.setLabel(confirmation.maintenance ? "Schedule" : "Silence")
					.setEmoji({ name: confirmation.maintenance ? "🛠️" : "🔕" })
					.setStyle(ButtonStyle.Danger),
				new ButtonBuilder().setCustomId(silenceCancel.id(token)).setLabel("Cancel").setStyle(ButtonStyle.Secondary),
			),
		],
	};
	if (interaction.isChatInputCommand()) await interaction.editReply(message);
	else await interaction.followUp({ ...message, flags: 64 });
}

function draftOf(c: Extract<Confirmation, { kind: "alert.silence" }>, now: number): SilenceDraft {
	const startsAt = new Date(Math.max(c.startsAt ?? now, now));
	return {
		environment: c.environment,
		matchers: c.matchers,
		startsAt,
		endsAt: new Date(startsAt.getTime() + c.durationMs),
		comment: c.comment,
	};
}

type SilenceConfirmation = Extract<Confirmation, { kind: "alert.silence" }>;
const CONFIRMATION_GONE = "This preview has expired or is not valid. Start the silence again.";
const silenceConfirmation = confirmationOf("alert.silence", CONFIRMATION_GONE);

/**
 * Confirm under a preview: checked again at press time (permission, environments, the card's
 * episode). A maintenance window's preview has its own, needing maintenance.create.
 */
function confirmHandler(
	area: "silence" | "maintenance",
	permission: ActionName,
): ComponentHandler<SilenceConfirmation> {
	return component({
		area,
		action: "confirm",
		encode: (token: string) => [token],
		permission: { action: permission },
		defer: "update",
		recordAs: permission,
		async parse(id, ctx) {
			const value = await silenceConfirmation(id, ctx);
			if ((area === "maintenance") !== (value.maintenance === true))
				throw new PressRefusedError(CONFIRMATION_GONE, { reason: "unknown confirmation", target: "?" });
			return value;
		},
		async run(interaction, confirmation, ctx) {
			const draft = draftOf(confirmation, Date.now());
			const target = confirmation.groupId ?? draft.environment;
			await requireEnvironmentsAllowed(
				ctx,
				permission,
				environmentsReached(ctx.config.ops, draft.environment, draft.matchers),
				"nothing was silenced",
			);
			const store = ctx.services.alertState.store;
			const group = confirmation.groupId ? await store?.group(confirmation.groupId) : undefined;
			if (confirmation.groupId && (!group || group.status === "resolved" || group.episode !== confirmation.episode))
				throw new PressRefusedError("This alert has resolved or changed since the preview; nothing was silenced.", {
					reason: "alert changed",
					target,
				});
			const alertmanager = alertmanagerFor(ctx.services.alertmanager, draft.environment);
			const silenceId = await createSilence(alertmanager, draft, discordCreatedBy(ctx), {
				action: permission,
				target,
				record: recorder(ctx),
			});
			if (group)
				await noteSilenceOnCard(ctx, group, {
					id: silenceId,
					until: draft.endsAt.getTime(),
					matchers: draft.matchers,
					comment: draft.comment,
				});
			await interaction.editReply({
				content: "",
				embeds: [reportToEmbed(silenceCreatedReport(silenceId, draft, confirmation.maintenance === true))],
				components: [],
			});
		},
	});
}

export const silenceConfirm = confirmHandler("silence", "alert.silence");
export const maintenanceConfirm = confirmHandler("maintenance", "maintenance.create");

// Cancel needs only the right to open the preview it sits under: alert.silence (maintenance.create runs the same kind).
export const silenceCancel = cancelButton({
	area: "silence",
	action: "cancel",
	kind: "alert.silence",
	target: (c) => c.groupId ?? c.environment,
	nothing: "nothing was silenced",
});

/** The environments /silence looks at: the one named, or every environment with an AlertManager. */
function listedEnvironments(ops: OpsFile, env: string | null): string[] {
	if (env) return [requireEnvironment(ops, env)];
	return Object.entries(ops.environments)
		.filter(([, e]) => e.alertmanager)
		.map(([name]) => name);
}

/** Finds a silence by id in the environments' AlertManagers. */
async function findSilence(
	ctx: HandlerContext,
	env: string | null,
	id: string,
): Promise<{ environment: string; silence: AlertManagerSilence }> {
	const environments = listedEnvironments(ctx.config.ops, env);
	const tried = new Set<string>();
	let lastError: unknown;
	for (const environment of environments) {
		const client = ctx.services.alertmanager.forEnvironment(environment);
		if (!client || tried.has(client.url)) continue;
		tried.add(client.url);
		try {
			return { environment, silence: await liveSilence(client, id) };
		} catch (err) {
			lastError = err;
		}
	}
	throw lastError ?? new UserFacingError("No AlertManager is configured.");
}

/**
 * The silence an extend or expire names, once the person may: the action (refusal recorded), the
 * silence found and live, and every environment it reaches allowed to them.
 */
async function silenceToChange(
	ctx: HandlerContext,
	env: string | null,
	id: string,
	action: "silence.extend" | "silence.expire",
): Promise<{ environment: string; silence: AlertManagerSilence }> {
	if (!ctx.access.mayDo(ctx.actor, action)) {
		await recordAction(ctx, action, id.slice(0, 40), "refused: role not allowed");
		throw new PermissionDeniedError(`use ${action}`);
	}
	const found = await findSilence(ctx, env, id);
	const nothing = action === "silence.extend" ? "nothing was changed" : "the silence was not expired";
	const reached = environmentsReached(ctx.config.ops, found.environment, found.silence.matchers);
	await requireEnvironmentsAllowed(ctx, action, reached, nothing);
	return found;
}

/** One page of /silence list with Previous / Next, read from AlertManager now. */
async function listPage(ctx: HandlerContext, env: string | null, page: number) {
	const listing = await listSilences(ctx.services.alertmanager, listedEnvironments(ctx.config.ops, env));
	const pages = Math.max(1, Math.ceil(listing.silences.length / SILENCE_PAGE_SIZE));
	const at = Math.min(Math.max(0, page), pages - 1);
	const nav = (label: string, to: number, disabled: boolean) =>
		new ButtonBuilder()
			.setCustomId(silencePage.id(env, to))
			.setLabel(label)
			.setStyle(ButtonStyle.Secondary)
			.setDisabled(disabled);
	return {
		embeds: [reportToEmbed(silenceListReport(listing, env ?? "every environment", at))],
		components:
			pages > 1
				? [
						new ActionRowBuilder<ButtonBuilder>().addComponents(
							// Disabled on the first page; its id then differs from Next's by pointing at page 0.
							nav("Previous", at - 1, at === 0),
							nav("Next", at + 1, at >= pages - 1),
						),
					]
				: [],
	};
}

/** Previous / Next under /silence list: asks AlertManager again, so the page is current. */
export const silencePage = component({
	area: "silence",
	action: "page",
	encode: (env: string | null, page: number) => [env ?? "all", String(Math.max(0, page))],
	permission: { command: "silence" },
	defer: "update",
	async parse(id) {
		const [env = "", page = ""] = id.args;
		if (!/^\d{1,4}$/.test(page)) throw new PressRefusedError("That page is not valid.", { reason: "invalid page" });
		return { env: env === "all" ? null : env, page: Number(page) };
	},
	async run(interaction, { env, page }, ctx) {
		await interaction.editReply(await listPage(ctx, env, page));
	},
});

/** Expire confirmed: at press time the permission and environment are checked again. */
export const silenceExpireConfirm = component({
	area: "silence",
	action: "expireconfirm",
	encode: (token: string) => [token],
	permission: { action: "silence.expire" },
	defer: "update",
	recordAs: "silence.expire",
	parse: confirmationOf("silence.expire", "This confirmation has expired or is not valid. Run /silence expire again."),
	async run(interaction, { environment, silenceId }, ctx) {
		const alertmanager = alertmanagerFor(ctx.services.alertmanager, environment);
		const silence = await liveSilence(alertmanager, silenceId);
		await requireEnvironmentsAllowed(
			ctx,
			"silence.expire",
			environmentsReached(ctx.config.ops, environment, silence.matchers),
			"the silence was not expired",
		);
		const outcome = await expireSilence(alertmanager, silenceId, { environment, record: recorder(ctx) });
		await interaction.editReply({
			content: "",
			embeds: [reportToEmbed(silenceExpireReport(silence, outcome, environment))],
			components: [],
		});
	},
});

export const silenceExpireCancel = cancelButton({
	area: "silence",
	action: "expirecancel",
	kind: "silence.expire",
	target: (c) => c.silenceId,
	nothing: "the silence was not expired",
});

const ID_OPTION = {
	type: "string",
	name: "id",
	description: "The silence (type to search)",
	required: true,
	autocomplete: true,
} as const satisfies OptionDef;

const SILENCE_SUBCOMMANDS = [
	{
		name: "list",
		description: "Active and pending silences, with what each mutes now",
		options: [environmentOption("Environment (default: all)")],
	},
	{
		name: "extend",
		description: "Make a silence last longer, in place",
		options: [
			ID_OPTION,
			{ type: "string", name: "by", description: "How much longer: 30m, 1h, 4h, 1d", required: true, maxLength: 12 },
			environmentOption("Environment (default: search all)"),
		],
	},
	{
		name: "expire",
		description: "End a silence now (asks first)",
		options: [ID_OPTION, environmentOption("Environment (default: search all)")],
	},
] as const satisfies readonly SubcommandDef[];

/** Silence ids for autocomplete: active and pending ones whose id or matchers contain what was typed. */
async function silenceChoices(ctx: HandlerContext, env: string | null, typed: string) {
	const needle = typed.toLowerCase();
	const { silences } = await listSilences(ctx.services.alertmanager, listedEnvironments(ctx.config.ops, env));
	return silences
		.filter((s) => `${s.id} ${formatMatchers(s.matchers)} ${s.comment}`.toLowerCase().includes(needle))
		.slice(0, 25)
		.map((s) => ({
			name: `${shortId(s.id)} · ${formatMatchers(s.matchers)} · until ${s.endsAt.slice(0, 16).replace("T", " ")}`,
			value: s.id,
		}));
}

/** `/silence list|extend|expire`: AlertManager's silences, whoever made them. */
export const silence: Command = {
	name: "silence",
	data: slashCommand({
		name: "silence",
		description: "AlertManager silences: list, extend, expire",
		subcommands: SILENCE_SUBCOMMANDS,
	}),
	async autocomplete(interaction, ctx): Promise<ApplicationCommandOptionChoiceData[]> {
		const { focused, values } = autocompleteSubcommandInput(interaction.options, SILENCE_SUBCOMMANDS);
		if (focused.name === "env") return environmentChoices(ctx.config.ops, focused.value);
		return silenceChoices(ctx, values.env, focused.value);
	},
	async execute(interaction, ctx) {
		const used = readSubcommand(interaction.options, SILENCE_SUBCOMMANDS);
		const env = used.options.env;
		if (used.subcommand === "list") {
			await interaction.editReply(await listPage(ctx, env, 0));
			return;
		}
		const id = used.options.id.trim();
		if (used.subcommand === "extend") {
			const maxMs = maxSilenceMs(ctx.config.ops);
			const byMs = parseSilenceDuration(used.options.by, maxMs);
			const { environment, silence: found } = await silenceToChange(ctx, env, id, "silence.extend");
			const alertmanager = alertmanagerFor(ctx.services.alertmanager, environment);
			const extended = await extendSilence(alertmanager, found, byMs, maxMs, { environment, record: recorder(ctx) });
			await interaction.editReply({ embeds: [reportToEmbed(silenceExtendedReport(extended, environment))] });
			return;
		}
		// expire: asks first
		const { environment, silence: found } = await silenceToChange(ctx, env, id, "silence.expire");
		const token = await ctx.services.confirmations.put(ctx.actor.userId, {
			kind: "silence.expire",
			environment,
			silenceId: found.id,
		});
		await recordAction(ctx, "silence.expire", found.id, "confirmation shown", { environment });
		await interaction.editReply({
			embeds: [reportToEmbed(silenceExpireReport(found, undefined, environment))],
			components: [
				new ActionRowBuilder<ButtonBuilder>().addComponents(
					new ButtonBuilder()
						.setCustomId(silenceExpireConfirm.id(token))
						.setLabel("Expire it")
						.setStyle(ButtonStyle.Danger),
					new ButtonBuilder()
						.setCustomId(silenceExpireCancel.id(token))
						.setLabel("Cancel")
						.setStyle(ButtonStyle.Secondary),
				),
			],
		});
	},
};

/**
 * A maintenance window's matchers: the environment's label, plus the service label or the matchers
 * typed (in AlertManager's syntax).
 */
export function maintenanceMatchers(
	ops: Pick<OpsFile, "alerts">,
	environment: string,
	what: { service?: string | null; matchers?: string | null },
): Matcher[] {
	const envLabel = ops.alerts?.environmentLabel ?? "env";
	const typed = what.matchers ? parseMatchers(what.matchers) : [];
	if (!what.service && typed.length === 0)
		throw new UserFacingError('Name a service, or matchers such as alertname="ApiDown", for the window.');
	const own = typed.filter((m) => m.name !== envLabel);
	if (typed.some((m) => m.name === envLabel && !(m.isEqual && !m.isRegex && m.value === environment)))
		throw new UserFacingError(
			`A window of ${environment} matches ${envLabel}="${environment}"; leave that matcher out.`,
		);
	return [
		{ name: envLabel, value: environment, isRegex: false, isEqual: true },
		...(what.service ? [{ name: "service", value: what.service, isRegex: false, isEqual: true }] : []),
		...own,
	];
}

/** A window's start: "now", a relative "in" time (30m), or an ISO time; never in the past. */
export function maintenanceStart(text: string | null | undefined, now = new Date()): Date {
	const spec = (text ?? "now").trim();
	if (spec === "" || spec === "now") return now;
	const ahead = /^\+?(\d{1,5}[mhd])$/.exec(spec);
	// parseTimeSpec reads "30m" as 30 minutes ago; a window starts ahead.
	const at = ahead ? new Date(2 * now.getTime() - parseTimeSpec(ahead[1]!, now).getTime()) : parseTimeSpec(spec, now);
	if (at.getTime() < now.getTime() - 60_000)
		throw new UserFacingError("The window's start is in the past: give now, a time ahead (+30m) or a future ISO time.");
	return at;
}

const MAINTENANCE_OPTIONS = [
	environmentOption("Environment", true),
	{ type: "string", name: "duration", description: "How long: 30m, 1h, 4h", required: true },
	{ type: "string", name: "comment", description: "Why (shown with the silence)", required: true, maxLength: 500 },
	{ type: "string", name: "service", description: "The service label to mute", maxLength: 128 },
	{ type: "string", name: "matchers", description: 'Or matchers, e.g. alertname="ApiDown"', maxLength: 1_000 },
	{ type: "string", name: "start", description: "now (default), +30m, or an ISO time", maxLength: 40 },
] as const satisfies readonly OptionDef[];

/** `/maintenance`: a silence of an environment's service (or matchers) from a start, with a preview. */
export const maintenance: Command = {
	name: "maintenance",
	data: slashCommand({
		name: "maintenance",
		description: "Schedule a maintenance window: a silence that starts now or later",
		options: MAINTENANCE_OPTIONS,
	}),
	async autocomplete(interaction, ctx) {
		return environmentChoices(
			ctx.config.ops,
			autocompleteInput(interaction.options, MAINTENANCE_OPTIONS).focused.value,
		);
	},
	async execute(interaction, ctx) {
		if (!ctx.access.mayDo(ctx.actor, "maintenance.create")) throw new PermissionDeniedError("use maintenance.create");
		const o = readOptions(interaction.options, MAINTENANCE_OPTIONS);
		const environment = requireEnvironment(ctx.config.ops, o.env);
		const matchers = maintenanceMatchers(ctx.config.ops, environment, o);
		const durationMs = parseSilenceDuration(o.duration, maxSilenceMs(ctx.config.ops));
		const comment = maintenanceComment(silenceComment(o.comment));
		const startsAt = maintenanceStart(o.start).getTime();
		await showSilencePreview(interaction, ctx, {
			kind: "alert.silence",
			environment,
			matchers,
			durationMs,
			startsAt,
			comment,
			maintenance: true,
		});
	},
};

export const SILENCE_COMPONENTS = [
	silenceConfirm,
	maintenanceConfirm,
	silenceCancel,
	silencePage,
	silenceExpireConfirm,
	silenceExpireCancel,
];
