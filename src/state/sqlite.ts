import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { Logger } from "../log.ts";
import { preparePrivateDatabase } from "./private-files.ts";

/**
 * The embedded state (no STATE_DATABASE_URL): one SQLite file, stateDir/opsbot.sqlite, in WAL mode with
 * synchronous = FULL (a commit has reached the disk when it returns), holding alert groups and outbox,
 * the message outbox, pending state, restart claims and the action log. One ordered migration list;
 * schema_version holds how many have run. Append only: entries 1-9 are the alert store's list as it was.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
	`CREATE TABLE groups (
		id TEXT PRIMARY KEY,
		receiver TEXT NOT NULL,
		group_key TEXT NOT NULL,
		channel TEXT NOT NULL,
		mention_role TEXT,
		episode INTEGER NOT NULL,
		status TEXT NOT NULL,
		first_firing_at INTEGER NOT NULL,
		last_signature TEXT NOT NULL,
		message_id TEXT,
		message_episode INTEGER
	);
	CREATE TABLE outbox (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		group_id TEXT NOT NULL REFERENCES groups(id),
		episode INTEGER NOT NULL,
		payload TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt_at INTEGER NOT NULL,
		done INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX outbox_pending ON outbox (done, next_attempt_at);`,
	`ALTER TABLE groups ADD COLUMN last_payload TEXT;
	ALTER TABLE groups ADD COLUMN ack TEXT;
	ALTER TABLE groups ADD COLUMN silence TEXT;`,
	`ALTER TABLE groups ADD COLUMN restart TEXT;`,
	`CREATE TABLE storm_summaries (
		channel TEXT PRIMARY KEY,
		state TEXT NOT NULL,
		message_id TEXT,
		nonce TEXT NOT NULL,
		started_at INTEGER NOT NULL,
		ended_at INTEGER,
		groups TEXT NOT NULL
	);`,
	// next() ordered by json_extract() over each undelivered row's group payload (85 ms at 5,000 rows, on
	// the event loop); the rank is now written at accept time. Backfilled with the expression it replaces.
	`ALTER TABLE groups ADD COLUMN severity_rank INTEGER NOT NULL DEFAULT 1;
	UPDATE groups SET severity_rank = 0 WHERE lower(json_extract(last_payload, '$.commonLabels.severity')) = 'critical';`,
	// What next() and backlog() read of both tables, in covering indexes. Rows of either table are mostly
	// payload, and a column added after last_payload sits behind its overflow pages: with the rank in its
	// column but read from the rows, next() still took 45-70 ms at 5,000 undelivered rows; with these, 3 ms.
	`DROP INDEX outbox_pending;
	CREATE INDEX outbox_pending ON outbox (done, next_attempt_at, group_id, episode);
	CREATE INDEX groups_delivery ON groups (channel, id, episode, status, message_episode, severity_rank);`,
	// The message's chart, attached once per episode (message_episode): edits keep it by this id.
	`ALTER TABLE groups ADD COLUMN chart_attachment TEXT;`,
	// The message outbox (message-outbox.ts): messages other than the cards, each once under its key.
	`CREATE TABLE message_outbox (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		key TEXT NOT NULL UNIQUE,
		channel TEXT NOT NULL,
		message TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt_at INTEGER NOT NULL,
		state TEXT NOT NULL DEFAULT 'queued',
		result TEXT,
		done_at INTEGER
	);
	CREATE INDEX message_outbox_queued ON message_outbox (state, channel, next_attempt_at);`,
	// Each group's episodes and what happened in them (alerts/episodes.ts).
	`CREATE TABLE episodes (
		group_id TEXT NOT NULL,
		episode INTEGER NOT NULL,
		channel TEXT NOT NULL,
		name TEXT NOT NULL,
		environment TEXT,
		severity TEXT,
		started_at INTEGER NOT NULL,
		ended_at INTEGER,
		acked_at INTEGER,
		acked_by TEXT,
		alerts TEXT NOT NULL DEFAULT '{}',
		firing_alerts INTEGER NOT NULL DEFAULT 0,
		alert_count INTEGER NOT NULL DEFAULT 0,
		event_count INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (group_id, episode)
	);
	CREATE INDEX episodes_started ON episodes (started_at, group_id, name, environment, acked_at, ended_at);
	CREATE INDEX episodes_ended ON episodes (ended_at);
	CREATE TABLE episode_events (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		group_id TEXT NOT NULL,
		episode INTEGER NOT NULL,
		at INTEGER NOT NULL,
		kind TEXT NOT NULL,
		actor_id TEXT,
		actor_name TEXT,
		details TEXT NOT NULL
	);
	CREATE INDEX episode_events_episode ON episode_events (group_id, episode, id);
	INSERT INTO episodes (group_id, episode, channel, name, environment, severity, started_at, acked_at, acked_by,
		firing_alerts, alert_count)
	SELECT id, episode, channel,
		coalesce(json_extract(last_payload, '$.commonLabels.alertname'), json_extract(last_payload, ` +
		`'$.groupLabels.alertname'), '?'),
		coalesce(json_extract(last_payload, '$.commonLabels.env'), json_extract(last_payload, '$.commonLabels.environment')),
		lower(json_extract(last_payload, '$.commonLabels.severity')),
		first_firing_at, json_extract(ack, '$.at'), json_extract(ack, '$.username'),
		json_array_length(last_payload, '$.alerts'), json_array_length(last_payload, '$.alerts')
	FROM groups WHERE status = 'firing' AND last_payload IS NOT NULL;`,
	// Pending state and restart claims: kept in their own file (state.sqlite) before; imported from it at open.
	`CREATE TABLE IF NOT EXISTS pending (
		token TEXT PRIMARY KEY,
		kind TEXT NOT NULL,
		user_id TEXT NOT NULL,
		value TEXT NOT NULL,
		seq INTEGER NOT NULL,
		expires_at INTEGER NOT NULL
	);
	CREATE INDEX IF NOT EXISTS pending_user ON pending (kind, user_id, seq);
	CREATE INDEX IF NOT EXISTS pending_expiry ON pending (expires_at);
	CREATE TABLE IF NOT EXISTS restarts (
		key TEXT PRIMARY KEY,
		running INTEGER NOT NULL,
		started_at INTEGER NOT NULL,
		last_at INTEGER NOT NULL,
		holder TEXT,
		heartbeat_at INTEGER
	);`,
	// What the alert store created outside the list before. write_probe: writable()'s real write;
	// outbox_episode: marking a delivery done and finding an episode's newest update would scan every row.
	`CREATE TABLE IF NOT EXISTS write_probe (pad BLOB NOT NULL);
	CREATE INDEX IF NOT EXISTS outbox_episode ON outbox (group_id, episode, done);`,
	// Flapping (issue 22): when the episode resolved, its re-fires within the regroup window (JSON array
	// of ms), and the previous episode's message for the new card's link.
	`ALTER TABLE groups ADD COLUMN resolved_at INTEGER;
	ALTER TABLE groups ADD COLUMN flaps TEXT;
	ALTER TABLE groups ADD COLUMN previous_message_id TEXT;`,
	// The dead man's switch (issue 22): when each always-firing alert last arrived, and the alarm raised.
	`CREATE TABLE heartbeats (name TEXT PRIMARY KEY, at INTEGER NOT NULL, alarmed_at INTEGER);`,
	// The action log (services/action-log.ts), kept in stateDir/actions.jsonl before and imported from it at
	// open. imported_files: the old files already copied in, by content, so an import the process died in
	// the middle of (after its commit, before the renames) is not copied twice.
	`CREATE TABLE actions (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		at INTEGER NOT NULL,
		user_id TEXT NOT NULL,
		username TEXT NOT NULL,
		action TEXT NOT NULL,
		target TEXT NOT NULL,
		result TEXT NOT NULL,
		details TEXT
	);
	CREATE INDEX actions_action ON actions (action, id);
	CREATE INDEX actions_user ON actions (user_id, id);
	CREATE TABLE imported_files (
		sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, rows INTEGER NOT NULL, at INTEGER NOT NULL
	);`,
];

/** The state file's name under stateDir. */
export const STATE_FILE = "opsbot.sqlite";
/** Files of earlier opsbots, brought into STATE_FILE when it is first opened. */
const LEGACY_ALERTS_FILE = "alerts.sqlite";
const LEGACY_STATE_FILE = "state.sqlite";
/** The action log of earlier opsbots (JSON lines), and its rotations `.1` (newest) to `.N`. */
export const LEGACY_ACTIONS_FILE = "actions.jsonl";

/**
 * Opens (creating and migrating) an SQLite state database at `path` (":memory:" for one that lives
 * with the process). `maxPageCount` caps its size in pages (SQLite's max_page_count); past it writes
 * fail with SQLITE_FULL.
 */
export function openSqliteDatabase(path: string, options: { maxPageCount?: number } = {}): DatabaseSync {
	preparePrivateDatabase(path);
	const db = new DatabaseSync(path);
	db.exec(
		"PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
	);
	db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
	const current = (db.prepare("SELECT max(version) AS v FROM schema_version").get() as { v: number | null }).v ?? 0;
	SQLITE_MIGRATIONS.slice(current).forEach((sql, i) => {
		db.exec("BEGIN");
		db.exec(sql);
		db.prepare("INSERT INTO schema_version (version) VALUES (?)").run(current + i + 1);
		db.exec("COMMIT");
	});
	if (options.maxPageCount !== undefined)
		db.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor(options.maxPageCount))}`);
	return db;
}

/** Renames an SQLite file with its journals (after a checkpoint, so nothing is left in the WAL). */
function moveDatabase(from: string, to: string): void {
	const db = new DatabaseSync(from);
	db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
	db.close();
	for (const suffix of ["-wal", "-shm"]) if (existsSync(from + suffix)) renameSync(from + suffix, to + suffix);
	renameSync(from, to);
}

/**
 * Opens stateDir/opsbot.sqlite, bringing in what earlier opsbots kept beside it: alerts.sqlite becomes
 * the file (its schema migrates forward); state.sqlite's pending state and restart claims are copied
 * in, after which it is renamed state.sqlite.imported; actions.jsonl (and its rotations) are copied
 * into the action log, after which each is renamed `<name>.imported`. Renamed files are kept for the
 * operator and never read again.
 */
export function openStateDirDatabase(
	stateDir: string,
	options: { maxPageCount?: number; log?: Logger } = {},
): DatabaseSync {
	const path = join(stateDir, STATE_FILE);
	const legacyAlerts = join(stateDir, LEGACY_ALERTS_FILE);
	if (!existsSync(path) && existsSync(legacyAlerts)) moveDatabase(legacyAlerts, path);
	const db = openSqliteDatabase(path, options);
	const legacyState = join(dirname(path), LEGACY_STATE_FILE);
	if (existsSync(legacyState)) {
		importLegacyState(db, legacyState);
		moveDatabase(legacyState, `${legacyState}.imported`);
	}
	importLegacyActionLog(db, stateDir, options.log);
	return db;
}

/** The old action log's files under `stateDir`, oldest first: actions.jsonl.N … actions.jsonl.1, actions.jsonl. */
export function legacyActionLogFiles(stateDir: string): string[] {
	let names: string[];
	try {
		names = readdirSync(stateDir);
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
		throw err;
	}
	const rotation = (name: string) => Number(name.slice(LEGACY_ACTIONS_FILE.length + 1) || 0);
	return names
		.filter((name) => name === LEGACY_ACTIONS_FILE || /^actions\.jsonl\.\d+$/.test(name))
		.sort((a, b) => rotation(b) - rotation(a));
}

// A record is a few hundred bytes; a longer line is not searched for one behind a torn start.
const MAX_SALVAGED_LINE = 64 * 1024;

/** One action-log row as the old file held it, or undefined for a line that is not a whole record. */
function legacyActionRow(line: string): Record<string, string | number | null> | undefined {
	let record: Record<string, unknown>;
	try {
		record = JSON.parse(line) as Record<string, unknown>;
	} catch {
		return undefined;
	}
	const actor = record?.actor as Record<string, unknown> | undefined;
	const at = typeof record?.at === "string" ? Date.parse(record.at) : Number.NaN;
	const texts = [actor?.userId, actor?.username, record?.action, record?.target, record?.result];
	if (Number.isNaN(at) || !texts.every((t) => typeof t === "string")) return undefined;
	const [user_id, username, action, target, result] = texts as string[];
	const details = record.details === undefined ? null : JSON.stringify(record.details);
	return { at, user_id: user_id!, username: username!, action: action!, target: target!, result: result!, details };
}

/**
 * Copies the action log's old JSON-lines files into the actions table, oldest record first, in one
 * transaction, then renames each `<name>.imported`. A line that is not a whole record (the last
 * line a crash tore mid-write) is skipped with a warning; a whole record appended after a torn one,
 * on the same line, is still found.
 */
function importLegacyActionLog(db: DatabaseSync, stateDir: string, log: Logger | undefined): void {
	const files = legacyActionLogFiles(stateDir).map((name) => {
		const bytes = readFileSync(join(stateDir, name));
		return { name, bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
	});
	if (files.length === 0) return;
	const seen = db.prepare("SELECT 1 FROM imported_files WHERE sha256 = ?");
	const insert = db.prepare(
		`INSERT INTO actions (at, user_id, username, action, target, result, details)
		VALUES (:at, :user_id, :username, :action, :target, :result, :details)`,
	);
	const done = db.prepare("INSERT INTO imported_files (sha256, name, rows, at) VALUES (?, ?, ?, ?)");
	let imported = 0;
	db.exec("BEGIN IMMEDIATE");
	try {
		for (const file of files) {
			if (seen.get(file.sha256)) continue;
			let rows = 0;
			file.bytes
				.toString("utf8")
				.split("\n")
				.forEach((line, i, lines) => {
					if (line.trim() === "") return;
					const whole = legacyActionRow(line);
					// A torn line's rest, then a whole record: the record starts at one of the line's later "{".
					let row = whole;
					for (
						let start = line.indexOf("{", 1);
						!row && start > 0 && line.length <= MAX_SALVAGED_LINE;
						start = line.indexOf("{", start + 1)
					)
						row = legacyActionRow(line.slice(start));
					if (row) {
						insert.run(row);
						rows++;
					}
					if (!whole)
						log?.warn(
							{ file: file.name, line: i + 1, bytes: Buffer.byteLength(line), lastLine: i === lines.length - 1 },
							row
								? "old action log: skipped a torn record before a whole one"
								: "old action log: skipped a line that is not a whole record (torn by a crash)",
						);
				});
			done.run(file.sha256, file.name, rows, Date.now());
			imported += rows;
		}
		db.exec("COMMIT");
	} catch (err) {
		db.exec("ROLLBACK");
		throw err;
	}
	for (const { name } of files) {
		const from = join(stateDir, name);
		// An earlier import's file of the same name is kept too.
		let to = `${from}.imported`;
		for (let n = 2; existsSync(to); n++) to = `${from}.imported.${n}`;
		renameSync(from, to);
	}
	log?.info({ files: files.map((f) => f.name), rows: imported }, "old action log imported into the state file");
}

/** Copies pending state and restart claims from an earlier opsbot's state.sqlite (rows already here win). */
function importLegacyState(db: DatabaseSync, path: string): void {
	const old = new DatabaseSync(path, { readOnly: true });
	try {
		const tables = new Set(
			(old.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
				(t) => t.name,
			),
		);
		const columns = (table: string) =>
			new Set(
				(old.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[]).map((c) => c.name),
			);
		const pending = tables.has("pending") ? old.prepare("SELECT * FROM pending").all() : [];
		const restartColumns = tables.has("restarts") ? columns("restarts") : new Set<string>();
		const restarts = tables.has("restarts")
			? old
					.prepare(
						`SELECT key, running, started_at, last_at, ${restartColumns.has("holder") ? "holder" : "NULL AS holder"},
						${restartColumns.has("heartbeat_at") ? "heartbeat_at" : "NULL AS heartbeat_at"} FROM restarts`,
					)
					.all()
			: [];
		db.exec("BEGIN IMMEDIATE");
		try {
			const putPending = db.prepare(
				`INSERT OR IGNORE INTO pending (token, kind, user_id, value, seq, expires_at)
				VALUES (:token, :kind, :user_id, :value, :seq, :expires_at)`,
			);
			for (const row of pending) putPending.run(row as Record<string, string | number>);
			const putRestart = db.prepare(
				`INSERT OR IGNORE INTO restarts (key, running, started_at, last_at, holder, heartbeat_at)
				VALUES (:key, :running, :started_at, :last_at, :holder, :heartbeat_at)`,
			);
			for (const row of restarts) putRestart.run(row as Record<string, string | number | null>);
			db.exec("COMMIT");
		} catch (err) {
			db.exec("ROLLBACK");
			throw err;
		}
	} finally {
		old.close();
	}
}
