import { ActionRowBuilder, ButtonBuilder, ModalBuilder, TextInputBuilder } from "@discordjs/builders";
import { ButtonStyle, TextInputStyle } from "discord-api-types/v10";
import { logsMessage } from "../commands/logs.ts";
import { discordCreatedBy, requireEnvironmentsAllowed, showSilencePreview } from "../commands/silence.ts";
import { type AlertingOps, findEnvironment } from "../config.ts";
import { CONFIRMATION_TTL_MS } from "../context.ts";
import type { CustomId } from "../discord/custom-id.ts";
import {
	type AnyComponentHandler,
	type ComponentHandler,
	type ComponentInteraction,
	cancelButton,
	component,
	type HandlerContext,
	pendingState,
	recordAction,
} from "../discord/handler.ts";
import { editReplyWithFiles } from "../discord/reply.ts";
import { PressRefusedError, UserFacingError } from "../errors.ts";
import { DISCORD_LIMITS, inlineCode, truncate } from "../render/limits.ts";
import { reportToEmbed } from "../render/report.ts";
import type { AlertManagerClient } from "../services/alertmanager.ts";
import { HttpStatusError, ServiceUnavailableError } from "../services/http.ts";
import {
	CREATE_WORDS,
	environmentsReached,
	maxSilenceMs,
	parseSilenceDuration,
	SILENCE_PRESETS,
	silenceAnswer,
	silenceComment,
} from "../services/silences.ts";
import { SshHostKeyError } from "../services/ssh.ts";
import { alertEnvironment, restartableContainer } from "./actions.ts";
import { noteSilenceOnCard, recordEvent } from "./card-events.ts";
import { OUTPUT_KEPT } from "./episodes.ts";
import { ackHolds, groupRules } from "./escalation.ts";
import { checkSilenceMatchers, formatMatchers, parseMatchers } from "./matchers.ts";
import type { AckState, AlertStore, GroupState } from "./store.ts";
import { buildTimeline } from "./timeline.ts";

/** The durations the Silence select offers, in hours; "custom" opens a form. */
export const SILENCE_CHOICES = [1, 4, 24] as const;

const RELAY_NOT_RUNNING = "The alert relay is not running in this opsbot.";

/** The alert store; a press reaching an opsbot without `alerts` configured is told so. */
function alertStore(ctx: HandlerContext): AlertStore {
	const store = ctx.services.alertState.store;
	if (!store) throw new UserFacingError(RELAY_NOT_RUNNING);
	return store;
}

/** The ops file with its `alerts` settings, which every alert button reads. */
function alertingOps(ctx: HandlerContext): AlertingOps {
	const { alerts } = ctx.config.ops;
	if (!alerts) throw new UserFacingError(RELAY_NOT_RUNNING);
	return { ...ctx.config.ops, alerts };
}

/** The group a press refers to (its customId's first argument); a stale or forged id is refused. */
async function pressedGroup(id: CustomId, ctx: HandlerContext): Promise<GroupState> {
	const group = /^[0-9a-f]{32}$/.test(id.args[0] ?? "") ? await alertStore(ctx).group(id.args[0]!) : undefined;
	if (!group)
		throw new PressRefusedError("This alert is not known to opsbot (any more).", {
			reason: "unknown alert group",
			target: String(id.args[0] ?? "?"),
		});
	return group;
}

/**
 * How long a press waits for the card it was made on to be recorded as its group's message. Within
 * Discord's 3 s to answer a press that opens a form (no deferral), with room for the answer itself.
 */
const UNRECORDED_CARD_WAIT_MS = 1_000;

/**
 * The parse step of presses that act on the group as it stands now in the store: a press on a
 * resolved group, or on the message of an earlier episode (a stale message, or a forged press), is
 * refused. `nothing` finishes the refusal, e.g. "nothing was restarted".
 */
function liveGroup(
	nothing: string,
): (id: CustomId, ctx: HandlerContext, interaction: ComponentInteraction) => Promise<GroupState> {
	return async (id, ctx, interaction) => {
		const pressedOn = interaction.message?.id;
		let group = await pressedGroup(id, ctx);
		// The current episode's card is on Discord but not recorded as the group's yet (a press the moment it
		// appears; longer when the state database is slow): wait a little for it rather than call it an old one.
		const until = Date.now() + UNRECORDED_CARD_WAIT_MS;
		while (pressedOn && group.messageId === null && group.status !== "resolved" && Date.now() < until) {
			await new Promise((resolve) => setTimeout(resolve, 50));
			group = await pressedGroup(id, ctx);
		}
		if (group.status === "resolved")
			throw new PressRefusedError(`This alert is resolved; ${nothing}.`, {
				reason: "alert resolved",
				target: group.groupId,
				details: { episode: group.episode },
			});
		// The message pressed must be the current episode's: an old message of the group speaks of alerts that ended.
		if (pressedOn && pressedOn !== group.messageId) {
			throw new PressRefusedError(
				`This message is about an earlier episode of this alert; ${nothing}. Use the alert's newest message.`,
				{ reason: "earlier episode", target: group.groupId, details: { episode: group.episode, messageId: pressedOn } },
			);
		}
		return group;
	};
}

function alertmanagerOf(ctx: HandlerContext, group: GroupState): AlertManagerClient {
	const alertmanager = ctx.services.alertmanager.forEnvironment(alertEnvironment(alertingOps(ctx), group.payload).name);
	if (!alertmanager)
		throw new UserFacingError(
			"No AlertManager is configured for this alert's environment, so opsbot cannot silence it.",
		);
	return alertmanager;
}

/** AlertManager slow or down is something the user can act on (try again, silence in its UI): say so. */
function unavailable(err: unknown, nothing: string): unknown {
	return err instanceof ServiceUnavailableError
		? new UserFacingError(`${err.message}; ${nothing}.`, { cause: err })
		: err;
}

/**
 * AlertManager's silences page: the alert's own link to it where the payload has one, else the configured API address.
 */
function silencesPage(group: GroupState, alertmanager: AlertManagerClient): string {
	const base = /^https?:\/\//.test(group.payload.externalURL) ? group.payload.externalURL : alertmanager.url;
	return `${base.replace(/\/$/, "")}/#/silences`;
}

async function silence(
	interaction: ComponentInteraction,
	ctx: HandlerContext,
	group: GroupState,
	hours: number,
	comment: string,
): Promise<void> {
	const alertmanager = alertmanagerOf(ctx, group);
	// The labels every alert of the group shares: they match the group's alerts, not every alert of that name.
	const matchers = Object.entries(group.payload.commonLabels).map(([name, value]) => ({
		name,
		value,
		isRegex: false,
		isEqual: true,
	}));
	if (matchers.length === 0)
		throw new UserFacingError("These alerts share no labels, so no single silence can match exactly them.");
	await requireEnvironmentsAllowed(
		ctx,
		"alert.silence",
		environmentsReached(ctx.config.ops, alertEnvironment(alertingOps(ctx), group.payload).name, matchers),
		"nothing was silenced",
	);
	const until = new Date(Date.now() + hours * 3_600_000);
	let id: string;
	try {
		id = await alertmanager.createSilence({
			matchers,
			startsAt: new Date(),
			endsAt: until,
			createdBy: discordCreatedBy(ctx),
			comment: comment || "Silenced from Discord",
		});
	} catch (err) {
		if (err instanceof ServiceUnavailableError)
			await recordAction(ctx, "alert.silence", group.groupId, "failed: AlertManager unavailable", { code: err.code });
		const odd = silenceAnswer(err, silencesPage(group, alertmanager), CREATE_WORDS);
		if (odd) {
			ctx.log.warn({ err }, "AlertManager answered the silence request unexpectedly");
			await recordAction(ctx, "alert.silence", group.groupId, odd.result, odd.details);
			throw odd.error;
		}
		throw unavailable(err, "nothing was silenced");
	}
	await recordAction(ctx, "alert.silence", group.groupId, "ok", { silenceId: id, hours, matchers: matchers.length });
	await noteSilenceOnCard(ctx, group, { id, until: until.getTime(), matchers, ...(comment ? { comment } : {}) });
	await interaction.followUp({
		content: `🔕 Silenced until <t:${Math.floor(until.getTime() / 1000)}:f> (silence ${inlineCode(id)}).`,
		flags: 64,
	});
}

/**
 * Acknowledge (who and when, shown on the message; stops the critical mention on later updates), or take
 * it back (released at once). Someone else's acknowledgement that still holds is not overwritten: the
 * presser hears who got there first, with a button to take it over.
 */
function ackButton(action: "ack" | "unack", nothing: string): ComponentHandler<GroupState> {
	return component({
		area: "alert",
		action,
		encode: (groupId: string) => [groupId],
		permission: { action: "alert.ack" },
		defer: "update",
		parse: liveGroup(nothing),
		async run(interaction, group, ctx) {
			const now = Date.now();
			const first = group.ack;
			const rules = groupRules(alertingOps(ctx), group.payload, group.channel);
			if (action === "ack" && first && first.userId !== ctx.actor.userId && ackHolds(first, rules, now))
				return gotThereFirst(interaction, ctx, group, first);
			const ack = action === "ack" ? { userId: ctx.actor.userId, username: ctx.actor.username, at: now } : null;
			// Only over the acknowledgement read above: a press that changed it meanwhile (another user at the
			// same instant, or another replica) wins, and this one hears who got there first.
			if (!(await alertStore(ctx).setAck(group.groupId, ack, first))) {
				const current = (await alertStore(ctx).group(group.groupId))?.ack ?? null;
				if (action === "ack" && current && current.userId !== ctx.actor.userId)
					return gotThereFirst(interaction, ctx, group, current);
				// The same person's second press at the same instant: the first one did it.
				if (action === "ack" ? current?.userId === ctx.actor.userId : current === null) return;
				await recordAction(ctx, `alert.${action}`, group.groupId, "refused: changed meanwhile");
				throw new PressRefusedError(`This alert changed while you pressed; ${nothing}. Try again.`, {
					reason: "changed meanwhile",
					target: group.groupId,
				});
			}
			await recordAction(ctx, `alert.${action}`, group.groupId, "ok");
			await recordEvent(ctx, group, action === "ack" ? "acknowledged" : "unacknowledged");
		},
	});
}

/** "@alice got there first", with a button to take it over; the refusal goes to the action log. */
async function gotThereFirst(
	interaction: ComponentInteraction,
	ctx: HandlerContext,
	group: GroupState,
	first: AckState,
): Promise<void> {
	await recordAction(ctx, "alert.ack", group.groupId, "refused: already acknowledged", { by: first.userId });
	await interaction.followUp({
		content: `<@${first.userId}> got there first (acknowledged <t:${Math.floor(first.at / 1000)}:R>). Take it over?`,
		flags: 64,
		allowedMentions: { parse: [] },
		components: [
			new ActionRowBuilder<ButtonBuilder>().addComponents(
				new ButtonBuilder()
					// The acknowledgement shown here rides along: taking over replaces that one, not a newer one.
					.setCustomId(alertAckTakeover.id(group.groupId, group.episode, first.userId, first.at))
					.setLabel("Take it over")
					.setEmoji({ name: "✋" })
					.setStyle(ButtonStyle.Primary),
			),
		],
	});
}

export const alertAck = ackButton("ack", "nothing was acknowledged");
export const alertUnack = ackButton("unack", "nothing was changed");

/** "Take it over" under "@alice got there first": the acknowledgement becomes the presser's, said in the log. */
export const alertAckTakeover = component({
	area: "alert",
	action: "takeover",
	encode: (groupId: string, episode: number, userId: string, at: number) => [
		groupId,
		String(episode),
		userId,
		String(at),
	],
	permission: { action: "alert.ack" },
	defer: "update",
	// Pressed on the ephemeral answer, not on the card: the episode in the customId stands for the card.
	async parse(id, ctx) {
		const group = await pressedGroup(id, ctx);
		if (group.status === "resolved" || String(group.episode) !== id.args[1])
			throw new PressRefusedError("This alert has resolved or fired anew since; nothing was acknowledged.", {
				reason: "alert resolved",
				target: group.groupId,
				details: { episode: group.episode },
			});
		// The acknowledgement the answer showed; an answer from before it carried one stands for the current one.
		const [, , shownUser, shownAt] = id.args;
		const shown = shownUser && /^\d+$/.test(shownAt ?? "") ? { userId: shownUser, at: Number(shownAt) } : group.ack;
		return { group, shown };
	},
	async run(interaction, { group, shown }, ctx) {
		const mine = { userId: ctx.actor.userId, username: ctx.actor.username, at: Date.now() };
		if (!(await alertStore(ctx).setAck(group.groupId, mine, shown))) {
			const refusal = {
				reason: "acknowledgement changed",
				target: group.groupId,
				details: { shown: shown?.userId ?? null },
			};
			await recordAction(ctx, "alert.ack", group.groupId, `refused: ${refusal.reason}`, refusal.details);
			throw new PressRefusedError("The acknowledgement changed since this answer; nothing was taken over.", refusal);
		}
		await recordAction(ctx, "alert.ack", group.groupId, "ok: taken over", { from: shown?.userId ?? null });
		await recordEvent(ctx, group, "acknowledged");
		await interaction.editReply({ content: "✋ It is yours now.", components: [] });
	},
});

/** Silence select: 1 h / 4 h / 24 h, or a form for a custom duration and comment. */
export const alertSilence = component({
	area: "alert",
	action: "silence",
	encode: (groupId: string) => [groupId],
	permission: { action: "alert.silence" },
	// A form must be the first answer, so the router does not defer; the group check is a store read, well inside
	// Discord's 3 s.
	defer: "none",
	parse: liveGroup("nothing was silenced"),
	async run(interaction, group, ctx) {
		if (!interaction.isStringSelectMenu()) throw new UserFacingError("This control is not valid.");
		const choice = interaction.values[0];
		if (choice === "custom") {
			// The group is checked again when the form is sent, and once more on Confirm.
			const common = Object.entries(group.payload.commonLabels).map(([name, value]) => ({
				name,
				value,
				isRegex: false,
				isEqual: true,
			}));
			await interaction.showModal(
				new ModalBuilder()
					.setCustomId(alertSilenceForm.id(group.groupId))
					.setTitle("Silence: preview before it is made")
					.addComponents(
						new ActionRowBuilder<TextInputBuilder>().addComponents(
							new TextInputBuilder()
								.setCustomId("duration")
								.setLabel("For how long")
								.setPlaceholder(`${SILENCE_PRESETS.join(", ")} or e.g. 90m`)
								.setValue("1h")
								.setStyle(TextInputStyle.Short)
								.setMaxLength(12)
								.setRequired(true),
						),
						new ActionRowBuilder<TextInputBuilder>().addComponents(
							new TextInputBuilder()
								.setCustomId("comment")
								.setLabel("Why (shown with the silence)")
								.setStyle(TextInputStyle.Paragraph)
								.setMaxLength(500)
								.setRequired(true),
						),
						new ActionRowBuilder<TextInputBuilder>().addComponents(
							new TextInputBuilder()
								.setCustomId("matchers")
								.setLabel("Matchers (AlertManager syntax)")
								.setValue(truncate(formatMatchers(common), 2_000))
								.setStyle(TextInputStyle.Paragraph)
								.setMaxLength(2_000)
								.setRequired(true),
						),
					),
			);
			return;
		}
		await interaction.deferUpdate();
		const hours = Number(choice);
		if (!SILENCE_CHOICES.includes(hours as (typeof SILENCE_CHOICES)[number]))
			throw new UserFacingError("That is not one of the offered durations.");
		await silence(interaction, ctx, group, hours, "");
	},
});

/** The silence form: duration, comment and matchers, checked; then a preview with Confirm (src/commands/silence.ts). */
export const alertSilenceForm = component({
	area: "alert",
	action: "silenceform",
	encode: (groupId: string) => [groupId],
	permission: { action: "alert.silence" },
	defer: "update",
	recordAs: "alert.silence",
	parse: liveGroup("nothing was silenced"),
	async run(interaction, group, ctx) {
		if (!interaction.isModalSubmit()) throw new UserFacingError("This form is not valid.");
		const durationMs = parseSilenceDuration(
			interaction.fields.getTextInputValue("duration"),
			maxSilenceMs(ctx.config.ops),
		);
		const comment = silenceComment(interaction.fields.getTextInputValue("comment"));
		const matchers = parseMatchers(interaction.fields.getTextInputValue("matchers"));
		checkSilenceMatchers(matchers);
		await showSilencePreview(
			interaction,
			ctx,
			{
				kind: "alert.silence",
				environment: alertEnvironment(alertingOps(ctx), group.payload).name,
				matchers,
				durationMs,
				comment,
				groupId: group.groupId,
				episode: group.episode,
			},
			new Set(group.payload.alerts.map((a) => a.fingerprint)),
		);
	},
});

/** Unsilence: expires the silence opsbot created. */
export const alertUnsilence = component({
	area: "alert",
	action: "unsilence",
	encode: (groupId: string) => [groupId],
	permission: { action: "alert.silence" },
	defer: "update",
	parse: liveGroup("nothing was changed"),
	async run(interaction, group, ctx) {
		if (!group.silence) throw new UserFacingError("This alert group is not silenced by opsbot.");
		const alertmanager = alertmanagerOf(ctx, group);
		const silenceId = group.silence.id;
		const outcome = await alertmanager.expireSilence(silenceId).catch(async (err: unknown) => {
			// Like Silence: an answer opsbot cannot read is said plainly and recorded, never "something went wrong".
			if (err instanceof HttpStatusError) {
				ctx.log.warn({ err }, "AlertManager answered the unsilence request unexpectedly");
				await recordAction(ctx, "alert.unsilence", group.groupId, `failed: AlertManager answered HTTP ${err.status}`, {
					silenceId,
					status: err.status,
				});
				throw new UserFacingError(
					[
						`AlertManager answered HTTP ${err.status} to expiring silence `,
						{ code: silenceId },
						`; check it in AlertManager (${silencesPage(group, alertmanager)}).`,
					],
					{ cause: err },
				);
			}
			throw unavailable(err, "the silence was not expired");
		});
		await alertStore(ctx).setSilence(group.groupId, null);
		await recordAction(ctx, "alert.unsilence", group.groupId, outcome === "expired" ? "ok" : "already gone", {
			silenceId: group.silence.id,
		});
		await recordEvent(ctx, group, "unsilenced", { silenceId, result: outcome === "expired" ? "ok" : "already gone" });
		await interaction.followUp({ content: "🔔 Silence expired.", flags: 64 });
	},
});

/** Restart: permission at press, then an ephemeral confirmation naming host and container (60 s). */
export const alertRestart = component({
	area: "alert",
	action: "restart",
	encode: (groupId: string) => [groupId],
	permission: { action: "alert.restart" },
	defer: "reply",
	parse: liveGroup("nothing was restarted"),
	async run(interaction, group, ctx) {
		const container = restartableContainer(alertingOps(ctx), group.payload);
		const env = alertEnvironment(alertingOps(ctx), group.payload);
		if (!container || !env.config?.ssh) {
			await recordAction(ctx, "alert.restart", group.groupId, "refused: no allow-listed container");
			throw new UserFacingError("This alert names no container that opsbot may restart.");
		}
		// The episode is kept with the confirmation so the confirm press can tell the alert moved on.
		const token = await ctx.services.confirmations.put(ctx.actor.userId, {
			kind: "alert.restart",
			environment: env.name,
			container,
			groupId: group.groupId,
			episode: group.episode,
		});
		await recordAction(ctx, "alert.restart", `${env.config.ssh.host}/${container}`, "confirmation shown");
		await interaction.editReply({
			content:
				`Restart container ${inlineCode(container)} on ${inlineCode(env.config.ssh.host)} (${env.name})? ` +
				`This runs \`docker restart ${container}\`. The confirmation expires ` +
				`<t:${Math.floor((Date.now() + CONFIRMATION_TTL_MS) / 1000)}:R>.`,
			components: [
				new ActionRowBuilder<ButtonBuilder>().addComponents(
					new ButtonBuilder()
						.setCustomId(alertRestartConfirm.id(token))
						.setLabel(truncate(`Restart ${container}`, DISCORD_LIMITS.buttonLabel))
						.setStyle(ButtonStyle.Danger),
					new ButtonBuilder()
						.setCustomId(alertRestartCancel.id(token))
						.setLabel("Cancel")
						.setStyle(ButtonStyle.Secondary),
				),
			],
		});
	},
});

// The whole `docker restart` over SSH: connecting, stopping the container (10 s by default, longer with a stop
// timeout), starting it.
const RESTART_TIMEOUT_MS = 120_000;
// After it: the record, the alert's message and the answer to the user.
const RESTART_ANSWER_MS = 10_000;
const CONFIRMATION_GONE = "This confirmation has expired or is not valid. Press Restart on the alert again.";
const restartConfirmation = pendingState((services) => services.confirmations, "take", { expired: CONFIRMATION_GONE });

/** Confirmed restart: one at a time per container, with a cooldown; the result goes in the reply and the action log. */
export const alertRestartConfirm = component({
	area: "alert",
	action: "restartconfirm",
	encode: (token: string) => [token],
	permission: { action: "alert.restart" },
	defer: "update",
	recordAs: "alert.restart",
	async parse(id, ctx) {
		const { value } = await restartConfirmation(id, ctx);
		if (value.kind !== "alert.restart")
			throw new PressRefusedError(CONFIRMATION_GONE, { reason: "unknown confirmation", target: "?" });
		const { environment, container, groupId, episode } = value;
		// The alert may have resolved, or fired again as a new episode, while the confirmation was open.
		const group = await alertStore(ctx).group(groupId);
		if (!group || group.status === "resolved" || group.episode !== episode) {
			const reason = !group
				? "unknown alert group"
				: group.status === "resolved"
					? "alert resolved"
					: "earlier episode";
			throw new PressRefusedError(
				group?.status === "resolved"
					? "This alert is resolved; nothing was restarted."
					: "This alert has changed since the confirmation was shown; nothing was restarted. Press Restart on the " +
							"alert's newest message again.",
				{ reason, target: `${environment}/${container}`, details: { groupId } },
			);
		}
		return value;
	},
	async run(interaction, { environment, container, groupId, episode }, ctx) {
		const ssh = findEnvironment(ctx.config.ops, environment)?.ssh;
		if (!ssh?.containers.includes(container)) throw new UserFacingError("That container is no longer allow-listed.");
		const key = `${environment}/${container}`;
		const lock = ctx.services.alertState.restarts;
		const cooldownMs = alertingOps(ctx).alerts.restartCooldownSeconds * 1000;
		// One claim across replicas: of two confirmations pressed at once, one restarts and the other is told why not.
		const claim = await lock.acquire(key, cooldownMs);
		if (!claim.ok && claim.reason === "running") {
			await recordAction(ctx, "alert.restart", key, "refused: already running");
			throw new UserFacingError(["A restart of ", { code: container }, " is already running."]);
		}
		if (!claim.ok) {
			await recordAction(ctx, "alert.restart", key, "refused: cooldown");
			throw new UserFacingError([
				{ code: container },
				" was restarted ",
				{ time: new Date(claim.lastAt), style: "relative" },
				"; wait until ",
				{ time: new Date(claim.lastAt + cooldownMs), style: "time" },
				" before restarting it again.",
			]);
		}
		const restarted = { groupId, episode };
		const where = { environment, host: ssh.host, container };
		if (claim.tookOver)
			ctx.log.warn({ key, previous: claim.tookOver }, "took over a restart claim whose holder died mid-restart");
		const tookOver = claim.tookOver
			? { tookOverFrom: { ...claim.tookOver, startedAt: new Date(claim.tookOver.startedAt).toISOString() } }
			: {};
		// A shutdown waits for the restart up to its timeout; past that, it is recorded and answered as interrupted.
		// The claim is kept: the process exits next, and the next press anywhere takes over a dead holder's claim.
		const removeRunning = ctx.services.alertState.running.add(
			Date.now() + RESTART_TIMEOUT_MS + RESTART_ANSWER_MS,
			async () => {
				await recordAction(ctx, "alert.restart", key, "interrupted: opsbot stopped before the restart finished", {
					groupId,
				});
				await interaction.editReply({
					content:
						`opsbot was stopped while restarting ${inlineCode(container)} on ${inlineCode(ssh.host)}, before ` +
						`the restart finished, so it cannot tell whether it did. Check the container before restarting it again.`,
					components: [],
				});
			},
		);
		let released = false;
		const release = async () => {
			if (released) return;
			released = true;
			removeRunning();
			await lock.release(key);
		};
		try {
			// docker restart waits for the container to stop (10 s by default, longer with a stop timeout) and start again.
			const result = await ctx.services.ssh.run(environment, ["docker", "restart", container], {
				timeoutMs: RESTART_TIMEOUT_MS,
				maxBytes: 64 * 1024,
			});
			const ok = result.code === 0;
			await recordAction(ctx, "alert.restart", key, ok ? "ok" : `failed: exit ${result.code}`, {
				groupId,
				...tookOver,
			});
			const why = ok ? {} : { exitCode: result.code, reason: firstLine(result.stderr) || "no error output" };
			const output = [result.stdout.trim(), result.stderr.trim()].filter(Boolean).join("\n");
			await recordEvent(ctx, restarted, "restart", {
				...where,
				result: ok ? "ok" : `failed: exit ${result.code}`,
				exitCode: result.code,
				output: output.slice(0, OUTPUT_KEPT),
			});
			await alertStore(ctx).setRestart(groupId, { userId: ctx.actor.userId, container, at: Date.now(), ok, ...why });
			// Released before the answer: whoever reads "Restarted" and presses again meets the cooldown, not "already
			// running" (a race a loaded machine showed).
			await release();
			await interaction.editReply({
				content: ok
					? `🔁 Restarted ${inlineCode(container)} on ${inlineCode(ssh.host)}.`
					: `Restart of ${inlineCode(container)} failed (exit ${result.code}): ` +
						`${inlineCode(result.stderr.trim().slice(0, 300) || "no error output")}`,
				components: [],
			});
		} catch (err) {
			if (err instanceof SshHostKeyError) {
				await recordAction(ctx, "alert.restart", key, "refused: host key mismatch");
				throw err;
			}
			await recordAction(ctx, "alert.restart", key, "failed", tookOver);
			await recordEvent(ctx, restarted, "restart", {
				...where,
				result: "failed",
				output: (err instanceof Error ? err.message : String(err)).slice(0, OUTPUT_KEPT),
			});
			// The card says so too, not only the presser's reply: the next person looking must not press again blind.
			const reason = firstLine(err instanceof Error ? err.message : String(err)) || "the SSH command failed";
			await alertStore(ctx)
				.setRestart(groupId, { userId: ctx.actor.userId, container, at: Date.now(), ok: false, reason })
				.catch((cause: unknown) =>
					ctx.log.warn({ err: cause, groupId }, "could not note the failed restart on the card"),
				);
			throw err;
		} finally {
			await release();
		}
	},
});

/** The first non-empty line of a command's error output or an error message, bounded for a card line. */
function firstLine(text: string): string {
	const line =
		text
			.split("\n")
			.map((l) => l.trim())
			.find((l) => l.length > 0) ?? "";
	return truncate(line, 200);
}

/** Cancel on the restart confirmation: whatever its state, nothing is restarted. */
export const alertRestartCancel = cancelButton({
	area: "alert",
	action: "restartcancel",
	kind: "alert.restart",
	target: (c) => `${c.environment}/${c.container}`,
	nothing: "nothing was restarted",
});

/** Logs: the log search for the alert's service (or container) around when it started. */
export const alertLogs = component({
	area: "alert",
	action: "logs",
	encode: (groupId: string) => [groupId],
	permission: { action: "alert.logs" },
	defer: "reply",
	parse: pressedGroup,
	async run(interaction, group, ctx) {
		const env = alertEnvironment(alertingOps(ctx), group.payload);
		const labels = { ...group.payload.alerts[0]?.labels, ...group.payload.commonLabels };
		const serviceLabel = env.config?.loki?.serviceLabel ?? "service";
		const service = env.config?.loki
			? (labels[serviceLabel] ?? labels.service)
			: labels[alertingOps(ctx).alerts.containerLabel];
		if (!service)
			throw new UserFacingError([
				"This alert has no ",
				{ code: env.config?.loki ? serviceLabel : "container" },
				" label to search logs by.",
			]);
		const started = Math.min(
			...group.payload.alerts.map((a) => Date.parse(a.startsAt)).filter(Number.isFinite),
			Date.now(),
		);
		const end = Math.min(Date.now(), started + 30 * 60_000);
		await recordAction(ctx, "alert.logs", group.groupId, "ok");
		const from = started - 15 * 60_000;
		const to = Math.max(end, started + 60_000);
		await recordEvent(ctx, group, "logs", { environment: env.name, service, from, to });
		await interaction.editReply(
			await logsMessage(
				ctx,
				{
					environment: env.name,
					service,
					start: new Date(from),
					end: new Date(to),
					limit: ctx.config.ops.logs.defaultLimit,
				},
				`Logs of ${service} around ${group.payload.commonLabels.alertname ?? "the alert"}`,
			),
		);
	},
});

/**
 * Timeline on a resolved card: the episode's timeline as a Markdown file, for the postmortem (only
 * the presser sees it).
 */
export const alertTimeline = component({
	area: "alert",
	action: "timeline",
	encode: (groupId: string, episode?: number) => [groupId, ...(episode === undefined ? [] : [String(episode)])],
	permission: { command: "alerts" },
	defer: "reply",
	async parse(id) {
		const [groupId = "", episodeArg] = id.args;
		const episode = episodeArg === undefined ? undefined : Number(episodeArg);
		if (!/^[0-9a-f]{32}$/.test(groupId) || (episode !== undefined && !(Number.isInteger(episode) && episode >= 1)))
			throw new PressRefusedError("This alert is not known to opsbot (any more).", {
				reason: "unknown alert group",
				target: groupId || "?",
			});
		return { groupId, episode };
	},
	async run(interaction, { groupId, episode }, ctx) {
		const timeline = await buildTimeline(alertStore(ctx), alertingOps(ctx), groupId, episode);
		if (!timeline)
			throw new UserFacingError(
				`opsbot no longer holds this episode's history (it keeps ${alertingOps(ctx).alerts.history.days} days).`,
			);
		await recordAction(ctx, "alert.timeline", groupId, "ok", { episode: timeline.episode.episode });
		const name = timeline.episode.name.replace(/[^A-Za-z0-9_-]+/g, "-").slice(0, 60) || "alert";
		await editReplyWithFiles(
			interaction,
			{
				embeds: [reportToEmbed(timeline.report)],
				files: [
					{
						attachment: Buffer.from(timeline.markdown),
						name: `timeline-${name}-${timeline.episode.episode}.md`,
					},
				],
			},
			ctx.log,
		);
	},
});

/** The alert buttons, for the router's component list. */
export const ALERT_BUTTONS: readonly AnyComponentHandler[] = [
	alertAck,
	alertUnack,
	alertAckTakeover,
	alertSilence,
	alertSilenceForm,
	alertUnsilence,
	alertRestart,
	alertRestartConfirm,
	alertRestartCancel,
	alertLogs,
	alertTimeline,
];
