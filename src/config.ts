import { existsSync, readFileSync } from "node:fs";
import { parseDocument } from "yaml";
import { z } from "zod";
import { loadDotEnv } from "./env-file.ts";
import { UserFacingError } from "./errors.ts";
import { durationMs } from "./time.ts";

/**
 * Configuration: secrets come from the environment, everything else from one YAML ops file.
 * Both are validated here, at start, before any connection is made. This is the only module
 * that reads process.env.
 */

const Snowflake = z
	.string()
	.regex(/^\d{17,20}$/, "expected a Discord id (17-20 digits: turn on Developer Mode, then right-click > Copy ID)");
const EnvName = z
	.string()
	.regex(/^[A-Z_][A-Z0-9_]*$/, "expected an environment variable name such as PROD_DATABASE_URL");
const HttpUrl = z.url({ protocol: /^https?$/, error: "expected an http(s) URL" });
const Millis = z.number().int().min(50).max(120_000);
const LabelName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, "expected a label name");
const SqlIdentifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "expected a plain SQL identifier");
const ContainerName = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, "expected a Docker container name");

/** Commands and button actions whose use is governed by `access`. */
export const COMMAND_NAMES = [
	"health",
	"pool",
	"logs",
	"whodeleted",
	"audit",
	"alerts",
	"silence",
	"maintenance",
] as const;
export const ACTION_NAMES = [
	"health.rerun",
	"pool.terminate",
	"logs.raw-query",
	"audit.see-pii",
	"alert.restart",
	"alert.silence",
	"silence.extend",
	"silence.expire",
	"maintenance.create",
	"alert.ack",
	"alert.logs",
] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];
export type ActionName = (typeof ACTION_NAMES)[number];

const HttpCheck = z.strictObject({
	name: z.string().min(1).max(64),
	url: HttpUrl,
	expectStatus: z.number().int().min(100).max(599).default(200),
	timeoutMs: Millis.default(5_000),
	/** TLS certificates expiring sooner than this many days turn the check amber. */
	tlsWarnDays: z.number().int().min(0).max(365).default(14),
});

const Postgres = z.strictObject({
	urlEnv: EnvName,
	/** Env var with the URL SQL checks run under: a role of their own, without pg_signal_backend (default: urlEnv's). */
	checksUrlEnv: EnvName.optional(),
	timeoutMs: Millis.default(5_000),
	/** opsbot's own pool per database; small so it never causes the exhaustion it reports. */
	maxConnections: z.number().int().min(1).max(10).default(2),
});

const PgBouncer = z.strictObject({
	/** Env var holding a postgres:// URL whose database is `pgbouncer` (the admin console). */
	adminUrlEnv: EnvName,
	timeoutMs: Millis.default(5_000),
});

/**
 * A Loki tenant id (X-Scope-OrgID) as Loki's tenant rules allow it: letters, digits and `! - _ . * ' ( )`,
 * at most 150, not `.` or `..`. Loki refuses `a/b` with 400; `|` would join tenants in a multi-tenant query.
 */
const LokiTenant = z
	.string()
	.regex(/^[A-Za-z0-9!_.*'()-]{1,150}$/, "expected a Loki tenant id: 1-150 letters, digits and ! - _ . * ' ( )")
	.refine((t) => t !== "." && t !== "..", "a Loki tenant id cannot be . or ..");

const Loki = z.strictObject({
	url: HttpUrl,
	tenant: LokiTenant.optional(),
	/** Env var holding `user:password` for basic auth, if Loki sits behind it. */
	basicAuthEnv: EnvName.optional(),
	timeoutMs: Millis.default(10_000),
	grafanaUrl: HttpUrl.optional(),
	/** The Grafana organisation "Open in Grafana" opens (`orgId` in Explore links; default 1). */
	grafanaOrgId: z.number().int().min(1).optional(),
	/** The uid (or name) of this Loki's data source in that Grafana (default `loki`). */
	grafanaDatasource: z.string().min(1).max(200).optional(),
	/** The stream label that names a service, e.g. `service` or `container`. */
	serviceLabel: LabelName.default("service"),
});

const SimpleHttpService = z.strictObject({ url: HttpUrl, timeoutMs: Millis.default(5_000) });

/**
 * An environment's AlertManager: `url`, and for an HA cluster its other members (`peers`), asked in
 * order when the one before gives no answer. Silences are gossiped in a cluster, so any member serves.
 */
const AlertManagerService = z.strictObject({
	url: HttpUrl,
	peers: z.array(HttpUrl).max(4).optional(),
	timeoutMs: Millis.default(5_000),
});

const Ssh = z.strictObject({
	host: z.string().min(1).max(253),
	port: z.number().int().min(1).max(65_535).default(22),
	user: z.string().min(1).max(64),
	keyFileEnv: EnvName,
	/**
	 * Pinned host key exactly as in known_hosts: `ssh-ed25519 AAAA...`. Connections presenting any other key are
	 * refused. Required to start the bot; the CLI accepts its absence so `opsbot doctor` can show the host's key.
	 */
	hostKey: z
		.string()
		.regex(
			/^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/=]+$/,
			"expected a public host key such as 'ssh-ed25519 AAAA...' (the key part of `ssh-keyscan -t ed25519 HOST`)",
		)
		.optional(),
	timeoutMs: Millis.default(10_000),
	/** Containers opsbot may look at or restart on this host; nothing else. */
	containers: z.array(ContainerName).max(100).default([]),
});

const PercentThresholds = (degraded: number, down: number) =>
	z
		.strictObject({
			degradedPercent: z.number().min(1).max(100).default(degraded),
			downPercent: z.number().min(1).max(100).default(down),
		})
		.refine((t) => t.degradedPercent < t.downPercent, {
			message: "degradedPercent must be below downPercent",
			path: ["degradedPercent"],
		})
		.prefault({});

/** A host watched through the environment's Prometheus (node-exporter metrics; no agent of opsbot's own). */
const HostCheck = z
	.strictObject({
		name: z.string().min(1).max(64),
		/** node-exporter's `instance` label, e.g. `prod.internal:9100`. */
		instance: z.string().min(1).max(255).optional(),
		/** Or label matchers selecting the host's node-exporter series (exact values), e.g. `{ job: node, host: prod }`. */
		labels: z.record(LabelName, z.string().max(255)).optional(),
		/** Mount points to show; default: every filesystem node-exporter reports except tmpfs-like ones. */
		mounts: z
			.array(z.string().regex(/^\/[^\n]{0,4095}$/, "expected an absolute mount point such as /var/lib/postgresql"))
			.min(1)
			.max(20)
			.optional(),
		disk: PercentThresholds(85, 95),
		memory: PercentThresholds(90, 97),
		/** Load (1 min) per core; no state from load unless set. */
		loadPerCore: z
			.strictObject({ degraded: z.number().positive().optional(), down: z.number().positive().optional() })
			.optional(),
		timeoutMs: Millis.default(5_000),
	})
	.superRefine((host, ctx) => {
		const hasLabels = host.labels !== undefined && Object.keys(host.labels).length > 0;
		if ((host.instance !== undefined) === hasLabels)
			ctx.addIssue({
				code: "custom",
				message: "give exactly one of instance or labels (a non-empty label selector)",
				path: [],
			});
		const load = host.loadPerCore;
		if (load?.degraded !== undefined && load.down !== undefined && load.degraded >= load.down)
			ctx.addIssue({ code: "custom", message: "degraded must be below down", path: ["loadPerCore", "degraded"] });
	});

/**
 * Functions a READ ONLY transaction still lets through and that act beyond the check: signal other
 * sessions, take locks that outlive it, change session settings, notify, write WAL, assign an xid,
 * reload or switch server state. Refused by name at config load; the run also rolls back and drops
 * advisory locks (custom-checks.ts), and a role of its own (checksUrlEnv) is the real boundary.
 */
const SIDE_EFFECT_FUNCTIONS = new RegExp(
	String.raw`\b(pg_terminate_backend|pg_cancel_backend|pg_(try_)?advisory_(xact_)?lock(_shared)?|` +
		"pg_advisory_unlock(_all|_shared)?|set_config|pg_notify|pg_logical_emit_message|" +
		"txid_current(_if_assigned)?|pg_current_xact_id(_if_assigned)?|pg_reload_conf|pg_rotate_logfile|" +
		String.raw`pg_switch_wal|pg_create_restore_point|pg_promote|pg_log_backend_memory_contexts|dblink\w*)\b`,
	"i",
);

/** A check of the team's own: one number from PromQL or a read-only SQL query, judged against thresholds. */
const CustomCheck = z
	.strictObject({
		name: z.string().min(1).max(64),
		promql: z.string().min(1).max(4_000).optional(),
		/** One parameterless statement, run read-only under statement_timeout = timeoutMs. */
		sql: z.string().min(1).max(4_000).optional(),
		unit: z.string().max(16).default(""),
		/** above: higher is worse (age, error rate); below: lower is worse (free space, replicas). */
		direction: z.enum(["above", "below"]).default("above"),
		degraded: z.number().optional(),
		down: z.number().optional(),
		timeoutMs: Millis.default(5_000),
	})
	.superRefine((check, ctx) => {
		if ((check.promql === undefined) === (check.sql === undefined))
			ctx.addIssue({ code: "custom", message: "give exactly one of promql or sql", path: [] });
		if (check.sql !== undefined && /\$\d/.test(check.sql))
			ctx.addIssue({
				code: "custom",
				message: "checks take no parameters ($1, $2, ...): write the values into the query",
				path: ["sql"],
			});
		const sideEffect = check.sql?.match(SIDE_EFFECT_FUNCTIONS)?.[0];
		if (sideEffect)
			ctx.addIssue({
				code: "custom",
				message:
					`calls ${sideEffect.toLowerCase()}, which acts outside the check (sessions, locks, settings, ` +
					`notifications or WAL); a check only reads`,
				path: ["sql"],
			});
		const { degraded, down } = check;
		if (
			degraded !== undefined &&
			down !== undefined &&
			(check.direction === "above" ? degraded >= down : degraded <= down)
		) {
			ctx.addIssue({
				code: "custom",
				message:
					`with direction ${check.direction}, degraded must be ` +
					`${check.direction === "above" ? "below" : "above"} down`,
				path: ["degraded"],
			});
		}
	});

const Environment = z
	.strictObject({
		http: z.array(HttpCheck).max(25).default([]),
		postgres: Postgres.optional(),
		pgbouncer: PgBouncer.optional(),
		loki: Loki.optional(),
		prometheus: SimpleHttpService.optional(),
		alertmanager: AlertManagerService.optional(),
		ssh: Ssh.optional(),
		hosts: z.array(HostCheck).max(25).optional(),
		checks: z.array(CustomCheck).max(25).optional(),
	})
	.superRefine((environment, ctx) => {
		const names = new Set(environment.http.map((h) => h.name));
		environment.hosts?.forEach((host, i) => {
			if (!environment.prometheus)
				ctx.addIssue({
					code: "custom",
					message: "needs this environment's prometheus (its figures come from there)",
					path: ["hosts", i],
				});
			if (names.has(host.name))
				ctx.addIssue({ code: "custom", message: `duplicate check name "${host.name}"`, path: ["hosts", i, "name"] });
			names.add(host.name);
		});
		environment.checks?.forEach((check, i) => {
			if (check.promql !== undefined && !environment.prometheus)
				ctx.addIssue({
					code: "custom",
					message: "a promql check needs this environment's prometheus",
					path: ["checks", i, "promql"],
				});
			if (check.sql !== undefined && !environment.postgres)
				ctx.addIssue({
					code: "custom",
					message: "an sql check needs this environment's postgres",
					path: ["checks", i, "sql"],
				});
			if (names.has(check.name))
				ctx.addIssue({ code: "custom", message: `duplicate check name "${check.name}"`, path: ["checks", i, "name"] });
			names.add(check.name);
		});
	});

export type HostCheckConfig = z.infer<typeof HostCheck>;
export type CustomCheckConfig = z.infer<typeof CustomCheck>;

const RoleRef = z.union([z.literal("everyone"), z.string().min(1).max(64)]);

const Discord = z.strictObject({
	guildId: Snowflake,
	/** Channels where command replies are public; everywhere else they are ephemeral. */
	opsChannels: z.array(Snowflake).default([]),
	/** Named roles, used by `access`. */
	roles: z.record(z.string().min(1).max(64), Snowflake).default({}),
});

const Access = z.strictObject({
	commands: z.partialRecord(z.enum(COMMAND_NAMES), z.array(RoleRef)).default({}),
	actions: z.partialRecord(z.enum(ACTION_NAMES), z.array(RoleRef)).default({}),
	/** Environments only some roles may act on (silences, maintenance); one not listed is open to the action's roles. */
	environments: z.record(z.string(), z.array(RoleRef)).optional(),
});

const AuditTable = z.strictObject({
	table: SqlIdentifier.default("audit_log"),
	schema: SqlIdentifier.default("public"),
	columns: z
		.strictObject({
			id: SqlIdentifier.default("id"),
			timestamp: SqlIdentifier.default("timestamp"),
			correlationId: SqlIdentifier.default("correlation_id"),
			action: SqlIdentifier.default("action"),
			resourceType: SqlIdentifier.default("resource_type"),
			resourceId: SqlIdentifier.default("resource_id"),
			userId: SqlIdentifier.default("user_id"),
			username: SqlIdentifier.default("username"),
			userEmail: SqlIdentifier.default("user_email"),
			ipAddress: SqlIdentifier.default("ip_address"),
			userAgent: SqlIdentifier.default("user_agent"),
			function: SqlIdentifier.default("function"),
			requestPath: SqlIdentifier.default("request_path"),
			requestMethod: SqlIdentifier.default("request_method"),
			success: SqlIdentifier.default("success"),
			error: SqlIdentifier.default("error"),
			durationMs: SqlIdentifier.default("duration_ms"),
		})
		.prefault({}),
	maxRangeDays: z.number().int().min(1).max(366).default(31),
	maxRows: z.number().int().min(1).max(100_000).default(5_000),
	statementTimeoutMs: Millis.default(5_000),
});

const PoolSettings = z.strictObject({
	warnPercent: z.number().min(1).max(100).default(70),
	criticalPercent: z.number().min(1).max(100).default(90),
	// Fractions are allowed (0.05 min = 3 s) so the action can be exercised without waiting minutes.
	idleMinutes: z.number().min(0.05).max(1_440).default(5),
	/** Sessions idle in a transaction this long are named as a cause (warn) and can be ended from /pool. */
	idleInTransactionMinutes: z.number().min(0.05).max(1_440).default(1),
});

const LogSettings = z.strictObject({
	defaultLimit: z.number().int().min(1).max(5_000).default(50),
	maxLimit: z.number().int().min(1).max(5_000).default(1_000),
	defaultSince: z
		.string()
		.regex(/^\d+[mhd]$/)
		.default("1h"),
	maxRangeHours: z.number().int().min(1).max(721).default(168),
});

/** Minutes of a clock (escalation, acknowledgement): more than zero, fractions allowed (0.05 = 3 s), at most a week. */
const ClockMinutes = z.number().positive("must be more than 0 minutes").max(10_080);

/**
 * Who an escalation mentions: a role named under discord.roles, `role:<id>` or `user:<id>`. Only these
 * are ever mentioned (allowed_mentions lists exactly them; never @everyone).
 */
const MentionTarget = z
	.string()
	.regex(
		/^(role:\d{17,20}|user:\d{17,20}|[^:@\s][^:]{0,63})$/,
		"expected a role named under discord.roles, role:<id> or user:<id>",
	);

/** A route's escalation: still firing, not acknowledged after `afterMinutes`: mention; again every `repeatMinutes`. */
const Escalation = z.strictObject({
	afterMinutes: ClockMinutes,
	mention: z.array(MentionTarget).min(1).max(10),
	repeatMinutes: ClockMinutes.optional(),
});

const AlertRoute = z.strictObject({
	match: z.record(LabelName, z.string()).default({}),
	matchRe: z.record(LabelName, z.string()).default({}),
	channel: Snowflake,
	mentionRole: Snowflake.optional(),
	continue: z.boolean().default(false),
	escalation: Escalation.optional(),
	/** How long an acknowledgement holds on this route's groups (else alerts.ackTimeoutMinutes). */
	ackTimeoutMinutes: ClockMinutes.optional(),
});

const Alerts = z.strictObject({
	listen: z
		.strictObject({ host: z.string().default("127.0.0.1"), port: z.number().int().min(0).max(65_535).default(9095) })
		.prefault({}),
	defaultChannel: Snowflake,
	routes: z.array(AlertRoute).max(100).default([]),
	containerLabel: LabelName.default("container"),
	environmentLabel: LabelName.default("env"),
	restartCooldownSeconds: z.number().int().min(0).max(86_400).default(300),
	/**
	 * A group that fires again within this long of resolving re-opens its card ("flapped 3× in the last
	 * hour") instead of a new one; 0 turns it off. Fractions allowed (0.05 = 3 s).
	 */
	regroupMinutes: z.number().min(0).max(1_440).default(15),
	/**
	 * The dead man's switch: the always-firing alert (Prometheus' Watchdog) is never posted; when none has
	 * arrived for `afterMinutes`, opsbot says so once in `channel`, and once more when it is back.
	 */
	deadman: z
		.strictObject({
			alertname: z.string().min(1).max(200).default("Watchdog"),
			afterMinutes: ClockMinutes,
			channel: Snowflake,
		})
		.optional(),
	/** How long an acknowledgement holds; then, if the group still fires, the acker is reminded. None: for ever. */
	ackTimeoutMinutes: ClockMinutes.optional(),
	/**
	 * How often opsbot reads the clocks (escalations, acknowledgements that run out, the dead man's switch): a
	 * step goes out within this long of its time. Each pass reads every open group from the store.
	 */
	clocks: z
		.strictObject({
			intervalSeconds: z
				.number()
				.int("must be a whole number of seconds")
				.min(1, "must be 1 to 60 seconds")
				.max(60, "must be 1 to 60 seconds")
				.default(5),
		})
		.prefault({}),
	maxBodyBytes: z
		.number()
		.int()
		.min(1_024)
		.max(50 * 1024 * 1024)
		.default(2 * 1024 * 1024),
	/**
	 * `GET /metrics` on this port: without credentials from loopback only, unless `requireAuth` asks for the webhook's
	 * credentials from everyone.
	 */
	metrics: z.strictObject({ requireAuth: z.boolean().default(false) }).prefault({}),
	/** Bounds of silences and maintenance windows made through opsbot. */
	silences: z
		.strictObject({
			maxDuration: z
				.string()
				.regex(/^(\d{1,5}[mhdw])+$/, "expected a duration such as 12h, 7d or 2w")
				.default("7d")
				.refine((text) => durationMs(text) <= 90 * 86_400_000, "at most 90d"),
			remindBeforeMinutes: z.number().int().min(1).max(1_440).default(15),
		})
		.prefault({}),
	/** How long opsbot keeps each episode's history (its events, for /alerts history and timelines), in days. */
	history: z.strictObject({ days: z.number().int().min(1).max(3_650).default(90) }).prefault({}),
	/** A thread per episode under its card: on the first action, or at once for these severities. */
	threads: z
		.strictObject({
			enabled: z.boolean().default(true),
			openFor: z.array(z.string().min(1).max(40)).max(20).default(["critical"]),
		})
		.prefault({}),
	/** How often opsbot asks AlertManager whether the silences it made still hold. */
	silenceWatch: z
		.strictObject({
			intervalSeconds: z.number().int().min(1).max(3_600).default(30),
			/** Read as alerts.reconcile.alertmanagerSettleSeconds when that is not given (it moved there). */
			alertmanagerSettleSeconds: z.number().int().min(0).max(3_600).optional(),
		})
		.prefault({}),
	/** How opsbot compares its open groups with what each AlertManager holds (lost webhooks, lost resolutions). */
	reconcile: z
		.strictObject({
			intervalSeconds: z.number().int().min(1).max(3_600).default(60),
			/**
			 * How long AlertManager may take to notify on its own (group_wait, group_interval, retries): a
			 * difference younger than this is left to its webhook. Keep it above your group_interval.
			 */
			graceSeconds: z.number().int().min(0).max(86_400).default(330),
			// AlertManager keeps alerts in memory: right after its restart an empty answer means nothing.
			alertmanagerSettleSeconds: z.number().int().min(0).max(3_600).optional(),
			/** AlertManager receivers that post to opsbot, besides those its webhooks already named. */
			receivers: z.array(z.string().min(1).max(1_024)).max(20).default([]),
		})
		.prefault({}),
});

/**
 * Several replicas on one STATE_DATABASE_URL: the gateway lease. After kill -9 of its holder another
 * replica takes the gateway and delivery over within leaseSeconds + renewSeconds.
 */
const Replicas = z
	.strictObject({
		/** How long the lease (and a claim on an outbox item) lasts without a renewal. */
		leaseSeconds: z.number().int().min(3).max(300).default(15),
		/** How often the holder renews the lease and a standby asks for it. */
		renewSeconds: z.number().int().min(1).max(60).default(5),
	})
	// Two renewals fit in a lease, so one failed renewal (a dropped connection) does not cost it.
	.refine((r) => r.leaseSeconds >= 3 * r.renewSeconds, {
		message: "must be at least 3 × renewSeconds (so one failed renewal does not cost the lease)",
		path: ["leaseSeconds"],
	});

/** The ops config file (YAML). */
export const OpsFileSchema = z.strictObject({
	discord: Discord,
	access: Access.prefault({}),
	environments: z
		.record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "expected a short lowercase environment name"), Environment)
		.refine((envs) => Object.keys(envs).length > 0, "at least one environment is required"),
	defaultEnvironment: z.string().optional(),
	audit: AuditTable.prefault({}),
	pool: PoolSettings.prefault({}),
	logs: LogSettings.prefault({}),
	alerts: Alerts.optional(),
	stateDir: z.string().default("./data"),
	replicas: Replicas.prefault({}),
});

const OptionalSecret = z.string().min(1).optional();

/** Secrets and process settings from the environment. */
export const EnvSchema = z.object({
	DISCORD_TOKEN: OptionalSecret,
	DISCORD_APPLICATION_ID: Snowflake.optional(),
	DISCORD_API_URL: HttpUrl.optional(),
	OPSBOT_CONFIG: z.string().min(1).default("./opsbot.yaml"),
	WEBHOOK_TOKEN: z.string().min(16, "must be at least 16 characters (e.g. `openssl rand -base64 24`)").optional(),
	WEBHOOK_BASIC_AUTH: z
		.string()
		.regex(/^[^:]+:.{12,}$/, "must be user:password with a password of 12+ characters")
		.optional(),
	/** When set, the only credential that opens /metrics (the webhook's credentials no longer do). */
	METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
	STATE_DATABASE_URL: OptionalSecret,
	LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
	LOG_PRETTY: z.stringbool().default(false),
});

export type OpsFile = z.infer<typeof OpsFileSchema>;
export type EnvironmentConfig = z.infer<typeof Environment>;
export type LokiConfig = z.infer<typeof Loki>;
export type AlertsConfig = z.infer<typeof Alerts>;
/**
 * The ops file of an opsbot that relays alerts: what the alert modules read, with `alerts` present (and its defaults
 * filled in).
 */
export type AlertingOps = OpsFile & { readonly alerts: AlertsConfig };
export type HttpCheckConfig = z.infer<typeof HttpCheck>;
export type AuditTableConfig = z.infer<typeof AuditTable>;

/** Everything opsbot runs on: the ops file, the process settings, and the secrets the file names. */
export interface Config {
	readonly ops: OpsFile;
	readonly env: z.infer<typeof EnvSchema>;
	/** Values of the environment variables the ops file refers to (URLs, key paths). Secrets: never log. */
	readonly secrets: ReadonlyMap<string, string>;
}

/** Thrown when configuration is invalid; `problems` name paths, never values. */
export class ConfigError extends Error {
	readonly problems: readonly string[];
	constructor(problems: readonly string[]) {
		super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
		this.name = "ConfigError";
		this.problems = problems;
	}
}

/** "bot" needs the Discord and webhook secrets; "cli" only what the ops file names. */
export type ConfigMode = "bot" | "cli";

/** Reads the environment and the ops file; throws ConfigError listing every problem by path. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, mode: ConfigMode = "bot"): Config {
	// An empty value (DISCORD_TOKEN= in a fresh .env) is an unset one: "required", with what to paste, in the same pass as
	// the rest.
	const given = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ""));
	const parsedEnv = EnvSchema.safeParse(given);
	const problems: string[] = parsedEnv.success ? [] : formatIssues(parsedEnv.error.issues, "env");
	const path = parsedEnv.success ? parsedEnv.data.OPSBOT_CONFIG : env.OPSBOT_CONFIG || "./opsbot.yaml";
	const file = readOpsFile(path, problems);
	if (file === undefined) throw new ConfigError(problems);
	const settings = parsedEnv.success ? parsedEnv.data : undefined;
	if (mode === "bot") {
		if (!given.DISCORD_TOKEN)
			problems.push(`env.DISCORD_TOKEN: required to start the bot: ${PASTE_FROM_PORTAL} (Bot > Reset Token)`);
		if (!given.DISCORD_APPLICATION_ID)
			problems.push(
				`env.DISCORD_APPLICATION_ID: required to start the bot: ${PASTE_FROM_PORTAL} (General Information > ` +
					`Application ID)`,
			);
	}
	const parsedFile = OpsFileSchema.safeParse(file);
	if (!parsedFile.success) {
		problems.push(...formatIssues(parsedFile.error.issues, path));
		throw new ConfigError(problems);
	}
	const ops = parsedFile.data;
	problems.push(...crossCheck(ops));
	const secrets = new Map<string, string>();
	for (const { at, name } of referencedEnvVars(ops)) {
		const value = env[name];
		if (value === undefined || value === "")
			problems.push(`${at}: environment variable ${name} is not set (put it in .env)`);
		else secrets.set(name, value);
	}
	if (mode === "bot") {
		for (const [envName, environment] of Object.entries(ops.environments)) {
			if (environment.ssh && !environment.ssh.hostKey)
				problems.push(
					`environments.${envName}.ssh.hostKey: required: pin the host's key (\`ssh-keyscan -t ed25519 ` +
						`${environment.ssh.host}\`, or \`npx opsbot doctor\` shows it)`,
				);
		}
	}
	// Only the bot receives webhooks; the CLI must work without them (e.g. on the day Discord is down).
	if (mode === "bot" && settings && ops.alerts && !settings.WEBHOOK_TOKEN && !settings.WEBHOOK_BASIC_AUTH) {
		problems.push(
			"env.WEBHOOK_TOKEN: required when `alerts` is configured (or set WEBHOOK_BASIC_AUTH): 16+ random " +
				"characters, e.g. from `openssl rand -base64 24`",
		);
	}
	if (problems.length > 0 || !settings) throw new ConfigError(problems);
	return { ops, env: settings, secrets };
}

const PASTE_FROM_PORTAL = "paste it into .env from https://discord.com/developers/applications";

/**
 * The config a process starts with: `.env` (if present) under the environment, then loadConfig. A
 * ConfigError comes back rather than thrown: the caller prints it and exits 78 (EX_CONFIG).
 */
export function readConfig(mode: ConfigMode): Config | ConfigError {
	loadDotEnv();
	try {
		return loadConfig(process.env, mode);
	} catch (err) {
		if (err instanceof ConfigError) return err;
		throw err;
	}
}

/** What deploy-commands.ts needs: Discord's token and application id (and the API base URL, for the double). */
export function loadDeployEnv(env: NodeJS.ProcessEnv = process.env): {
	token: string;
	applicationId: string;
	apiUrl: string | undefined;
} {
	const parsed = EnvSchema.pick({ DISCORD_TOKEN: true, DISCORD_APPLICATION_ID: true, DISCORD_API_URL: true }).safeParse(
		env,
	);
	const problems = parsed.success ? [] : formatIssues(parsed.error.issues, "env");
	if (parsed.success && !parsed.data.DISCORD_TOKEN) problems.push("env.DISCORD_TOKEN: required to register commands");
	if (parsed.success && !parsed.data.DISCORD_APPLICATION_ID)
		problems.push("env.DISCORD_APPLICATION_ID: required to register commands");
	if (!parsed.success || !parsed.data.DISCORD_TOKEN || !parsed.data.DISCORD_APPLICATION_ID)
		throw new ConfigError(problems);
	return {
		token: parsed.data.DISCORD_TOKEN,
		applicationId: parsed.data.DISCORD_APPLICATION_ID,
		apiUrl: parsed.data.DISCORD_API_URL,
	};
}

function readOpsFile(path: string, problems: string[]): unknown {
	if (!existsSync(path)) {
		problems.push(
			`${path}: ops config file not found. To start: \`npx opsbot init\` writes it (and .env) from your server's ` +
				`ids, or copy opsbot.minimal.yaml to opsbot.yaml and put your ids in; the README's Quick start has every ` +
				`step. (OPSBOT_CONFIG names another file.)`,
		);
		return undefined;
	}
	const doc = parseDocument(readFileSync(path, "utf8"), { prettyErrors: true, uniqueKeys: true });
	if (doc.errors.length > 0) {
		// YAML errors carry line/column, never the secret-free file's values beyond a short snippet.
		problems.push(
			...doc.errors.map(
				(e) => `${path}: YAML ${e.code} at line ${e.linePos?.[0]?.line ?? "?"}, column ${e.linePos?.[0]?.col ?? "?"}`,
			),
		);
		return undefined;
	}
	return doc.toJS() ?? {};
}

/** Relations a schema alone cannot express: names that must refer to other parts of the file. */
function crossCheck(ops: OpsFile): string[] {
	const problems: string[] = [];
	const roleNames = new Set(Object.keys(ops.discord.roles));
	for (const [kind, table] of [
		["commands", ops.access.commands],
		["actions", ops.access.actions],
		["environments", ops.access.environments ?? {}],
	] as const) {
		for (const [name, roles] of Object.entries(table)) {
			roles?.forEach((role, i) => {
				if (role !== "everyone" && !roleNames.has(role) && !/^\d{17,20}$/.test(role)) {
					problems.push(`access.${kind}.${name}.${i}: unknown role "${role}" (define it under discord.roles)`);
				}
			});
		}
	}
	const envNames = Object.keys(ops.environments);
	for (const name of Object.keys(ops.access.environments ?? {}))
		if (!envNames.includes(name))
			problems.push(`access.environments.${name}: not one of the environments (${envNames.join(", ")})`);
	if (ops.defaultEnvironment !== undefined && !envNames.includes(ops.defaultEnvironment)) {
		problems.push(
			`defaultEnvironment: "${ops.defaultEnvironment}" is not one of the environments (${envNames.join(", ")})`,
		);
	}
	if (ops.pool.warnPercent >= ops.pool.criticalPercent)
		problems.push("pool.warnPercent: must be below pool.criticalPercent");
	for (const [envName, environment] of Object.entries(ops.environments)) {
		const names = new Set<string>();
		environment.http.forEach((check, i) => {
			if (names.has(check.name))
				problems.push(`environments.${envName}.http.${i}.name: duplicate check name "${check.name}"`);
			names.add(check.name);
		});
	}
	ops.alerts?.routes.forEach((route, i) => {
		route.escalation?.mention.forEach((target, j) => {
			if (!/^(role|user):/.test(target) && !Object.hasOwn(ops.discord.roles, target))
				problems.push(
					`alerts.routes.${i}.escalation.mention.${j}: unknown role "${target}" ` +
						"(define it under discord.roles, or write role:<id> or user:<id>)",
				);
		});
		for (const [label, pattern] of Object.entries(route.matchRe)) {
			try {
				new RegExp(`^(?:${pattern})$`);
			} catch {
				problems.push(`alerts.routes.${i}.matchRe.${label}: not a valid regular expression`);
			}
		}
	});
	return problems;
}

function referencedEnvVars(ops: OpsFile): { at: string; name: string }[] {
	const refs: { at: string; name: string }[] = [];
	for (const [envName, e] of Object.entries(ops.environments)) {
		const at = `environments.${envName}`;
		if (e.postgres) refs.push({ at: `${at}.postgres.urlEnv`, name: e.postgres.urlEnv });
		if (e.postgres?.checksUrlEnv) refs.push({ at: `${at}.postgres.checksUrlEnv`, name: e.postgres.checksUrlEnv });
		if (e.pgbouncer) refs.push({ at: `${at}.pgbouncer.adminUrlEnv`, name: e.pgbouncer.adminUrlEnv });
		if (e.loki?.basicAuthEnv) refs.push({ at: `${at}.loki.basicAuthEnv`, name: e.loki.basicAuthEnv });
		if (e.ssh) refs.push({ at: `${at}.ssh.keyFileEnv`, name: e.ssh.keyFileEnv });
	}
	return refs;
}

function formatIssues(issues: readonly z.core.$ZodIssue[], prefix: string): string[] {
	return issues.map((issue) => {
		const path = [prefix === "env" ? "env" : "", ...issue.path.map(String)].filter(Boolean).join(".") || prefix;
		return `${path}: ${describeIssue(issue)}`;
	});
}

// zod's default messages are good but say "received undefined" where a person expects "required",
// and nothing about the newcomer's commonest slip: an unquoted Discord id, which YAML reads as a number.
function describeIssue(issue: z.core.$ZodIssue): string {
	if (issue.code === "invalid_type" && issue.message.endsWith("received undefined")) return "required";
	if (issue.code === "invalid_type" && issue.expected === "string" && issue.message.endsWith("received number")) {
		return (
			'write it in quotes ("1234..."): YAML reads an unquoted number as a number, and a Discord id loses ' +
			"its last digits"
		);
	}
	if (issue.code === "unrecognized_keys")
		return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
	return issue.message;
}

/**
 * The environment named `name`, looked up among the configured ones only: user text such as
 * `__proto__` or `constructor` must not reach Object.prototype through the record.
 */
export function findEnvironment(ops: Pick<OpsFile, "environments">, name: string): EnvironmentConfig | undefined {
	return Object.hasOwn(ops.environments, name) ? ops.environments[name] : undefined;
}

/**
 * The named environment's config; an unknown name (one like an Object.prototype key too) is refused in the words every
 * command and the CLI use.
 */
export function knownEnvironment(ops: Pick<OpsFile, "environments">, name: string): EnvironmentConfig {
	const env = findEnvironment(ops, name);
	if (!env)
		throw new UserFacingError([
			"Unknown environment ",
			{ code: name.slice(0, 40) },
			`. Known: ${Object.keys(ops.environments).join(", ")}.`,
		]);
	return env;
}

/** The environment a command uses when the user names none. */
export function defaultEnvironment(ops: OpsFile): string {
	return ops.defaultEnvironment ?? Object.keys(ops.environments)[0] ?? "";
}
