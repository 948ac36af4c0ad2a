import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startProcess, waitUntil } from "./proc.ts";

/** Grafana Loki 2.9.13 beside the project (../shared/loki, see its README); CI has the same path. */
export const LOKI_BINARY = join(process.cwd(), "../shared/loki/loki");
const LOKI_CONFIG = join(process.cwd(), "../shared/loki/loki-local.yaml");

/** One line to push: its time in nanoseconds and its text. */
export interface PushEntry {
	readonly ns: bigint;
	readonly line: string;
}

/** A throwaway real Loki on 127.0.0.1 with multi-tenancy on (every request needs X-Scope-OrgID). */
export interface TestLoki {
	readonly url: string;
	/** Pushes one stream's entries for `tenant` through Loki's push API; fails on anything but 204. */
	push(tenant: string, labels: Record<string, string>, entries: readonly PushEntry[]): Promise<void>;
	stop(): Promise<void>;
}

/** Fails with a clear message when the Loki binary is missing: never a silent skip. */
export function requireLoki(): void {
	if (!existsSync(LOKI_BINARY) || !existsSync(LOKI_CONFIG)) {
		throw new Error(
			`Grafana Loki not found (${LOKI_BINARY}). The tests run against the real Loki 2.9.13 binary at ` +
				`../shared/loki/loki beside the project (with loki-local.yaml); no package registry carries it. See ` +
				`../shared/loki/README.md.`,
		);
	}
}

const NS_PER_MINUTE = 60_000_000_000n;

/** Whether the Loki at `url` answers queries (its labels API), which it does about 10 s after it starts. */
export async function lokiAnswers(url: string): Promise<boolean> {
	return (await fetch(`${url}/loki/api/v1/labels`, { headers: { "x-scope-orgid": "probe" } })).status === 200;
}

/** A Loki process that was started and not waited for: `ready` settles when it answers queries. */
export interface LaunchedLoki {
	readonly url: string;
	/** Loki's own output, for the error when it does not come up. */
	readonly logFile: string;
	readonly ready: Promise<void>;
	stop(): Promise<void>;
}

/**
 * Starts Loki with loki-local.yaml (its default limits kept) on random loopback ports and a fresh
 * data directory, without waiting for it (the run's shared Loki: files that need it wait, see sharedLoki).
 */
export async function launchLoki(): Promise<LaunchedLoki> {
	requireLoki();
	const dir = mkdtempSync(join(tmpdir(), "opsbot-loki-"));
	const [http, grpc] = [await freePort(), await freePort()];
	const config = readFileSync(LOKI_CONFIG, "utf8")
		.replaceAll("__HTTP_PORT__", String(http))
		.replaceAll("__GRPC_PORT__", String(grpc))
		.replaceAll("__DATA_DIR__", dir);
	writeFileSync(join(dir, "loki.yaml"), config);
	const logFile = join(dir, "loki.log");
	const proc = startProcess(LOKI_BINARY, [`-config.file=${join(dir, "loki.yaml")}`], { logFile });
	const url = `http://127.0.0.1:${http}`;
	const ready = waitUntil(() => lokiAnswers(url), 60_000, proc.logTail, proc.child);
	ready.catch(() => {}); // told to whoever waits for it
	return {
		url,
		logFile,
		ready,
		async stop() {
			// SIGKILL at once: its data is thrown away next, and Loki takes 3-5 s to stop gracefully, which every
			// run's end waited for.
			await proc.stop(0);
			rmSync(dir, { recursive: true, force: true });
		},
	};
}

/** A Loki of the test's own, started and waited for until it answers queries (about 10 s). */
export async function startLoki(): Promise<TestLoki> {
	const loki = await launchLoki();
	try {
		await loki.ready;
	} catch (err) {
		await loki.stop();
		throw err;
	}
	return { ...lokiAt(loki.url), stop: loki.stop };
}

/**
 * A client for a Loki someone else started (the run's shared one, see `sharedLoki`): pushes like
 * `startLoki`'s, and `stop()` does nothing because the owner stops it.
 */
export function lokiAt(url: string): TestLoki {
	return {
		url,
		async push(tenant, labels, entries) {
			// Loki accepts entries it will not show (older than about 3 h until flushed) and drops
			// those a week old or 10 min ahead; refuse them here so a test never reads silently missing data.
			const now = BigInt(Date.now()) * 1_000_000n;
			for (const e of entries) {
				if (e.ns < now - 170n * NS_PER_MINUTE || e.ns > now + 5n * NS_PER_MINUTE)
					throw new Error(`test data outside what Loki shows at once: ${e.ns} (now ${now})`);
			}
			// In ascending time per stream, one stream per request: in a push of several streams only the last one's result
			// decides the status.
			const values = [...entries]
				.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0))
				.map((e) => [e.ns.toString(), e.line]);
			for (let i = 0; i < values.length || i === 0; i += 5_000) {
				const res = await fetch(`${url}/loki/api/v1/push`, {
					method: "POST",
					headers: { "content-type": "application/json", "x-scope-orgid": tenant },
					body: JSON.stringify({ streams: [{ stream: labels, values: values.slice(i, i + 5_000) }] }),
				});
				if (res.status !== 204) throw new Error(`Loki refused the push (${res.status}): ${await res.text()}`);
			}
		},
		async stop() {},
	};
}

/** A tenant name no other test uses, so tests sharing one Loki never see each other's lines. */
export function freshTenant(prefix = "t"): string {
	return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
