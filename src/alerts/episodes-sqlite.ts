import type { DatabaseSync } from "node:sqlite";
import {
	type Episode,
	type EpisodeEvent,
	type EpisodeHistory,
	type EventDetails,
	type FiringCount,
	type FiringEpisode,
	type GroupChange,
	historyWrites,
	MAX_EPISODE_EVENTS,
	type NewEpisodeEvent,
	type StoredEpisode,
} from "./episodes.ts";
import { type GroupFigures, summarise } from "./episodes-summary.ts";

export type EpisodeRow = {
	group_id: string;
	episode: number;
	channel: string;
	name: string;
	environment: string | null;
	severity: string | null;
	started_at: number;
	ended_at: number | null;
	acked_at: number | null;
	acked_by: string | null;
	firing_alerts: number;
	alert_count: number;
	event_count: number;
};

export function episodeOf(r: EpisodeRow): Episode {
	return {
		groupId: r.group_id,
		episode: r.episode,
		channel: r.channel,
		name: r.name,
		environment: r.environment,
		severity: r.severity,
		startedAt: Number(r.started_at),
		endedAt: r.ended_at === null ? null : Number(r.ended_at),
		ackedAt: r.acked_at === null ? null : Number(r.acked_at),
		ackedBy: r.acked_by,
		firingAlerts: r.firing_alerts,
		alertCount: r.alert_count,
		eventCount: r.event_count,
	};
}

const EPISODE_COLUMNS =
	"group_id, episode, channel, name, environment, severity, started_at, ended_at, acked_at, acked_by, " +
	"firing_alerts, alert_count, event_count";

/** Name filter: part of the name, any case (NULL: all). */
const NAME_MATCHES = "(?3 IS NULL OR instr(lower(name), lower(?3)) > 0)";

/**
 * The history in the embedded store's database. `apply` runs inside the store's accept (or resolve)
 * transaction; `tx` is the store's, for the history's own writes.
 */
export function createSqliteEpisodeHistory(
	db: DatabaseSync,
	tx: <T>(work: () => T) => T,
): { history: EpisodeHistory; apply(changes: readonly GroupChange[]): void } {
	const latest = db.prepare(
		"SELECT episode, ended_at, alerts, event_count FROM episodes WHERE group_id = ? ORDER BY episode DESC LIMIT 1",
	);
	const insertEpisode = db.prepare(`INSERT INTO episodes (group_id, episode, channel, name, environment, severity,
		started_at, ended_at, alerts, firing_alerts, alert_count, event_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
	const updateEpisode = db.prepare(`UPDATE episodes SET channel = ?, name = ?, environment = ?, severity = ?,
		started_at = ?, ended_at = ?, alerts = ?, firing_alerts = ?, alert_count = ?, event_count = ?
		WHERE group_id = ? AND episode = ?`);
	const closeEpisode = db.prepare(
		"UPDATE episodes SET ended_at = ? WHERE group_id = ? AND episode = ? AND ended_at IS NULL",
	);
	const insertEvent = db.prepare(
		`INSERT INTO episode_events (group_id, episode, at, kind, actor_id, actor_name, details)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
	);
	const countEvent = db.prepare(
		"UPDATE episodes SET event_count = event_count + 1 WHERE group_id = ? AND episode = ? AND event_count < ?",
	);
	const firstAck = db.prepare(
		"UPDATE episodes SET acked_at = ?, acked_by = ? WHERE group_id = ? AND episode = ? AND acked_at IS NULL",
	);
	const getEpisode = db.prepare(`SELECT ${EPISODE_COLUMNS} FROM episodes WHERE group_id = ? AND episode = ?`);
	const getLatest = db.prepare(
		`SELECT ${EPISODE_COLUMNS} FROM episodes WHERE group_id = ? ORDER BY episode DESC LIMIT 1`,
	);
	const eventsOf = db.prepare("SELECT * FROM episode_events WHERE group_id = ? AND episode = ? ORDER BY id LIMIT ?");
	const firingWhere = `e.ended_at IS NULL AND (?1 IS NULL OR e.environment = ?1) AND (?2 IS NULL OR e.severity = ?2)
		AND (?3 IS NULL OR instr(lower(e.name), lower(?3)) > 0)`;
	const firingCounts = db.prepare(`SELECT environment, severity, count(*) AS groups FROM episodes e
		WHERE ${firingWhere} GROUP BY environment, severity`);
	const firingPage = db.prepare(`SELECT e.*, g.ack, g.silence, g.message_id, g.message_episode
		FROM episodes e JOIN groups g ON g.id = e.group_id WHERE ${firingWhere}
		ORDER BY CASE e.severity WHEN 'critical' THEN 0 WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
			e.started_at DESC, e.name, e.group_id LIMIT ?4 OFFSET ?5`);
	const perGroup = db.prepare(`SELECT group_id, min(name) AS name, min(environment) AS environment, count(*) AS n,
		count(acked_at) AS acked, sum(max(acked_at - started_at, 0)) AS ack_sum,
		count(ended_at) AS ended, sum(ended_at - started_at) AS duration_sum
		FROM episodes WHERE started_at >= ?1 AND started_at < ?2 AND ${NAME_MATCHES} GROUP BY group_id`);
	const latestEpisodes = db.prepare(`SELECT ${EPISODE_COLUMNS} FROM episodes
		WHERE started_at >= ?1 AND started_at < ?2 AND ${NAME_MATCHES} ORDER BY started_at DESC LIMIT ?4`);
	const after = db.prepare("SELECT * FROM episode_events WHERE id > ? ORDER BY id LIMIT ?");
	const lastId = db.prepare("SELECT coalesce(max(id), 0) AS id FROM episode_events");
	const card = db.prepare("SELECT id, message_episode FROM groups WHERE message_id = ? LIMIT 1");
	const expired = db.prepare("SELECT group_id, episode FROM episodes WHERE ended_at < ? LIMIT ?");
	const deleteEvents = db.prepare("DELETE FROM episode_events WHERE group_id = ? AND episode = ?");
	const deleteEpisode = db.prepare("DELETE FROM episodes WHERE group_id = ? AND episode = ?");

	const writeEvent = (e: NewEpisodeEvent) =>
		insertEvent.run(
			e.groupId,
			e.episode,
			e.at,
			e.kind,
			e.actor?.userId ?? null,
			e.actor?.username ?? null,
			JSON.stringify(e.details),
		);

	function apply(changes: readonly GroupChange[]): void {
		const stored = new Map<string, StoredEpisode>();
		for (const c of changes) {
			const row = latest.get(c.groupId) as
				| { episode: number; ended_at: number | null; alerts: string; event_count: number }
				| undefined;
			if (row)
				stored.set(c.groupId, {
					episode: row.episode,
					endedAt: row.ended_at,
					alerts: JSON.parse(row.alerts) as StoredEpisode["alerts"],
					eventCount: row.event_count,
				});
		}
		const writes = historyWrites(changes, stored);
		for (const c of writes.closed) closeEpisode.run(c.endedAt, c.groupId, c.episode);
		for (const e of writes.episodes) {
			const alerts = JSON.stringify(e.alerts);
			if (e.insert)
				insertEpisode.run(
					e.groupId,
					e.episode,
					e.channel,
					e.name,
					e.environment,
					e.severity,
					e.startedAt,
					e.endedAt,
					alerts,
					e.firingAlerts,
					e.alertCount,
					e.eventCount,
				);
			else
				updateEpisode.run(
					e.channel,
					e.name,
					e.environment,
					e.severity,
					e.startedAt,
					e.endedAt,
					alerts,
					e.firingAlerts,
					e.alertCount,
					e.eventCount,
					e.groupId,
					e.episode,
				);
		}
		for (const e of writes.events) writeEvent(e);
	}

	const history: EpisodeHistory = {
		async record(event) {
			tx(() => {
				// Past the cap an action is not stored (a flood of presses must not grow the log without end).
				if (countEvent.run(event.groupId, event.episode, MAX_EPISODE_EVENTS).changes === 0) return;
				writeEvent(event);
				if (event.kind === "acknowledged" && event.actor)
					firstAck.run(event.at, event.actor.username, event.groupId, event.episode);
			});
		},
		async episode(groupId, episode) {
			const row = (episode === undefined ? getLatest.get(groupId) : getEpisode.get(groupId, episode)) as
				| EpisodeRow
				| undefined;
			return row && episodeOf(row);
		},
		async events(groupId, episode, limit) {
			return (eventsOf.all(groupId, episode, limit) as EventRow[]).map(eventOf);
		},
		async firing(filter, offset, limit) {
			const args = [filter.environment ?? null, filter.severity ?? null, filter.name ?? null] as const;
			const counts = firingCounts.all(...args) as unknown as FiringCount[];
			const rows = firingPage.all(...args, limit, offset) as FiringRow[];
			return { total: counts.reduce((n, c) => n + c.groups, 0), counts, episodes: rows.map(firingOf) };
		},
		async history(query) {
			const args = [query.since, query.until, query.name ?? null] as const;
			const groups = perGroup.all(...args) as GroupFigures[];
			const episodes = (latestEpisodes.all(...args, query.limit) as EpisodeRow[]).map(episodeOf);
			return summarise(query, groups, episodes);
		},
		eventsAfter: async (afterId, limit) => (after.all(afterId, limit) as EventRow[]).map(eventOf),
		lastEventId: async () => (lastId.get() as { id: number }).id,
		async findCard(messageId) {
			const row = card.get(messageId) as { id: string; message_episode: number | null } | undefined;
			return row && row.message_episode !== null ? { groupId: row.id, episode: row.message_episode } : undefined;
		},
		async prune(before, batch) {
			return tx(() => {
				const rows = expired.all(before, batch) as { group_id: string; episode: number }[];
				for (const r of rows) {
					deleteEvents.run(r.group_id, r.episode);
					deleteEpisode.run(r.group_id, r.episode);
				}
				return rows.length;
			});
		},
	};
	return { history, apply };
}

export type EventRow = {
	id: number | string;
	group_id: string;
	episode: number;
	at: number | string;
	kind: string;
	actor_id: string | null;
	actor_name: string | null;
	details: string | EventDetails;
};

export function eventOf(r: EventRow): EpisodeEvent {
	return {
		id: Number(r.id),
		groupId: r.group_id,
		episode: r.episode,
		at: Number(r.at),
		kind: r.kind as EpisodeEvent["kind"],
		actor: r.actor_id ? { userId: r.actor_id, username: r.actor_name ?? "" } : null,
		details: typeof r.details === "string" ? (JSON.parse(r.details) as EventDetails) : r.details,
	};
}

export type FiringRow = EpisodeRow & {
	ack: string | { username: string; at: number } | null;
	silence: string | { username: string; until: number } | null;
	message_id: string | null;
	message_episode: number | null;
};

export function firingOf(r: FiringRow): FiringEpisode {
	const json = <T>(v: string | T | null): T | null => (typeof v === "string" ? (JSON.parse(v) as T) : v);
	const ack = json<{ username: string; at: number }>(r.ack);
	const silence = json<{ username: string; until: number }>(r.silence);
	return {
		...episodeOf(r),
		ack: ack && { username: ack.username, at: Number(ack.at) },
		silence: silence && { username: silence.username, until: Number(silence.until) },
		messageId: r.message_episode === r.episode ? r.message_id : null,
	};
}
