import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request the proxy forwarded (or is holding). */
export interface ProxiedRequest {
	readonly path: string;
	readonly at: number;
	/** The PromQL `query` parameter, from the URL or the form body (set once the body went through). */
	query: string | undefined;
	/** When the real server's answer was sent on, or undefined while held or in flight. */
	answeredAt: number | undefined;
}

/**
 * A loopback HTTP proxy in front of a real server (e.g. Prometheus) that holds the requests `gated`
 * picks until the test opens the gate: a server that answers slowly, as long as the test needs, with
 * every request counted.
 */
export interface GatedProxy {
	readonly url: string;
	readonly requests: readonly ProxiedRequest[];
	/** Lets every held request and every later one through. */
	open(): void;
	/** Holds matching requests again from now on. */
	close(): void;
	stop(): Promise<void>;
}

export async function startGatedProxy(target: string, gated: (path: string) => boolean): Promise<GatedProxy> {
	const upstream = new URL(target);
	const requests: ProxiedRequest[] = [];
	const held: (() => void)[] = [];
	let isOpen = false;

	function forward(req: IncomingMessage, res: ServerResponse, record: ProxiedRequest): void {
		const body: Buffer[] = [];
		req.on("data", (chunk: Buffer) => body.push(chunk));
		req.on("end", () => {
			const form = new URLSearchParams(Buffer.concat(body).toString("utf8"));
			record.query = form.get("query") ?? record.query;
		});
		const out = request(
			{ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
			(answer) => {
				res.writeHead(answer.statusCode ?? 502, answer.headers);
				answer.pipe(res);
				answer.on("end", () => (record.answeredAt = Date.now()));
			},
		);
		out.on("error", () => res.destroy());
		req.pipe(out);
	}

	const server = createServer((req, res) => {
		const path = req.url ?? "/";
		const query = new URL(path, "http://proxy.local").searchParams.get("query") ?? undefined;
		const record: ProxiedRequest = { path, at: Date.now(), query, answeredAt: undefined };
		requests.push(record);
		if (!isOpen && gated(new URL(record.path, "http://proxy.local").pathname)) {
			req.pause();
			held.push(() => {
				req.resume();
				forward(req, res, record);
			});
			return;
		}
		forward(req, res, record);
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const proxy: GatedProxy = {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		requests,
		open() {
			isOpen = true;
			for (const release of held.splice(0)) release();
		},
		close() {
			isOpen = false;
		},
		async stop() {
			proxy.open();
			server.closeAllConnections();
			await new Promise<void>((resolve) => server.close(() => resolve()));
		},
	};
	return proxy;
}
