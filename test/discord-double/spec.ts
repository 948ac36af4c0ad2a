import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Ajv2020, ErrorObject, Options, ValidateFunction } from "ajv/dist/2020.js";
import { CACHE_DIR } from "../support/temp.ts";
import { limitProblems } from "./limits.ts";

/**
 * Holds every REST request the Discord double receives to Discord's own OpenAPI 3.1 description
 * (../shared/discord-api-spec/openapi.json beside the repo, see its README), plus the documented
 * limits the spec does not encode (limits.ts). The spec is read once per process; each operation's
 * schemas are compiled the first time a request uses it, and the compiled check is kept as code in
 * the temp directory (keyed by the spec's hash), because Vitest runs each file in its own process.
 */

/** One broken rule: which request, where in it (a JSON pointer into the body, or the path/query), and why. */
export interface SpecViolation {
	readonly method: string;
	/** The request path without /api/v10, e.g. "/channels/1/messages". */
	readonly path: string;
	/** The spec operation it matched, e.g. "create_message" (empty when no route matched). */
	readonly operation: string;
	/** Where: "/embeds/0/title" in the JSON body (or payload_json), "path/channel_id", "query/limit", "files/0". */
	readonly pointer: string;
	/** The rule: the JSON Schema keyword ("maxLength", "required", …), "route", "method", or a limit's name. */
	readonly rule: string;
	readonly message: string;
}

/** What the validator needs of a request. */
export interface SpecRequest {
	readonly method: string;
	readonly path: string;
	readonly query: URLSearchParams;
	/** "json", "multipart" (body is payload_json), or "none". */
	readonly kind: "json" | "multipart" | "none";
	readonly body: unknown;
	/** Form field names of the uploaded files (multipart only), e.g. ["files[0]"]. */
	readonly fileFields: readonly string[];
}

type Json = Record<string, unknown>;
type Operation = {
	operationId?: string;
	parameters?: Parameter[];
	requestBody?: { required?: boolean; content?: Record<string, { schema: unknown }> };
};
type Parameter = { name: string; in: string; required?: boolean; schema?: unknown };

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Where the tests look for the spec: `../shared/discord-api-spec/openapi.json` relative to the repo root. */
export const DISCORD_SPEC_PATH = fileURLToPath(
	new URL("../shared/discord-api-spec/openapi.json", new URL(`file://${REPO_ROOT}`)),
);
const SPEC_ID = "discord-openapi";
const MAX_FILES = 10;

interface Route {
	readonly template: string;
	readonly pattern: RegExp;
	readonly names: readonly string[];
	/** Literal segments: "/users/@me" wins over "/users/{user_id}". */
	readonly literals: number;
	readonly item: Json;
}

interface LoadedSpec {
	readonly doc: Json;
	readonly routes: readonly Route[];
	/** Where compiled checks are kept between processes, unique to this spec and validator. */
	readonly cacheDir: string;
	/** Built on first need: with a warm cache, a test process never needs it. */
	ajv?: Ajv2020;
	readonly compiled: Map<string, ValidateFunction>;
}

let loaded: LoadedSpec | undefined;

/** Reads and prepares the spec once per process; fails with where it was looked for when it is missing. */
export function discordSpec(): LoadedSpec {
	if (loaded) return loaded;
	const text = readFileSync(readDiscordSpecPath(DISCORD_SPEC_PATH), "utf8");
	const spec = JSON.parse(text) as { paths: Record<string, Json>; components: { schemas: Record<string, Json> } };
	patchKnownGaps(spec);
	const routes = Object.entries(spec.paths).map(([template, item]) => {
		const names: string[] = [];
		const source = template
			.split("/")
			.map((segment) => {
				const param = /^\{(\w+)\}$/.exec(segment);
				if (!param) return segment.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
				names.push(param[1]!);
				return "([^/]+)";
			})
			.join("/");
		return {
			template,
			pattern: new RegExp(`^${source}$`),
			names,
			literals: template.split("/").length - names.length,
			item,
		};
	});
	routes.sort((a, b) => b.literals - a.literals);
	const ajvVersion = (requireHere("ajv/package.json") as { version: string }).version;
	const version = createHash("sha256")
		.update(text)
		.update(readFileSync(fileURLToPath(import.meta.url)))
		.update(ajvVersion)
		.digest("hex")
		.slice(0, 16);
	loaded = {
		doc: spec as unknown as Json,
		routes,
		cacheDir: join(CACHE_DIR, "opsbot-discord-spec", version),
		compiled: new Map(),
	};
	return loaded;
}

/** The Ajv holding the spec, writing each check as code (verbose: a union's error carries its branches). */
function ajvOf(spec: LoadedSpec): Ajv2020 {
	if (spec.ajv) return spec.ajv;
	const { Ajv, addFormats } = ajvModules();
	spec.ajv = new Ajv({
		strict: false,
		allErrors: true,
		verbose: true,
		validateSchema: false,
		unicodeRegExp: false,
		code: { source: true },
	});
	addFormats(spec.ajv);
	spec.ajv.addSchema(spec.doc, SPEC_ID);
	return spec.ajv;
}

/** The spec document at `path`, or an error that says where the tests expect it and where it comes from. */
export function readDiscordSpec(path: string): {
	paths: Record<string, Json>;
	components: { schemas: Record<string, Json> };
} {
	return JSON.parse(readFileSync(readDiscordSpecPath(path), "utf8")) as {
		paths: Record<string, Json>;
		components: { schemas: Record<string, Json> };
	};
}

function readDiscordSpecPath(path: string): string {
	if (!existsSync(path)) {
		throw new Error(
			`Discord's OpenAPI spec not found at ${path}. The Discord double validates every request against ` +
				"../shared/discord-api-spec/openapi.json beside the repository (github.com/discord/discord-api-spec, see " +
				"that folder's README).",
		);
	}
	return path;
}

// Ajv is loaded only when something must be compiled or explained (loading it takes longer than a
// cached check): with a warm cache, a test file whose requests all pass never loads it.
const requireHere = createRequire(import.meta.url);
const ajvModules = () => ({
	Ajv: (requireHere("ajv/dist/2020.js") as { Ajv2020: new (options: Options) => Ajv2020 }).Ajv2020,
	addFormats: (requireHere("ajv-formats") as { default: (ajv: Ajv2020) => void }).default,
	standaloneCode: (
		requireHere("ajv/dist/standalone/index.js") as { default: (ajv: Ajv2020, validate: ValidateFunction) => string }
	).default,
});

/**
 * The spec's own README lists where Discord accepts more than the spec says; without these the
 * double would refuse what Discord takes.
 */
function patchKnownGaps(spec: { components: { schemas: Record<string, Json> } }): void {
	const schemas = spec.components.schemas;
	// Discord's own formats: a snowflake's schema has its pattern too, and a nonce is any string or number.
	const dropOwnFormats = (node: unknown): void => {
		if (Array.isArray(node)) node.forEach(dropOwnFormats);
		else if (typeof node === "object" && node !== null) {
			const o = node as Json;
			if (o.format === "snowflake" || o.format === "nonce") delete o.format;
			Object.values(o).forEach(dropOwnFormats);
		}
	};
	dropOwnFormats(spec);
	// default_member_permissions is a string of digits in practice (the spec says integer).
	for (const schema of Object.values(schemas)) {
		const properties = schema.properties as Record<string, unknown> | undefined;
		if (properties?.default_member_permissions) {
			properties.default_member_permissions = {
				anyOf: [properties.default_member_permissions, { type: "string", pattern: "^[0-9]+$" }],
			};
		}
	}
	// attachments[].id may be a number for a new upload (Discord's own example uses "id": 0).
	const attachment = schemas.MessageAttachmentRequest?.properties as Record<string, unknown> | undefined;
	if (attachment) attachment.id = { anyOf: [attachment.id, { type: "integer", minimum: 0 }] };
	// emoji.animated on buttons is allowed by the docs but missing from the spec.
	const emoji = schemas.ComponentEmojiForRequest?.properties as Record<string, unknown> | undefined;
	if (emoji) emoji.animated = { type: ["boolean", "null"] };
}

/** Every rule `request` breaks; empty when Discord would accept its form. */
export function specViolations(request: SpecRequest): SpecViolation[] {
	const spec = discordSpec();
	const method = request.method.toLowerCase();
	const violations: SpecViolation[] = [];
	const at = (operation: string, pointer: string, rule: string, message: string) =>
		violations.push({ method: request.method, path: request.path, operation, pointer, rule, message });

	const matches = spec.routes
		.map((route) => ({ route, m: route.pattern.exec(request.path) }))
		.filter((x) => x.m !== null);
	const match = matches.find((x) => x.route.item[method]) ?? matches[0];
	if (!match) {
		at("", "", "route", "no such route in Discord's API");
		return violations;
	}
	const operation = match.route.item[method] as Operation | undefined;
	if (!operation) {
		at(
			"",
			"",
			"method",
			`${match.route.template} takes ${Object.keys(match.route.item)
				.filter((k) => k !== "parameters")
				.map((k) => k.toUpperCase())
				.join(", ")}`,
		);
		return violations;
	}
	const id = operation.operationId ?? `${method} ${match.route.template}`;

	// Path and query parameters, as strings coerced to their schema's type.
	const parameters = [
		...((match.route.item.parameters as Parameter[] | undefined) ?? []),
		...(operation.parameters ?? []),
	];
	const pathValues = Object.fromEntries(match.route.names.map((name, i) => [name, match.m![i + 1]!]));
	const queryValues = Object.fromEntries(request.query.entries());
	for (const [where, values] of [
		["path", pathValues],
		["query", queryValues],
	] as const) {
		const declared = parameters.filter((p) => p.in === where);
		const validate = compiled(spec, `${id} ${where}`, () => ({
			type: "object",
			properties: Object.fromEntries(declared.map((p) => [p.name, rebase(p.schema ?? {})])),
			required: declared.filter((p) => p.required).map((p) => p.name),
			additionalProperties: false,
		}));
		const typed = Object.fromEntries(
			Object.entries(values).map(([name, v]) => [
				name,
				typedParameter(spec, v, declared.find((p) => p.name === name)?.schema),
			]),
		);
		if (!validate(typed)) {
			for (const e of validate.errors ?? []) {
				const name =
					e.keyword === "additionalProperties"
						? String(e.params.additionalProperty)
						: e.instancePath.split("/")[1] || String(e.params.missingProperty ?? "");
				at(
					id,
					`${where}/${name}`,
					e.keyword,
					e.keyword === "additionalProperties" ? `not a ${where} parameter of ${id}` : (e.message ?? e.keyword),
				);
			}
		}
	}

	// The body: JSON, or multipart's payload_json, against the operation's schema for that content type.
	const content = operation.requestBody?.content;
	if (request.kind === "none") {
		if (operation.requestBody?.required)
			at(id, "", "required", "the request has no body, and this operation needs one");
		return violations;
	}
	const mediaType = request.kind === "json" ? "application/json" : "multipart/form-data";
	const media = content?.[mediaType];
	if (!media) {
		at(id, "", "content-type", `${id} takes no ${mediaType} body`);
		return violations;
	}
	if (!compiled(spec, `${id} ${mediaType}`, () => rebase(media.schema))(request.body)) {
		for (const e of explain(spec, media.schema, request.body)) at(id, e.instancePath, e.keyword, describe(e));
	}
	if (request.kind === "multipart") filesProblems(request, (pointer, rule, message) => at(id, pointer, rule, message));

	// What the spec does not encode, where this operation carries a message.
	const kind = MESSAGE_OPERATIONS[id];
	if (kind && typeof request.body === "object" && request.body !== null && !Array.isArray(request.body)) {
		const seen = new Set(violations.map((v) => v.pointer));
		for (const p of limitProblems(request.body as Json, { kind, files: request.fileFields.length })) {
			if (!seen.has(p.pointer)) at(id, p.pointer, p.rule, p.message);
		}
	}
	return violations;
}

/** Operations whose body is (or holds) a message, and whether it creates one. */
const MESSAGE_OPERATIONS: Record<string, "create" | "edit" | "callback"> = {
	create_message: "create",
	update_message: "edit",
	execute_webhook: "create",
	update_original_webhook_message: "edit",
	update_webhook_message: "edit",
	create_interaction_response: "callback",
};

/** Uploads are named files[0] … files[9], and an attachment that names a new upload by index has that file here. */
function filesProblems(request: SpecRequest, at: (pointer: string, rule: string, message: string) => void): void {
	const indexes = new Set<number>();
	request.fileFields.forEach((field, i) => {
		const n = /^files\[(\d+)\]$/.exec(field);
		if (!n || Number(n[1]) >= MAX_FILES)
			at(`files/${i}`, "files[n]", `an upload is named "${field}"; Discord takes files[0] to files[${MAX_FILES - 1}]`);
		else if (indexes.has(Number(n[1]))) at(`files/${i}`, "files[n]", `${field} is uploaded twice`);
		else indexes.add(Number(n[1]));
	});
	const body = request.body as Json | undefined;
	const attachments = Array.isArray(body?.attachments) ? (body.attachments as Json[]) : [];
	attachments.forEach((a, i) => {
		const id = Number(a.id);
		if (Number.isInteger(id) && id >= 0 && id < MAX_FILES && !indexes.has(id))
			at(`/attachments/${i}/id`, "files[n]", `attachment ${id} names files[${id}], which this request does not upload`);
	});
}

/** Compiles once per process and key; `build` gives the schema, its refs pointing into the spec. */
/**
 * The check for `key`: compiled once per machine and spec and kept as code in the temp directory,
 * then loaded by each test process in milliseconds (compiling one takes about a second).
 */
function compiled(spec: LoadedSpec, key: string, build: () => unknown): ValidateFunction {
	let validate = spec.compiled.get(key);
	if (validate) return validate;
	const file = join(spec.cacheDir, `${createHash("sha256").update(key).digest("hex").slice(0, 24)}.cjs`);
	if (existsSync(file)) {
		const module = { exports: {} as { default?: ValidateFunction } & ValidateFunction };
		new Function("require", "module", "exports", readFileSync(file, "utf8"))(requireHere, module, module.exports);
		validate = module.exports.default ?? module.exports;
	} else {
		const ajv = ajvOf(spec);
		validate = ajv.compile(build() as Json);
		mkdirSync(spec.cacheDir, { recursive: true });
		// Written whole, then renamed: a parallel process reads either nothing or all of it.
		const partial = `${file}.${process.pid}.tmp`;
		writeFileSync(partial, ajvModules().standaloneCode(ajv, validate));
		renameSync(partial, file);
	}
	spec.compiled.set(key, validate);
	return validate;
}

/** A path or query value (always text on the wire) as the JSON type its schema declares: "5" for an integer is 5. */
function typedParameter(spec: LoadedSpec, value: string, schema: unknown): unknown {
	let s = schema as { $ref?: string; type?: string | string[] } | undefined;
	for (let hops = 0; s?.$ref && hops < 5; hops++) s = valueAt(spec.doc, s.$ref.slice(1)) as typeof s;
	const types = [s?.type ?? []].flat();
	if ((types.includes("integer") || types.includes("number")) && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
	if (types.includes("boolean") && (value === "true" || value === "false")) return value === "true";
	return value;
}

/** Compiles the operations every bot run uses, so the first request is not held up by it (about a second). */
export function warmDiscordSpec(): void {
	const query = new URLSearchParams();
	for (const [method, path, body] of [
		["POST", "/channels/1/messages", { content: "x" }],
		["PATCH", "/channels/1/messages/1", { content: "x" }],
		["POST", "/interactions/1/t/callback", { type: 5 }],
		["PATCH", "/webhooks/1/t/messages/@original", { content: "x" }],
		["POST", "/webhooks/1/t", { content: "x" }],
	] as const) {
		specViolations({ method, path, query, kind: "json", body, fileFields: [] });
	}
}

/** A copy of `schema` whose local refs ("#/components/…") point into the spec document. */
function rebase(schema: unknown): unknown {
	if (Array.isArray(schema)) return schema.map(rebase);
	if (typeof schema !== "object" || schema === null) return schema;
	return Object.fromEntries(
		Object.entries(schema).map(([k, v]) => [
			k,
			k === "$ref" && typeof v === "string" && v.startsWith("#") ? `${SPEC_ID}${v}` : rebase(v),
		]),
	);
}

/**
 * The errors that explain why `instance` fails `schema`. Where a union (anyOf/oneOf) fails, every
 * branch reports; the explanation is the closest branch's (the one with the fewest errors, found
 * by checking the value against each branch alone, preferring one whose `type` matches), so a reply with 26
 * autocomplete choices reads
 * "maxItems" and not 26 errors from the integer and number branches it was never meant to be.
 */
function explain(spec: LoadedSpec, schema: unknown, instance: unknown, depth = 0): ErrorObject[] {
	const validate = compiled(spec, JSON.stringify(schema), () => rebase(schema));
	if (validate(instance)) return [];
	let errors = [...(validate.errors ?? [])];
	const unions = errors.filter((e) => (e.keyword === "anyOf" || e.keyword === "oneOf") && Array.isArray(e.schema));
	// Outermost first: a union inside a branch is explained when that branch is.
	unions.sort((a, b) => a.instancePath.length - b.instancePath.length);
	const done: string[] = [];
	for (const union of unions) {
		const at = union.instancePath;
		if (depth > 20 || done.some((d) => at === d || at.startsWith(`${d}/`))) continue;
		done.push(at);
		const value = valueAt(instance, at);
		const branches = (union.schema as unknown[]).map((branch) => explain(spec, branch, value, depth + 1));
		// A branch whose `type` discriminator refuses the value is the wrong kind, however few its errors.
		// So is one that wants another JSON type for the whole value (null, where an object was sent).
		const wrongKind = (e: ErrorObject) =>
			(e.instancePath === "/type" && (e.keyword === "enum" || e.keyword === "const")) ||
			(e.instancePath === "" && e.keyword === "type");
		const rank = (b: ErrorObject[]) => (b.some(wrongKind) ? 1_000_000 : 0) + b.length;
		const closest = branches.reduce((best, b) => (rank(b) < rank(best) ? b : best));
		const inside = (e: ErrorObject) => e.instancePath === at || e.instancePath.startsWith(`${at}/`);
		errors = [
			...errors.filter((e) => !inside(e)),
			...closest.map((e) => ({ ...e, instancePath: `${at}${e.instancePath}` })),
		];
	}
	const seen = new Set<string>();
	return errors.filter((e) => {
		const key = `${e.instancePath} ${e.keyword} ${e.message} ${JSON.stringify(e.params)}`;
		if (seen.has(key)) return false;
		seen.add(key);
		return true;
	});
}

function valueAt(instance: unknown, pointer: string): unknown {
	let value = instance;
	for (const part of pointer.split("/").slice(1)) {
		const key = part.replaceAll("~1", "/").replaceAll("~0", "~");
		value = typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
	}
	return value;
}

function describe(e: ErrorObject): string {
	if (e.keyword === "additionalProperties") return `${e.message}: ${String(e.params.additionalProperty)}`;
	if (e.keyword === "enum") return `${e.message}: ${JSON.stringify(e.params.allowedValues)}`;
	return e.message ?? e.keyword;
}

/**
 * One line per violation: `POST /channels/1/messages (create_message): /content: maxLength: must NOT have more than
 * 2000 characters`.
 */
export function formatViolation(v: SpecViolation): string {
	return (
		`${v.method} ${v.path}${v.operation ? ` (${v.operation})` : ""}: ${v.pointer || "(request)"}: ` +
		`${v.rule}: ${v.message}`
	);
}

/**
 * Discord's 400 body for an invalid form, from violations (errors keyed by dotted path, as Discord nests them flat
 * here).
 */
export function invalidFormBodyOf(violations: readonly SpecViolation[]): Json {
	const errors: Json = {};
	for (const v of violations) {
		const key = v.pointer.replace(/^\//, "").replaceAll("/", ".") || "_request";
		errors[key] = { _errors: [{ code: "BASE_TYPE_INVALID", message: `${v.rule}: ${v.message}` }] };
	}
	return { code: 50035, message: "Invalid Form Body", errors };
}
