import { ActionRowBuilder, AttachmentBuilder, ButtonBuilder, ButtonStyle, SlashCommandBuilder } from "discord.js";
import type { Confirmation } from "../context.ts";
import { formatDuration } from "../time.ts";
import { DISCORD_LIMITS, truncate } from "../render/limits.ts";
import { encodeCustomId, type CustomId } from "../discord/custom-id.ts";
import { PressRefusedError } from "../errors.ts";
import { renderChart } from "../render/chart.ts";
import { poolLineChart } from "../render/pool-chart.ts";
import { joinText, reportToEmbed, textToMarkdown, type Inline, type Report, type ReportField, type Text } from "../render/report.ts";
import type { PoolSnapshot, Session, TerminationCandidate, TerminationResult } from "../services/pool.ts";
import { diagnosePool, isBouncerUsage, isPostgresUsage, type PoolCause, type PoolThresholds } from "../services/pool-diagnosis.ts";
import { environmentChoices, environmentOption, requireEnvironment } from "./options.ts";
import { cancelButton, pendingState, recordAction, type Command, type ComponentHandler, type HandlerContext } from "../discord/handler.ts";
import { editReplyWithFiles } from "../discord/reply.ts";


function sessionLine(s: Session): Inline[] {
	return [`pid ${s.pid} · `, { code: s.application || "?" }, ` ${s.clientAddr} · ${formatDuration(s.stateSeconds * 1000, { seconds: true })}`];
}

/** The likely cause in one line. */
function causeText(cause: PoolCause): Inline[] {
	switch (cause.kind) {
		case "stale-idle":
			return [`${cause.count} idle connection${cause.count === 1 ? "" : "s"} from app `, { code: cause.application || "(no application_name)" }, ` older than ${cause.olderThanMinutes} min`];
		case "idle-in-transaction":
			return [`${cause.count} session${cause.count === 1 ? "" : "s"} idle in transaction for over a minute (longest ${formatDuration(cause.longest.stateSeconds * 1000, { seconds: true })}, app `, { code: cause.longest.application || "?" }, ") hold connections and locks"];
		case "blocked":
			return [`${cause.count} session${cause.count === 1 ? " is" : "s are"} blocked by another session's locks (pid ${cause.blockers.slice(0, 5).join(", ")})`];
		case "pgbouncer-waiting":
			return [`${cause.clients} clients waiting in PgBouncer (pool `, { code: `${cause.worst.database}/${cause.worst.user}` }, `, longest ${cause.worst.maxWaitSeconds.toFixed(1)} s): the pool is too small or queries are slow`];
	}
}

/** /pool as a Report: usage against the limit, where the connections come from, PgBouncer's view, and the likely cause. */
export function poolReport(snapshot: PoolSnapshot, thresholds: PoolThresholds): Report {
	const diagnosis = diagnosePool(snapshot, thresholds);
	const fields: ReportField[] = [];
	let title: string;
	const bouncer = snapshot.pgbouncer;
	if (isPostgresUsage(snapshot.postgres)) {
		const pg = snapshot.postgres;
		title = `Connections on ${snapshot.environment}: ${pg.used} / ${pg.usable} used (${diagnosis.percent} %)`;
		fields.push({ label: "By state", value: diagnosis.byState.map((g) => `${g.state} ${g.count}`).join(" · ") || "no client sessions" });
		const sources = diagnosis.bySource;
		fields.push({
			label: "By application and address",
			value: [...joinText(sources.slice(0, 6).map((g): Text => [{ code: g.application || "(none)" }, ` ${g.clientAddr}: ${g.count}`]), "\n"), sources.length > 6 ? `\n… and ${sources.length - 6} more` : ""],
			inline: false,
		});
		if (diagnosis.idle.length > 0) fields.push({ label: "Longest idle", value: joinText(diagnosis.idle.slice(0, 3).map(sessionLine), "\n"), inline: false });
		if (diagnosis.idleInTransaction.length > 0) fields.push({ label: "Longest idle in transaction", value: joinText(diagnosis.idleInTransaction.slice(0, 3).map(sessionLine), "\n"), inline: false });
		if (diagnosis.blocked.length > 0) fields.push({ label: "Blocked", value: joinText(diagnosis.blocked.slice(0, 5).map((s) => [...sessionLine(s), ` ← pid ${s.blockedBy.join(", ")}`]), "\n"), inline: false });
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
							bouncer.pools.map((p): Text => [{ code: `${p.database}/${p.user}` }, ` ${p.poolMode}: clients ${p.clientsActive} active, ${p.clientsWaiting} waiting · servers ${p.serversActive} active, ${p.serversIdle} idle · max wait ${p.maxWaitSeconds.toFixed(1)} s`]),
							"\n",
						)
					: "no pools yet",
			inline: false,
		});
		if (bouncer.stats.length > 0) {
			fields.push({
				label: "PgBouncer traffic",
				value: joinText(bouncer.stats.map((s): Text => [{ code: s.database }, ` ${Math.round(s.queriesPerSecond)} queries/s · avg query ${s.avgQueryMs.toFixed(1)} ms · avg wait ${s.avgWaitMs.toFixed(1)} ms`]), "\n"),
				inline: false,
			});
		}
	} else if (bouncer) {
		fields.push({ label: "PgBouncer", value: `unreachable: ${bouncer.error}. The PostgreSQL figures are still current.`, inline: false });
	}
	return {
		title,
		level: diagnosis.severity,
		summary: diagnosis.cause ? [{ strong: "Likely cause:" }, " ", ...causeText(diagnosis.cause)] : diagnosis.severity === "ok" ? "Nothing looks wrong." : undefined,
		fields,
		footer: `warn at ${thresholds.warnPercent} %, critical at ${thresholds.criticalPercent} % of max_connections minus superuser_reserved_connections${ownNote(snapshot)}`,
		at: snapshot.takenAt,
	};
}

// opsbot's own connections are left out of every figure; say how many, so the numbers add up.
function ownNote(snapshot: PoolSnapshot): string {
	const own = [
		isPostgresUsage(snapshot.postgres) && snapshot.postgres.ownSessions > 0 ? `${snapshot.postgres.ownSessions} in PostgreSQL` : "",
		isBouncerUsage(snapshot.pgbouncer) && snapshot.pgbouncer.ownClients > 0 ? `${snapshot.pgbouncer.ownClients} in PgBouncer` : "",
	].filter(Boolean);
	return own.length > 0 ? `; opsbot's own connections (${own.join(", ")}) are not counted` : "";
}

/** The ephemeral confirmation: exactly which sessions would end. */
export function terminationPreview(environment: string, candidates: readonly TerminationCandidate[], minutes: number): Report {
	return {
		title: `End ${candidates.length} idle connection${candidates.length === 1 ? "" : "s"} on ${environment}?`,
		level: "warn",
		summary: `These sessions have been idle for more than ${minutes} min. Each is checked again when you confirm; anything that became busy is left alone. This confirmation expires in 60 s.`,
		lines: candidates.map((c) => ({ level: "warn" as const, label: `pid ${c.pid}`, text: [{ code: c.application || "?" }, ` ${c.clientAddr} · idle ${formatDuration(c.idleSeconds * 1000, { seconds: true })}`] })),
	};
}

/** What a confirmed termination did, as message text: how many ended, and the first 30 of them. */
export function terminationResultText(environment: string, result: TerminationResult): Text {
	const ended = result.ended;
	return [
		`Ended ${ended.length} idle connection${ended.length === 1 ? "" : "s"} on ${environment}${result.skipped > 0 ? ` (${result.skipped} left alone: busy again or gone)` : ""}.\n`,
		...joinText(ended.slice(0, 30).map((c): Text => [`pid ${c.pid} · `, { code: c.application || "?" }, ` ${c.clientAddr}`]), "\n"),
		ended.length > 30 ? `\n… and ${ended.length - 30} more` : "",
	];
}

function poolButtons(environment: string, minutes: number) {
	return new ActionRowBuilder<ButtonBuilder>().addComponents(
		new ButtonBuilder().setCustomId(encodeCustomId("pool", "terminate", environment)).setLabel(`End idle connections older than ${minutes} min`).setStyle(ButtonStyle.Danger),
		new ButtonBuilder().setCustomId(encodeCustomId("pool", "refresh", environment)).setLabel("Refresh").setEmoji("🔄").setStyle(ButtonStyle.Secondary),
	);
}

async function poolMessage(ctx: HandlerContext, environment: string) {
	const snapshot = await ctx.services.pool.snapshot(environment);
	const report = poolReport(snapshot, ctx.config.ops.pool);
	const history = await ctx.services.pool.history(environment);
	const files: AttachmentBuilder[] = [];
	const embed = reportToEmbed(report);
	if (history.samples.length >= 2) {
		const usable = isPostgresUsage(snapshot.postgres) ? snapshot.postgres.usable : undefined;
		// A chart that cannot be drawn leaves the report without its picture, never without its answer.
		const png = await renderChart(poolLineChart(environment, history, usable, ctx.config.ops.pool)).catch((err: unknown) => void ctx.log.warn({ err }, "pool chart could not be drawn"));
		if (png) {
			files.push(new AttachmentBuilder(png, { name: "pool.png" }));
			embed.setImage("attachment://pool.png");
		}
	}
	const components = isPostgresUsage(snapshot.postgres) ? [poolButtons(environment, ctx.config.ops.pool.idleMinutes)] : [];
	return { embeds: [embed], files, components };
}

/** `/pool [env]`. */
export const pool: Command = {
	name: "pool",
	data: new SlashCommandBuilder()
		.setName("pool")
		.setDescription("PostgreSQL and PgBouncer connection usage, with the likely cause of trouble")
		.addStringOption((o) => environmentOption(o, "Environment (default: the configured default)"))
		.toJSON(),
	async execute(interaction, ctx) {
		const environment = requireEnvironment(ctx.config.ops, interaction.options.getString("env"), "postgres");
		await editReplyWithFiles(interaction, await poolMessage(ctx, environment), ctx.log);
	},
	autocomplete: async (interaction, ctx) => environmentChoices(ctx.config.ops, interaction.options.getFocused()),
};

/** The parse step of the /pool buttons: the environment they name, still configured with PostgreSQL. */
async function postgresEnvironment(id: CustomId, ctx: HandlerContext): Promise<string> {
	return requireEnvironment(ctx.config.ops, id.args[0] ?? "", "postgres");
}

/** Refresh button: the same /pool again, editing the message. */
export const poolRefresh: ComponentHandler<string> = {
	area: "pool",
	action: "refresh",
	permission: { command: "pool" },
	defer: "update",
	parse: postgresEnvironment,
	async run(interaction, environment, ctx) {
		await editReplyWithFiles(interaction, await poolMessage(ctx, environment), ctx.log);
	},
};

/** "End idle connections" button: shows the ephemeral confirmation with exactly the sessions that would end. */
export const poolTerminate: ComponentHandler<string> = {
	area: "pool",
	action: "terminate",
	permission: { action: "pool.terminate" },
	defer: "reply",
	parse: postgresEnvironment,
	async run(interaction, environment, ctx) {
		const minutes = ctx.config.ops.pool.idleMinutes;
		const candidates = await ctx.services.pool.idleCandidates(environment, minutes);
		if (candidates.length === 0) {
			await recordAction(ctx, "pool.terminate", environment, "nothing to end");
			await interaction.editReply({ content: `No idle connections older than ${minutes} min on ${environment}; nothing to end.` });
			return;
		}
		const token = await ctx.services.confirmations.put(ctx.actor.userId, { kind: "pool.terminate", environment, candidates, minutes });
		await recordAction(ctx, "pool.terminate", `${environment}: ${candidates.length} sessions`, "confirmation shown", { pids: candidates.map((c) => c.pid) });
		await interaction.editReply({
			embeds: [reportToEmbed(terminationPreview(environment, candidates, minutes))],
			components: [
				new ActionRowBuilder<ButtonBuilder>().addComponents(
					new ButtonBuilder().setCustomId(encodeCustomId("pool", "confirm", token)).setLabel(`End ${candidates.length} session${candidates.length === 1 ? "" : "s"}`).setStyle(ButtonStyle.Danger),
					new ButtonBuilder().setCustomId(encodeCustomId("pool", "cancel", token)).setLabel("Cancel").setStyle(ButtonStyle.Secondary),
				),
			],
		});
	},
};

const terminationConfirmation = pendingState((services) => services.confirmations, "take", { expired: "This confirmation has expired or is not valid. Press the button on /pool again.", otherUser: "Only the person who asked can confirm this." });

/** The open "end idle connections" confirmation a Confirm or Cancel press refers to. */
async function terminationPress(id: CustomId, ctx: HandlerContext): Promise<Extract<Confirmation, { kind: "pool.terminate" }>> {
	const { value } = await terminationConfirmation(id, ctx);
	if (value.kind !== "pool.terminate") throw new PressRefusedError("This confirmation has expired or is not valid. Press the button on /pool again.", { reason: "unknown confirmation", target: "?" });
	return value;
}

/** Confirm button: re-checks each session and ends only those that still qualify. */
export const poolConfirm: ComponentHandler<Extract<Confirmation, { kind: "pool.terminate" }>> = {
	area: "pool",
	action: "confirm",
	permission: { action: "pool.terminate" },
	defer: "update",
	recordAs: "pool.terminate",
	parse: terminationPress,
	async run(interaction, { environment, candidates, minutes }, ctx) {
		try {
			const result = await ctx.services.pool.terminate(environment, candidates, minutes);
			await recordAction(ctx, "pool.terminate", `${environment}: ${candidates.length} sessions`, "ok", { ended: result.ended.map((c) => c.pid), skipped: result.skipped });
			await interaction.editReply({
				content: truncate(textToMarkdown(terminationResultText(environment, result)), DISCORD_LIMITS.content),
				embeds: [],
				components: [],
			});
		} catch (err) {
			await recordAction(ctx, "pool.terminate", environment, "failed");
			throw err;
		}
	},
};

/** Cancel button on the confirmation: whatever its state, nothing is ended. */
export const poolCancel = cancelButton({ area: "pool", action: "cancel", kind: "pool.terminate", target: (c) => c.environment, nothing: "nothing was ended" });
