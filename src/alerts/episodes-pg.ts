import type pg from "pg";
import type { StateDatabase } from "../state/postgres.ts";
import {
	type EpisodeHistory,
	type FiringCount,
	type GroupChange,
	historyWrites,
	MAX_EPISODE_EVENTS,
	type StoredEpisode,
} from "./episodes.ts";
import { type EpisodeRow, type EventRow, episodeOf, eventOf, type FiringRow, firingOf } from "./episodes-sqlite.ts";
import { type GroupFigures, summarise } from "./episodes-summary.ts";

const EPISODE_COLUMNS =
	"group_id, episode, channel, name, environment, severity, started_at, ended_at, acked_at, acked_by, " +
	"firing_alerts, alert_count, event_count";

const LATEST = `SELECT DISTINCT ON (group_id) group_id, episode, ended_at, alerts, event_count
	FROM opsbot_state.episodes WHERE group_id = ANY($1::text[]) ORDER BY group_id, episode DESC`;

/** A group's latest episode as a statement returns it (LATEST, or the alert store's read under its locks). */
export interface LatestEpisodeRow {
	group_id: string;
	episode: number;
	ended_at: string | null;
	alerts: StoredEpisode["alerts"];
	event_count: number;
}

export function storedEpisode(row: LatestEpisodeRow): StoredEpisode {
	return {
		episode: row.episode,
		endedAt: row.ended_at === null ? null : Number(row.ended_at),
		alerts: row.alerts,
		eventCount: row.event_count,
	};
}

/**
 * A batch's history as CTEs named closed, written and appended, for a statement of their own or one
 * that writes the groups too: earlier episodes closed, episodes inserted or updated, events appended.
 * Their 20 parameters are $first .. $first + 19, in historyParams()'s order.
 */
export function historyCtes(first: number): string {
	const $ = (n: number) => `$${first + n - 1}`;
	return `closed AS (
		UPDATE opsbot_state.episodes e SET ended_at = c.ended_at
		FROM unnest(${$(1)}::text[], ${$(2)}::int[], ${$(3)}::bigint[]) AS c(group_id, episode, ended_at)
		WHERE e.group_id = c.group_id AND e.episode = c.episode AND e.ended_at IS NULL RETURNING 1),
	written AS (
		INSERT INTO opsbot_state.episodes (group_id, episode, channel, name, environment, severity, started_at, ended_at,
			alerts, firing_alerts, alert_count, event_count)
		SELECT * FROM unnest(${$(4)}::text[], ${$(5)}::int[], ${$(6)}::text[], ${$(7)}::text[], ${$(8)}::text[],
			${$(9)}::text[], ${$(10)}::bigint[], ${$(11)}::bigint[], ${$(12)}::jsonb[], ${$(13)}::int[], ${$(14)}::int[],
			${$(15)}::int[])
		ON CONFLICT (group_id, episode) DO UPDATE SET channel = excluded.channel, name = excluded.name,
			environment = excluded.environment, severity = excluded.severity, started_at = excluded.started_at,
			ended_at = excluded.ended_at, alerts = excluded.alerts, firing_alerts = excluded.firing_alerts,
			alert_count = excluded.alert_count, event_count = excluded.event_count
		RETURNING 1),
	appended AS (
		INSERT INTO opsbot_state.episode_events (group_id, episode, at, kind, actor_id, actor_name, details)
		SELECT group_id, episode, at, kind, NULL, NULL, details
		FROM unnest(${$(16)}::text[], ${$(17)}::int[], ${$(18)}::bigint[], ${$(19)}::text[], ${$(20)}::jsonb[])
			WITH ORDINALITY AS v(group_id, episode, at, kind, details, n) ORDER BY n
		RETURNING 1)`;
}

/** historyCtes()'s parameters: what `changes` write to the history, given each group's latest stored episode. */
export function historyParams(changes: readonly GroupChange[], stored: ReadonlyMap<string, StoredEpisode>): unknown[] {
	const { closed, episodes, events } = historyWrites(changes, stored);
	return [
		closed.map((c) => c.groupId),
		closed.map((c) => c.episode),
		closed.map((c) => c.endedAt),
		episodes.map((e) => e.groupId),
		episodes.map((e) => e.episode),
		episodes.map((e) => e.channel),
		episodes.map((e) => e.name),
		episodes.map((e) => e.environment),
		episodes.map((e) => e.severity),
		episodes.map((e) => e.startedAt),
		episodes.map((e) => e.endedAt),
		episodes.map((e) => JSON.stringify(e.alerts)),
		episodes.map((e) => e.firingAlerts),
		episodes.map((e) => e.alertCount),
		episodes.map((e) => e.eventCount),
		events.map((e) => e.groupId),
		events.map((e) => e.episode),
		events.map((e) => e.at),
		events.map((e) => e.kind),
		events.map((e) => JSON.stringify(e.details)),
	];
}

const WRITE = `WITH ${historyCtes(1)} SELECT 1`;

const NAME_MATCHES = "($3::text IS NULL OR strpos(lower(name), lower($3)) > 0)";
const FIRING_WHERE = `e.ended_at IS NULL AND ($1::text IS NULL OR e.environment = $1)
	AND ($2::text IS NULL OR e.severity = $2)
	AND ($3::text IS NULL OR strpos(lower(e.name), lower($3)) > 0)`;

/**
 * The history in opsbot's PostgreSQL. `apply` runs on a resolve's client inside its transaction, after
 * the group is locked (two round trips); a group commit folds the same reads and writes into its own
 * statements (pg-store.ts: storedEpisode, historyCtes, historyParams).
 */
export function createPostgresEpisodeHistory(
	pool: Pick<StateDatabase, "query">,
	tx: <T>(work: (client: pg.PoolClient) => Promise<T>) => Promise<T>,
): { history: EpisodeHistory; apply(client: pg.PoolClient, changes: readonly GroupChange[]): Promise<void> } {
	async function apply(client: pg.PoolClient, changes: readonly GroupChange[]): Promise<void> {
		if (changes.length === 0) return;
		const { rows } = await client.query<LatestEpisodeRow>(LATEST, [changes.map((c) => c.groupId)]);
		await client.query(WRITE, historyParams(changes, new Map(rows.map((r) => [r.group_id, storedEpisode(r)]))));
	}

	const history: EpisodeHistory = {
		record: (event) =>
			tx(async (client) => {
				const counted = await client.query(
					`UPDATE opsbot_state.episodes SET event_count = event_count + 1,
						acked_at = CASE WHEN $4 AND acked_at IS NULL THEN $5 ELSE acked_at END,
						acked_by = CASE WHEN $4 AND acked_at IS NULL THEN $6 ELSE acked_by END
					WHERE group_id = $1 AND episode = $2 AND event_count < $3`,
					[
						event.groupId,
						event.episode,
						MAX_EPISODE_EVENTS,
						event.kind === "acknowledged" && event.actor !== null,
						event.at,
						event.actor?.username ?? null,
					],
				);
				if (counted.rowCount === 0) return;
				await client.query(
					`INSERT INTO opsbot_state.episode_events (group_id, episode, at, kind, actor_id, actor_name, details)
					VALUES ($1, $2, $3, $4, $5, $6, $7)`,
					[
						event.groupId,
						event.episode,
						event.at,
						event.kind,
						event.actor?.userId ?? null,
						event.actor?.username ?? null,
						JSON.stringify(event.details),
					],
				);
			}),
		async episode(groupId, episode) {
			const { rows } = await pool.query<EpisodeRow>(
				episode === undefined
					? `SELECT ${EPISODE_COLUMNS} FROM opsbot_state.episodes WHERE group_id = $1 ORDER BY episode DESC LIMIT 1`
					: `SELECT ${EPISODE_COLUMNS} FROM opsbot_state.episodes WHERE group_id = $1 AND episode = $2`,
				episode === undefined ? [groupId] : [groupId, episode],
			);
			return rows[0] && episodeOf(rows[0]);
		},
		async events(groupId, episode, limit) {
			const { rows } = await pool.query<EventRow>(
				"SELECT * FROM opsbot_state.episode_events WHERE group_id = $1 AND episode = $2 ORDER BY id LIMIT $3",
				[groupId, episode, limit],
			);
			return rows.map(eventOf);
		},
		async firing(filter, offset, limit) {
			const args = [filter.environment ?? null, filter.severity ?? null, filter.name ?? null];
			const [count, page] = await Promise.all([
				pool.query<FiringCount>(
					`SELECT environment, severity, count(*)::int AS groups FROM opsbot_state.episodes e
					WHERE ${FIRING_WHERE} GROUP BY environment, severity`,
					args,
				),
				pool.query<FiringRow>(
					`SELECT e.*, g.ack, g.silence, g.message_id, g.message_episode
					FROM opsbot_state.episodes e JOIN opsbot_state.groups g ON g.id = e.group_id WHERE ${FIRING_WHERE}
					ORDER BY CASE e.severity WHEN 'critical' THEN 0 WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
						e.started_at DESC, e.name, e.group_id LIMIT $4 OFFSET $5`,
					[...args, limit, offset],
				),
			]);
			const counts = count.rows;
			return { total: counts.reduce((n, c) => n + c.groups, 0), counts, episodes: page.rows.map(firingOf) };
		},
		async history(query) {
			const args = [query.since, query.until, query.name ?? null];
			const [groups, latest] = await Promise.all([
				pool.query<GroupFigures>(
					`SELECT group_id, min(name) AS name, min(environment) AS environment, count(*) AS n,
						count(acked_at) AS acked, sum(greatest(acked_at - started_at, 0)) AS ack_sum,
						count(ended_at) AS ended, sum(ended_at - started_at) AS duration_sum
					FROM opsbot_state.episodes WHERE started_at >= $1 AND started_at < $2 AND ${NAME_MATCHES}
					GROUP BY group_id`,
					args,
				),
				pool.query<EpisodeRow>(
					`SELECT ${EPISODE_COLUMNS} FROM opsbot_state.episodes
					WHERE started_at >= $1 AND started_at < $2 AND ${NAME_MATCHES} ORDER BY started_at DESC LIMIT $4`,
					[...args, query.limit],
				),
			]);
			return summarise(query, groups.rows, latest.rows.map(episodeOf));
		},
		async eventsAfter(afterId, limit) {
			const { rows } = await pool.query<EventRow>(
				"SELECT * FROM opsbot_state.episode_events WHERE id > $1 ORDER BY id LIMIT $2",
				[afterId, limit],
			);
			return rows.map(eventOf);
		},
		async lastEventId() {
			const { rows } = await pool.query<{ id: string }>(
				"SELECT coalesce(max(id), 0) AS id FROM opsbot_state.episode_events",
			);
			return Number(rows[0]?.id ?? 0);
		},
		async findCard(messageId) {
			const { rows } = await pool.query<{ id: string; message_episode: number | null }>(
				"SELECT id, message_episode FROM opsbot_state.groups WHERE message_id = $1 LIMIT 1",
				[messageId],
			);
			const row = rows[0];
			return row && row.message_episode !== null ? { groupId: row.id, episode: row.message_episode } : undefined;
		},
		prune: (before, batch) =>
			tx(async (client) => {
				const { rows } = await client.query<{ group_id: string; episode: number }>(
					`DELETE FROM opsbot_state.episodes WHERE (group_id, episode) IN (
						SELECT group_id, episode FROM opsbot_state.episodes WHERE ended_at < $1 LIMIT $2)
					RETURNING group_id, episode`,
					[before, batch],
				);
				if (rows.length > 0)
					await client.query(
						`DELETE FROM opsbot_state.episode_events e USING unnest($1::text[], $2::int[]) AS d(group_id, episode)
						WHERE e.group_id = d.group_id AND e.episode = d.episode`,
						[rows.map((r) => r.group_id), rows.map((r) => r.episode)],
					);
				return rows.length;
			}),
	};
	return { history, apply };
}
