import { SlashCommandBuilder } from "discord.js";
import { type Command, recordAction } from "../discord/handler.ts";
import { UserFacingError } from "../errors.ts";
import { type Report, reportToEmbed } from "../render/report.ts";
import { newTestAlert, ownWebhook, postWebhook } from "../test-alert.ts";

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

/**
 * `/alerts test`: the same synthetic group as `opsbot test-alert`, through the bot's own webhook, so
 * a channel's set-up (routes, permissions, role mention) is checked without a real incident. The
 * resolution is sent by this process after `resolve_after` seconds; a restart before then leaves
 * the test group firing until the next test or a manual resolve.
 */
export const alerts: Command = {
	name: "alerts",
	data: new SlashCommandBuilder()
		.setName("alerts")
		.setDescription("The AlertManager relay")
		.addSubcommand((s) =>
			s
				.setName("test")
				.setDescription("Send a test alert through the webhook to a channel; it resolves by itself")
				.addStringOption((o) =>
					o
						.setName("severity")
						.setDescription("Severity label (default warning)")
						.addChoices(
							{ name: "warning", value: "warning" },
							{ name: "critical", value: "critical" },
							{ name: "info", value: "info" },
						),
				)
				.addStringOption((o) =>
					o
						.setName("channel")
						.setDescription("Channel id (default: where the routes send it)")
						.setMinLength(17)
						.setMaxLength(20),
				)
				.addIntegerOption((o) =>
					o
						.setName("resolve_after")
						.setDescription("Seconds until it resolves (default 60)")
						.setMinValue(1)
						.setMaxValue(3_600),
				),
		)
		.toJSON(),
	async execute(interaction, ctx) {
		if (interaction.options.getSubcommand() !== "test") throw new UserFacingError("Unknown /alerts subcommand.");
		const severity = interaction.options.getString("severity") ?? "warning";
		const channel = interaction.options.getString("channel") ?? undefined;
		if (channel !== undefined && !/^\d{17,20}$/.test(channel))
			throw new UserFacingError("`channel` must be a channel id (right-click the channel > Copy Channel ID).");
		const resolveAfter = interaction.options.getInteger("resolve_after") ?? 60;
		const target = ownWebhook(ctx.config);
		const alert = newTestAlert(ctx.config.ops.alerts!, {
			severity,
			sentBy: `@${ctx.actor.username}`,
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
