import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, requireBinary, startReadyServer } from "./proc.ts";

const ALERTMANAGER = "/usr/bin/prometheus-alertmanager";

/** A throwaway AlertManager 0.25 on 127.0.0.1 with clustering off. */
export interface TestAlertManager {
	readonly url: string;
	/**
	 * Rewrites its configuration with these options (the webhook URL, timings) and reloads it
	 * (`POST /-/reload`): alerts it holds stay. How tests drop webhooks on purpose (a dead port), then mend it.
	 */
	reconfigure(options: AlertManagerOptions): Promise<void>;
	stop(): Promise<void>;
}

/** Options: where its webhook receiver posts, with which bearer token, and how fast groups flush. */
export interface AlertManagerOptions {
	readonly webhookUrl?: string;
	readonly bearerToken?: string;
	readonly maxAlerts?: number;
	/** false: AlertManager sends no resolution (default true). */
	readonly sendResolved?: boolean;
	readonly groupWait?: string;
	readonly groupInterval?: string;
	/** A port chosen beforehand (freePort), so opsbot's config can name it before AlertManager starts. */
	readonly port?: number;
}

/** Starts AlertManager; without a webhook URL its only receiver is a black hole. */
export async function startAlertManager(options: AlertManagerOptions = {}): Promise<TestAlertManager> {
	requireBinary(ALERTMANAGER, "Prometheus AlertManager", "prometheus-alertmanager");
	const dir = mkdtempSync(join(tmpdir(), "opsbot-am-"));
	const port = options.port ?? (await freePort());
	const url = `http://127.0.0.1:${port}`;
	writeConfig(join(dir, "alertmanager.yml"), options);
	const server = await startReadyServer(
		ALERTMANAGER,
		[
			`--config.file=${join(dir, "alertmanager.yml")}`,
			`--storage.path=${join(dir, "data")}`,
			`--web.listen-address=127.0.0.1:${port}`,
			"--cluster.listen-address=",
			`--web.external-url=${url}`,
			"--log.level=warn",
		],
		{ dir, logFile: join(dir, "alertmanager.log"), url },
	);
	return {
		url: server.url,
		stop: () => server.stop(),
		async reconfigure(next) {
			writeConfig(join(dir, "alertmanager.yml"), next);
			const res = await fetch(`${url}/-/reload`, { method: "POST" });
			if (res.status !== 200)
				throw new Error(`AlertManager refused the reload: HTTP ${res.status} ${await res.text()}`);
		},
	};
}

function writeConfig(path: string, options: AlertManagerOptions): void {
	const auth = options.bearerToken
		? `\n        http_config: { authorization: { type: Bearer, credentials: "${options.bearerToken}" } }`
		: "";
	const webhook = options.webhookUrl
		? `\n    webhook_configs:\n      - url: "${options.webhookUrl}"` +
			`\n        send_resolved: ${options.sendResolved ?? true}` +
			`\n        max_alerts: ${options.maxAlerts ?? 0}${auth}`
		: "";
	writeFileSync(
		path,
		`route:\n  receiver: opsbot\n  group_by: [alertname]\n  group_wait: ${options.groupWait ?? "1s"}\n` +
			`  group_interval: ${options.groupInterval ?? "2s"}\n  repeat_interval: 1h\n` +
			`receivers:\n  - name: opsbot${webhook}\n`,
		{ mode: 0o600 },
	);
}

/** Posts alerts through AlertManager's API v2 (how tests inject them). */
export async function postAlerts(
	url: string,
	alerts: {
		labels: Record<string, string>;
		annotations?: Record<string, string>;
		startsAt?: string;
		endsAt?: string;
		generatorURL?: string;
	}[],
): Promise<void> {
	const res = await fetch(`${url}/api/v2/alerts`, {
		method: "POST",
		headers: { "content-type": "application/json" },
		body: JSON.stringify(alerts),
	});
	if (res.status !== 200) throw new Error(`AlertManager refused the alerts: HTTP ${res.status} ${await res.text()}`);
}

/**
 * A silence as AlertManager holds it (`GET /api/v2/silence/{id}`), read directly so tests check AlertManager's state,
 * not opsbot's reading of it.
 */
export async function readSilence(
	url: string,
	id: string,
): Promise<{
	id: string;
	status: { state: string };
	matchers: { name: string; value: string; isRegex: boolean; isEqual?: boolean }[];
	createdBy: string;
	comment: string;
	startsAt: string;
	endsAt: string;
}> {
	const res = await fetch(new URL(`api/v2/silence/${encodeURIComponent(id)}`, url.endsWith("/") ? url : `${url}/`));
	if (!res.ok) throw new Error(`AlertManager answered HTTP ${res.status} for silence ${id}`);
	return (await res.json()) as Awaited<ReturnType<typeof readSilence>>;
}

/** `amtool` from the same package: how a person makes a silence outside opsbot. */
export async function amtool(url: string, args: readonly string[]): Promise<string> {
	requireBinary("/usr/bin/amtool", "amtool", "prometheus-alertmanager");
	const { execFile } = await import("node:child_process");
	return new Promise((resolve, reject) =>
		execFile("/usr/bin/amtool", [`--alertmanager.url=${url}`, ...args], { timeout: 20_000 }, (err, stdout, stderr) =>
			err ? reject(new Error(`amtool ${args.join(" ")} failed: ${stderr || err.message}`)) : resolve(stdout.trim()),
		),
	);
}

/** Every silence AlertManager holds, read directly. */
export async function readSilences(url: string): Promise<Awaited<ReturnType<typeof readSilence>>[]> {
	const res = await fetch(new URL("api/v2/silences", url.endsWith("/") ? url : `${url}/`));
	if (!res.ok) throw new Error(`AlertManager answered HTTP ${res.status} for the silences`);
	return (await res.json()) as Awaited<ReturnType<typeof readSilence>>[];
}
