import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { DiscordAPIError, REST } from "discord.js";
import {
	PermissionFlagsBits,
	type RESTPostAPIChatInputApplicationCommandsJSONBody,
	Routes,
} from "discord-api-types/v10";
import { Client } from "ssh2";
import { commandBodies, diffCommands } from "../../deploy-commands.ts";
import type { Config, EnvironmentConfig } from "../config.ts";
import { discordAgent } from "../discord/client.ts";
import type { CheckKind, CheckState, HealthService } from "./health.ts";

/**
 * `opsbot doctor`: checks everything the config names, in one run, and says for each broken piece
 * what to do. Discord through its REST API (token, guild, channels and the bot's permissions there,
 * roles, registered commands), every service through the health service (its words), each SSH host's
 * key against the pin, and what AlertManager needs. Never changes anything.
 */

/** ok: works; off: an optional part not configured; degraded: works, worth a look; broken: does not work. */
export type FindingState = "ok" | "off" | "degraded" | "broken";
export type FindingArea = "config" | "discord" | "service" | "ssh" | "alertmanager";

/** One thing doctor checked. */
export interface Finding {
	readonly area: FindingArea;
	/** What was checked, e.g. "channel 1234 (#ops)" or "production · website". */
	readonly subject: string;
	readonly state: FindingState;
	/** What was found, in plain words. */
	readonly detail: string;
	/** What to do about it, when there is something to do. */
	readonly fix?: string;
}

/** A host key doctor saw on an SSH host that has none pinned (or another one), for a person to check and pin. */
export interface SeenHostKey {
	readonly environment: string;
	readonly host: string;
	/** `SHA256:...`, as `ssh-keygen -lf` prints it. */
	readonly fingerprint: string;
	/** The line to put under the environment's `ssh:`. */
	readonly configLine: string;
}

/** Everything one doctor run found. */
export interface DoctorResult {
	readonly startedAt: Date;
	readonly durationMs: number;
	readonly configPath: string;
	readonly findings: readonly Finding[];
	readonly hostKeys: readonly SeenHostKey[];
	/** The receiver to paste into alertmanager.yml, when `alerts` is configured. */
	readonly alertmanagerSnippet?: string;
}

/** What doctor reads: the config, the health service, and where the bot's own webhook would be. */
export interface DoctorDeps {
	readonly config: Config;
	readonly health: Pick<HealthService, "check">;
	/** Reads an SSH host's key without logging in (default: over the network with ssh2). */
	readonly readHostKey?: (host: string, port: number, timeoutMs: number) => Promise<Buffer>;
}

/** The permissions opsbot needs in a channel it posts to, with the names the Developer Portal uses. */
const CHANNEL_PERMISSIONS: readonly [bigint, string][] = [
	[PermissionFlagsBits.ViewChannel, "View Channels"],
	[PermissionFlagsBits.SendMessages, "Send Messages"],
	[PermissionFlagsBits.EmbedLinks, "Embed Links"],
	[PermissionFlagsBits.AttachFiles, "Attach Files"],
	[PermissionFlagsBits.ReadMessageHistory, "Read Message History"],
	[PermissionFlagsBits.CreatePublicThreads, "Create Public Threads"],
	[PermissionFlagsBits.SendMessagesInThreads, "Send Messages in Threads"],
];
const ALL_PERMISSIONS = CHANNEL_PERMISSIONS.reduce((all, [bit]) => all | bit, PermissionFlagsBits.MentionEveryone);

/** The OAuth2 URL that adds the bot to a server with the permissions above. */
export function inviteUrl(applicationId: string): string {
	return (
		`https://discord.com/oauth2/authorize?client_id=${applicationId}&scope=bot+applications.commands&` +
		`permissions=${ALL_PERMISSIONS}`
	);
}

/** Runs every check; `environment` limits the service and SSH checks to one environment. */
export async function runDoctor(deps: DoctorDeps, options: { environment?: string } = {}): Promise<DoctorResult> {
	const startedAt = new Date();
	const { config } = deps;
	const environments = Object.entries(config.ops.environments).filter(
		([name]) => !options.environment || name === options.environment,
	);
	const [discord, services, ssh] = await Promise.all([
		checkDiscord(config),
		Promise.all(environments.map(([name]) => checkServices(deps.health, name))),
		Promise.all(environments.map(([name, env]) => checkSsh(name, env, deps.readHostKey ?? readHostKey))),
	]);
	const alerts = await checkAlerts(config);
	const findings = [
		configFinding(config, environments),
		...offParts(environments),
		...discord,
		...services.flat(),
		...ssh.map((s) => s.finding),
		...alerts.findings,
	];
	return {
		startedAt,
		durationMs: Date.now() - startedAt.getTime(),
		configPath: config.env.OPSBOT_CONFIG,
		findings,
		hostKeys: ssh.flatMap((s) => (s.seen ? [s.seen] : [])),
		...(alerts.snippet ? { alertmanagerSnippet: alerts.snippet } : {}),
	};
}

function configFinding(config: Config, environments: readonly [string, EnvironmentConfig][]): Finding {
	return {
		area: "config",
		subject: "config",
		state: "ok",
		detail:
			`${config.env.OPSBOT_CONFIG} is valid: ${environments.length} ` +
			`environment${environments.length === 1 ? "" : "s"} (${environments.map(([n]) => n).join(", ")})`,
	};
}

/** Optional parts an environment leaves out, and what each would switch on. */
function offParts(environments: readonly [string, EnvironmentConfig][]): Finding[] {
	const parts: readonly [keyof EnvironmentConfig, string][] = [
		["postgres", "/pool, /whodeleted, /audit"],
		["pgbouncer", "PgBouncer pools in /pool"],
		["loki", "/logs from Loki"],
		["prometheus", "alert charts, host resources"],
		["alertmanager", "the Silence button"],
		["ssh", "Restart, docker logs"],
	];
	return environments.flatMap(([name, env]) => {
		const off = parts.filter(([key]) => env[key] === undefined);
		if (off.length === 0) return [];
		return [
			{
				area: "config" as const,
				subject: `${name} · optional parts`,
				state: "off" as const,
				detail: `not configured: ${off.map(([key, gives]) => `${key} (${gives})`).join("; ")}`,
				fix: 'README, "Adding your systems"',
			},
		];
	});
}

const STATE_FINDING: Record<CheckState, FindingState> = { ok: "ok", degraded: "degraded", down: "broken" };

async function checkServices(health: Pick<HealthService, "check">, environment: string): Promise<Finding[]> {
	let snapshot;
	try {
		snapshot = await health.check(environment);
	} catch (err) {
		return [
			{
				area: "service",
				subject: environment,
				state: "broken",
				detail: `the checks did not run: ${err instanceof Error ? err.message : String(err)}`,
			},
		];
	}
	return snapshot.checks.map((c) => ({
		area: "service" as const,
		subject: `${environment} · ${c.name}`,
		state: STATE_FINDING[c.state],
		detail: `${c.kind === c.name ? "" : `${c.kind}: `}${c.detail}`,
		...(c.state === "ok" ? {} : { fix: serviceFix(c.kind, environment) }),
	}));
}

/** Where to look when a service check fails, by kind: the config key that points at it. */
function serviceFix(kind: CheckKind, environment: string): string {
	const at = `environments.${environment}`;
	const where: Record<CheckKind, string> = {
		http: `check that the URL answers from this machine (${at}.http)`,
		postgres: `check the server and the URL in the variable ${at}.postgres.urlEnv names`,
		pgbouncer: `check PgBouncer and the admin URL ${at}.pgbouncer.adminUrlEnv names`,
		prometheus: `check ${at}.prometheus.url`,
		loki: `check ${at}.loki.url (and tenant)`,
		alertmanager: `check ${at}.alertmanager.url`,
		containers: `check the containers on the SSH host (${at}.ssh.containers)`,
		host: `check the host and node-exporter (${at}.hosts)`,
		promql: `check the query and its thresholds (${at}.checks)`,
		sql: `check the query and its thresholds (${at}.checks)`,
	};
	return where[kind];
}

type Overwrite = { id: string; type: number; allow: string; deny: string };
type GuildChannel = { id: string; name: string; type: number; permission_overwrites?: Overwrite[] };
type GuildRole = { id: string; name: string; permissions: string; mentionable: boolean };

/**
 * The bot's permissions in a channel: @everyone and its roles, then the channel's overwrites, as Discord computes them.
 */
export function channelPermissions(
	guildId: string,
	memberId: string,
	memberRoles: readonly string[],
	roles: readonly GuildRole[],
	overwrites: readonly Overwrite[],
): bigint {
	const roleById = new Map(roles.map((r) => [r.id, BigInt(r.permissions)]));
	let base = roleById.get(guildId) ?? 0n;
	for (const id of memberRoles) base |= roleById.get(id) ?? 0n;
	if (base & PermissionFlagsBits.Administrator) return ~0n;
	const apply = (allow: bigint, deny: bigint) => (base = (base & ~deny) | allow);
	const everyone = overwrites.find((o) => o.id === guildId);
	if (everyone) apply(BigInt(everyone.allow), BigInt(everyone.deny));
	const ofRoles = overwrites.filter((o) => o.type === 0 && memberRoles.includes(o.id));
	apply(
		ofRoles.reduce((a, o) => a | BigInt(o.allow), 0n),
		ofRoles.reduce((d, o) => d | BigInt(o.deny), 0n),
	);
	const ofMember = overwrites.find((o) => o.type === 1 && o.id === memberId);
	if (ofMember) apply(BigInt(ofMember.allow), BigInt(ofMember.deny));
	return base;
}

/** Why a Discord request failed, in plain words. */
function discordFailure(err: unknown): string {
	if (err instanceof DiscordAPIError)
		return `Discord answered ${err.status}${err.code ? ` (code ${err.code})` : ""}: ${err.message}`;
	const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code;
	return `Discord did not answer (${cause ?? (err instanceof Error ? err.message : String(err))})`;
}

async function checkDiscord(config: Config): Promise<Finding[]> {
	const { DISCORD_TOKEN: token, DISCORD_APPLICATION_ID: applicationId, DISCORD_API_URL: apiUrl } = config.env;
	const found: Finding[] = [];
	const discord = (subject: string, state: FindingState, detail: string, fix?: string) =>
		found.push({ area: "discord", subject, state, detail, ...(fix ? { fix } : {}) });
	if (!token || !applicationId) {
		for (const [name, value] of [
			["DISCORD_TOKEN", token],
			["DISCORD_APPLICATION_ID", applicationId],
		] as const) {
			if (!value)
				discord(
					name,
					"broken",
					"not set",
					`paste it into .env from https://discord.com/developers/applications ` +
						`(${name === "DISCORD_TOKEN" ? "Bot > Reset Token" : "General Information > Application ID"})`,
				);
		}
		return found;
	}
	const rest = new REST({
		agent: discordAgent(),
		timeout: 10_000,
		retries: 1,
		...(apiUrl ? { api: apiUrl } : {}),
	}).setToken(token);
	let botId: string;
	try {
		const me = (await rest.get(Routes.user())) as { id: string; username: string };
		botId = me.id;
		discord("token", "ok", `valid: logged in as ${me.username}`);
	} catch (err) {
		const refused = err instanceof DiscordAPIError && err.status === 401;
		discord(
			"token",
			"broken",
			refused ? "Discord refused the token (401)" : discordFailure(err),
			refused
				? "Developer Portal > Bot > Reset Token, and paste the new one as DISCORD_TOKEN in .env"
				: "check the network path to discord.com",
		);
		return found;
	}
	const guildId = config.ops.discord.guildId;
	let channels: GuildChannel[];
	let roles: GuildRole[];
	let memberRoles: string[];
	try {
		const guild = (await rest.get(Routes.guild(guildId))) as { name: string };
		[channels, roles, { roles: memberRoles }] = (await Promise.all([
			rest.get(Routes.guildChannels(guildId)),
			rest.get(Routes.guildRoles(guildId)),
			rest.get(Routes.guildMember(guildId, botId)),
		])) as [GuildChannel[], GuildRole[], { roles: string[] }];
		discord("server", "ok", `the bot is in ${guild.name} (discord.guildId)`);
	} catch (err) {
		const absent = err instanceof DiscordAPIError && (err.status === 403 || err.status === 404);
		discord(
			"server",
			"broken",
			absent ? `the bot is not in server ${guildId} (discord.guildId)` : discordFailure(err),
			absent ? `check discord.guildId, then add the bot: ${inviteUrl(applicationId)}` : undefined,
		);
		return found;
	}
	for (const [subject, state, detail, fix] of channelFindings(config, guildId, botId, memberRoles, channels, roles))
		discord(subject, state, detail, fix);
	const roleIds = new Set(roles.map((r) => r.id));
	for (const [name, id] of Object.entries(config.ops.discord.roles)) {
		if (roleIds.has(id)) discord(`role ${name}`, "ok", `${id} exists (${roles.find((r) => r.id === id)?.name})`);
		else
			discord(
				`role ${name}`,
				"broken",
				`${id} is not a role of this server (discord.roles.${name})`,
				"Server Settings > Roles, right-click the role > Copy Role ID (Developer Mode on)",
			);
	}
	config.ops.alerts?.routes.forEach((route, i) => {
		if (route.mentionRole && !roleIds.has(route.mentionRole))
			discord(
				`alerts.routes.${i}.mentionRole`,
				"broken",
				`${route.mentionRole} is not a role of this server`,
				"copy the role's id again (Server Settings > Roles > Copy Role ID)",
			);
	});
	found.push(await commandFinding(rest, applicationId, guildId));
	return found;
}

/** Every channel the config names, whether it exists, and what the bot may not do there. */
function channelFindings(
	config: Config,
	guildId: string,
	botId: string,
	memberRoles: readonly string[],
	channels: readonly GuildChannel[],
	roles: readonly GuildRole[],
): [string, FindingState, string, string?][] {
	const uses = new Map<string, { where: string[]; mentions: string[] }>();
	const use = (id: string, where: string, mention?: string) => {
		const entry = uses.get(id) ?? { where: [], mentions: [] };
		if (!entry.where.includes(where)) entry.where.push(where);
		if (mention) entry.mentions.push(mention);
		uses.set(id, entry);
	};
	for (const [i, id] of config.ops.discord.opsChannels.entries()) use(id, `discord.opsChannels.${i}`);
	if (config.ops.alerts) use(config.ops.alerts.defaultChannel, "alerts.defaultChannel");
	for (const [i, r] of (config.ops.alerts?.routes ?? []).entries()) use(r.channel, `alerts.routes.${i}`, r.mentionRole);
	return [...uses].map(([id, { where, mentions }]) => {
		const subject = `channel ${id}`;
		const channel = channels.find((c) => c.id === id);
		if (!channel)
			return [
				subject,
				"broken",
				`not a channel of this server (${where.join(", ")})`,
				"right-click the channel > Copy Channel ID (Developer Mode on)",
			];
		const named = `channel #${channel.name}`;
		const granted = channelPermissions(guildId, botId, memberRoles, roles, channel.permission_overwrites ?? []);
		const missing = CHANNEL_PERMISSIONS.filter(([bit]) => !(granted & bit)).map(([, name]) => name);
		// A role that is not mentionable pings only with Mention Everyone.
		const silent = mentions.filter((roleId) => roles.find((r) => r.id === roleId)?.mentionable === false);
		if (silent.length > 0 && !(granted & PermissionFlagsBits.MentionEveryone))
			missing.push(`Mention Everyone (to ping ${silent.map((r) => `role ${r}`).join(", ")}, or make it mentionable)`);
		if (missing.length === 0) return [named, "ok", `the bot may post there (${where.join(", ")})`];
		return [
			named,
			"broken",
			`the bot lacks ${missing.join(", ")} (${where.join(", ")})`,
			`Edit Channel > Permissions: allow these for the opsbot role, or for @everyone`,
		];
	});
}

async function commandFinding(rest: REST, applicationId: string, guildId: string): Promise<Finding> {
	const subject = "slash commands";
	try {
		const [inGuild, global] = (await Promise.all([
			rest.get(Routes.applicationGuildCommands(applicationId, guildId)),
			rest.get(Routes.applicationCommands(applicationId)),
		])) as [RESTPostAPIChatInputApplicationCommandsJSONBody[], RESTPostAPIChatInputApplicationCommandsJSONBody[]];
		const registered = inGuild.length > 0 ? inGuild : global;
		const scope = inGuild.length > 0 ? `in server ${guildId}` : "globally";
		const deploy = `node deploy-commands.ts${inGuild.length > 0 || global.length === 0 ? ` --guild ${guildId}` : ""}`;
		if (registered.length === 0)
			return {
				area: "discord",
				subject,
				state: "broken",
				detail: "none registered, so Discord offers no command",
				fix: deploy,
			};
		const diff = diffCommands(registered, commandBodies());
		const stale = [
			...diff.added.map((n) => `/${n} missing`),
			...diff.changed.map((n) => `/${n} changed`),
			...diff.removed.map((n) => `/${n} no longer exists`),
		];
		if (stale.length === 0)
			return {
				area: "discord",
				subject,
				state: "ok",
				detail: `${diff.unchanged.length} registered ${scope}, as the code has them`,
			};
		return {
			area: "discord",
			subject,
			state: "degraded",
			detail: `registered ${scope} differ from the code: ${stale.join(", ")}`,
			fix: `${deploy} (--dry-run first shows the change)`,
		};
	} catch (err) {
		return { area: "discord", subject, state: "broken", detail: discordFailure(err) };
	}
}

async function checkSsh(
	environment: string,
	env: EnvironmentConfig,
	read: NonNullable<DoctorDeps["readHostKey"]>,
): Promise<{ finding: Finding; seen?: SeenHostKey }> {
	const ssh = env.ssh;
	if (!ssh)
		return {
			finding: {
				area: "ssh",
				subject: `${environment} · ssh`,
				state: "off",
				detail: "no SSH host (Restart and docker logs are off)",
			},
		};
	const subject = `${environment} · ssh ${ssh.host}:${ssh.port}`;
	let blob: Buffer;
	try {
		blob = await read(ssh.host, ssh.port, ssh.timeoutMs);
	} catch (err) {
		return {
			finding: {
				area: "ssh",
				subject,
				state: "broken",
				detail: `no answer: ${err instanceof Error ? err.message : String(err)}`,
				fix: "check ssh.host and ssh.port, and that sshd runs there",
			},
		};
	}
	const type = blob.subarray(4, 4 + blob.readUInt32BE(0)).toString("latin1");
	const seen: SeenHostKey = {
		environment,
		host: ssh.host,
		fingerprint: `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`,
		configLine: `hostKey: ${type} ${blob.toString("base64")}`,
	};
	const check =
		`compare it with the host's own (ssh-keygen -lf ` +
		`/etc/ssh/ssh_host_${type.replace(/^ssh-|-.*$/g, "")}_key.pub there), then pin it: the hostKey line below`;
	if (!ssh.hostKey)
		return {
			finding: {
				area: "ssh",
				subject,
				state: "broken",
				detail: `answers, but no host key is pinned, so opsbot will not connect; it presents ${type} ${seen.fingerprint}`,
				fix: check,
			},
			seen,
		};
	const pinned = Buffer.from(ssh.hostKey.split(" ")[1] ?? "", "base64");
	if (!pinned.equals(blob))
		return {
			finding: {
				area: "ssh",
				subject,
				state: "broken",
				detail: `presents ${type} ${seen.fingerprint}, not the pinned key: opsbot refuses to connect`,
				fix: `if the host was rebuilt, ${check}`,
			},
			seen,
		};
	return {
		finding: { area: "ssh", subject, state: "ok", detail: `answers with the pinned key (${seen.fingerprint})` },
	};
}

/** The host's public key blob from the key exchange; doctor refuses it there, so it never logs in. */
function readHostKey(host: string, port: number, timeoutMs: number): Promise<Buffer> {
	return new Promise((resolve, reject) => {
		const conn = new Client();
		let key: Buffer | undefined;
		const done = (err?: Error) => {
			clearTimeout(timer);
			conn.end();
			if (key) resolve(key);
			else reject(err ?? new Error("the host sent no key"));
		};
		const timer = setTimeout(() => done(new Error(`no SSH answer within ${timeoutMs} ms`)), timeoutMs);
		conn.on("error", (err: Error & { code?: string }) =>
			done(new Error(err.code === "ECONNREFUSED" ? "connection refused" : err.message)),
		);
		conn.on("close", () => done());
		conn.connect({
			host,
			port,
			username: "opsbot-doctor",
			readyTimeout: timeoutMs,
			hostVerifier: (blob: Buffer) => {
				key = Buffer.from(blob);
				return false;
			},
		});
	});
}

/** Whether the bot's webhook answers here, and the receiver AlertManager needs. */
async function checkAlerts(config: Config): Promise<{ findings: Finding[]; snippet?: string }> {
	const alerts = config.ops.alerts;
	if (!alerts)
		return {
			findings: [
				{
					area: "alertmanager",
					subject: "alerts",
					state: "off",
					detail: "no `alerts` section: opsbot relays no AlertManager webhook",
					fix: 'README, "AlertManager"',
				},
			],
		};
	const findings: Finding[] = [];
	const { WEBHOOK_TOKEN: token, WEBHOOK_BASIC_AUTH: basic } = config.env;
	if (!token && !basic)
		findings.push({
			area: "alertmanager",
			subject: "WEBHOOK_TOKEN",
			state: "broken",
			detail: "not set: the bot will not start with `alerts` configured",
			fix: "put 16+ random characters in .env as WEBHOOK_TOKEN (npx opsbot init writes one)",
		});
	const local = ["0.0.0.0", "::", ""].includes(alerts.listen.host) ? "127.0.0.1" : alerts.listen.host;
	const here = `http://${local.includes(":") ? `[${local}]` : local}:${alerts.listen.port}`;
	try {
		const res = await fetch(`${here}/healthz`, { signal: AbortSignal.timeout(10_000) });
		findings.push(
			res.ok
				? {
						area: "alertmanager",
						subject: "webhook",
						state: "ok",
						detail: `${here}/alerts answers (the bot is running)`,
					}
				: {
						area: "alertmanager",
						subject: "webhook",
						state: "degraded",
						detail: `${here}/healthz answered ${res.status}`,
					},
		);
	} catch {
		findings.push({
			area: "alertmanager",
			subject: "webhook",
			state: "degraded",
			detail: `nothing answers at ${here}: the bot is not running here (or listens elsewhere)`,
			fix: "npm start",
		});
	}
	const address = ["0.0.0.0", "::", ""].includes(alerts.listen.host) ? hostname() : alerts.listen.host;
	const auth = basic
		? `          basic_auth:\n            username: ${basic.split(":")[0]}\n` +
			`            # holds the password part of WEBHOOK_BASIC_AUTH\n` +
			`            password_file: /etc/alertmanager/opsbot-password`
		: "          authorization:\n            type: Bearer\n            # holds the value of WEBHOOK_TOKEN\n" +
			"            credentials_file: /etc/alertmanager/opsbot-token";
	const snippet = `receivers:
  - name: opsbot
    webhook_configs:
      - url: http://${address}:${alerts.listen.port}/alerts
        send_resolved: true
        max_alerts: 0
        http_config:
${auth}`;
	return { findings, snippet };
}
