import type { ActionName, CommandName, OpsFile } from "../config.ts";

/** Who is asking: the Discord user and the role ids they hold in the guild at this moment. */
export interface Actor {
	readonly userId: string;
	readonly username: string;
	readonly roleIds: readonly string[];
}

/** Answers "may this person do that?" from the config's access lists. Default deny. */
export interface AccessPolicy {
	mayUseCommand(actor: Actor, command: CommandName): boolean;
	mayDo(actor: Actor, action: ActionName): boolean;
	/** Whether the actor may act on an environment (`access.environments`; one not listed there is open). */
	mayActOn(actor: Actor, environment: string): boolean;
}

/** Builds the policy; role names resolve through `discord.roles`, raw ids are accepted too. */
export function createAccessPolicy(ops: Pick<OpsFile, "access" | "discord">): AccessPolicy {
	const resolve = (refs: readonly string[] | undefined): { everyone: boolean; roleIds: Set<string> } => ({
		everyone: refs?.includes("everyone") ?? false,
		roleIds: new Set((refs ?? []).filter((r) => r !== "everyone").map((r) => ops.discord.roles[r] ?? r)),
	});
	const allowed = (refs: readonly string[] | undefined, actor: Actor): boolean => {
		const { everyone, roleIds } = resolve(refs);
		return everyone || actor.roleIds.some((id) => roleIds.has(id));
	};
	return {
		mayUseCommand: (actor, command) => allowed(ops.access.commands[command], actor),
		mayDo: (actor, action) => allowed(ops.access.actions[action], actor),
		mayActOn: (actor, environment) => {
			const refs = ops.access.environments?.[environment];
			return refs === undefined || allowed(refs, actor);
		},
	};
}
