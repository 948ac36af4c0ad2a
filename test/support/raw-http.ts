import { createServer, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";

/** One HTTP response as read off the socket. */
export interface RawResponse {
	readonly status: number;
	readonly headers: Readonly<Record<string, string>>;
	readonly body: string;
}

function parseResponse(data: Buffer): RawResponse | undefined {
	const end = data.indexOf("\r\n\r\n");
	if (end < 0) return undefined;
	const [statusLine = "", ...lines] = data.subarray(0, end).toString("latin1").split("\r\n");
	const headers = Object.fromEntries(
		lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
	);
	const body = data.subarray(end + 4);
	if (body.length < Number(headers["content-length"] ?? 0)) return undefined;
	return { status: Number(statusLine.split(" ")[1]), headers, body: body.toString("utf8") };
}

/**
 * Writes `text` as is on a fresh TCP connection (no client normalises the request line) and reads one response; status
 * 0 when none comes within 5 s.
 */
export function rawRequest(port: number, text: string): Promise<RawResponse> {
	return new Promise((resolve) => {
		const socket = connect(port, "127.0.0.1");
		let data = Buffer.alloc(0);
		socket.setTimeout(5_000, () => socket.destroy());
		socket.on("data", (chunk: Buffer) => {
			data = Buffer.concat([data, chunk]);
			const response = parseResponse(data);
			if (response) {
				socket.destroy();
				resolve(response);
			}
		});
		// A reset after a refusal is expected: the server answers without reading the body.
		socket.on("error", () => undefined);
		socket.on("close", () => resolve(parseResponse(data) ?? { status: 0, headers: {}, body: "" }));
		socket.write(text);
	});
}

/** An HTTP server on 127.0.0.1 that accepts requests and never answers them. */
export async function startHangingServer(): Promise<{
	url: string;
	requests: () => number;
	close: () => Promise<void>;
}> {
	let requests = 0;
	const server: Server = createServer(() => void requests++);
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	return {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		requests: () => requests,
		close: async () => {
			server.closeAllConnections();
			await new Promise((resolve) => server.close(resolve));
		},
	};
}
