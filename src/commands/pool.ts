import { ActionRowBuilder, ButtonBuilder } from "@discordjs/builders";
import type { AttachmentPayload } from "discord.js";
import { ButtonStyle } from "discord-api-types/v10";
import { CONFIRMATION_TTL_MS, type Confirmation } from "../context.ts";
import type { CustomId } from "../discord/custom-id.ts";
import {
	type Command,
	cancelButton,
	component,
	type HandlerContext,
	pendingState,
	recordAction,
} from "../discord/handler.ts";
import { editReplyWithFiles } from "../discord/reply.ts";
import { PressRefusedError } from "../errors.ts";
import { renderChart } from "../render/chart.ts";
import { DISCORD_LIMITS, truncate } from "../render/limits.ts";
import { poolLineChart } from "../render/pool-chart.ts";
import {
	type Inline,
	joinText,
	type Report,
	type ReportField,
	reportToEmbed,
	type Text,
	textToMarkdown,
} from "../render/report.ts";
import type {
	EndableSessions,
	PoolSnapshot,
	Session,
	TerminationCandidate,
	TerminationResult,
} from "../services/pool.ts";
import {
	diagnosePool,
	type EndOffer,
	isBouncerUsage,
	isPostgresUsage,
	type PoolCause,
	type PoolThresholds,
} from "../services/pool-diagnosis.ts";
import { formatDuration } from "../time.ts";
import {
	autocompleteInput,
	environmentChoices,
	environmentOption,
	type OptionDef,
	readOptions,
	requireEnvironment,
	slashCommand,
} from "./options.ts";

function sessionLine(s: Session): Inline[] {
	return [
		`pid ${s.pid} · `,
		{ code: s.application || "?" },
		` ${s.clientAddr} · ${formatDuration(s.stateSeconds * 1000, { seconds: true })}`,
	];
}

/** "pid 4242 (`gunicorn`, idle in transaction 20 s)" when the session is known, else "pid 4242". */
function pidText(pid: number, sessions: ReadonlyMap<number, Session>): Inline[] {
	const s = sessions.get(pid);
	return s
		? [
				`pid ${pid} (`,
				{ code: s.application || "?" },
				`, ${s.state} ${formatDuration(s.stateSeconds * 1000, { seconds: true })})`,
			]
		: [`pid ${pid}`];
}

/** A blocked session in words: who waits, how long, and on whom. */
function blockedLine(s: Session): Inline[] {
	return [
		`pid ${s.pid} · `,
		{ code: s.application || "?" },
		` ${s.clientAddr} · waiting ${formatDuration(s.stateSeconds * 1000, { seconds: true })} on pid ` +
			`${s.blockedBy.join(" and ")}`,
	];
}

/** The likely cause in one line. */
function causeText(cause: PoolCause, sessions: ReadonlyMap<number, Session>): Inline[] {
	switch (cause.kind) {
		case "stale-idle":
			return [
				`${cause.count} idle connection${cause.count === 1 ? "" : "s"} from app `,
				{ code: cause.application || "(no application_name)" },
				` older than ${cause.olderThanMinutes} min`,
			];
		case "idle-in-transaction":
			return [
				`${cause.count} session${cause.count === 1 ? "" : "s"} idle in transaction for over ` +
					`${cause.olderThanMinutes} min (longest ` +
					`${formatDuration(cause.longest.stateSeconds * 1000, { seconds: true })}, app `,
				{ code: cause.longest.application || "?" },
				") hold connections and locks",
			];
		case "blocked":
			return [
				`${cause.count} session${cause.count === 1 ? " waits" : "s wait"} on locks held by `,
				...joinText(
					cause.blockers.slice(0, 3).map((pid) => pidText(pid, sessions)),
					", ",
				),
				cause.blockers.length > 3 ? ` and ${cause.blockers.length - 3} more` : "",
			];
		case "pgbouncer-waiting":
			return [
				`${cause.clients} clients waiting in PgBouncer (pool `,
				{ code: `${cause.worst.database}/${cause.worst.user}` },
				`, longest ${cause.worst.maxWaitSeconds.toFixed(1)} s): the pool is too small or queries are slow`,
			];
	}
}

/**
 * /pool as a Report: usage against the limit, where the connections come from, PgBouncer's view, and the likely cause.
 */
export function poolReport(snapshot: PoolSnapshot, thresholds: PoolThresholds): Report {
	const diagnosis = diagnosePool(snapshot, thresholds);
	const fields: ReportField[] = [];
	let title: string;
	const bouncer = snapshot.pgbouncer;
	if (isPostgresUsage(snapshot.postgres)) {
		const pg = snapshot.postgres;
		title = `Connections on ${snapshot.environment}: ${pg.used} / ${pg.usable} used (${diagnosis.percent} %)`;
		fields.push({
			label: "By state",
			value: diagnosis.byState.map((g) => `${g.state} ${g.count}`).join(" · ") || "no client sessions",
		});
		const sources = diagnosis.bySource;
		fields.push({
			label: "By application and address",
			value: [
				...joinText(
					sources.slice(0, 6).map((g): Text => [{ code: g.application || "(none)" }, ` ${g.clientAddr}: ${g.count}`]),
					"\n",
				),
				sources.length > 6 ? `\n… and ${sources.length - 6} more` : "",
			],
			inline: false,
		});
		// Idle connections younger than idleMinutes are a healthy client pool, not worth a field.
		if (diagnosis.idle.some((s) => s.stateSeconds >= thresholds.idleMinutes * 60))
			fields.push({
				label: "Longest idle",
				value: joinText(diagnosis.idle.slice(0, 3).map(sessionLine), "\n"),
				inline: false,
			});
		if (diagnosis.idleInTransaction.length > 0)
			fields.push({
				label: "Longest idle in transaction",
				value: joinText(diagnosis.idleInTransaction.slice(0, 3).map(sessionLine), "\n"),
				inline: false,
			});
		if (diagnosis.blocked.length > 0)
			fields.push({ label: "Blocked", value: blockedText(diagnosis.blocked), inline: false });
	} else {
		title = `Connections on ${snapshot.environment}: PostgreSQL unreachable`;
		fields.push({ label: "PostgreSQL", value: `unreachable: ${snapshot.postgres.error}`, inline: false });
	}
	if (isBouncerUsage(bouncer)) {
		fields.push({
			label: "PgBouncer pools",
			value:
				bouncer.pools.length > 0
					? joinText(
							bouncer.pools.map(
								(p): Text => [
									{ code: `${p.database}/${p.user}` },
									` ${p.poolMode}: clients ${p.clientsActive} active, ${p.clientsWaiting} waiting · servers ` +
										`${p.serversActive} active, ${p.serversIdle} idle · max wait ${p.maxWaitSeconds.toFixed(1)} s`,
								],
							),
							"\n",
						)
					: "no pools yet",
			inline: false,
		});
		if (bouncer.stats.length > 0) {
			fields.push({
				label: "PgBouncer traffic",
				value: joinText(
					bouncer.stats.map(
						(s): Text => [
							{ code: s.database },
							` ${Math.round(s.queriesPerSecond)} queries/s · avg query ${s.avgQueryMs.toFixed(1)} ms · avg wait ` +
								`${s.avgWaitMs.toFixed(1)} ms`,
						],
					),
					"\n",
				),
				inline: false,
			});
		}
	} else if (bouncer) {
		// Only PostgreSQL's own answer makes its figures current; with both down there are none.
		fields.push({
			label: "PgBouncer",
			value:
				`unreachable: ` +
				`${bouncer.error}.${isPostgresUsage(snapshot.postgres) ? " The PostgreSQL figures are current." : ""}`,
			inline: false,
		});
	}
	const sessions = new Map(
		(isPostgresUsage(snapshot.postgres) ? snapshot.postgres.sessions : []).map((s) => [s.pid, s]),
	);
	// A cause under green would read as an alarm in a fine state: there it is only a note.
	const causeLabel = diagnosis.severity === "ok" ? "Note:" : "Likely cause:";
	return {
		title,
		level: diagnosis.severity,
		summary: diagnosis.cause
			? [{ strong: causeLabel }, " ", ...causeText(diagnosis.cause, sessions)]
			: diagnosis.severity === "ok"
				? "Nothing looks wrong."
				: undefined,
		fields,
		footer:
			`warn at ${thresholds.warnPercent} %, critical at ${thresholds.criticalPercent} % of usable ` +
			`connections (max_connections − reserved)${ownNote(snapshot)}`,
		at: snapshot.takenAt,
	};
}

const BLOCKED_SHOWN = 5;

/** The first blocked sessions, then how many more and which applications they are, so none goes unseen. */
function blockedText(blocked: readonly Session[]): Text {
	const hidden = blocked.slice(BLOCKED_SHOWN);
	const apps = [...new Set(hidden.map((s) => s.application || "?"))];
	return [
		...joinText(blocked.slice(0, BLOCKED_SHOWN).map(blockedLine), "\n"),
		...(hidden.length > 0
			? [
					`\n… and ${hidden.length} more (`,
					...joinText(
						apps.slice(0, 5).map((a): Text => ({ code: a })),
						", ",
					),
					apps.length > 5 ? ", …)" : ")",
				]
			: []),
	];
}

// opsbot's own connections are left out of every figure; say how many, so the numbers add up.
function ownNote(snapshot: PoolSnapshot): string {
	const own = [
		isPostgresUsage(snapshot.postgres) && snapshot.postgres.ownSessions > 0
			? `${snapshot.postgres.ownSessions} in PostgreSQL`
			: "",
		isBouncerUsage(snapshot.pgbouncer) && snapshot.pgbouncer.ownClients > 0
			? `${snapshot.pgbouncer.ownClients} in PgBouncer`
			: "",
	].filter(Boolean);
	return own.length > 0 ? `; opsbot's own connections (${own.join(", ")}) are not counted` : "";
}

/** "2 idle connections", "1 session idle in transaction": what an End press ends, counted. */
export function endableText(sessions: EndableSessions, count: number): string {
	return sessions === "idle"
		? `${count} idle connection${count === 1 ? "" : "s"}`
		: `${count} session${count === 1 ? "" : "s"} idle in transaction`;
}

/** "older than 5 min", "longer than 1 min": the age an End press asks for. */
function ageText(sessions: EndableSessions, minutes: number): string {
	return `${sessions === "idle" ? "older" : "longer"} than ${minutes} min`;
}

/** The End button's label: what it would end now; the trailing "…" says a confirmation comes first. */
export function endLabel(offer: EndOffer): string {
	return `End ${endableText(offer.sessions, offer.count)} ${ageText(offer.sessions, offer.olderThanMinutes)}…`;
}

/** What the press answers when nothing qualifies any more. */
export function nothingToEndText(environment: string, sessions: EndableSessions, minutes: number): string {
	return sessions === "idle"
		? `No idle connections older than ${minutes} min on ${environment}; nothing to end.`
		: `No sessions idle in transaction longer than ${minutes} min on ${environment}; nothing to end.`;
}

/**
 * The ephemeral confirmation: exactly which sessions would end, and when the offer lapses (counting down in Discord).
 */
export function terminationPreview(
	environment: string,
	candidates: readonly TerminationCandidate[],
	minutes: number,
	options: { sessions?: EndableSessions; expiresAt: Date },
): Report {
	const sessions = options.sessions ?? "idle";
	const why =
		sessions === "idle"
			? `These sessions have been idle for more than ${minutes} min.`
			: `These sessions have been idle in a transaction for more than ${minutes} min; ending one rolls back its ` +
				`open transaction and frees its locks.`;
	return {
		title: `End ${endableText(sessions, candidates.length)} on ${environment}?`,
		level: "warn",
		summary: [
			`${why} Each is checked again when you confirm; anything that became busy is left alone. This confirmation expires `,
			{ time: options.expiresAt, style: "relative" },
			".",
		],
		lines: candidates.map((c) => ({
			level: "warn" as const,
			label: `pid ${c.pid}`,
			text: [
				{ code: c.application || "?" },
				` ${c.clientAddr} · ${sessions === "idle" ? "idle" : "idle in transaction"} ` +
					`${formatDuration(c.idleSeconds * 1000, { seconds: true })}`,
			],
		})),
	};
}

/** What a confirmed termination did, as message text: how many ended, and the first 30 of them. */
export function terminationResultText(
	environment: string,
	result: TerminationResult,
	sessions: EndableSessions = "idle",
): Text {
	const ended = result.ended;
	return [
		`Ended ${endableText(sessions, ended.length)} on ` +
			`${environment}${result.skipped > 0 ? ` (${result.skipped} left alone: busy again or gone)` : ""}.\n`,
		...joinText(
			ended.slice(0, 30).map((c): Text => [`pid ${c.pid} · `, { code: c.application || "?" }, ` ${c.clientAddr}`]),
			"\n",
		),
		ended.length > 30 ? `\n… and ${ended.length - 30} more` : "",
	];
}

/**
 * The buttons under /pool: the End button that fits the diagnosed cause (none when it would end
 * nothing, or PostgreSQL could not be read), and Refresh.
 */
export function poolButtons(snapshot: PoolSnapshot, thresholds: PoolThresholds) {
	const { offer } = diagnosePool(snapshot, thresholds);
	const row = new ActionRowBuilder<ButtonBuilder>();
	// The idle kind keeps the customId it always had, so buttons on older messages still work.
	if (offer)
		row.addComponents(
			new ButtonBuilder()
				.setCustomId(poolTerminate.id(snapshot.environment, offer.sessions))
				.setLabel(truncate(endLabel(offer), DISCORD_LIMITS.buttonLabel))
				.setStyle(ButtonStyle.Danger),
		);
	row.addComponents(
		new ButtonBuilder()
			.setCustomId(poolRefresh.id(snapshot.environment))
			.setLabel("Refresh")
			.setEmoji({ name: "🔄" })
			.setStyle(ButtonStyle.Secondary),
	);
	return row;
}

async function poolMessage(ctx: HandlerContext, environment: string) {
	const snapshot = await ctx.services.pool.snapshot(environment);
	const report = poolReport(snapshot, ctx.config.ops.pool);
	const history = await ctx.services.pool.history(environment);
	const files: AttachmentPayload[] = [];
	const embed = reportToEmbed(report);
	if (history.samples.length >= 2) {
		const usable = isPostgresUsage(snapshot.postgres) ? snapshot.postgres.usable : undefined;
		// A chart that cannot be drawn leaves the report without its picture, never without its answer.
		const png = await renderChart(poolLineChart(environment, history, usable, ctx.config.ops.pool)).catch(
			(err: unknown) => void ctx.log.warn({ err }, "pool chart could not be drawn"),
		);
		if (png) {
			files.push({ attachment: png, name: "pool.png" });
			embed.setImage("attachment://pool.png");
		}
	}
	const components = isPostgresUsage(snapshot.postgres) ? [poolButtons(snapshot, ctx.config.ops.pool)] : [];
	return { embeds: [embed], files, components };
}

const POOL_OPTIONS = [
	environmentOption("Environment (default: the configured default)"),
] as const satisfies readonly OptionDef[];

/** `/pool [env]`. */
export const pool: Command = {
	name: "pool",
	data: slashCommand({
		name: "pool",
		description: "PostgreSQL and PgBouncer connection usage, with the likely cause of trouble",
		options: POOL_OPTIONS,
	}),
	async execute(interaction, ctx) {
		const { env } = readOptions(interaction.options, POOL_OPTIONS);
		const environment = requireEnvironment(ctx.config.ops, env, "postgres");
		await editReplyWithFiles(interaction, await poolMessage(ctx, environment), ctx.log);
	},
	autocomplete: async (interaction, ctx) =>
		environmentChoices(ctx.config.ops, autocompleteInput(interaction.options, POOL_OPTIONS).focused.value),
};

/** The parse step of the /pool buttons: the environment they name, still configured with PostgreSQL. */
async function postgresEnvironment(id: CustomId, ctx: HandlerContext): Promise<string> {
	return requireEnvironment(ctx.config.ops, id.args[0] ?? "", "postgres");
}

/** Refresh button: the same /pool again, editing the message. */
export const poolRefresh = component({
	area: "pool",
	action: "refresh",
	encode: (environment: string) => [environment],
	permission: { command: "pool" },
	defer: "update",
	parse: postgresEnvironment,
	async run(interaction, environment, ctx) {
		await editReplyWithFiles(interaction, await poolMessage(ctx, environment), ctx.log);
	},
});

/** The End button's environment and which sessions it ends (no second part: idle ones, as buttons always did). */
async function endPress(
	id: CustomId,
	ctx: HandlerContext,
): Promise<{ environment: string; sessions: EndableSessions }> {
	const environment = await postgresEnvironment(id, ctx);
	const kind = id.args[1] ?? "idle";
	if (kind !== "idle" && kind !== "idle-in-transaction")
		throw new PressRefusedError("That button is not valid; run /pool again.", {
			reason: "unknown session kind",
			target: environment,
		});
	return { environment, sessions: kind };
}

/** End button: shows the ephemeral confirmation with exactly the sessions that would end. */
export const poolTerminate = component({
	area: "pool",
	action: "terminate",
	encode: (environment: string, sessions: EndableSessions) => [environment, ...(sessions === "idle" ? [] : [sessions])],
	permission: { action: "pool.terminate" },
	defer: "reply",
	parse: endPress,
	async run(interaction, { environment, sessions }, ctx) {
		const settings = ctx.config.ops.pool;
		const minutes = sessions === "idle" ? settings.idleMinutes : settings.idleInTransactionMinutes;
		const candidates = await ctx.services.pool.idleCandidates(environment, minutes, sessions);
		if (candidates.length === 0) {
			await recordAction(ctx, "pool.terminate", environment, "nothing to end", { sessions });
			await interaction.editReply({ content: nothingToEndText(environment, sessions, minutes) });
			return;
		}
		const token = await ctx.services.confirmations.put(ctx.actor.userId, {
			kind: "pool.terminate",
			environment,
			candidates,
			minutes,
			sessions,
		});
		const expiresAt = new Date(Date.now() + CONFIRMATION_TTL_MS);
		await recordAction(ctx, "pool.terminate", `${environment}: ${candidates.length} sessions`, "confirmation shown", {
			pids: candidates.map((c) => c.pid),
			sessions,
		});
		await interaction.editReply({
			embeds: [reportToEmbed(terminationPreview(environment, candidates, minutes, { sessions, expiresAt }))],
			components: [
				new ActionRowBuilder<ButtonBuilder>().addComponents(
					new ButtonBuilder()
						.setCustomId(poolConfirm.id(token))
						.setLabel(`End ${candidates.length} session${candidates.length === 1 ? "" : "s"}`)
						.setStyle(ButtonStyle.Danger),
					new ButtonBuilder().setCustomId(poolCancel.id(token)).setLabel("Cancel").setStyle(ButtonStyle.Secondary),
				),
			],
		});
	},
});

const terminationConfirmation = pendingState((services) => services.confirmations, "take", {
	expired: "This confirmation has expired or is not valid. Press the button on /pool again.",
	otherUser: "Only the person who asked can confirm this.",
});

/** The open "end idle connections" confirmation a Confirm or Cancel press refers to. */
async function terminationPress(
	id: CustomId,
	ctx: HandlerContext,
): Promise<Extract<Confirmation, { kind: "pool.terminate" }>> {
	const { value } = await terminationConfirmation(id, ctx);
	if (value.kind !== "pool.terminate")
		throw new PressRefusedError("This confirmation has expired or is not valid. Press the button on /pool again.", {
			reason: "unknown confirmation",
			target: "?",
		});
	return value;
}

/** Confirm button: re-checks each session and ends only those that still qualify. */
export const poolConfirm = component({
	area: "pool",
	action: "confirm",
	encode: (token: string) => [token],
	permission: { action: "pool.terminate" },
	defer: "update",
	recordAs: "pool.terminate",
	parse: terminationPress,
	async run(interaction, { environment, candidates, minutes, sessions = "idle" }, ctx) {
		try {
			const result = await ctx.services.pool.terminate(environment, candidates, minutes, sessions);
			await recordAction(ctx, "pool.terminate", `${environment}: ${candidates.length} sessions`, "ok", {
				ended: result.ended.map((c) => c.pid),
				skipped: result.skipped,
				sessions,
			});
			await interaction.editReply({
				content: truncate(textToMarkdown(terminationResultText(environment, result, sessions)), DISCORD_LIMITS.content),
				embeds: [],
				components: [],
			});
		} catch (err) {
			await recordAction(ctx, "pool.terminate", environment, "failed");
			throw err;
		}
	},
});

/** Cancel button on the confirmation: whatever its state, nothing is ended. */
export const poolCancel = cancelButton({
	area: "pool",
	action: "cancel",
	kind: "pool.terminate",
	target: (c) => c.environment,
	nothing: "nothing was ended",
});
