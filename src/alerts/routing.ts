import type { OpsFile } from "../config.ts";

type AlertsConfig = NonNullable<OpsFile["alerts"]>;

/** Where a group goes: a channel, and the role to mention while it is critical and firing. */
export interface RouteTarget {
	readonly channel: string;
	readonly mentionRole?: string;
}

/**
 * Picks channels for a group by its labels: the first matching route wins unless it says
 * `continue`; with no match, the default channel. Regexes are anchored, as in AlertManager.
 */
export function routeGroup(
	labels: Readonly<Record<string, string>>,
	config: Pick<AlertsConfig, "routes" | "defaultChannel">,
): RouteTarget[] {
	const targets: RouteTarget[] = [];
	for (const route of config.routes) {
		const equal = Object.entries(route.match).every(([k, v]) => labels[k] === v);
		const regex = Object.entries(route.matchRe).every(([k, v]) => new RegExp(`^(?:${v})$`).test(labels[k] ?? ""));
		if (!equal || !regex) continue;
		if (!targets.some((t) => t.channel === route.channel))
			targets.push({ channel: route.channel, ...(route.mentionRole ? { mentionRole: route.mentionRole } : {}) });
		if (!route.continue) break;
	}
	return targets.length > 0 ? targets : [{ channel: config.defaultChannel }];
}
