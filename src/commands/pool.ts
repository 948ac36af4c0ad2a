import { ActionRowBuilder, AttachmentBuilder, ButtonBuilder, ButtonStyle, SlashCommandBuilder } from "discord.js";
import type { OpsFile } from "../config.ts";
import type { Confirmation } from "../context.ts";
import { encodeCustomId, type CustomId } from "../discord/custom-id.ts";
import { PressRefusedError } from "../errors.ts";
import { renderChart } from "../render/chart.ts";
import { joinText, reportToEmbed, textToMarkdown, type Inline, type Level, type Report, type ReportField, type Text } from "../render/report.ts";
import type { PgBouncerUsage, PoolSnapshot, PostgresUsage, Session, TerminationCandidate, TerminationResult } from "../services/pool.ts";
import { environmentChoices, environmentOption, requireEnvironment } from "./options.ts";
import { pendingState, rawId, recordAction, type Command, type ComponentHandler, type HandlerContext } from "../discord/handler.ts";
import { editReplyWithFiles } from "../discord/reply.ts";

/** Thresholds from the config's `pool` section. */
export type PoolThresholds = OpsFile["pool"];

const IDLE_IN_TX_WARN_SECONDS = 60;

/** "42 s", "12 min", "3 h 5 min". */
export function formatDuration(seconds: number): string {
	if (seconds < 90) return `${Math.round(seconds)} s`;
	const minutes = Math.round(seconds / 60);
	if (minutes < 90) return `${minutes} min`;
	return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function isPostgresUsage(value: PoolSnapshot["postgres"]): value is PostgresUsage {
	return !("error" in value);
}

function isBouncerUsage(value: PoolSnapshot["pgbouncer"]): value is PgBouncerUsage {
	return value !== undefined && !("error" in value);
}

/** The one-line reason for trouble, when there is an obvious one. */
export function diagnose(snapshot: PoolSnapshot, thresholds: PoolThresholds): Inline[] | undefined {
	const bouncer = isBouncerUsage(snapshot.pgbouncer) ? snapshot.pgbouncer : undefined;
	const waiting = bouncer?.pools.filter((p) => p.clientsWaiting > 0) ?? [];
	if (!isPostgresUsage(snapshot.postgres)) return undefined;
	const pg = snapshot.postgres;
	const clients = pg.sessions;
	const staleIdle = clients.filter((s) => s.state === "idle" && s.stateSeconds >= thresholds.idleMinutes * 60);
	const byApp = groupCount(staleIdle, (s) => s.application || "(no application_name)");
	const [topApp, topCount] = [...byApp.entries()].sort((a, b) => b[1] - a[1])[0] ?? ["", 0];
	if (topCount >= Math.max(5, pg.used * 0.2)) {
		return [`${topCount} idle connection${topCount === 1 ? "" : "s"} from app `, { code: topApp }, ` older than ${thresholds.idleMinutes} min`];
	}
	const stuck = clients.filter((s) => s.state.startsWith("idle in transaction") && s.stateSeconds >= IDLE_IN_TX_WARN_SECONDS);
	if (stuck.length > 0) {
		const longest = stuck.reduce((a, b) => (b.stateSeconds > a.stateSeconds ? b : a));
		return [`${stuck.length} session${stuck.length === 1 ? "" : "s"} idle in transaction for over a minute (longest ${formatDuration(longest.stateSeconds)}, app `, { code: longest.application || "?" }, ") hold connections and locks"];
	}
	const blocked = clients.filter((s) => s.blockedBy.length > 0);
	if (blocked.length > 0) return [`${blocked.length} session${blocked.length === 1 ? " is" : "s are"} blocked by another session's locks (pid ${[...new Set(blocked.flatMap((s) => s.blockedBy))].slice(0, 5).join(", ")})`];
	if (waiting.length > 0) {
		const worst = waiting.reduce((a, b) => (b.maxWaitSeconds > a.maxWaitSeconds ? b : a));
		return [`${waiting.reduce((n, p) => n + p.clientsWaiting, 0)} clients waiting in PgBouncer (pool `, { code: `${worst.database}/${worst.user}` }, `, longest ${worst.maxWaitSeconds.toFixed(1)} s): the pool is too small or queries are slow`];
	}
	return undefined;
}

function groupCount<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
	const counts = new Map<string, number>();
	for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
	return counts;
}

function sessionLine(s: Session): Inline[] {
	return [`pid ${s.pid} · `, { code: s.application || "?" }, ` ${s.clientAddr} · ${formatDuration(s.stateSeconds)}`];
}

/** /pool as a Report: usage against the limit, where the connections come from, PgBouncer's view, and a diagnosis. */
export function poolReport(snapshot: PoolSnapshot, thresholds: PoolThresholds): Report {
	const fields: ReportField[] = [];
	let level: Level = "ok";
	let title: string;
	const bouncer = snapshot.pgbouncer;
	if (isPostgresUsage(snapshot.postgres)) {
		const pg = snapshot.postgres;
		const percent = Math.round((pg.used / pg.usable) * 100);
		level = percent >= thresholds.criticalPercent ? "critical" : percent >= thresholds.warnPercent ? "warn" : "ok";
		title = `Connections on ${snapshot.environment}: ${pg.used} / ${pg.usable} used (${percent} %)`;
		const states = [...groupCount(pg.sessions, (s) => s.state).entries()].sort((a, b) => b[1] - a[1]);
		fields.push({ label: "By state", value: states.map(([state, n]) => `${state} ${n}`).join(" · ") || "no client sessions" });
		const apps = [...groupCount(pg.sessions, (s) => `${s.application || "(none)"}\u0000${s.clientAddr}`).entries()].sort((a, b) => b[1] - a[1]);
		fields.push({
			label: "By application and address",
			value: [
				...joinText(
					apps.slice(0, 6).map(([key, n]): Text => {
						const [app, addr] = key.split("\u0000");
						return [{ code: app ?? "" }, ` ${addr ?? ""}: ${n}`];
					}),
					"\n",
				),
				apps.length > 6 ? `\n… and ${apps.length - 6} more` : "",
			],
			inline: false,
		});
		const others = pg.sessions;
		const longest = (state: (s: Session) => boolean) => others.filter(state).sort((a, b) => b.stateSeconds - a.stateSeconds).slice(0, 3);
		const idle = longest((s) => s.state === "idle");
		const idleTx = longest((s) => s.state.startsWith("idle in transaction"));
		if (idle.length > 0) fields.push({ label: "Longest idle", value: joinText(idle.map(sessionLine), "\n"), inline: false });
		if (idleTx.length > 0) fields.push({ label: "Longest idle in transaction", value: joinText(idleTx.map(sessionLine), "\n"), inline: false });
		const blocked = others.filter((s) => s.blockedBy.length > 0);
		if (blocked.length > 0) fields.push({ label: "Blocked", value: joinText(blocked.slice(0, 5).map((s) => [...sessionLine(s), ` ← pid ${s.blockedBy.join(", ")}`]), "\n"), inline: false });
		if (idleTx.some((s) => s.stateSeconds >= IDLE_IN_TX_WARN_SECONDS) && level === "ok") level = "warn";
	} else {
		level = "critical";
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
		if (bouncer.pools.some((p) => p.clientsWaiting > 0 && p.maxWaitSeconds >= 1) && level === "ok") level = "warn";
	} else if (bouncer) {
		fields.push({ label: "PgBouncer", value: `unreachable: ${bouncer.error}. The PostgreSQL figures are still current.`, inline: false });
		if (level === "ok") level = "warn";
	}
	const diagnosis = diagnose(snapshot, thresholds);
	return {
		title,
		level,
		summary: diagnosis ? [{ strong: "Likely cause:" }, " ", ...diagnosis] : level === "ok" ? "Nothing looks wrong." : undefined,
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
		lines: candidates.map((c) => ({ level: "warn" as const, label: `pid ${c.pid}`, text: [{ code: c.application || "?" }, ` ${c.clientAddr} · idle ${formatDuration(c.idleSeconds)}`] })),
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
		const png = await renderChart({ title: `Connections used on ${environment}`, detail: `source: ${history.source}`, series: [{ name: "used", points: history.samples.map((s) => ({ x: s.at, y: s.used })) }], range: { start: history.samples[0]!.at, end: history.samples.at(-1)!.at }, unit: "connections", limit: usable === undefined ? undefined : { value: usable, label: "usable (max_connections − reserved)" } }).catch((err: unknown) => void ctx.log.warn({ err }, "pool chart could not be drawn"));
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

/** Refresh button: the same /pool again, editing the message. */
export const poolRefresh: ComponentHandler = {
	area: "pool",
	action: "refresh",
	permission: { command: "pool" },
	defer: "update",
	parse: rawId,
	async run(interaction, id, ctx) {
		const environment = requireEnvironment(ctx.config.ops, id.args[0] ?? "", "postgres");
		await editReplyWithFiles(interaction, await poolMessage(ctx, environment), ctx.log);
	},
};

/** "End idle connections" button: shows the ephemeral confirmation with exactly the sessions that would end. */
export const poolTerminate: ComponentHandler = {
	area: "pool",
	action: "terminate",
	permission: { action: "pool.terminate" },
	defer: "reply",
	parse: rawId,
	async run(interaction, id, ctx) {
		const environment = requireEnvironment(ctx.config.ops, id.args[0] ?? "", "postgres");
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
				content: textToMarkdown(terminationResultText(environment, result)).slice(0, 2_000),
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
export const poolCancel: ComponentHandler = {
	area: "pool",
	action: "cancel",
	permission: { action: "pool.terminate" },
	defer: "update",
	parse: rawId,
	async run(interaction, id, ctx) {
		const taken = await ctx.services.confirmations.take(id.args[0] ?? "", ctx.actor.userId);
		await recordAction(ctx, "pool.terminate", taken.ok && taken.value.kind === "pool.terminate" ? taken.value.environment : "?", "cancelled");
		await interaction.editReply({ content: "Cancelled; nothing was ended.", embeds: [], components: [] });
	},
};
