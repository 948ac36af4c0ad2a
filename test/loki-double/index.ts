import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { parser } from "@grafana/lezer-logql";

/**
 * A Grafana Loki double that follows the documented HTTP API (PROTOCOLS.md §2): query_range with
 * its timestamp rules, limit and direction, stream results with nanosecond string timestamps,
 * labels and label values, /ready, push, plain-text errors with Loki's status codes, and the
 * X-Scope-OrgID requirement of auth_enabled. It evaluates the LogQL subset of stream selectors
 * and line filters, parsing with Grafana's own grammar, and records every request.
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
}

/** The running double. */
export interface LokiDouble {
	readonly url: string;
	readonly requests: LokiRequest[];
	/** Adds lines directly (tests), as push would. */
	add(labels: Record<string, string>, lines: readonly { ns: bigint; line: string }[]): void;
	/** The next `count` API requests get this status and plain-text body. */
	failNext(status: number, body: string, count?: number): void;
	setReady(ready: boolean): void;
	close(): Promise<void>;
}

const MAX_ENTRIES = 5_000;
const MAX_QUERY_HOURS = 721;

/** Parses a Loki timestamp parameter: "." means float seconds, <= 10 digits seconds, more digits ns, else RFC3339. */
export function parseLokiTime(value: string): bigint | undefined {
	if (value.includes(".") && /^\d+\.\d+$/.test(value)) return BigInt(Math.round(Number(value) * 1000)) * 1_000_000n;
	if (/^\d+$/.test(value)) return value.length <= 10 ? BigInt(value) * 1_000_000_000n : BigInt(value);
	const ms = Date.parse(value);
	return Number.isNaN(ms) ? undefined : BigInt(ms) * 1_000_000n;
}

interface ParsedQuery {
	readonly matchers: { name: string; op: string; value: string }[];
	readonly filters: { op: string; value: string }[];
}

function unquote(raw: string): string {
	if (raw.startsWith("`")) return raw.slice(1, -1);
	return JSON.parse(raw) as string;
}

function regex(pattern: string): RegExp {
	const insensitive = pattern.startsWith("(?i)");
	return new RegExp(insensitive ? pattern.slice(4) : pattern, insensitive ? "i" : "");
}

/** Parses with @grafana/lezer-logql; returns an error text like Loki's for invalid queries. */
export function parseQuery(query: string): ParsedQuery | { error: string } {
	const tree = parser.parse(query);
	const matchers: ParsedQuery["matchers"] = [];
	const filters: ParsedQuery["filters"] = [];
	let error: string | undefined;
	tree.iterate({
		enter(node) {
			if (node.type.isError && error === undefined) {
				const before = query.slice(0, node.from).split("\n");
				error = `parse error at line ${before.length}, col ${(before.at(-1)?.length ?? 0) + 1}: syntax error: unexpected input`;
			}
			if (node.name === "Matcher" && node.node.parent?.name === "Matchers") {
				const name = node.node.getChild("Identifier");
				const value = node.node.getChild("String");
				const op = node.node.firstChild?.nextSibling;
				if (name && value && op) matchers.push({ name: query.slice(name.from, name.to), op: query.slice(op.from, op.to), value: unquote(query.slice(value.from, value.to)) });
			}
			if (node.name === "LineFilter") {
				const op = node.node.getChild("Filter");
				const value = node.node.getChild("String");
				if (op && value) filters.push({ op: query.slice(op.from, op.to), value: unquote(query.slice(value.from, value.to)) });
			}
		},
	});
	if (error) return { error };
	if (!matchers.some((m) => (m.op === "=" && m.value !== "") || (m.op === "=~" && !regex(`^(?:${m.value})$`).test("")))) {
		return { error: "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will" };
	}
	return { matchers, filters };
}

function matches(q: ParsedQuery, entry: StoredLine): boolean {
	for (const m of q.matchers) {
		const value = entry.labels[m.name] ?? "";
		const ok = m.op === "=" ? value === m.value : m.op === "!=" ? value !== m.value : m.op === "=~" ? regex(`^(?:${m.value})$`).test(value) : !regex(`^(?:${m.value})$`).test(value);
		if (!ok) return false;
	}
	for (const f of q.filters) {
		const ok = f.op === "|=" ? entry.line.includes(f.value) : f.op === "!=" ? !entry.line.includes(f.value) : f.op === "|~" ? regex(f.value).test(entry.line) : !regex(f.value).test(entry.line);
		if (!ok) return false;
	}
	return true;
}

/** Starts the double on a random port on 127.0.0.1. */
export async function startLokiDouble(): Promise<LokiDouble> {
	const entries: StoredLine[] = [];
	const requests: LokiRequest[] = [];
	const faults: { status: number; body: string; remaining: number }[] = [];
	let ready = true;

	const text = (res: ServerResponse, status: number, body: string) => {
		res.writeHead(status, { "content-type": "text/plain; charset=utf-8" }).end(`${body}\n`);
		return status;
	};
	const json = (res: ServerResponse, body: unknown) => {
		res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
		return 200;
	};

	function handle(req: IncomingMessage, res: ServerResponse, body: string): number {
		const url = new URL(req.url ?? "/", "http://loki.local");
		if (url.pathname === "/ready") return ready ? text(res, 200, "ready") : text(res, 503, "Ingester not ready: waiting for 15s after being ready");
		const tenant = req.headers["x-scope-orgid"];
		if (typeof tenant !== "string" || tenant === "") return text(res, 401, "no org id");
		const fault = faults.find((f) => f.remaining > 0);
		if (fault) {
			fault.remaining--;
			return text(res, fault.status, fault.body);
		}
		const p = url.searchParams;
		if (req.method === "POST" && url.pathname === "/loki/api/v1/push") {
			const parsed = JSON.parse(body) as { streams: { stream: Record<string, string>; values: [unknown, string][] }[] };
			for (const s of parsed.streams) {
				for (const [ns, line] of s.values) {
					if (typeof ns !== "string") return text(res, 400, "error parsing push request: timestamp must be a string");
					entries.push({ ns: BigInt(ns), line, labels: s.stream });
				}
			}
			res.writeHead(204).end();
			return 204;
		}
		if (url.pathname === "/loki/api/v1/query_range") {
			const query = p.get("query");
			if (!query) return text(res, 400, "query parameter is required");
			const nowNs = BigInt(Date.now()) * 1_000_000n;
			const end = p.has("end") ? parseLokiTime(p.get("end")!) : nowNs;
			const start = p.has("start") ? parseLokiTime(p.get("start")!) : (end ?? nowNs) - 3_600_000_000_000n;
			if (start === undefined || end === undefined) return text(res, 400, "cannot parse start or end");
			if (end < start) return text(res, 400, "end timestamp must not be before or equal to start time");
			if (end - start > BigInt(MAX_QUERY_HOURS) * 3_600_000_000_000n) return text(res, 400, `the query time range exceeds the limit (query length: ${(end - start) / 3_600_000_000_000n}h, limit: ${MAX_QUERY_HOURS}h)`);
			const limit = p.has("limit") ? Number(p.get("limit")) : 100;
			if (!Number.isInteger(limit) || limit <= 0) return text(res, 400, "limit must be a positive value");
			if (limit > MAX_ENTRIES) return text(res, 400, `max entries limit per query exceeded, limit > max_entries_limit_per_query (${limit} > ${MAX_ENTRIES})`);
			const direction = p.get("direction") ?? "backward";
			if (direction !== "backward" && direction !== "forward") return text(res, 400, "invalid direction");
			const parsed = parseQuery(query);
			if ("error" in parsed) return text(res, 400, parsed.error);
			const selected = entries.filter((e) => e.ns >= start && e.ns < end && matches(parsed, e)).sort((a, b) => (a.ns === b.ns ? 0 : (a.ns < b.ns ? -1 : 1) * (direction === "forward" ? 1 : -1))).slice(0, limit);
			const streams = new Map<string, { stream: Record<string, string>; values: [string, string][] }>();
			for (const e of selected) {
				const key = JSON.stringify(Object.entries(e.labels).sort());
				const stream = streams.get(key) ?? { stream: e.labels, values: [] };
				stream.values.push([e.ns.toString(), e.line]);
				streams.set(key, stream);
			}
			return json(res, { status: "success", data: { resultType: "streams", result: [...streams.values()], stats: {} } });
		}
		const values = /^\/loki\/api\/v1\/label\/([^/]+)\/values$/.exec(url.pathname);
		if (values) return json(res, { status: "success", data: [...new Set(entries.map((e) => e.labels[values[1]!]).filter((v): v is string => v !== undefined))].sort() });
		if (url.pathname === "/loki/api/v1/labels") return json(res, { status: "success", data: [...new Set(entries.flatMap((e) => Object.keys(e.labels)))].sort() });
		return text(res, 404, "404 page not found");
	}

	const server = createServer((req, res) => {
		let body = "";
		req.on("data", (chunk: Buffer) => (body += chunk.toString()));
		req.on("end", () => {
			const url = new URL(req.url ?? "/", "http://loki.local");
			const status = handle(req, res, body);
			requests.push({ method: req.method ?? "GET", path: url.pathname, params: Object.fromEntries(url.searchParams), tenant: req.headers["x-scope-orgid"] as string | undefined, authorization: req.headers.authorization, status });
		});
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	return {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		requests,
		add(labels, lines) {
			for (const l of lines) entries.push({ ns: l.ns, line: l.line, labels });
		},
		failNext(status, body, count = 1) {
			faults.push({ status, body, remaining: count });
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
