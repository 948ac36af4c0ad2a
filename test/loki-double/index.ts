import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parser } from "@grafana/lezer-logql";

/**
 * A Grafana Loki double, kept for what the real Loki (test/support/loki.ts) cannot be made to do
 * on demand: stall, answer 5xx, answer garbage. Everything else it does the way Loki 2.9.13 does,
 * and test/services/loki-contract.test.ts runs the same requests against both: query_range with
 * Loki's parameter checks and error texts, tenants (X-Scope-OrgID) kept apart, the LogQL opsbot
 * sends (selectors, line filters, `| json`, label filters with and/or, `| drop`) parsed with
 * Grafana's own grammar, `count_over_time` as a matrix, label values, /ready and push.
 * What it does not copy is listed in that test.
 */

/** A request the double received. */
export interface LokiRequest {
	readonly method: string;
	readonly path: string;
	readonly params: Readonly<Record<string, string>>;
	readonly tenant: string | undefined;
	readonly authorization: string | undefined;
	readonly status: number;
}

interface StoredLine {
	readonly ns: bigint;
	readonly line: string;
	readonly labels: Record<string, string>;
	/** Push order, for lines sharing a timestamp. */
	readonly seq: number;
}

/** The running double. */
export interface LokiDouble {
	readonly url: string;
	readonly requests: LokiRequest[];
	/** Adds lines for `tenant` directly, as a push would. */
	add(tenant: string, labels: Record<string, string>, lines: readonly { ns: bigint; line: string }[]): void;
	/** The next `count` API requests get this status and body (a 200 with garbage, a 502 from a proxy...). */
	failNext(status: number, body: string, count?: number, contentType?: string): void;
	/** The next `count` API requests are accepted and never answered (until close). */
	stallNext(count?: number): void;
	setReady(ready: boolean): void;
	close(): Promise<void>;
}

type SyntaxNode = NonNullable<ReturnType<typeof parser.parse>["topNode"]["firstChild"]>;

const MAX_ENTRIES = 5_000;
const MAX_QUERY_NS = 721n * 3_600_000_000_000n;
const MAX_QUERY_BYTES = 5_120;
const TEXT = "text/plain; charset=utf-8";

/** Parses a Loki timestamp parameter: "." means float seconds, <= 10 digits seconds, more digits ns, else RFC3339. */
export function parseLokiTime(value: string): bigint | undefined {
	if (value.includes(".") && /^\d+\.\d+$/.test(value)) return BigInt(Math.round(Number(value) * 1000)) * 1_000_000n;
	if (/^\d+$/.test(value)) return value.length <= 10 ? BigInt(value) * 1_000_000_000n : BigInt(value);
	const ms = Date.parse(value);
	return Number.isNaN(ms) ? undefined : BigInt(ms) * 1_000_000n;
}

/** Go's time.Duration.String(), as Loki prints a query's length. */
export function goDuration(ns: bigint): string {
	const h = ns / 3_600_000_000_000n;
	const m = (ns / 60_000_000_000n) % 60n;
	const s = ns % 60_000_000_000n;
	const whole = s / 1_000_000_000n;
	const frac = (s % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
	return `${h}h${m}m${whole}${frac ? `.${frac}` : ""}s`;
}

/** A failure Loki would report, as status and body. */
interface Failure {
	readonly status: number;
	readonly body: string;
}

type LabelExpr =
	| { kind: "matcher"; name: string; op: string; value: string }
	| { kind: "and" | "or"; left: LabelExpr; right: LabelExpr };
type Stage =
	| { kind: "line"; op: string; value: string; source: string }
	| { kind: "json" }
	| { kind: "label"; expr: LabelExpr }
	| { kind: "drop"; names: string[] };

interface LogQuery {
	readonly matchers: { name: string; op: string; value: string }[];
	readonly stages: Stage[];
}

interface ParsedQuery {
	readonly matchers: { name: string; op: string; value: string }[];
	/** The line filters, in order (for the LogQL escaping tests). */
	readonly filters: { op: string; value: string }[];
	readonly log: LogQuery;
	/** count_over_time's range, for a metric query. */
	readonly rangeNs?: bigint;
}

/** Go's strconv.Unquote for LogQL strings: JSON escapes plus \a \v \xHH \' and octal. */
function unquote(raw: string): string {
	if (raw.startsWith("`")) return raw.slice(1, -1);
	return raw.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)/g, (_, e: string) => {
		if (/^[0-7]{3}$/.test(e)) return String.fromCharCode(parseInt(e, 8));
		if (e[0] === "x" || e[0] === "u" || e[0] === "U") return String.fromCodePoint(parseInt(e.slice(1), 16));
		return { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v" }[e] ?? e;
	});
}

/** Compiles an RE2 pattern as JavaScript, refusing what RE2 refuses with RE2's words. */
function re2(pattern: string): RegExp | string {
	const perl = /\(\?(?:=|!|<=|<!)/.exec(pattern);
	if (perl) return `invalid or unsupported Perl syntax: \`${perl[0].slice(0, 3)}\``;
	const backref = /\\[1-9]/.exec(pattern);
	if (backref) return `invalid escape sequence: \`${backref[0]}\``;
	let source = pattern.replace(/\(\?P</g, "(?<");
	let flags = "u";
	// JavaScript has no inline flags: one anywhere applies to the whole pattern here (RE2 scopes it to its group).
	for (const flag of ["i", "s"]) {
		if (source.includes(`(?${flag})`)) {
			source = source.replaceAll(`(?${flag})`, "");
			flags += flag;
		}
	}
	try {
		return new RegExp(source, flags);
	} catch {
		let depth = 0;
		for (const c of pattern.replace(/\\./g, "").replace(/\[[^\]]*\]/g, "")) {
			if (c === "(") depth++;
			if (c === ")" && --depth < 0) return `unexpected ): \`${pattern}\``;
		}
		if (depth > 0) return `missing closing ): \`${pattern}\``;
		if (/\[[^\]]*$/.test(pattern.replace(/\\./g, ""))) return `missing closing ]: \`${pattern}\``;
		return `invalid syntax: \`${pattern}\``;
	}
}

function labelRegex(value: string): RegExp | Failure {
	const anchored = `^(?:${value})$`;
	const compiled = re2(anchored);
	return typeof compiled === "string"
		? { status: 400, body: `parse error : error parsing regexp: ${compiled}` }
		: compiled;
}

/** Parses with @grafana/lezer-logql into what the double evaluates; invalid or unsupported queries get Loki's error. */
export function parseQuery(query: string): ParsedQuery | { error: string; status: number } {
	const failed = parseLogQL(query);
	return "status" in failed && "body" in failed ? { error: failed.body, status: failed.status } : failed;
}

function parseLogQL(query: string): ParsedQuery | Failure {
	const bytes = Buffer.byteLength(query);
	if (bytes > MAX_QUERY_BYTES)
		return { status: 400, body: `parse error : input size too long (${bytes} > ${MAX_QUERY_BYTES})` };
	if (query.trim() === "") return { status: 400, body: "parse error : syntax error: unexpected $end" };
	const position = (at: number) => {
		const before = query.slice(0, at).split("\n");
		return `line ${before.length}, col ${(before.at(-1)?.length ?? 0) + 1}`;
	};
	// Loki's lexer reports an unterminated string where it starts.
	for (let i = 0; i < query.length; i++) {
		const c = query[i];
		if (c !== '"' && c !== "`") continue;
		let j = i + 1;
		while (j < query.length && query[j] !== c) j += c === '"' && query[j] === "\\" ? 2 : 1;
		if (j >= query.length) return { status: 400, body: `parse error at ${position(i)}: literal not terminated` };
		i = j;
	}
	const tree = parser.parse(query);
	let syntax: Failure | undefined;
	tree.iterate({
		enter(node) {
			if (!node.type.isError || syntax) return;
			const token = query.slice(node.from).match(/^[A-Za-z_][A-Za-z0-9_]*/);
			if (node.from >= query.trimEnd().length) {
				const inSelector = query.lastIndexOf("{") > query.lastIndexOf("}");
				syntax = {
					status: 400,
					body:
						`parse error at ${position(query.length)}: syntax error: unexpected ` +
						`$end${inSelector ? ", expecting } or ," : ""}`,
				};
			} else
				syntax = {
					status: 400,
					body:
						`parse error at ${position(node.from)}: syntax error: unexpected ` +
						`${token ? "IDENTIFIER" : JSON.stringify(query[node.from])}`,
				};
		},
	});
	if (syntax) return syntax;
	const top = tree.topNode.firstChild?.firstChild;
	if (!top) return { status: 400, body: "parse error : syntax error: unexpected $end" };
	const text = (n: SyntaxNode) => query.slice(n.from, n.to);
	let logNode: SyntaxNode | null = top;
	let rangeNs: bigint | undefined;
	if (top.name === "MetricExpr") {
		const agg = top.firstChild;
		const op = agg?.getChild("RangeOp")?.firstChild?.name;
		if (agg?.name !== "RangeAggregationExpr" || op !== "CountOverTime") return unsupported(agg ?? top);
		logNode = agg.getChild("LogRangeExpr");
		const duration = logNode?.getChild("Range")?.getChild("Duration");
		const m = duration ? /^(\d+)(ms|s|m|h|d)$/.exec(text(duration)) : null;
		if (!m) return unsupported(logNode ?? agg);
		rangeNs =
			BigInt(m[1]!) *
			{ ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n, d: 86_400_000_000_000n }[
				m[2] as "s"
			];
	} else if (top.name !== "LogExpr") return unsupported(top);
	const matchers: LogQuery["matchers"] = [];
	const stages: Stage[] = [];
	const filters: ParsedQuery["filters"] = [];
	const selector = logNode?.getChild("Selector");
	for (const m of selector?.getChild("Matchers") ? allMatchers(selector.getChild("Matchers")!) : []) {
		const name = m.getChild("Identifier");
		const value = m.getChild("String");
		const op = name?.nextSibling;
		if (!name || !value || !op) return unsupported(m);
		matchers.push({ name: text(name), op: text(op), value: unquote(text(value)) });
	}
	for (const m of matchers) {
		if (m.op === "=~" || m.op === "!~") {
			const compiled = labelRegex(m.value);
			if (!(compiled instanceof RegExp)) return compiled;
		}
	}
	if (
		!matchers.some(
			(m) => (m.op === "=" && m.value !== "") || (m.op === "=~" && !(labelRegex(m.value) as RegExp).test("")),
		)
	) {
		return {
			status: 400,
			body:
				"parse error : queries require at least one regexp or equality matcher that does not have an " +
				'empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will',
		};
	}
	const pipeline = logNode?.getChild("PipelineExpr");
	for (const stage of pipeline ? pipelineStages(pipeline) : []) {
		const lineFilters = stage.getChild("LineFilters");
		if (lineFilters) {
			for (const f of allLineFilters(lineFilters)) {
				const op = f.getChild("Filter");
				const value = f.getChild("String");
				if (!op || !value) return unsupported(f);
				const entry = { op: text(op), value: unquote(text(value)) };
				filters.push(entry);
				stages.push({ kind: "line", ...entry, source: `${entry.op} ${JSON.stringify(entry.value)}` });
			}
			continue;
		}
		const parserNode = stage.getChild("LabelParser");
		if (parserNode) {
			if (parserNode.firstChild?.name !== "Json" || parserNode.firstChild.nextSibling) return unsupported(parserNode);
			stages.push({ kind: "json" });
			continue;
		}
		const labelFilter = stage.getChild("LabelFilter");
		if (labelFilter) {
			const expr = labelExpr(labelFilter, text);
			if ("status" in expr && "body" in expr) return expr;
			stages.push({ kind: "label", expr: expr as LabelExpr });
			continue;
		}
		const drop = stage.getChild("DropLabelsExpr");
		if (drop) {
			const labels = drop.getChild("DropLabels");
			const names = (labels ? dropLabels(labels) : [])
				.map((n) => n.getChild("Identifier"))
				.filter((n): n is SyntaxNode => n !== null)
				.map(text);
			if (names.length === 0) return unsupported(drop);
			stages.push({ kind: "drop", names });
			continue;
		}
		return unsupported(stage);
	}
	return { matchers, filters, log: { matchers, stages }, ...(rangeNs !== undefined ? { rangeNs } : {}) };

	function unsupported(node: SyntaxNode): Failure {
		return {
			status: 400,
			body: `parse error : the Loki double does not evaluate ${node.name} (${text(node).slice(0, 60)})`,
		};
	}
}

function allMatchers(node: SyntaxNode): SyntaxNode[] {
	return node.getChildren("Matchers").flatMap(allMatchers).concat(node.getChildren("Matcher"));
}

function allLineFilters(node: SyntaxNode): SyntaxNode[] {
	return node.getChildren("LineFilters").flatMap(allLineFilters).concat(node.getChildren("LineFilter"));
}

function dropLabels(node: SyntaxNode): SyntaxNode[] {
	return node.getChildren("DropLabels").flatMap(dropLabels).concat(node.getChildren("DropLabel"));
}

function pipelineStages(node: SyntaxNode): SyntaxNode[] {
	return node.getChildren("PipelineExpr").flatMap(pipelineStages).concat(node.getChildren("PipelineStage"));
}

function labelExpr(node: SyntaxNode, text: (n: SyntaxNode) => string): LabelExpr | Failure {
	const matcher = node.getChild("Matcher");
	if (matcher) {
		const name = matcher.getChild("Identifier");
		const value = matcher.getChild("String");
		const op = name?.nextSibling;
		if (!name || !value || !op)
			return { status: 400, body: `parse error : the Loki double does not evaluate ${text(matcher)}` };
		const parsed = { kind: "matcher" as const, name: text(name), op: text(op), value: unquote(text(value)) };
		if (parsed.op === "=~" || parsed.op === "!~") {
			const compiled = labelRegex(parsed.value);
			if (!(compiled instanceof RegExp)) return compiled;
		}
		return parsed;
	}
	const parts = node.getChildren("LabelFilter");
	if (parts.length === 1) return labelExpr(parts[0]!, text);
	const joiner = node.getChild("And") ? "and" : node.getChild("Or") ? "or" : undefined;
	if (parts.length === 2 && joiner) {
		const left = labelExpr(parts[0]!, text);
		const right = labelExpr(parts[1]!, text);
		if ("status" in left && "body" in left) return left;
		if ("status" in right && "body" in right) return right;
		return { kind: joiner, left: left as LabelExpr, right: right as LabelExpr };
	}
	return { status: 400, body: `parse error : the Loki double does not evaluate ${text(node).slice(0, 60)}` };
}

/**
 * `| json`: top-level fields (nested objects flattened with `_`, arrays skipped) become labels; a
 * field named like one of the stream's labels gets `_extracted`. (Loki caches that name per query,
 * so there a stream without the clashing label sometimes gets the suffix too.)
 */
function extractJson(line: string, labels: Record<string, string>, clashing: ReadonlySet<string>): void {
	let value: unknown;
	try {
		value = JSON.parse(line);
	} catch {
		value = undefined;
	}
	if (value === null || typeof value !== "object" || Array.isArray(value)) {
		labels.__error__ = "JSONParserErr";
		labels.__error_details__ = "Value looks like object, but can't find closing '}' symbol";
		return;
	}
	const walk = (obj: Record<string, unknown>, prefix: string) => {
		for (const [k, v] of Object.entries(obj)) {
			const key = `${prefix}${k.replace(/[^a-zA-Z0-9_]/g, "_")}`;
			if (v !== null && typeof v === "object") {
				if (!Array.isArray(v)) walk(v as Record<string, unknown>, `${key}_`);
				continue;
			}
			const name = clashing.has(key) ? `${key}_extracted` : key;
			labels[name] = v === null ? "" : String(v);
		}
	};
	walk(value as Record<string, unknown>, "");
}

function labelMatches(expr: LabelExpr, labels: Record<string, string>): boolean {
	if (expr.kind !== "matcher")
		return expr.kind === "and"
			? labelMatches(expr.left, labels) && labelMatches(expr.right, labels)
			: labelMatches(expr.left, labels) || labelMatches(expr.right, labels);
	const value = labels[expr.name] ?? "";
	if (expr.op === "=") return value === expr.value;
	if (expr.op === "!=") return value !== expr.value;
	const matched = (labelRegex(expr.value) as RegExp).test(value);
	return expr.op === "=~" ? matched : !matched;
}

/** Runs a log query's pipeline on one line: its output labels, or undefined when it is filtered out. */
function selects(q: LogQuery, entry: StoredLine): boolean {
	return q.matchers.every((m) => {
		const value = entry.labels[m.name] ?? "";
		return m.op === "="
			? value === m.value
			: m.op === "!="
				? value !== m.value
				: (labelRegex(m.value) as RegExp).test(value) === (m.op === "=~");
	});
}

function evaluate(
	q: LogQuery,
	entry: StoredLine,
	regexes: Map<string, RegExp>,
	clashing: ReadonlySet<string>,
): Record<string, string> | undefined {
	const labels = { ...entry.labels };
	for (const stage of q.stages) {
		if (stage.kind === "line") {
			const ok =
				stage.op === "|="
					? entry.line.includes(stage.value)
					: stage.op === "!="
						? !entry.line.includes(stage.value)
						: regexes.get(stage.value)!.test(entry.line) === (stage.op === "|~");
			if (!ok) return undefined;
		} else if (stage.kind === "json") extractJson(entry.line, labels, clashing);
		else if (stage.kind === "label") {
			if (!labelMatches(stage.expr, labels)) return undefined;
		} else for (const name of stage.names) delete labels[name];
	}
	return labels;
}

/** Starts the double on a random port on 127.0.0.1. */
export async function startLokiDouble(): Promise<LokiDouble> {
	const tenants = new Map<string, StoredLine[]>();
	const requests: LokiRequest[] = [];
	const faults: { status: number; body: string; contentType: string; remaining: number }[] = [];
	let stalls = 0;
	let seq = 0;
	let ready = true;

	const store = (tenant: string, labels: Record<string, string>, lines: readonly { ns: bigint; line: string }[]) => {
		const entries = tenants.get(tenant) ?? [];
		tenants.set(tenant, entries);
		const key = JSON.stringify(Object.entries(labels).sort());
		for (const l of lines) {
			// An identical (timestamp, line) pair in one stream is stored once.
			if (
				entries.some(
					(e) => e.ns === l.ns && e.line === l.line && JSON.stringify(Object.entries(e.labels).sort()) === key,
				)
			)
				continue;
			entries.push({ ns: l.ns, line: l.line, labels: { ...labels }, seq: seq++ });
		}
	};
	const text = (res: ServerResponse, status: number, body: string) => {
		res.writeHead(status, { "content-type": TEXT }).end(body);
		return status;
	};
	const json = (res: ServerResponse, body: unknown, contentType = "application/json", newline = "") => {
		res.writeHead(200, { "content-type": contentType }).end(JSON.stringify(body) + newline);
		return 200;
	};

	function queryRange(res: ServerResponse, p: URLSearchParams, tenant: string): number {
		const nowNs = BigInt(Date.now()) * 1_000_000n;
		const rawLimit = p.get("limit");
		if (rawLimit !== null && !/^-?\d+$/.test(rawLimit))
			return text(res, 400, `strconv.Atoi: parsing ${JSON.stringify(rawLimit)}: invalid syntax`);
		const limit = rawLimit === null ? 100 : Number(rawLimit);
		if (limit <= 0) return text(res, 400, "limit must be a positive value");
		const times: Record<string, bigint> = {};
		for (const name of ["start", "end"] as const) {
			const raw = p.get(name);
			if (raw === null) continue;
			const parsed = parseLokiTime(raw);
			if (parsed === undefined)
				return text(
					res,
					400,
					`could not parse '${name}' parameter: strconv.ParseInt: parsing ${JSON.stringify(raw)}: invalid syntax`,
				);
			times[name] = parsed;
		}
		const end = times.end ?? nowNs;
		const start = times.start ?? end - 3_600_000_000_000n;
		if (end < start) return text(res, 400, "end timestamp must not be before or equal to start time");
		const direction = p.get("direction") ?? "backward";
		if (direction !== "backward" && direction !== "forward") return text(res, 400, `invalid direction '${direction}'`);
		const parsed = parseLogQL(p.get("query") ?? "");
		if ("body" in parsed) return text(res, parsed.status, parsed.body);
		if (parsed.rangeNs === undefined && limit > MAX_ENTRIES)
			return text(
				res,
				400,
				`max entries limit per query exceeded, limit > max_entries_limit (${limit} > ${MAX_ENTRIES})`,
			);
		if (end - start > MAX_QUERY_NS)
			return text(
				res,
				400,
				`the query time range exceeds the limit (query length: ${goDuration(end - start)}, limit: 30d1h)`,
			);
		const regexes = new Map<string, RegExp>();
		for (const stage of parsed.log.stages) {
			if (stage.kind !== "line" || (stage.op !== "|~" && stage.op !== "!~")) continue;
			const compiled = re2(stage.value);
			// Loki compiles line-filter regexes in its queriers: the failure comes back as a 500 through gRPC.
			if (typeof compiled === "string")
				return text(
					res,
					500,
					`rpc error: code = Unknown desc = parse error : stage '${stage.source}' : error parsing regexp: ${compiled}\n`,
				);
			regexes.set(stage.value, compiled);
		}
		const all = tenants.get(tenant) ?? [];
		const windowStart = parsed.rangeNs === undefined ? start : start - parsed.rangeNs;
		const inRange = all.filter((e) => e.ns >= windowStart && e.ns < end && selects(parsed.log, e));
		const selected = inRange
			.map((e) => ({ entry: e, labels: evaluate(parsed.log, e, regexes, new Set(Object.keys(e.labels))) }))
			.filter((x): x is { entry: StoredLine; labels: Record<string, string> } => x.labels !== undefined);
		if (parsed.rangeNs !== undefined)
			return json(res, {
				status: "success",
				data: {
					resultType: "matrix",
					result: countOverTime(selected, start, end, parsed.rangeNs, p.get("step")),
					stats: {},
				},
			});
		const sign = direction === "forward" ? 1 : -1;
		// Newest (or oldest) first; lines sharing a timestamp come in push order forward, reversed backward.
		selected.sort((a, b) =>
			a.entry.ns === b.entry.ns ? (a.entry.seq - b.entry.seq) * sign : (a.entry.ns < b.entry.ns ? -1 : 1) * sign,
		);
		const streams = new Map<string, { stream: Record<string, string>; values: [string, string][] }>();
		for (const { entry, labels } of selected.slice(0, limit)) {
			const key = JSON.stringify(Object.entries(labels).sort());
			const stream = streams.get(key) ?? { stream: Object.fromEntries(Object.entries(labels).sort()), values: [] };
			stream.values.push([entry.ns.toString(), entry.line]);
			streams.set(key, stream);
		}
		return json(
			res,
			{ status: "success", data: { resultType: "streams", result: [...streams.values()], stats: {} } },
			"application/json; charset=UTF-8",
		);
	}

	function handle(req: IncomingMessage, res: ServerResponse, body: string): number | undefined {
		const url = new URL(req.url ?? "/", "http://loki.local");
		if (url.pathname === "/ready")
			return ready
				? text(res, 200, "ready\n")
				: text(res, 503, "Ingester not ready: waiting for 15s after being ready\n");
		const tenant = req.headers["x-scope-orgid"];
		if (typeof tenant !== "string" || tenant === "") return text(res, 401, "no org id\n");
		if (stalls > 0) {
			stalls--;
			return undefined;
		}
		const fault = faults.find((f) => f.remaining > 0);
		if (fault) {
			fault.remaining--;
			res.writeHead(fault.status, { "content-type": fault.contentType }).end(fault.body);
			return fault.status;
		}
		const unsafeTenant = tenant === "." || tenant === ".." || /[/\\]/.test(tenant);
		if (req.method === "POST" && url.pathname === "/loki/api/v1/push") {
			if (unsafeTenant) return text(res, 400, "invalid tenant ID\n");
			const parsed = JSON.parse(body) as { streams: { stream: Record<string, string>; values: [unknown, string][] }[] };
			for (const s of parsed.streams) {
				if (s.values.some(([ns]) => typeof ns !== "string"))
					return text(res, 400, "error parsing push request: timestamp must be a string\n");
				store(
					tenant,
					s.stream,
					s.values.map(([ns, line]) => ({ ns: BigInt(ns as string), line })),
				);
			}
			res.writeHead(204).end();
			return 204;
		}
		if (unsafeTenant) return text(res, 400, "rpc error: code = Code(400) desc = invalid tenant ID");
		if (url.pathname === "/loki/api/v1/query_range") return queryRange(res, url.searchParams, tenant);
		const entries = tenants.get(tenant) ?? [];
		const values = /^\/loki\/api\/v1\/label\/([^/]+)\/values$/.exec(url.pathname);
		const list = (names: string[]) =>
			json(
				res,
				names.length > 0 ? { status: "success", data: names } : { status: "success" },
				"application/json; charset=UTF-8",
				"\n",
			);
		if (values)
			return list(
				[...new Set(entries.map((e) => e.labels[values[1]!]).filter((v): v is string => v !== undefined))].sort(),
			);
		if (url.pathname === "/loki/api/v1/labels")
			return list([...new Set(entries.flatMap((e) => Object.keys(e.labels)))].sort());
		return text(res, 404, "404 page not found\n");
	}

	const server = createServer((req, res) => {
		let body = "";
		req.on("data", (chunk: Buffer) => (body += chunk.toString()));
		req.on("end", () => {
			const url = new URL(req.url ?? "/", "http://loki.local");
			const status = handle(req, res, body) ?? 0;
			requests.push({
				method: req.method ?? "GET",
				path: url.pathname,
				params: Object.fromEntries(url.searchParams),
				tenant: req.headers["x-scope-orgid"] as string | undefined,
				authorization: req.headers.authorization,
				status,
			});
		});
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	return {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		requests,
		add: store,
		failNext(status, body, count = 1, contentType = TEXT) {
			faults.push({ status, body, contentType, remaining: count });
		},
		stallNext(count = 1) {
			stalls += count;
		},
		setReady(value) {
			ready = value;
		},
		close: () =>
			new Promise((resolve) => {
				server.closeAllConnections();
				server.close(() => resolve());
			}),
	};
}

/**
 * count_over_time at each step from start to end: the lines in (t - range, t], per output label set; empty steps left
 * out.
 */
function countOverTime(
	selected: { entry: StoredLine; labels: Record<string, string> }[],
	start: bigint,
	end: bigint,
	rangeNs: bigint,
	rawStep: string | null,
): { metric: Record<string, string>; values: [number, string][] }[] {
	const stepS = rawStep ? Number(rawStep) : Math.max(Math.floor(Number((end - start) / 1_000_000_000n) / 250), 1);
	const step = BigInt(Math.round(stepS * 1e9));
	const series = new Map<string, { metric: Record<string, string>; values: [number, string][] }>();
	for (let t = start; t <= end; t += step) {
		const counts = new Map<string, number>();
		for (const { entry, labels } of selected) {
			if (entry.ns > t - rangeNs && entry.ns <= t) {
				const key = JSON.stringify(Object.entries(labels).sort());
				counts.set(key, (counts.get(key) ?? 0) + 1);
				if (!series.has(key))
					series.set(key, { metric: Object.fromEntries(Object.entries(labels).sort()), values: [] });
			}
		}
		for (const [key, count] of counts) series.get(key)!.values.push([Number(t / 1_000_000_000n), String(count)]);
	}
	return [...series.values()];
}
