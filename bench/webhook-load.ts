import { connect, type Socket } from "node:net";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

// The webhook load of the ingest and group-commit benches, in a module of its own: its worker thread imports
// only this file and Node's own modules, so starting it costs no CPU of the run it measures.

/**
 * Connections of the generator's keep-alive pool, and its in-flight cap: a request due while this many are out "could
 * not be sent".
 */
export const CONNECTIONS = 100;

/** An AlertManager-shaped body: `alerts` alerts of one group, with the labels and annotations a real rule carries. */
export function body(group: string, alerts: number, status: "firing" | "resolved" = "firing"): string {
	const startsAt = new Date(Date.now() - 60_000).toISOString();
	return JSON.stringify({
		version: "4",
		groupKey: `{}/{severity=~"warning|critical"}:{alertname="${group}"}`,
		truncatedAlerts: 0,
		status,
		receiver: "opsbot",
		groupLabels: { alertname: group },
		commonLabels: { alertname: group, severity: "warning", job: "node" },
		commonAnnotations: { summary: `${group} is unhappy`, runbook_url: "https://runbooks.local/disk" },
		externalURL: "http://alertmanager.local:9093",
		alerts: Array.from({ length: alerts }, (_, i) => ({
			status,
			labels: {
				alertname: group,
				severity: "warning",
				job: "node",
				instance: `host-${i}.prod.local:9100`,
				mountpoint: "/var/lib/docker",
			},
			annotations: {
				summary: `${group} is unhappy`,
				description: `Filesystem on host-${i} has less than 10% space left (currently 7.3%).`,
			},
			startsAt,
			endsAt: status === "resolved" ? new Date().toISOString() : "0001-01-01T00:00:00Z",
			generatorURL:
				"http://prometheus.local:9090/graph?g0.expr=" +
				"node_filesystem_avail_bytes+%2F+node_filesystem_size_bytes+%3C+0.1&g0.tab=1",
			fingerprint: `${group}-${i}`.slice(0, 64),
		})),
	});
}

export interface LoadJob {
	readonly url: string;
	readonly token: string;
	readonly rate: number;
	readonly seconds: number;
	/** Distinguishes the groups of one run from another's, so every webhook is news to the store. */
	readonly tag: string;
}

export interface LoadResult {
	readonly latencies: number[];
	readonly non2xx: number;
	readonly errors: number;
	readonly notSent: number;
	readonly sent: number;
}

/** One keep-alive connection of the generator, with at most one request in flight. */
interface LoadConnection {
	readonly socket: Socket;
	/** The request in flight: what to call with its status code, or with an error. */
	waiting?: (status: number | Error) => void;
	received: Buffer;
}

/**
 * The status code of the HTTP/1.1 response at the start of `received`, and how many bytes it takes, once
 * all of it has arrived (the receiver always answers with Content-Length).
 */
function completeResponse(received: Buffer): { status: number; length: number } | undefined {
	const headEnd = received.indexOf("\r\n\r\n");
	if (headEnd < 0) return undefined;
	const head = received.subarray(0, headEnd).toString("latin1");
	const bodyLength = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
	const length = headEnd + 4 + bodyLength;
	return received.length >= length ? { status: Number(head.slice(9, 12)), length } : undefined;
}

/**
 * Open loop over CONNECTIONS keep-alive sockets: request i is due at start + i/rate whatever happened to
 * the others, and its latency runs from when it was due (so a stalled server shows as latency, not as fewer
 * requests). 250 groups take turns, each turn with a different alert count, so no webhook is a duplicate of
 * an earlier one. Requests are written as prepared bytes and answers read as far as their status and
 * length: on two cores, the generator's own CPU delays the bot it measures (an HTTP client library used
 * 0.8 ms of CPU per webhook here, bench/RESULTS.md).
 */
async function generate(job: LoadJob): Promise<LoadResult> {
	const { hostname, port } = new URL(job.url);
	const total = job.rate * job.seconds;
	const requests = Array.from({ length: total }, (_, i) => {
		const json = Buffer.from(body(`${job.tag}${i % 250}`, 1 + (Math.floor(i / 250) % 7)));
		const head =
			`POST /alerts HTTP/1.1\r\nhost: ${hostname}:${port}\r\ncontent-type: application/json\r\n` +
			`authorization: Bearer ${job.token}\r\ncontent-length: ${json.length}\r\n\r\n`;
		return Buffer.concat([Buffer.from(head, "latin1"), json]);
	});
	const idle: LoadConnection[] = [];
	let opened = 0;
	const open = (): LoadConnection => {
		opened++;
		const connection: LoadConnection = { socket: connect(Number(port), hostname), received: Buffer.alloc(0) };
		let closed = false;
		const fail = (err: Error) => {
			if (closed) return;
			closed = true;
			opened--;
			connection.waiting?.(err);
			connection.waiting = undefined;
			const at = idle.indexOf(connection);
			if (at >= 0) idle.splice(at, 1);
		};
		connection.socket.setNoDelay(true);
		connection.socket.on("data", (chunk: Buffer) => {
			connection.received = connection.received.length === 0 ? chunk : Buffer.concat([connection.received, chunk]);
			const response = completeResponse(connection.received);
			if (!response) return;
			connection.received = connection.received.subarray(response.length);
			const waiting = connection.waiting;
			connection.waiting = undefined;
			idle.push(connection);
			waiting?.(response.status);
		});
		connection.socket.on("error", fail);
		connection.socket.on("close", () => fail(new Error("connection closed")));
		return connection;
	};
	const latencies: number[] = [];
	let non2xx = 0;
	let errors = 0;
	let notSent = 0;
	let answered = 0;
	let sent = 0;
	let next = 0;
	let allAnswered = () => {};
	const send = (i: number, due: number) => {
		const connection = idle.pop() ?? open();
		sent++;
		connection.waiting = (status) => {
			answered++;
			if (status instanceof Error) errors++;
			else {
				latencies.push(performance.now() - due);
				if (status < 200 || status > 299) non2xx++;
			}
			if (next >= total && answered === sent) allAnswered();
		};
		connection.socket.write(requests[i]!);
	};
	const started = performance.now();
	while (next < total) {
		const now = performance.now();
		for (; next < total && started + (next * 1_000) / job.rate <= now; next++) {
			if (idle.length === 0 && opened >= CONNECTIONS) notSent++;
			else send(next, started + (next * 1_000) / job.rate);
		}
		await new Promise((resolve) => setTimeout(resolve, 1));
	}
	if (answered < sent) await new Promise<void>((resolve) => (allAnswered = resolve));
	for (const connection of [...idle]) connection.socket.destroy();
	return { latencies: latencies.sort((a, b) => a - b), non2xx, errors, notSent, sent };
}

// The generator runs in its own thread: the Discord double (this thread) must not delay its clock.
if (!isMainThread && (workerData as { ingestLoad?: LoadJob } | null)?.ingestLoad) {
	void generate((workerData as { ingestLoad: LoadJob }).ingestLoad).then((result) => parentPort?.postMessage(result));
}

export function runLoad(job: LoadJob): Promise<LoadResult> {
	return new Promise((resolve, reject) => {
		const worker = new Worker(new URL(import.meta.url), { workerData: { ingestLoad: job } });
		worker.once("message", (result: LoadResult) => {
			resolve(result);
			void worker.terminate();
		});
		worker.once("error", reject);
	});
}
