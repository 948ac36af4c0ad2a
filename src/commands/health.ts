import { ActionRowBuilder, ButtonBuilder } from "@discordjs/builders";
import { ButtonStyle } from "discord-api-types/v10";
import { defaultEnvironment, findEnvironment } from "../config.ts";
import { type Command, component } from "../discord/handler.ts";
import { PressRefusedError } from "../errors.ts";
import { truncate } from "../render/limits.ts";
import { type Level, type Report, reportToEmbed, worstLevel } from "../render/report.ts";
import type { CheckResult, CheckState, HealthService, HealthSnapshot } from "../services/health.ts";
import {
	autocompleteInput,
	environmentChoices,
	environmentOption,
	type OptionDef,
	readOptions,
	requireEnvironment,
	slashCommand,
} from "./options.ts";

const STATE_LEVEL: Record<CheckState, Level> = { ok: "ok", degraded: "warn", down: "critical" };
const STATE_RANK: Record<CheckState, number> = { down: 0, degraded: 1, ok: 2 };
const ALL = "all";
// A line of a check is one line: long details (a host with many mounts is summarised before this) are cut here.
const DETAIL_MAX = 600;

/** Checks worst first: down, degraded, ok; config order within each (sort is stable). */
function worstFirst(checks: readonly CheckResult[]): CheckResult[] {
	return [...checks].sort((a, b) => STATE_RANK[a.state] - STATE_RANK[b.state]);
}

/** An environment's level: grey when nothing was checked, never a green "all good". */
function environmentLevel(snapshot: HealthSnapshot): Level {
	return snapshot.checks.length === 0 ? "info" : worstLevel(snapshot.checks.map((c) => STATE_LEVEL[c.state]));
}

const LEVEL_STATE: Record<Level, string> = {
	info: "no checks configured",
	ok: "all good",
	warn: "degraded",
	critical: "down",
};

/** One environment's checks as a Report: overall level, a line per check (worst first), when it ran. */
export function healthReport(snapshot: HealthSnapshot): Report {
	const level = environmentLevel(snapshot);
	const counts = countStates(snapshot);
	return {
		title: `Health of ${snapshot.environment}: ${LEVEL_STATE[level]}`,
		level,
		summary:
			snapshot.checks.length === 0
				? "Nothing was checked: this environment configures no checks."
				: [
						`${countsText([
							[counts.down, "down"],
							[counts.degraded, "degraded"],
							[counts.ok, "ok"],
						])} — ran `,
						{ time: snapshot.startedAt, style: "relative" },
						` in ${snapshot.durationMs} ms`,
					],
		lines: worstFirst(snapshot.checks).map((c) => ({
			level: STATE_LEVEL[c.state],
			label: c.name,
			text:
				`${c.kind === c.name ? "" : `${c.kind} · `}${c.latencyMs} ms — ` +
				`${truncate(c.detail.replace(/[\r\n]+/g, " "), DETAIL_MAX)}`,
		})),
		at: snapshot.startedAt,
	};
}

/** How to ask for one environment's details, in the words of the view that shows the summary. */
export const HEALTH_DETAIL_HINT = {
	discord: "Details of one environment: /health env:<name>",
	cli: "Details of one environment: opsbot health --env <name>",
} as const;

/**
 * Every environment in one compact Report: status first, one line per environment (worst first) naming what is not ok.
 */
export function healthSummaryReport(
	snapshots: readonly HealthSnapshot[],
	hint: string = HEALTH_DETAIL_HINT.discord,
): Report {
	const ranked = snapshots.map((s) => ({ snapshot: s, level: environmentLevel(s) }));
	const rank: Record<Level, number> = { critical: 0, warn: 1, ok: 2, info: 3 };
	ranked.sort((a, b) => rank[a.level] - rank[b.level]);
	const lines = ranked.map(({ snapshot: s, level }) => {
		const bad = worstFirst(s.checks.filter((c) => c.state !== "ok")).map((c) => `${c.name} ${c.state}`);
		const counts = countStates(s);
		return {
			level,
			label: s.environment,
			text:
				s.checks.length === 0
					? "no checks configured"
					: bad.length === 0
						? `${counts.ok} / ${s.checks.length} checks ok`
						: bad.join(", "),
		};
	});
	const level = snapshots.length === 0 ? "info" : worstLevel(lines.map((l) => l.level));
	const byLevel = (l: Level) => ranked.filter((r) => r.level === l).length;
	const at = snapshots[0]?.startedAt;
	const status = countsText([
		[byLevel("critical"), "down"],
		[byLevel("warn"), "degraded"],
		[byLevel("ok"), "ok"],
		[byLevel("info"), "without checks"],
	]);
	return {
		title:
			snapshots.length === 0
				? "Health: no environments configured"
				: `Health of ${snapshots.length} environment${snapshots.length === 1 ? "" : "s"}: ` +
					`${LEVEL_STATE[level === "info" ? "info" : level]}`,
		level,
		...(snapshots.length === 0 ? {} : { summary: status }),
		lines,
		footer: hint,
		...(at ? { at } : {}),
	};
}

/** "2 down · 1 ok": the counts that are not zero, worst first. */
function countsText(counts: readonly (readonly [number, string])[]): string {
	return counts
		.filter(([n]) => n > 0)
		.map(([n, word]) => `${n} ${word}`)
		.join(" · ");
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
		new ButtonBuilder()
			.setCustomId(healthRerun.id(environment))
			.setLabel("Re-run")
			.setEmoji({ name: "🔄" })
			.setStyle(ButtonStyle.Secondary),
	);
}

const HEALTH_OPTIONS = [
	environmentOption("Environment to check (default: a summary of every environment)"),
] as const satisfies readonly OptionDef[];

/** `/health [env]`. */
export const health: Command = {
	name: "health",
	data: slashCommand({
		name: "health",
		description: "Check every service of an environment (or a summary of all)",
		options: HEALTH_OPTIONS,
	}),
	async execute(interaction, ctx) {
		const { env } = readOptions(interaction.options, HEALTH_OPTIONS);
		const environment = env ? requireEnvironment(ctx.config.ops, env) : ALL;
		const report = await runHealth(ctx.services.health, environment);
		await interaction.editReply({ embeds: [reportToEmbed(report)], components: [rerunRow(environment)] });
	},
	autocomplete: async (interaction, ctx) =>
		environmentChoices(ctx.config.ops, autocompleteInput(interaction.options, HEALTH_OPTIONS).focused.value),
};

/** The Re-run button under a /health answer: runs the same checks again and edits that message. */
export const healthRerun = component({
	area: "health",
	action: "rerun",
	encode: (environment: string) => [environment],
	permission: { command: "health" },
	defer: "update",
	async parse(id, ctx) {
		const environment = id.args[0] ?? defaultEnvironment(ctx.config.ops);
		if (environment !== ALL && !findEnvironment(ctx.config.ops, environment)) {
			throw new PressRefusedError("That environment is no longer configured; run /health again.", {
				reason: "unknown environment",
			});
		}
		return environment;
	},
	async run(interaction, environment, ctx) {
		const report = await runHealth(ctx.services.health, environment);
		await interaction.editReply({ embeds: [reportToEmbed(report)], components: [rerunRow(environment)] });
	},
});
