import { type MessageOutbox, messageOutbox } from "./alerts/message-outbox.ts";
import { createRunningRestarts, type RunningRestarts } from "./alerts/running-restarts.ts";
import type { AlertStore } from "./alerts/store.ts";
import type { FiringQueryState } from "./commands/alerts.ts";
import { type Config, findEnvironment } from "./config.ts";
import { type AccessPolicy, createAccessPolicy } from "./discord/access.ts";
import type { Logger } from "./log.ts";
import { createMetrics, type Metrics, unservedMetrics } from "./metrics.ts";
import type { ActionLog } from "./services/action-log.ts";
import { type AlertManagerService, createAlertManagerService, type Matcher } from "./services/alertmanager.ts";
import { type AuditQueryState, type AuditService, createAuditService } from "./services/audit.ts";
import { createHealthService, type HealthService } from "./services/health.ts";
import type { LogsQueryState } from "./services/log-search.ts";
import { createLogsService, type LogsService } from "./services/logs.ts";
import {
	createPoolService,
	type EndableSessions,
	type PoolService,
	type TerminationCandidate,
} from "./services/pool.ts";
import { createDatabaseRegistry, type DatabaseRegistry } from "./services/postgres.ts";
import { createPrometheusService, type PrometheusService } from "./services/prometheus.ts";
import { createSshService, type SshService } from "./services/ssh.ts";
import type { PendingStore, RestartLock } from "./state/contracts.ts";
import { openState } from "./state/index.ts";

/** What a confirmation button refers to, kept server-side for 60 s. */
export type Confirmation =
	/** `sessions` is absent in confirmations stored before idle-in-transaction could be ended: idle ones. */
	| {
			kind: "pool.terminate";
			environment: string;
			candidates: readonly TerminationCandidate[];
			minutes: number;
			sessions?: EndableSessions;
	  }
	| { kind: "alert.restart"; environment: string; container: string; groupId: string; episode: number }
	/** A previewed silence: created on Confirm, starting then (or at `startsAt` for a window) for `durationMs`. */
	| {
			kind: "alert.silence";
			environment: string;
			matchers: readonly Matcher[];
			durationMs: number;
			startsAt?: number;
			comment: string;
			/** A maintenance window (/maintenance): its Confirm needs maintenance.create. */
			maintenance?: boolean;
			/** The card it was made from, which shows it once made. */
			groupId?: string;
			episode?: number;
	  }
	| { kind: "silence.expire"; environment: string; silenceId: string };

/** The alert relay's state, for its buttons. */
export interface AlertState {
	/** The groups opsbot holds; undefined when `alerts` is not configured (or the caller did not ask for it). */
	readonly store: AlertStore | undefined;
	/**
	 * Restarts per environment/container: one at a time, and a cooldown after each (across replicas with
	 * STATE_DATABASE_URL).
	 */
	readonly restarts: RestartLock;
	/** This process's restarts in flight, which a shutdown waits for. */
	readonly running: RunningRestarts;
}

// Discord confirmations in opsbot expire after a minute.
export const CONFIRMATION_TTL_MS = 60_000;

/** The services handlers reach; each built once per process in createContext. */
export interface Services {
	readonly health: HealthService;
	readonly pool: PoolService;
	readonly databases: DatabaseRegistry;
	/** Each environment's SSH host: allow-listed commands with a pinned host key. */
	readonly ssh: SshService;
	/** Each environment's AlertManager (silences, alert lists). */
	readonly alertmanager: AlertManagerService;
	/** Each environment's Prometheus (queries, scrape targets). */
	readonly prometheus: PrometheusService;
	/** opsbot's own audit trail of button presses and actions. */
	readonly actionLog: ActionLog;
	readonly confirmations: PendingStore<Confirmation>;
	readonly audit: AuditService;
	/** /audit searches behind paging and CSV buttons, for 15 minutes (an interaction token's life). */
	readonly auditQueries: PendingStore<AuditQueryState>;
	readonly logs: LogsService;
	/** /logs searches behind Older, Newer and Download, for 15 minutes. */
	readonly logQueries: PendingStore<LogsQueryState>;
	readonly alertState: AlertState;
	/**
	 * Messages other than alert cards (mentions, reminders, notices, thread posts and thread starts),
	 * posted once per key through the alert outbox and its per-channel pacing; see alerts/message-outbox.ts.
	 * Undefined when `alerts` is not configured (nothing delivers them then).
	 */
	readonly messages: MessageOutbox | undefined;
	/** /alerts firing filters behind its page buttons, for 15 minutes. */
	readonly alertQueries: PendingStore<FiringQueryState>;
	/** opsbot's own metrics, served on the webhook port. */
	readonly metrics: Metrics;
}

/** Everything a command, button or CLI run depends on, passed explicitly (no module singletons). */
export interface AppContext {
	readonly config: Config;
	readonly log: Logger;
	readonly access: AccessPolicy;
	readonly services: Services;
}

/**
 * Builds the context, complete: nothing is filled in later. Pools to the team's databases open lazily
 * on first use. With STATE_DATABASE_URL the state buttons depend on (confirmations, paging, restart
 * lock, action log, alert groups) lives in opsbot's own PostgreSQL, shared by replicas; without it,
 * in SQLite and a file under stateDir. The alert store is opened when `alerts` is configured, unless
 * `withAlertStore` is false (CLI commands that do not read it).
 */
export async function createContext(
	config: Config,
	log: Logger,
	options: { withAlertStore?: boolean } = {},
): Promise<{ ctx: AppContext; close: () => Promise<void> }> {
	const environments = config.ops.environments;
	const secret = (name: string) => config.secrets.get(name);
	const databases = createDatabaseRegistry(
		(environment) => {
			const pg = findEnvironment(config.ops, environment)?.postgres;
			const url = pg ? secret(pg.urlEnv) : undefined;
			if (!pg || !url) return undefined;
			const checksUrl = pg.checksUrlEnv ? secret(pg.checksUrlEnv) : undefined;
			return {
				url,
				...(checksUrl ? { checksUrl } : {}),
				maxConnections: pg.maxConnections,
				statementTimeoutMs: config.ops.audit.statementTimeoutMs,
				applicationName: "opsbot",
			};
		},
		log.child({ svc: "postgres" }),
	);
	// With STATE_DATABASE_URL, shared by replicas; without it, in stateDir, so open confirmations, pages,
	// the cooldown and the outbox survive a restart.
	const state = await openState(config, log, {
		alerts: Boolean(config.ops.alerts) && options.withAlertStore !== false,
	});
	const alertStore = state.alerts;
	const pending = <T>(kind: string, ttlMs: number): PendingStore<T> => state.pending<T>(kind, ttlMs);
	const ssh = createSshService({ environments, secret });
	const prometheus = createPrometheusService(environments);
	const alertmanager = createAlertManagerService(environments);
	const services: Services = {
		databases,
		ssh,
		alertmanager,
		prometheus,
		health: createHealthService({
			environments,
			databases,
			secret,
			ssh,
			prometheus,
			log: log.child({ svc: "health" }),
			alertmanagerContacts: () => alertmanager.contacts(),
		}),
		pool: createPoolService({
			database: (environment) => databases.get(environment),
			pgbouncerAdminUrl: (environment) => {
				const pgb = findEnvironment(config.ops, environment)?.pgbouncer;
				const url = pgb ? secret(pgb.adminUrlEnv) : undefined;
				return pgb && url ? { url, timeoutMs: pgb.timeoutMs } : undefined;
			},
			prometheus,
			log: log.child({ svc: "pool" }),
		}),
		actionLog: state.actions,
		confirmations: pending<Confirmation>("confirmation", CONFIRMATION_TTL_MS),
		audit: createAuditService({
			database: (environment) => databases.get(environment),
			table: config.ops.audit,
			log: log.child({ svc: "audit" }),
		}),
		auditQueries: pending<AuditQueryState>("audit", 15 * 60_000),
		logs: createLogsService({
			environments,
			secret,
			ssh,
			maxRangeHours: config.ops.logs.maxRangeHours,
			log: log.child({ svc: "logs" }),
		}),
		logQueries: pending<LogsQueryState>("logs", 15 * 60_000),
		alertState: {
			store: alertStore,
			restarts: state.restarts,
			running: createRunningRestarts(),
		},
		messages: alertStore ? messageOutbox(alertStore) : undefined,
		alertQueries: pending<FiringQueryState>("alerts", 15 * 60_000),
		// Served on the webhook port, so only with `alerts`; without it nothing would read them.
		metrics: config.ops.alerts ? await createMetrics() : unservedMetrics(),
	};
	const ctx: AppContext = { config, log, access: createAccessPolicy(config.ops), services };
	return {
		ctx,
		close: async () => {
			await databases.close();
			await state.close();
		},
	};
}
