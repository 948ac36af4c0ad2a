import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import { callbackProblems, commandProblems, invalidFormBody, messageProblems } from "./limits.ts";
import { invalidFormBodyOf, type SpecViolation, specViolations, warmDiscordSpec } from "./spec.ts";
import { specViolationError, trackDouble } from "./violations.ts";

/**
 * A local Discord API double: REST under /api/v10 and a gateway over WebSocket, good enough for
 * the real discord.js client to log in, receive interactions and post/edit messages
 * (docs/PROTOCOLS.md §5). It records every request and holds it to Discord's OpenAPI spec and
 * documented limits (spec.ts): a request Discord would refuse gets Discord's 400 and is kept in
 * `violations`, which fails the test (test/support/spec-guard.ts, and close()).
 */

type Json = Record<string, unknown>;

/** One REST request as the double saw it. */
export interface RecordedRequest {
	readonly method: string;
	/** Path without the /api/v10 prefix, e.g. "/channels/1/messages". */
	readonly path: string;
	readonly headers: Record<string, string | string[] | undefined>;
	readonly body: Json | Json[] | undefined;
	readonly files: readonly RecordedFile[];
	status: number;
	readonly at: number;
}

/** An uploaded attachment. */
export interface RecordedFile {
	/** The multipart field it came in, e.g. "files[0]". */
	readonly field: string;
	readonly name: string;
	readonly size: number;
	readonly contentType: string;
	readonly data: Buffer;
}

/** A message as it currently stands, with how often it was edited. */
export interface StoredMessage {
	id: string;
	channel_id: string;
	content: string;
	embeds: Json[];
	components: Json[];
	attachments: Json[];
	flags: number;
	edits: number;
	files: RecordedFile[];
	/** The interaction this message answers, if any. */
	interactionId?: string;
	raw: Json;
}

/** What a test asks the double to deliver over the gateway. */
export type InteractionInput = (
	| { kind: "command"; name: string; options?: Json[]; user?: UserInput; channelId?: string }
	| { kind: "autocomplete"; name: string; options: Json[]; user?: UserInput; channelId?: string }
	| { kind: "button"; customId: string; messageId: string; user?: UserInput }
	| { kind: "select"; customId: string; values: string[]; messageId: string; user?: UserInput }
	| {
			kind: "modal";
			customId: string;
			fields: Record<string, string>;
			messageId?: string;
			user?: UserInput;
			channelId?: string;
	  }
) & {
	/**
	 * Where it is sent from: another guild's id, or null for a DM (user, no member, context 1). Default: the double's
	 * guild.
	 */
	guildId?: string | null;
};

/** Who presses: user id, name and the role ids they hold. */
export interface UserInput {
	readonly id?: string;
	readonly username?: string;
	readonly roles?: readonly string[];
}

/** The callback an interaction received. */
export interface InteractionResponse {
	readonly type: number;
	readonly data?: Json;
	readonly at: number;
}

/** A dispatched interaction. */
export interface SentInteraction {
	readonly id: string;
	readonly token: string;
	readonly sentAt: number;
	/** Resolves with the first callback (or rejects after `timeoutMs`). */
	response(timeoutMs?: number): Promise<InteractionResponse>;
}

/** Fault injection: answer the next `count` matching requests with `status`. */
export interface FaultRule {
	readonly method?: string;
	readonly pathPrefix?: string;
	/** 413 answers as Discord does for an upload over the limit (code 40005); 403 as Missing Permissions (50013). */
	readonly status: 403 | 413 | 429 | 500 | 502 | 503;
	/** Only requests that upload files match (to refuse an attachment and not the text). */
	readonly withFiles?: boolean;
	readonly retryAfterSeconds?: number;
	readonly global?: boolean;
	readonly count?: number;
}

/** Options for startDiscordDouble. */
export interface DoubleOptions {
	readonly applicationId?: string;
	readonly guild?: {
		id?: string;
		name?: string;
		channels?: { id: string; name: string; permission_overwrites?: PermissionOverwrite[] }[];
		/** `permissions` is Discord's decimal bitfield string (default "0"); `mentionable` defaults to true. */
		roles?: { id: string; name: string; permissions?: string; mentionable?: boolean }[];
		/** Permissions of @everyone (default "0"). */
		everyonePermissions?: string;
		/**
		 * Permissions of the bot's own managed role, the one Discord creates from the invite URL. Default:
		 * everything opsbot asks for in the README's invite (View, Send, Embed Links, Attach Files, Read
		 * History, Mention Everyone, Create Public Threads, Send in Threads).
		 */
		botPermissions?: string;
	};
	/** The only token the REST API accepts (as `Bot <token>`); any other gets 401. Default: every token is accepted. */
	readonly token?: string;
	/** The bot is not a member of the guild: guild routes answer 403 Missing Access, as Discord does. */
	readonly botNotInGuild?: boolean;
	/** How long an interaction may go unanswered before its callback gets 10062 (Discord: 3 s). */
	readonly interactionDeadlineMs?: number;
	/**
	 * Per-channel rate limit on message writes (POST, PATCH and DELETE under /channels/{id}/messages),
	 * as Discord's per-route buckets do it: `count` requests per window that starts with the first one,
	 * X-RateLimit-* headers on every answer, and 429 with retry_after once the bucket is empty.
	 * Posts and edits share one bucket here (stricter than Discord, whose numbers for edits are
	 * unconfirmed). Off by default: then every answer says 49 of 50 remain.
	 */
	readonly channelRateLimit?: { readonly count: number; readonly windowMs: number };
}

/** A channel's permission overwrite (type 0 role, 1 member), allow and deny as decimal bitfield strings. */
export interface PermissionOverwrite {
	readonly id: string;
	readonly type: 0 | 1;
	readonly allow: string;
	readonly deny: string;
}

/** View, Send, Embed Links, Attach Files, Read History, Mention Everyone, Create Public Threads, Send in Threads. */
export const OPSBOT_INVITE_PERMISSIONS = (
	(1n << 10n) |
	(1n << 11n) |
	(1n << 14n) |
	(1n << 15n) |
	(1n << 16n) |
	(1n << 17n) |
	(1n << 35n) |
	(1n << 38n)
).toString();

/** The running double. */
export interface DiscordDouble {
	readonly apiUrl: string;
	readonly applicationId: string;
	readonly guildId: string;
	readonly channelIds: readonly string[];
	readonly requests: RecordedRequest[];
	/** Requests Discord would refuse (spec or documented limit), not yet taken by takeViolations(). */
	readonly violations: readonly SpecViolation[];
	/** Returns and forgets the violations so far: for a test that sends a bad request on purpose. */
	takeViolations(): SpecViolation[];
	readonly messages: Map<string, StoredMessage>;
	readonly commands: { global: Json[]; guild: Map<string, Json[]> };
	/** Number of gateway clients that completed Identify. */
	identified(): number;
	sendInteraction(input: InteractionInput): Promise<SentInteraction>;
	interactionResponse(interactionId: string): InteractionResponse | undefined;
	originalMessage(interactionId: string): StoredMessage | undefined;
	channelMessages(channelId: string): StoredMessage[];
	/** Whether the thread (a channel) was archived by PATCH /channels/{id}. */
	archived(threadId: string): boolean;
	/** Gateway (WebSocket) sessions open right now: one per bot process holding the gateway. */
	gatewaySessions(): number;
	failNext(rule: FaultRule): void;
	/**
	 * Holds the next matching request before handling it, until `release()`: a Discord slow to answer
	 * while the test changes the world (e.g. fills the bot's disk). `held` resolves once one is held.
	 */
	holdNext(rule: { method?: string; pathPrefix?: string }): { held: Promise<void>; release(): void };
	/** Drops every fault rule not used up yet. */
	clearFaults(): void;
	waitFor<T>(
		probe: () => T | undefined | false | null | Promise<T | undefined | false | null>,
		timeoutMs?: number,
	): Promise<T>;
	/** Stops the double; rejects, after stopping, if violations were left untaken. */
	close(): Promise<void>;
}

let sequence = BigInt(Date.now() - 1_420_070_400_000) << 22n;
/** A fresh snowflake-shaped id. */
export function snowflake(): string {
	sequence += 1n;
	return sequence.toString();
}

const COMMAND_OPTION_TYPES = { command: 2, autocomplete: 4 } as const;

/** Starts the double on a random port on 127.0.0.1. */
export async function startDiscordDouble(options: DoubleOptions = {}): Promise<DiscordDouble> {
	// Validation compiles an operation's schemas on first use; do it now rather than inside a test's timing.
	warmDiscordSpec();
	const applicationId = options.applicationId ?? snowflake();
	const guildId = options.guild?.id ?? snowflake();
	const channels = options.guild?.channels ?? [{ id: snowflake(), name: "ops" }];
	/** Threads archived by PATCH /channels/{id} (archived: true). */
	const archivedThreads = new Set<string>();
	const roles = options.guild?.roles ?? [];
	const botRoleId = snowflake();
	const deadlineMs = options.interactionDeadlineMs ?? 3_000;
	const botUser = {
		id: applicationId,
		username: "opsbot",
		discriminator: "0",
		global_name: null,
		avatar: null,
		bot: true,
	};

	const requests: RecordedRequest[] = [];
	const violations: SpecViolation[] = [];
	const messages = new Map<string, StoredMessage>();
	const commands = { global: [] as Json[], guild: new Map<string, Json[]>() };
	const faults: (FaultRule & { remaining: number })[] = [];
	const holds: {
		method?: string;
		pathPrefix?: string;
		hold: (released: Promise<void>) => void;
		released: Promise<void>;
	}[] = [];
	const interactions = new Map<
		string,
		{
			token: string;
			sentAt: number;
			messageId?: string;
			response?: InteractionResponse;
			waiters: ((r: InteractionResponse) => void)[];
			channelId: string;
		}
	>();
	const byToken = new Map<string, string>();
	const nonces = new Map<string, string>();
	const buckets = new Map<string, { resetAt: number; remaining: number }>();
	const sockets = new Set<WebSocket>();
	let identifiedCount = 0;
	let seq = 0;

	const server = createServer((req, res) => void handle(req, res));
	const wss = new WebSocketServer({ noServer: true });
	server.on("upgrade", (req, socket, head) => {
		if (!req.url?.startsWith("/gw")) return socket.destroy();
		wss.handleUpgrade(req, socket, head, (ws) => gateway(ws));
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const port = (server.address() as AddressInfo).port;
	const base = `http://127.0.0.1:${port}`;

	function send(ws: WebSocket, op: number, d: unknown, t?: string): void {
		if (ws.readyState !== ws.OPEN) return;
		ws.send(JSON.stringify(op === 0 ? { op, d, s: ++seq, t } : { op, d, s: null, t: null }));
	}

	function guildPayload(): Json {
		return {
			id: guildId,
			name: options.guild?.name ?? "ops-test",
			icon: null,
			owner_id: snowflake(),
			unavailable: false,
			member_count: 3,
			large: false,
			features: [],
			channels: channelObjects(),
			roles: roleObjects(),
			members: [],
			presences: [],
			voice_states: [],
			threads: [],
			stage_instances: [],
			guild_scheduled_events: [],
			emojis: [],
			stickers: [],
			joined_at: new Date().toISOString(),
			preferred_locale: "en-US",
			premium_tier: 0,
			system_channel_flags: 0,
			verification_level: 0,
			default_message_notifications: 0,
			explicit_content_filter: 0,
			mfa_level: 0,
			nsfw_level: 0,
		};
	}

	function channelObjects(): Json[] {
		return channels.map((c, i) => ({
			id: c.id,
			name: c.name,
			type: 0,
			guild_id: guildId,
			position: i,
			permission_overwrites: "permission_overwrites" in c ? (c.permission_overwrites ?? []) : [],
			parent_id: null,
			nsfw: false,
		}));
	}

	function roleObjects(): Json[] {
		const everyone = {
			id: guildId,
			name: "@everyone",
			permissions: options.guild?.everyonePermissions ?? "0",
			position: 0,
			color: 0,
			hoist: false,
			managed: false,
			mentionable: false,
		};
		const own = roles.map((r, i) => ({
			id: r.id,
			name: r.name,
			permissions: r.permissions ?? "0",
			position: i + 1,
			color: 0,
			hoist: false,
			managed: false,
			mentionable: r.mentionable ?? true,
		}));
		const bot = {
			id: botRoleId,
			name: "opsbot",
			permissions: options.guild?.botPermissions ?? OPSBOT_INVITE_PERMISSIONS,
			position: roles.length + 1,
			color: 0,
			hoist: false,
			managed: true,
			mentionable: false,
			tags: { bot_id: applicationId },
		};
		return [everyone, ...own, bot];
	}

	function gateway(ws: WebSocket): void {
		sockets.add(ws);
		ws.on("close", () => sockets.delete(ws));
		send(ws, 10, { heartbeat_interval: 41_250 });
		ws.on("message", (raw) => {
			let packet: { op: number; d: unknown };
			try {
				packet = JSON.parse(String(raw)) as { op: number; d: unknown };
			} catch {
				ws.close(4002, "Decode error");
				return;
			}
			if (packet.op === 1) send(ws, 11, null);
			else if (packet.op === 2) {
				identifiedCount++;
				send(
					ws,
					0,
					{
						v: 10,
						user: botUser,
						guilds: [{ id: guildId, unavailable: true }],
						session_id: randomBytes(8).toString("hex"),
						resume_gateway_url: `ws://127.0.0.1:${port}/gw`,
						shard: [0, 1],
						application: { id: applicationId, flags: 0 },
					},
					"READY",
				);
				setTimeout(() => send(ws, 0, guildPayload(), "GUILD_CREATE"), 5);
			} else if (packet.op === 6) send(ws, 9, false); // no resumable sessions: client re-identifies
		});
	}

	function messageObject(stored: Omit<StoredMessage, "raw">): Json {
		return {
			id: stored.id,
			channel_id: stored.channel_id,
			guild_id: guildId,
			author: botUser,
			content: stored.content,
			embeds: stored.embeds,
			components: stored.components,
			attachments: stored.attachments,
			flags: stored.flags,
			timestamp: new Date().toISOString(),
			edited_timestamp: stored.edits > 0 ? new Date().toISOString() : null,
			tts: false,
			mention_everyone: false,
			mentions: [],
			mention_roles: [],
			pinned: false,
			type: 0,
			application_id: applicationId,
			...(stored.interactionId ? { webhook_id: applicationId } : {}),
		};
	}

	/**
	 * Attachments for uploaded files: `attachments[]` entries refer to files[n] by index `n`; each gets an id of its own.
	 */
	function attachmentsFrom(files: readonly RecordedFile[], body: Json): Json[] {
		const described = (i: number) =>
			arr(body.attachments).find((a) => String((a as Json).id) === String(i)) as Json | undefined;
		return files.map((f, i) => ({
			id: snowflake(),
			filename: f.name,
			size: f.size,
			url: `${base}/attachments/${f.name}`,
			proxy_url: `${base}/attachments/${f.name}`,
			content_type: f.contentType,
			description: str(described(i)?.description),
		}));
	}

	function createMessage(
		channelId: string,
		body: Json,
		files: readonly RecordedFile[],
		interactionId?: string,
	): StoredMessage {
		const partial = {
			id: snowflake(),
			channel_id: channelId,
			content: str(body.content),
			embeds: arr(body.embeds),
			components: arr(body.components),
			attachments: attachmentsFrom(files, body),
			flags: typeof body.flags === "number" ? body.flags : 0,
			edits: 0,
			files: [...files],
			...(interactionId ? { interactionId } : {}),
		};
		const stored: StoredMessage = { ...partial, raw: messageObject(partial) };
		messages.set(stored.id, stored);
		return stored;
	}

	function editMessage(stored: StoredMessage, body: Json, files: readonly RecordedFile[]): StoredMessage {
		if ("content" in body) stored.content = str(body.content);
		if ("embeds" in body) stored.embeds = arr(body.embeds);
		if ("components" in body) stored.components = arr(body.components);
		// Discord: `attachments` lists what the message keeps, its existing attachments by id and new
		// files by index; one not listed is removed. Without the field, new files are added to the old ones.
		if ("attachments" in body) {
			const keptIds = new Set(arr(body.attachments).map((a) => String((a as Json).id)));
			const kept = stored.attachments
				.map((a, i) => ({ attachment: a, file: stored.files[i]! }))
				.filter((k) => keptIds.has(String(k.attachment.id)));
			stored.files = [...kept.map((k) => k.file), ...files];
			stored.attachments = [...kept.map((k) => k.attachment), ...attachmentsFrom(files, body)];
		} else if (files.length > 0) {
			stored.files = [...stored.files, ...files];
			stored.attachments = [...stored.attachments, ...attachmentsFrom(files, body)];
		}
		stored.edits++;
		stored.raw = messageObject(stored);
		return stored;
	}

	async function readBody(
		req: IncomingMessage,
	): Promise<{ body: Json | Json[] | undefined; files: RecordedFile[]; kind: "json" | "multipart" | "none" }> {
		const chunks: Buffer[] = [];
		for await (const chunk of req) chunks.push(chunk as Buffer);
		const raw = Buffer.concat(chunks);
		if (raw.length === 0) return { body: undefined, files: [], kind: "none" };
		const type = req.headers["content-type"] ?? "";
		if (type.startsWith("multipart/form-data")) {
			const form = await new Request("http://double.local/", {
				method: "POST",
				headers: { "content-type": type },
				body: raw,
			}).formData();
			const files: RecordedFile[] = [];
			let body: Json = {};
			for (const [key, value] of form.entries()) {
				if (key === "payload_json") body = JSON.parse(String(value)) as Json;
				else if (typeof value !== "string")
					files.push({
						field: key,
						name: value.name,
						size: value.size,
						contentType: value.type,
						data: Buffer.from(await value.arrayBuffer()),
					});
			}
			return { body, files, kind: "multipart" };
		}
		return { body: JSON.parse(raw.toString("utf8")) as Json, files: [], kind: "json" };
	}

	function reply(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): number {
		const defaults: Record<string, string> = {
			"x-ratelimit-limit": "50",
			"x-ratelimit-remaining": "49",
			"x-ratelimit-reset": String(Date.now() / 1000 + 1),
			"x-ratelimit-reset-after": "1",
			"x-ratelimit-bucket": "double",
		};
		// A channel bucket's headers, set on the response before routing, win over the defaults.
		const common = {
			...Object.fromEntries(Object.entries(defaults).filter(([name]) => !res.hasHeader(name))),
			...headers,
		};
		if (body === undefined) {
			res.writeHead(status, common).end();
		} else {
			res.writeHead(status, { "content-type": "application/json", ...common }).end(JSON.stringify(body));
		}
		return status;
	}

	function injectedFault(method: string, path: string, files: number): (FaultRule & { remaining: number }) | undefined {
		const rule = faults.find(
			(f) =>
				f.remaining > 0 &&
				(!f.method || f.method === method) &&
				(!f.pathPrefix || path.startsWith(f.pathPrefix)) &&
				(!f.withFiles || files > 0),
		);
		if (rule) rule.remaining--;
		return rule;
	}

	async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
		const arrivedAt = Date.now();
		const url = new URL(req.url ?? "/", base);
		const method = req.method ?? "GET";
		const path = decodeURIComponent(url.pathname).replace(/^\/api\/v10/, "");
		let parsed: Awaited<ReturnType<typeof readBody>>;
		try {
			parsed = await readBody(req);
		} catch {
			reply(res, 400, { code: 50109, message: "The request body contains invalid JSON." });
			return;
		}
		const holdAt = holds.findIndex(
			(h) => (!h.method || h.method === method) && (!h.pathPrefix || path.startsWith(h.pathPrefix)),
		);
		if (holdAt >= 0) {
			const [hold] = holds.splice(holdAt, 1);
			hold!.hold(hold!.released);
			await hold!.released;
		}
		const record: RecordedRequest = {
			method,
			path,
			headers: req.headers,
			body: parsed.body,
			files: parsed.files,
			status: 0,
			at: arrivedAt,
		};
		requests.push(record);
		const broken = specViolations({
			method,
			path,
			query: url.searchParams,
			kind: parsed.kind,
			body: parsed.body,
			fileFields: parsed.files.map((f) => f.field),
		});
		if (broken.length > 0) {
			violations.push(...broken);
			const unrouted = broken.find((v) => v.rule === "route" || v.rule === "method");
			if (unrouted?.rule === "route") record.status = reply(res, 404, { code: 0, message: "404: Not Found" });
			else if (unrouted) record.status = reply(res, 405, { code: 0, message: "405: Method Not Allowed" });
			else record.status = reply(res, 400, invalidFormBodyOf(broken));
			return;
		}
		const fault = injectedFault(method, path, parsed.files.length);
		if (fault) {
			if (fault.status === 429) {
				const after = fault.retryAfterSeconds ?? 0.2;
				record.status = reply(
					res,
					429,
					{ message: "You are being rate limited.", retry_after: after, global: fault.global ?? false },
					{
						"retry-after": String(Math.ceil(after)),
						"x-ratelimit-remaining": "0",
						"x-ratelimit-reset-after": String(after),
						"x-ratelimit-scope": fault.global ? "global" : "user",
						...(fault.global ? { "x-ratelimit-global": "true" } : {}),
					},
				);
			} else if (fault.status === 403) record.status = reply(res, 403, { message: "Missing Permissions", code: 50013 });
			else if (fault.status === 413)
				record.status = reply(res, 413, { message: "Request entity too large", code: 40005 });
			else record.status = reply(res, fault.status, { message: "Server error", code: 0 });
			return;
		}
		// Limits and deadlines count from when the request arrived, not from after the double's own
		// validation (compiling an operation's schemas the first time takes about a second).
		if (channelLimited(method, path, res, record.at)) {
			record.status = 429;
			return;
		}
		record.status = route(method, path, url, parsed.body, parsed.files, res, record.at, req);
	}

	/**
	 * Applies `channelRateLimit` to a message write: sets the bucket's headers on `res`, or answers 429
	 * (true) when the channel's bucket is empty until its window resets.
	 */
	function channelLimited(method: string, path: string, res: ServerResponse, now: number): boolean {
		const limit = options.channelRateLimit;
		const channel = /^\/channels\/(\d+)\/messages(?:\/\d+)?$/.exec(path)?.[1];
		if (!limit || !channel || !["POST", "PATCH", "DELETE"].includes(method)) return false;
		let bucket = buckets.get(channel);
		if (!bucket || now >= bucket.resetAt) {
			bucket = { resetAt: now + limit.windowMs, remaining: limit.count };
			buckets.set(channel, bucket);
		}
		const resetAfter = (bucket.resetAt - now) / 1_000;
		const headers = {
			"x-ratelimit-limit": String(limit.count),
			"x-ratelimit-reset": String(bucket.resetAt / 1_000),
			"x-ratelimit-reset-after": resetAfter.toFixed(3),
			"x-ratelimit-bucket": "channel-messages",
		};
		if (bucket.remaining === 0) {
			reply(
				res,
				429,
				{ message: "You are being rate limited.", retry_after: Number(resetAfter.toFixed(3)), global: false },
				{
					...headers,
					"x-ratelimit-remaining": "0",
					"retry-after": String(Math.ceil(resetAfter)),
					"x-ratelimit-scope": "user",
				},
			);
			return true;
		}
		bucket.remaining--;
		for (const [name, value] of Object.entries({ ...headers, "x-ratelimit-remaining": String(bucket.remaining) }))
			res.setHeader(name, value);
		return false;
	}

	/** GET, DELETE or PATCH of an existing message, the same for channel messages and interaction webhooks. */
	function onMessage(
		method: string,
		stored: StoredMessage,
		json: Json,
		files: RecordedFile[],
		res: ServerResponse,
	): number {
		if (method === "GET") return reply(res, 200, stored.raw);
		if (method === "DELETE") {
			messages.delete(stored.id);
			return reply(res, 204);
		}
		if (method === "PATCH") {
			const problems = messageProblems({ ...stored, ...json });
			if (problems.length > 0) return reply(res, 400, invalidFormBody(problems));
			return reply(res, 200, editMessage(stored, json, files).raw);
		}
		return reply(res, 405, { code: 0, message: "405: Method Not Allowed" });
	}

	function route(
		method: string,
		path: string,
		url: URL,
		body: Json | Json[] | undefined,
		files: RecordedFile[],
		res: ServerResponse,
		arrivedAt: number,
		req: IncomingMessage,
	): number {
		const json = (Array.isArray(body) ? {} : (body ?? {})) as Json;
		const notFound = (code = 10_003, message = "Unknown Channel") => reply(res, 404, { code, message });
		let m: RegExpExecArray | null;
		if (method === "GET" && (path === "/gateway/bot" || path === "/gateway")) {
			return reply(res, 200, {
				url: `ws://127.0.0.1:${port}/gw`,
				shards: 1,
				session_start_limit: { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: 1 },
			});
		}
		if (
			options.token !== undefined &&
			!path.startsWith("/interactions/") &&
			!path.startsWith("/webhooks/") &&
			path !== "/gateway" &&
			req.headers.authorization !== `Bot ${options.token}`
		) {
			return reply(res, 401, { code: 0, message: "401: Unauthorized" });
		}
		if (method === "GET" && path === "/users/@me") return reply(res, 200, botUser);
		if ((m = /^\/guilds\/(\d+)(?:\/(channels|roles|members\/(\d+)))?$/.exec(path)) && method === "GET") {
			if (m[1] !== guildId || options.botNotInGuild)
				return reply(
					res,
					m[1] === guildId ? 403 : 404,
					m[1] === guildId ? { code: 50_001, message: "Missing Access" } : { code: 10_004, message: "Unknown Guild" },
				);
			if (m[2] === "channels") return reply(res, 200, channelObjects());
			if (m[2] === "roles") return reply(res, 200, roleObjects());
			if (m[3] !== undefined) {
				if (m[3] !== applicationId) return notFound(10_007, "Unknown Member");
				return reply(res, 200, {
					user: botUser,
					roles: [botRoleId],
					joined_at: new Date().toISOString(),
					deaf: false,
					mute: false,
					flags: 0,
					nick: null,
					avatar: null,
					pending: false,
				});
			}
			const {
				channels: _c,
				members: _m,
				presences: _p,
				voice_states: _v,
				threads: _t,
				stage_instances: _s,
				guild_scheduled_events: _e,
				...guild
			} = guildPayload();
			return reply(res, 200, guild);
		}
		if (method === "GET" && path === "/applications/@me")
			return reply(res, 200, { id: applicationId, name: "opsbot", flags: 0, bot: botUser });

		if ((m = /^\/interactions\/(\d+)\/([^/]+)\/callback$/.exec(path)) && method === "POST") {
			const interaction = interactions.get(m[1] ?? "");
			if (!interaction || interaction.token !== m[2]) return notFound(10_062, "Unknown interaction");
			if (interaction.response)
				return reply(res, 400, { code: 40_060, message: "Interaction has already been acknowledged." });
			if (arrivedAt - interaction.sentAt > deadlineMs) return notFound(10_062, "Unknown interaction");
			const type = Number(json.type);
			const data = json.data as Json | undefined;
			const problems = callbackProblems(type, data);
			if (problems.length > 0) return reply(res, 400, invalidFormBody(problems));
			const response: InteractionResponse = { type, ...(data ? { data } : {}), at: Date.now() };
			interaction.response = response;
			let message: StoredMessage | undefined;
			if (type === 4 || type === 5) {
				message = createMessage(
					interaction.channelId,
					type === 4 ? (data ?? {}) : { flags: (Number(data?.flags ?? 0) & 64) | 128 },
					files,
					m[1],
				);
				interaction.messageId = message.id;
			} else if (type === 7 && interaction.messageId) {
				const existing = messages.get(interaction.messageId);
				if (existing) message = editMessage(existing, data ?? {}, files);
			}
			for (const waiter of interaction.waiters.splice(0)) waiter(response);
			if (url.searchParams.get("with_response") === "true") {
				return reply(res, 200, {
					interaction: { id: m[1], type: 2 },
					resource: { type, ...(message ? { message: message.raw } : {}) },
				});
			}
			return reply(res, 204);
		}

		if ((m = /^\/webhooks\/(\d+)\/([^/]+)(?:\/messages\/(@original|\d+))?$/.exec(path))) {
			const interactionId = byToken.get(m[2] ?? "");
			const interaction = interactionId ? interactions.get(interactionId) : undefined;
			if (m[1] !== applicationId || !interaction) return notFound(10_015, "Unknown Webhook");
			const target = m[3] === "@original" ? interaction.messageId : m[3];
			if (method === "POST" && !m[3]) {
				const problems = messageProblems(json);
				if (problems.length > 0) return reply(res, 400, invalidFormBody(problems));
				return reply(res, 200, createMessage(interaction.channelId, json, files, interactionId).raw);
			}
			const stored = target ? messages.get(target) : undefined;
			if (!stored) return notFound(10_008, "Unknown Message");
			return onMessage(method, stored, json, files, res);
		}

		if ((m = /^\/channels\/(\d+)\/messages(?:\/(\d+))?$/.exec(path))) {
			const channelId = m[1] ?? "";
			if (!channels.some((c) => c.id === channelId)) return notFound();
			if (method === "POST" && !m[2]) {
				const problems = messageProblems(json);
				if (problems.length > 0) return reply(res, 400, invalidFormBody(problems));
				// enforce_nonce: the same nonce in the same channel returns the message already created.
				const nonceKey =
					json.enforce_nonce === true && json.nonce !== undefined ? `${channelId}:${String(json.nonce)}` : undefined;
				const earlier = nonceKey ? messages.get(nonces.get(nonceKey) ?? "") : undefined;
				if (earlier) return reply(res, 200, earlier.raw);
				// A reply to a message that is not there: Discord refuses it unless fail_if_not_exists is false.
				const reference = json.message_reference as Json | undefined;
				if (reference && reference.fail_if_not_exists !== false && !messages.has(str(reference.message_id)))
					return reply(res, 400, {
						code: 50_035,
						message: "Invalid Form Body",
						errors: {
							message_reference: { _errors: [{ code: "REPLIES_UNKNOWN_MESSAGE", message: "Unknown message" }] },
						},
					});
				const created = createMessage(channelId, json, files);
				if (nonceKey) nonces.set(nonceKey, created.id);
				return reply(res, 200, created.raw);
			}
			if (method === "GET" && !m[2])
				return reply(
					res,
					200,
					[...messages.values()]
						.filter((x) => x.channel_id === channelId)
						.reverse()
						.map((x) => x.raw),
				);
			const stored = m[2] ? messages.get(m[2]) : undefined;
			if (!stored || stored.channel_id !== channelId) return notFound(10_008, "Unknown Message");
			return onMessage(method, stored, json, files, res);
		}

		if ((m = /^\/channels\/(\d+)\/messages\/(\d+)\/threads$/.exec(path)) && method === "POST") {
			if (!messages.has(m[2] ?? "")) return notFound(10_008, "Unknown Message");
			// A thread started from a message has the message's id; a message starts one thread at most.
			if (channels.some((c) => c.id === m?.[2]))
				return reply(res, 400, { code: 160_004, message: "A thread has already been created for this message" });
			const thread = {
				id: m[2] ?? "",
				type: 11,
				guild_id: guildId,
				parent_id: m[1],
				name: str(json.name),
				owner_id: applicationId,
				thread_metadata: {
					archived: false,
					auto_archive_duration: 1440,
					locked: false,
					archive_timestamp: new Date().toISOString(),
				},
			};
			channels.push({ id: thread.id, name: thread.name });
			return reply(res, 201, thread);
		}
		if ((m = /^\/channels\/(\d+)$/.exec(path)) && method === "PATCH") {
			// Only threads are edited by opsbot (archived when their alert resolves).
			const channel = channels.find((c) => c.id === m?.[1]);
			if (!channel) return notFound();
			if (typeof json.archived === "boolean") archivedThreads[json.archived ? "add" : "delete"](channel.id);
			return reply(res, 200, { id: channel.id, name: channel.name, type: 11, guild_id: guildId });
		}
		if ((m = /^\/channels\/(\d+)$/.exec(path)) && method === "GET") {
			const channel = channels.find((c) => c.id === m?.[1]);
			return channel ? reply(res, 200, { id: channel.id, name: channel.name, type: 0, guild_id: guildId }) : notFound();
		}

		if ((m = /^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/.exec(path))) {
			if (m[1] !== applicationId) return notFound(10_002, "Unknown Application");
			const scope = m[2];
			const current = scope ? (commands.guild.get(scope) ?? []) : commands.global;
			if (method === "GET") return reply(res, 200, current);
			const list =
				method === "PUT"
					? Array.isArray(body)
						? body
						: []
					: method === "POST"
						? [...current.filter((c) => c.name !== json.name), json]
						: undefined;
			if (!list) return reply(res, 405, { code: 0, message: "405: Method Not Allowed" });
			const problems = list.flatMap((c, i) => commandProblems(c, i));
			if (problems.length > 0) return reply(res, 400, invalidFormBody(problems));
			const stored = list.map((c) => ({
				...c,
				id: snowflake(),
				application_id: applicationId,
				version: snowflake(),
				...(scope ? { guild_id: scope } : {}),
			}));
			if (scope) commands.guild.set(scope, stored);
			else commands.global = stored;
			return reply(res, method === "POST" ? 201 : 200, method === "POST" ? stored.at(-1) : stored);
		}
		return reply(res, 404, { code: 0, message: "404: Not Found" });
	}

	function member(user: UserInput | undefined): Json {
		const u = {
			id: user?.id ?? "200000000000000001",
			username: user?.username ?? "oncall-alice",
			discriminator: "0",
			global_name: user?.username ?? "Alice",
			avatar: null,
		};
		return {
			user: u,
			roles: [...(user?.roles ?? [])],
			permissions: "0",
			joined_at: new Date().toISOString(),
			deaf: false,
			mute: false,
			flags: 0,
			nick: null,
			avatar: null,
			pending: false,
		};
	}

	const double: DiscordDouble = {
		apiUrl: `${base}/api`,
		applicationId,
		guildId,
		channelIds: channels.map((c) => c.id),
		requests,
		violations,
		takeViolations: () => violations.splice(0),
		messages,
		commands,
		identified: () => identifiedCount,
		async sendInteraction(input) {
			const id = snowflake();
			const token = `tok-${randomBytes(24).toString("base64url")}`;
			const onMessage = "messageId" in input && input.messageId ? messages.get(input.messageId) : undefined;
			if ("messageId" in input && input.messageId && !onMessage)
				throw new Error(`no message ${input.messageId} in the double`);
			const fromGuild = input.guildId === undefined ? guildId : input.guildId;
			const channelId =
				onMessage?.channel_id ??
				("channelId" in input && input.channelId
					? input.channelId
					: fromGuild === guildId
						? (channels[0]?.id ?? "")
						: snowflake());
			let type: number;
			let data: Json;
			switch (input.kind) {
				case "command":
				case "autocomplete":
					type = input.kind === "command" ? COMMAND_OPTION_TYPES.command : COMMAND_OPTION_TYPES.autocomplete;
					data = {
						id: snowflake(),
						name: input.name,
						type: 1,
						...(fromGuild ? { guild_id: fromGuild } : {}),
						options: input.options ?? [],
					};
					break;
				case "button":
					type = 3;
					data = { custom_id: input.customId, component_type: 2 };
					break;
				case "select":
					type = 3;
					data = { custom_id: input.customId, component_type: 3, values: input.values };
					break;
				case "modal":
					type = 5;
					data = {
						custom_id: input.customId,
						components: Object.entries(input.fields).map(([custom_id, value]) => ({
							type: 1,
							components: [{ type: 4, custom_id, value }],
						})),
					};
					break;
			}
			const payload: Json = {
				id,
				application_id: applicationId,
				type,
				data,
				...(fromGuild ? { guild_id: fromGuild } : {}),
				channel_id: channelId,
				channel: fromGuild
					? { id: channelId, type: 0, guild_id: fromGuild }
					: { id: channelId, type: 1, recipients: [member(input.user).user] },
				...(fromGuild ? { member: member(input.user) } : { user: member(input.user).user }),
				token,
				version: 1,
				app_permissions: "2248473465835073",
				locale: "en-US",
				guild_locale: "en-US",
				entitlements: [],
				authorizing_integration_owners: fromGuild ? { "0": fromGuild } : { "1": (member(input.user).user as Json).id },
				context: fromGuild ? 0 : 1,
				attachment_size_limit: 10 * 1024 * 1024,
				...(onMessage ? { message: onMessage.raw } : {}),
			};
			const sentAt = Date.now();
			interactions.set(id, {
				token,
				sentAt,
				channelId,
				waiters: [],
				...(onMessage ? { messageId: onMessage.id } : {}),
			});
			byToken.set(token, id);
			const [socket] = sockets;
			if (!socket) throw new Error("no gateway client is connected");
			send(socket, 0, payload, "INTERACTION_CREATE");
			return {
				id,
				token,
				sentAt,
				response: (timeoutMs = 5_000) =>
					new Promise<InteractionResponse>((resolve, reject) => {
						const entry = interactions.get(id);
						if (entry?.response) return resolve(entry.response);
						const timer = setTimeout(
							() => reject(new Error(`interaction ${id} got no response within ${timeoutMs} ms`)),
							timeoutMs,
						);
						entry?.waiters.push((r) => {
							clearTimeout(timer);
							resolve(r);
						});
					}),
			};
		},
		interactionResponse: (id) => interactions.get(id)?.response,
		originalMessage(id) {
			const messageId = interactions.get(id)?.messageId;
			return messageId ? messages.get(messageId) : undefined;
		},
		gatewaySessions: () => sockets.size,
		archived: (threadId) => archivedThreads.has(threadId),
		channelMessages: (channelId) =>
			[...messages.values()].filter((x) => x.channel_id === channelId && !x.interactionId),
		failNext(rule) {
			faults.push({ ...rule, remaining: rule.count ?? 1 });
		},
		holdNext(rule) {
			let release!: () => void;
			let onHeld!: () => void;
			const released = new Promise<void>((resolve) => (release = resolve));
			const held = new Promise<void>((resolve) => (onHeld = resolve));
			holds.push({ ...rule, released, hold: () => onHeld() });
			return { held, release };
		},
		clearFaults() {
			faults.length = 0;
		},
		async waitFor(probe, timeoutMs = 5_000) {
			const deadline = Date.now() + timeoutMs;
			for (;;) {
				// An async probe is awaited: its promise is not itself an answer.
				const value = await probe();
				if (value !== undefined && value !== false && value !== null) return value;
				if (Date.now() > deadline) throw new Error(`waitFor: condition not met within ${timeoutMs} ms`);
				await new Promise((resolve) => setTimeout(resolve, 10));
			}
		},
		async close() {
			trackDouble(double, false);
			for (const ws of sockets) ws.terminate();
			wss.close();
			server.closeAllConnections();
			await new Promise((resolve) => server.close(resolve));
			if (violations.length > 0) throw specViolationError(violations.splice(0));
		},
	};
	trackDouble(double, true);
	return double;
}

function str(v: unknown): string {
	return typeof v === "string" ? v : "";
}
function arr(v: unknown): Json[] {
	return Array.isArray(v) ? (v as Json[]) : [];
}
