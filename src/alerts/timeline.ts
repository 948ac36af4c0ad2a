import type { AlertingOps } from "../config.ts";
import type { ReportLink } from "../render/report.ts";
import { grafanaExploreUrl } from "../services/log-search.ts";
import { logqlString } from "../services/logql.ts";
import { alertEnvironment } from "./actions.ts";
import type { Episode, EpisodeEvent } from "./episodes.ts";
import { MAX_EPISODE_EVENTS } from "./episodes.ts";
import { annotationLinks } from "./group-report.ts";
import { type TimelineLinks, timelineMarkdown, timelineReport } from "./incident-reports.ts";
import type { AlertStore, GroupState } from "./store.ts";
import { messageUrl } from "./storm.ts";

/** An episode's timeline, in both forms: the Report (terminal, the summary beside the file) and the Markdown file. */
export interface Timeline {
	readonly episode: Episode;
	readonly events: readonly EpisodeEvent[];
	readonly links: TimelineLinks;
	readonly markdown: string;
	readonly report: ReturnType<typeof timelineReport>;
}

const NS_PER_MS = 1_000_000n;

/** The links a timeline offers: the card (current episode), runbook and dashboard, Grafana's logs around the start. */
function timelineLinks(ops: AlertingOps, group: GroupState | undefined, episode: Episode): TimelineLinks {
	if (!group) return { others: [] };
	const card =
		group.episode === episode.episode && group.messageId
			? messageUrl(ops.discord.guildId, group.channel, group.messageId)
			: undefined;
	const others: ReportLink[] = annotationLinks(group.payload.commonAnnotations, group.payload.alerts[0]);
	const { config } = alertEnvironment(ops, group.payload);
	const loki = config?.loki;
	const labels = { ...group.payload.alerts[0]?.labels, ...group.payload.commonLabels };
	const service = loki ? labels[loki.serviceLabel] : undefined;
	if (loki && service) {
		const start = BigInt(episode.startedAt - 15 * 60_000) * NS_PER_MS;
		const end = BigInt(episode.startedAt + 30 * 60_000) * NS_PER_MS;
		const url = grafanaExploreUrl(loki, `{${loki.serviceLabel}=${logqlString(service)}}`, start, end);
		if (url) others.push({ label: "Logs around the start", url });
	}
	return { ...(card ? { card } : {}), others };
}

/** The timeline of a group's episode (its latest when `episode` is undefined), or undefined when opsbot holds none. */
export async function buildTimeline(
	store: AlertStore,
	ops: AlertingOps,
	groupId: string,
	episodeNumber: number | undefined,
	now = Date.now(),
): Promise<Timeline | undefined> {
	const episode = await store.history.episode(groupId, episodeNumber);
	if (!episode) return undefined;
	const [events, group] = await Promise.all([
		store.history.events(groupId, episode.episode, MAX_EPISODE_EVENTS + 1),
		store.group(groupId),
	]);
	const links = timelineLinks(ops, group, episode);
	return {
		episode,
		events,
		links,
		markdown: timelineMarkdown(episode, events, links, now),
		report: timelineReport(episode, events, links),
	};
}

/** A Discord message link's ids, or undefined for anything else. */
export function parseMessageLink(text: string): { channel: string; message: string } | undefined {
	const m =
		/^https:\/\/(?:(?:ptb|canary)\.)?discord(?:app)?\.com\/channels\/\d{17,20}\/(\d{17,20})\/(\d{17,20})\/?$/.exec(
			text.trim(),
		);
	return m ? { channel: m[1]!, message: m[2]! } : undefined;
}
