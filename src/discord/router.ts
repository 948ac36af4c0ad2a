import { randomUUID } from "node:crypto";
import type { Interaction, RepliableInteraction } from "discord.js";
import { MessageFlags } from "discord-api-types/v10";
import type { AppContext } from "../context.ts";
import { PermissionDeniedError, PressRefusedError, UserFacingError, withTimeout } from "../errors.ts";
import type { InteractionResult } from "../metrics.ts";
import { cutWhole, DISCORD_LIMITS, truncate } from "../render/limits.ts";
import { textToMarkdown } from "../render/report.ts";
import type { Actor } from "./access.ts";
import { decodeCustomId } from "./custom-id.ts";
import { type AnyComponentHandler, type Command, type HandlerContext, recordAction } from "./handler.ts";

// Discord gives 3 s for autocomplete and has no deferred form; answer with nothing rather than late.
const AUTOCOMPLETE_BUDGET_MS = 2_500;

/** Routes every interaction: commands by name, components by customId, one error path. */
export interface Router {
	handle(interaction: Interaction): Promise<void>;
	/** Stops taking new interactions and waits for those in flight (graceful shutdown). */
	drain(): Promise<void>;
}

/** Builds the router over the one command list and the component handlers. */
export function createRouter(
	commands: readonly Command[],
	components: readonly AnyComponentHandler[],
	ctx: AppContext,
): Router {
	const byName = new Map(commands.map((c) => [c.name as string, c]));
	const byCustomId = new Map(components.map((h) => [`${h.area}:${h.action}`, h]));
	const inFlight = new Set<Promise<void>>();
	let accepting = true;

	async function dispatch(interaction: Interaction): Promise<void> {
		const started = performance.now();
		const kind = interaction.isAutocomplete()
			? "autocomplete"
			: interaction.isChatInputCommand()
				? "command"
				: "component";
		const name =
			interaction.isCommand() || interaction.isAutocomplete()
				? interaction.commandName
				: "customId" in interaction
					? interaction.customId.split(":", 2).join(":") || "?"
					: "?";
		// Only names opsbot knows become label values: forged custom ids must not grow the metrics.
		const labels = { kind, name: byName.has(name) || byCustomId.has(name) ? name : "unknown" };
		const seconds = () => (performance.now() - started) / 1000;
		// Handlers answer through their own paths; the router counts how each one ended.
		const done = (result: InteractionResult) => {
			ctx.services.metrics.interactions.inc({ ...labels, result });
			ctx.services.metrics.interactionDuration.observe(labels, seconds());
		};
		const firstResponse = () => ctx.services.metrics.interactionFirstResponse.observe(labels, seconds());
		const actor = actorOf(interaction);
		const log = ctx.log.child({ interactionId: interaction.id, userId: actor.userId });
		// Access lists name roles of the configured guild: anywhere else (a DM, another server) nobody is known, so nothing
		// is served.
		if (interaction.guildId !== ctx.config.ops.discord.guildId) {
			await refuseOutsideGuild(interaction, actor, log);
			done("outside-guild");
			return;
		}
		const ephemeral = !ctx.config.ops.discord.opsChannels.includes(interaction.channelId ?? "");
		const handlerCtx: HandlerContext = { ...ctx, actor, log, ephemeral };

		if (interaction.isAutocomplete()) {
			const command = byName.get(interaction.commandName);
			let choices: { name: string; value: string | number }[] = [];
			let result: InteractionResult = "ok";
			try {
				if (command?.autocomplete && ctx.access.mayUseCommand(actor, command.name)) {
					choices = await withTimeout(command.autocomplete(interaction, handlerCtx), AUTOCOMPLETE_BUDGET_MS);
				}
			} catch (err) {
				result = "error";
				log.warn({ err, cmd: interaction.commandName }, "autocomplete failed");
			}
			await interaction
				.respond(
					choices.slice(0, DISCORD_LIMITS.autocompleteChoices).map((c) => ({
						name: truncate(c.name, DISCORD_LIMITS.choiceName),
						value: typeof c.value === "string" ? cutWhole(c.value, DISCORD_LIMITS.choiceValue) : c.value,
					})),
				)
				.catch((err: unknown) => log.warn({ err }, "autocomplete respond failed"));
			firstResponse();
			done(result);
			return;
		}

		if (interaction.isChatInputCommand()) {
			const command = byName.get(interaction.commandName);
			const cmdLog = log.child({ cmd: interaction.commandName });
			if (!command) {
				cmdLog.warn("unknown command");
				await replyError(
					interaction,
					new UserFacingError("This command is not known to this version of opsbot."),
					cmdLog,
				);
				done("refused");
				return;
			}
			if (!ctx.access.mayUseCommand(actor, command.name)) {
				cmdLog.info({ roles: actor.roleIds }, "command refused: role not allowed");
				await replyError(interaction, new PermissionDeniedError(`use /${command.name}`), cmdLog);
				done("refused");
				return;
			}
			const result = await run(interaction, { ...handlerCtx, log: cmdLog }, async () => {
				// Deferring first, centrally, keeps every command inside Discord's 3 s deadline.
				await interaction.deferReply(ephemeral ? { flags: MessageFlags.Ephemeral } : {});
				firstResponse();
				await command.execute(interaction, { ...handlerCtx, log: cmdLog });
			});
			done(result);
			return;
		}

		if (interaction.isMessageComponent() || interaction.isModalSubmit()) {
			const id = decodeCustomId(interaction.customId);
			const handler = id ? byCustomId.get(`${id.area}:${id.action}`) : undefined;
			const cLog = log.child({ customId: interaction.customId.slice(0, DISCORD_LIMITS.customId) });
			const pressCtx: HandlerContext = { ...handlerCtx, log: cLog };
			const target = interaction.customId.slice(0, DISCORD_LIMITS.customId);
			const refusedAs = id && handler ? (handler.recordAs ?? `${id.area}.${id.action}`) : "unknown-button";
			const recordRefusal = (reason: string, at = target, details?: Record<string, unknown>) =>
				recordAction(pressCtx, refusedAs, at, `refused: ${reason}`, details).catch((err: unknown) =>
					cLog.error({ err }, "could not record a refused press"),
				);
			if (!id || !handler) {
				cLog.warn("refused a button or form opsbot did not make (unknown or forged customId)");
				await recordRefusal("unknown or forged customId");
				await replyError(
					interaction,
					new UserFacingError("This button is not valid (any more). Run the command again."),
					cLog,
				);
				done("refused");
				return;
			}
			const allowed =
				"action" in handler.permission
					? ctx.access.mayDo(actor, handler.permission.action)
					: ctx.access.mayUseCommand(actor, handler.permission.command);
			if (!allowed) {
				cLog.info({ roles: actor.roleIds, permission: handler.permission }, "button refused: role not allowed");
				await recordRefusal("role not allowed");
				const what = "action" in handler.permission ? handler.permission.action : `/${handler.permission.command}`;
				await replyError(interaction, new PermissionDeniedError(`use ${what}`), cLog);
				done("refused");
				return;
			}
			// After deferUpdate (by the router or the handler), an error must not overwrite the message the component sits on:
			// say it in a follow-up.
			const result = await run(
				interaction,
				pressCtx,
				async () => {
					if (handler.defer === "update") await interaction.deferUpdate();
					else if (handler.defer === "reply") await interaction.deferReply({ flags: MessageFlags.Ephemeral });
					if (handler.defer !== "none") firstResponse();
					let parsed: unknown;
					try {
						parsed = await handler.parse(id, pressCtx, interaction);
					} catch (err) {
						if (err instanceof PressRefusedError) {
							cLog.info({ reason: err.reason }, "press refused");
							await recordRefusal(err.reason, err.target ?? target, err.details);
						}
						throw err;
					}
					await handler.run(interaction, parsed, pressCtx);
				},
				handler.defer !== "reply",
			);
			done(result);
		}
	}

	async function refuseOutsideGuild(interaction: Interaction, actor: Actor, log: HandlerContext["log"]): Promise<void> {
		const from = interaction.guildId ? `guild ${interaction.guildId}` : "a DM";
		const target =
			interaction.isCommand() || interaction.isAutocomplete()
				? `/${interaction.commandName}`
				: interaction.isMessageComponent() || interaction.isModalSubmit()
					? interaction.customId.slice(0, DISCORD_LIMITS.customId)
					: "interaction";
		log.warn(
			{ guildId: interaction.guildId, channelId: interaction.channelId, target },
			"refused an interaction from outside opsbot's server",
		);
		if (interaction.isAutocomplete()) {
			// Every keystroke sends one: answered with nothing, logged, not recorded.
			await interaction.respond([]).catch((err: unknown) => log.warn({ err }, "autocomplete respond failed"));
			return;
		}
		if (interaction.isRepliable()) {
			const content = "opsbot only works in its own server.";
			// A DM is already private to the user: say it plainly there, ephemerally in someone else's server.
			await interaction
				.reply(interaction.guildId ? { content, flags: MessageFlags.Ephemeral } : { content })
				.catch((err: unknown) => log.warn({ err }, "refusal reply failed"));
		}
		await ctx.services.actionLog
			.record({
				actor: { userId: actor.userId, username: actor.username },
				action: "outside-guild",
				target,
				result: `refused: sent from ${from}`,
				details: { guildId: interaction.guildId, channelId: interaction.channelId },
			})
			.catch((err: unknown) => log.error({ err }, "could not record a refused interaction"));
	}

	return {
		async handle(interaction) {
			if (!accepting) {
				if (interaction.isRepliable()) {
					await interaction
						.reply({ content: "opsbot is restarting; try again in a moment.", flags: MessageFlags.Ephemeral })
						.catch(() => undefined);
				}
				return;
			}
			const work = dispatch(interaction).catch((err: unknown) => ctx.log.error({ err }, "interaction dispatch failed"));
			inFlight.add(work);
			await work.finally(() => inFlight.delete(work));
		},
		async drain() {
			accepting = false;
			await Promise.allSettled([...inFlight]);
		},
	};
}

async function run(
	interaction: RepliableInteraction,
	ctx: HandlerContext,
	work: () => Promise<void>,
	asFollowUp = false,
): Promise<"ok" | "refused" | "error"> {
	try {
		await work();
		return "ok";
	} catch (err) {
		await replyError(interaction, err, ctx.log, asFollowUp);
		return err instanceof UserFacingError ? "refused" : "error";
	}
}

/**
 * The one error path: a user-facing message as written, anything else a generic text with a short ref that is also
 * logged.
 */
export async function replyError(
	interaction: RepliableInteraction,
	err: unknown,
	log: HandlerContext["log"],
	asFollowUp = false,
): Promise<void> {
	const known = err instanceof UserFacingError;
	const ref = randomUUID().slice(0, 8);
	if (known) log.info({ err: { message: err.message, name: err.name } }, "interaction refused");
	else log.error({ err, ref }, "interaction failed");
	const content = known
		? truncate(textToMarkdown(err.text), DISCORD_LIMITS.content)
		: `Something went wrong (ref \`${ref}\`). The details are in opsbot's log.`;
	const reply = !(interaction.deferred || interaction.replied)
		? interaction.reply({ content, flags: MessageFlags.Ephemeral })
		: asFollowUp
			? interaction.followUp({ content, flags: MessageFlags.Ephemeral })
			: interaction.editReply({ content, embeds: [], components: [], files: [] });
	await reply.catch((replyErr: unknown) => log.warn({ err: replyErr }, "error reply failed"));
}

function actorOf(interaction: Interaction): Actor {
	const member = interaction.member;
	let roleIds: string[] = [];
	if (member) {
		// A cached GuildMember has a role manager; a raw API member carries an array of ids.
		roleIds = Array.isArray(member.roles) ? [...member.roles] : [...member.roles.cache.keys()];
	}
	return { userId: interaction.user.id, username: interaction.user.username, roleIds };
}
