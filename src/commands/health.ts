import { ActionRowBuilder, ButtonBuilder, ButtonStyle, SlashCommandBuilder } from "discord.js";
import { defaultEnvironment, findEnvironment } from "../config.ts";
import { encodeCustomId } from "../discord/custom-id.ts";
import { PressRefusedError } from "../errors.ts";
import { reportToEmbed, worstLevel, type Level, type Report } from "../render/report.ts";
import type { CheckState, HealthService, HealthSnapshot } from "../services/health.ts";
import { environmentChoices, environmentOption, requireEnvironment } from "./options.ts";
import type { Command, ComponentHandler } from "../discord/handler.ts";

const STATE_LEVEL: Record<CheckState, Level> = { ok: "ok", degraded: "warn", down: "critical" };
const ALL = "all";

/** One environment's checks as a Report: overall level, a line per check, when it ran. */
export function healthReport(snapshot: HealthSnapshot): Report {
	const level = worstLevel(snapshot.checks.map((c) => STATE_LEVEL[c.state]));
	const counts = countStates(snapshot);
	return {
		title: `Health of ${snapshot.environment}: ${level === "ok" ? "all good" : level === "warn" ? "degraded" : "down"}`,
		level,
		summary:
			snapshot.checks.length === 0
				? "No checks are configured for this environment."
				: [`${counts.ok} ok · ${counts.degraded} degraded · ${counts.down} down — ran `, { time: snapshot.startedAt, style: "relative" }, ` in ${snapshot.durationMs} ms`],
		lines: snapshot.checks.map((c) => ({
			level: STATE_LEVEL[c.state],
			label: c.name,
			text: `${c.kind === c.name ? "" : `${c.kind} · `}${c.latencyMs} ms — ${c.detail}`,
		})),
		at: snapshot.startedAt,
	};
}

/** Every environment in one compact Report: one line per environment naming what is not ok. */
export function healthSummaryReport(snapshots: readonly HealthSnapshot[]): Report {
	const lines = snapshots.map((s) => {
		const level = worstLevel(s.checks.map((c) => STATE_LEVEL[c.state]));
		const bad = s.checks.filter((c) => c.state !== "ok").map((c) => `${c.name} ${c.state}`);
		const counts = countStates(s);
		return {
			level,
			label: s.environment,
			text: bad.length === 0 ? `${counts.ok} / ${s.checks.length} checks ok` : bad.join(", "),
		};
	});
	const level = worstLevel(lines.map((l) => l.level));
	const at = snapshots[0]?.startedAt;
	return {
		title: `Health of ${snapshots.length} environment${snapshots.length === 1 ? "" : "s"}`,
		level,
		summary: ["Details of one environment: ", { code: "/health env:<name>" }, " (or ", { code: "opsbot health --env <name>" }, ")."],
		lines,
		...(at ? { at } : {}),
	};
}

function countStates(snapshot: HealthSnapshot): Record<CheckState, number> {
	const counts: Record<CheckState, number> = { ok: 0, degraded: 0, down: 0 };
	for (const check of snapshot.checks) counts[check.state]++;
	return counts;
}

/** Runs the checks of one environment, or of all of them in parallel when `environment` is "all". */
export async function runHealth(health: HealthService, environment: string): Promise<Report> {
	if (environment === ALL) return healthSummaryReport(await health.checkAll());
	return healthReport(await health.check(environment));
}

function rerunRow(environment: string) {
	return new ActionRowBuilder<ButtonBuilder>().addComponents(
		new ButtonBuilder().setCustomId(encodeCustomId("health", "rerun", environment)).setLabel("Re-run").setEmoji("🔄").setStyle(ButtonStyle.Secondary),
	);
}

/** `/health [env]`. */
export const health: Command = {
	name: "health",
	data: new SlashCommandBuilder()
		.setName("health")
		.setDescription("Check every service of an environment (or a summary of all)")
		.addStringOption((o) => environmentOption(o, "Environment to check (default: a summary of every environment)"))
		.toJSON(),
	async execute(interaction, ctx) {
		const requested = interaction.options.getString("env");
		const environment = requested ? requireEnvironment(ctx.config.ops, requested) : ALL;
		const report = await runHealth(ctx.services.health, environment);
		await interaction.editReply({ embeds: [reportToEmbed(report)], components: [rerunRow(environment)] });
	},
	autocomplete: async (interaction, ctx) => environmentChoices(ctx.config.ops, interaction.options.getFocused()),
};

/** The Re-run button under a /health answer: runs the same checks again and edits that message. */
export const healthRerun: ComponentHandler<string> = {
	area: "health",
	action: "rerun",
	permission: { command: "health" },
	defer: "update",
	async parse(id, ctx) {
		const environment = id.args[0] ?? defaultEnvironment(ctx.config.ops);
		if (environment !== ALL && !findEnvironment(ctx.config.ops, environment)) {
			throw new PressRefusedError("That environment is no longer configured; run /health again.", { reason: "unknown environment" });
		}
		return environment;
	},
	async run(interaction, environment, ctx) {
		const report = await runHealth(ctx.services.health, environment);
		await interaction.editReply({ embeds: [reportToEmbed(report)], components: [rerunRow(environment)] });
	},
};
