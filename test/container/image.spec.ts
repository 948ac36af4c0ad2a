import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { postAlerts, type TestAlertManager } from "../support/alertmanager.ts";
import { freePort, requireBinary, startReadyServer } from "../support/proc.ts";

/**
 * The image as shipped: built from the Dockerfile with podman (on a local node:24-slim stand-in,
 * no registry here), run with the hardening compose.yaml uses, against the Discord double, a real
 * AlertManager configured as in compose.yaml, and a local HTTP service for /health. Run by
 * `npm run test:container` (.ci/run, after `npm test`), not by `npm test`: it takes minutes.
 */

const run = promisify(execFile);
const IMAGE = "opsbot:test";
const ALERTS = "400000000000000001";
const suffix = randomBytes(4).toString("hex");
const volume = `opsbot-test-data-${suffix}`;
const containers: string[] = [];
const figures: Record<string, string> = {};

let podmanEnv: NodeJS.ProcessEnv = process.env;
async function podman(args: string[], timeoutMs = 60_000): Promise<{ stdout: string; stderr: string; code: number }> {
	try {
		const { stdout, stderr } = await run("podman", args, {
			env: podmanEnv,
			timeout: timeoutMs,
			maxBuffer: 64 * 1024 * 1024,
		});
		return { stdout, stderr, code: 0 };
	} catch (err) {
		const e = err as { stdout?: string; stderr?: string; code?: number | string };
		if (typeof e.code !== "number") throw err;
		return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: e.code };
	}
}
async function podmanOk(args: string[], timeoutMs?: number): Promise<string> {
	const r = await podman(args, timeoutMs);
	if (r.code !== 0) throw new Error(`podman ${args.join(" ")} exited ${r.code}:\n${r.stderr.slice(-3_000)}`);
	return r.stdout.trim();
}

/** A throwaway AlertManager on 127.0.0.1 running `configYaml` as its whole config. */
async function startAlertManagerWith(configYaml: string): Promise<Pick<TestAlertManager, "url" | "stop">> {
	const binary = "/usr/bin/prometheus-alertmanager";
	requireBinary(binary, "Prometheus AlertManager", "prometheus-alertmanager");
	const dir = mkdtempSync(join(tmpdir(), "opsbot-container-am-"));
	const port = await freePort();
	const url = `http://127.0.0.1:${port}`;
	writeFileSync(join(dir, "alertmanager.yml"), configYaml, { mode: 0o600 });
	return startReadyServer(
		binary,
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
}

/** The container's JSON log lines (opsbot logs to stdout; podman logs gives both streams). */
async function logLines(name: string): Promise<Record<string, unknown>[]> {
	const { stdout } = await podman(["logs", name]);
	return stdout
		.split("\n")
		.filter((l) => l.startsWith("{"))
		.map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("the container image: built with podman, run against the Discord double and a real AlertManager", () => {
	let double: DiscordDouble;
	let api: Server;
	let alertmanager: Pick<TestAlertManager, "url" | "stop">;
	let dir: string;
	let webhookPort: number;
	let envFile: string;
	let opsFile: string;

	beforeAll(async () => {
		const base = await run("bash", [resolve("../shared/container/base-image.sh")], {
			timeout: 900_000,
			maxBuffer: 64 * 1024 * 1024,
		}).catch((err: { stderr?: string; message: string }) => {
			throw new Error(`../shared/container/base-image.sh failed: ${err.stderr?.slice(-3_000) ?? err.message}`);
		});
		const conf = /CONTAINERS_CONF=(\S+)/.exec(base.stdout)?.[1];
		if (!conf) throw new Error(`base-image.sh printed no CONTAINERS_CONF:\n${base.stdout}`);
		podmanEnv = { ...process.env, CONTAINERS_CONF: conf };

		const started = Date.now();
		await podmanOk(["build", "--format", "docker", "--pull=never", "-t", IMAGE, "."], 900_000);
		figures.build = `${((Date.now() - started) / 1000).toFixed(1)} s`;

		// /slow answers after 3 s: a /health still running when SIGTERM arrives.
		api = createServer(
			(req, res) => void setTimeout(() => res.end('{"status":"ok"}'), req.url?.startsWith("/slow") ? 3_000 : 0),
		);
		await new Promise<void>((done) => api.listen(0, "127.0.0.1", done));
		double = await startDiscordDouble({ guild: { channels: [{ id: ALERTS, name: "alerts" }] } });
		webhookPort = await freePort();
		const webhookToken = randomBytes(24).toString("hex");

		// World-readable: the container's uid 1000 reads these through the bind mount.
		dir = mkdtempSync(join(tmpdir(), "opsbot-container-"));
		chmodSync(dir, 0o755);
		opsFile = join(dir, "opsbot.yaml");
		writeFileSync(
			opsFile,
			`discord: { guildId: "${double.guildId}" }
access: { commands: { health: [everyone] } }
environments:
  local:
    http: [{ name: backend, url: "http://127.0.0.1:${(api.address() as AddressInfo).port}/api/health", timeoutMs: ` +
				`2000 }]
  slow:
    http: [{ name: backend, url: "http://127.0.0.1:${(api.address() as AddressInfo).port}/slow", timeoutMs: 5000 }]
alerts:
  listen: { host: 127.0.0.1, port: ${webhookPort} }
  defaultChannel: "${ALERTS}"
  silenceWatch: { intervalSeconds: 3600 }
`,
			{ mode: 0o644 },
		);
		// Secrets only at run time, random for this run: an env file as compose's env_file gives them.
		envFile = join(dir, "opsbot.env");
		writeFileSync(
			envFile,
			`DISCORD_TOKEN=${randomBytes(24).toString("base64url")}\nDISCORD_APPLICATION_ID=${double.applicationId}\n` +
				`DISCORD_API_URL=${double.apiUrl}\nWEBHOOK_TOKEN=${webhookToken}\n`,
			{ mode: 0o600 },
		);

		// compose.yaml's AlertManager config, with the compose names replaced by this machine's.
		const am = parse(
			(parse(readFileSync("compose.yaml", "utf8")) as { configs: { alertmanager_config: { content: string } } }).configs
				.alertmanager_config.content,
		) as {
			route: Record<string, unknown>;
			receivers: {
				name: string;
				webhook_configs: { url: string; http_config: { authorization: { credentials_file: string } } }[];
			}[];
		};
		const webhook = am.receivers.find((r) => r.name === "opsbot")?.webhook_configs[0];
		if (webhook?.url !== "http://opsbot:9095/alerts")
			throw new Error(`compose.yaml's AlertManager posts to ${webhook?.url}`);
		webhook.url = `http://127.0.0.1:${webhookPort}/alerts`;
		writeFileSync(join(dir, "webhook-token"), webhookToken, { mode: 0o600 });
		webhook.http_config.authorization.credentials_file = join(dir, "webhook-token");
		Object.assign(am.route, { group_wait: "1s", group_interval: "2s" }); // compose waits 30 s / 5 min
		alertmanager = await startAlertManagerWith(stringify(am));
	}, 1_800_000);

	afterAll(async () => {
		for (const name of containers) await podman(["rm", "--force", "--time", "0", name]);
		await podman(["volume", "rm", "--force", volume]);
		await alertmanager?.stop();
		await double?.close();
		await new Promise((done) => (api ? api.close(done) : done(undefined)));
		if (dir) rmSync(dir, { recursive: true, force: true });
		console.log(
			`container figures: ${Object.entries(figures)
				.map(([k, v]) => `${k} ${v}`)
				.join(", ")}`,
		);
	});

	/** `podman run` as compose.yaml runs it: read-only root, no capabilities, state in the volume. */
	async function startContainer(): Promise<string> {
		const name = `opsbot-test-${suffix}-${containers.length}`;
		containers.push(name);
		const started = Date.now();
		await podmanOk([
			"run",
			"--detach",
			"--name",
			name,
			"--network",
			"host",
			"--env-file",
			envFile,
			"--volume",
			`${opsFile}:/config/opsbot.yaml:ro`,
			"--volume",
			`${volume}:/data`,
			"--read-only",
			"--cap-drop",
			"ALL",
			"--security-opt",
			"no-new-privileges",
			IMAGE,
		]);
		const deadline = Date.now() + 30_000;
		for (;;) {
			const lines = await logLines(name);
			if (
				lines.some((l) => l.msg === "connected to Discord") &&
				lines.some((l) => l.msg === "alert receiver listening")
			)
				break;
			const state = await podmanOk(["inspect", name, "--format", "{{.State.Status}} {{.State.ExitCode}}"]);
			if (!state.startsWith("running") || Date.now() > deadline)
				throw new Error(
					`opsbot not ready in its container (${state}):\n` +
						`${(await podman(["logs", name])).stderr.slice(-3_000)}${JSON.stringify(lines.slice(-10))}`,
				);
			await new Promise((done) => setTimeout(done, 200));
		}
		figures[`ready${containers.length}`] = `${((Date.now() - started) / 1000).toFixed(1)} s`;
		return name;
	}

	/** SIGTERM through `podman stop` (SIGKILL only after 15 s); returns the exit code and how long it took. */
	async function stopContainer(name: string): Promise<{ exitCode: number; seconds: number }> {
		const started = Date.now();
		await podmanOk(["stop", "--time", "15", name], 60_000);
		const seconds = (Date.now() - started) / 1000;
		return { exitCode: Number(await podmanOk(["inspect", name, "--format", "{{.State.ExitCode}}"])), seconds };
	}

	let first: string;
	let alertMessageId: string;

	it("is small: runtime dependencies only, no build tools, nothing secret or local baked in", async () => {
		const bytes = Number(await podmanOk(["image", "inspect", IMAGE, "--format", "{{.Size}}"]));
		const baseBytes = Number(
			await podmanOk(["image", "inspect", "docker.io/library/node:24-slim", "--format", "{{.Size}}"]),
		);
		figures.image =
			`${(bytes / 1e6).toFixed(0)} MB (base ${(baseBytes / 1e6).toFixed(0)} MB + opsbot ` +
			`${((bytes - baseBytes) / 1e6).toFixed(0)} MB)`;
		// From the lockfile: dev-only packages must be absent; every runtime one that applies to linux/x64/glibc present.
		const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as {
			packages: Record<string, { dev?: boolean; os?: string[]; cpu?: string[]; libc?: string[] }>;
		};
		const installed = Object.entries(lock.packages).filter(([path]) => path.startsWith("node_modules/"));
		const devOnly = installed.filter(([, p]) => p.dev).map(([path]) => path);
		const fits = (list: string[] | undefined, value: string) => !list || list.includes(value);
		const runtime = installed
			.filter(([, p]) => !p.dev && fits(p.os, "linux") && fits(p.cpu, "x64") && fits(p.libc, "glibc"))
			.map(([path]) => path);
		const script =
			`cd /app; for p in "$@"; do [ -e "$p" ] && echo "present $p" || echo "missing $p"; done; for ` +
			`t in gcc cc make python3 g++ curl; do command -v $t; done; ls -A /app`;
		const out = (
			await podmanOk(["run", "--rm", "--entrypoint", "sh", IMAGE, "-c", script, "sh", ...devOnly, ...runtime])
		).split("\n");
		const [inspected] = JSON.parse(await podmanOk(["image", "inspect", IMAGE])) as {
			Config: { Env: string[]; User: string };
			Healthcheck?: { Test: string[] };
		}[];
		const config = inspected?.Config ?? { Env: [], User: "" };
		const healthcheck = inspected?.Healthcheck;

		expect(devOnly).toContain("node_modules/vitest");
		expect(out.filter((l) => l.startsWith("present ")).map((l) => l.slice(8))).toEqual(runtime);
		expect(out.filter((l) => !/^(present|missing) /.test(l)).sort()).toEqual([
			"bin",
			"data",
			"deploy-commands.ts",
			"node_modules",
			"package-lock.json",
			"package.json",
			"src",
		]);
		expect(config.Env.map((e) => e.split("=")[0])).not.toEqual(
			expect.arrayContaining([expect.stringMatching(/TOKEN|PASSWORD|SECRET|BASIC_AUTH|DATABASE_URL/)]),
		);
		expect(config.User).toBe("node");
		expect(healthcheck?.Test.join(" ")).toContain("/healthz");
		expect(bytes - baseBytes).toBeLessThan(80e6);
	});

	it("starts as a non-root user with a read-only root and its state in the /data volume", async () => {
		first = await startContainer();

		const uid = await podmanOk(["exec", first, "id", "-u"]);
		const pid1 = await podmanOk(["exec", first, "cat", "/proc/1/cmdline"]);
		const writeApp = await podman(["exec", first, "touch", "/app/src/x"]);
		const writeData = await podman(["exec", first, "touch", "/data/probe"]);

		expect(Number(uid)).not.toBe(0);
		// npm start's command; signals go straight to node
		expect(pid1.split("\0").filter(Boolean)).toEqual(["node", "--max-semi-space-size=4", "src/main.ts"]);
		expect(writeApp.code).not.toBe(0);
		expect(writeData.code).toBe(0);
		expect((await podmanOk(["exec", first, "ls", "/data"])).split("\n")).toContain("opsbot.sqlite");
	});

	it("answers /healthz and passes its own HEALTHCHECK", async () => {
		const healthz = await fetch(`http://127.0.0.1:${webhookPort}/healthz`);
		const readyz = await fetch(`http://127.0.0.1:${webhookPort}/readyz`);
		const check = await podman(["healthcheck", "run", first]);

		expect(healthz.status).toBe(200);
		expect(readyz.status).toBe(200);
		expect(check.code, check.stdout + check.stderr).toBe(0);
		expect(await podmanOk(["inspect", first, "--format", "{{.State.Health.Status}}"])).toBe("healthy");
	});

	it("answers a slash command through the Discord double", async () => {
		const sent = await double.sendInteraction({
			kind: "command",
			name: "health",
			options: [{ name: "env", type: 3, value: "local" }],
		});

		const first = await sent.response();
		const message = await double.waitFor(
			() => (double.originalMessage(sent.id)?.embeds.length ? double.originalMessage(sent.id) : undefined),
			15_000,
		);

		expect(first.type).toBe(5);
		expect(message.embeds[0]).toMatchObject({ title: "Health of local: all good" });
	});

	it("posts an alert that AlertManager sends to its webhook with the token from the credentials file", async () => {
		await postAlerts(alertmanager.url, [
			{
				labels: { alertname: "ContainerProbe", severity: "warning", service: "api" },
				annotations: { summary: "sent through the image" },
			},
		]);

		const message = await double.waitFor(
			() =>
				double
					.channelMessages(ALERTS)
					.find((m) => String((m.embeds[0] as { title?: string } | undefined)?.title).includes("ContainerProbe")),
			30_000,
		);
		alertMessageId = message.id;

		expect((message.embeds[0] as { title: string }).title).toBe("🟠 WARNING · ContainerProbe");
		expect((await logLines(first)).filter((l) => l.msg === "webhook refused: bad or missing credentials")).toEqual([]);
	});

	it("on SIGTERM finishes the reply in flight, then exits 0 well within 15 s, logging 'stopped'", async () => {
		const sent = await double.sendInteraction({
			kind: "command",
			name: "health",
			options: [{ name: "env", type: 3, value: "slow" }],
		});
		await sent.response();

		const { exitCode, seconds } = await stopContainer(first);
		figures["stop with a 3 s reply in flight"] = `${seconds.toFixed(1)} s`;

		expect(double.originalMessage(sent.id)?.embeds[0]).toMatchObject({ title: "Health of slow: all good" });
		expect(exitCode).toBe(0);
		expect(seconds).toBeLessThan(15);
		expect((await logLines(first)).at(-1)).toMatchObject({ msg: "stopped" });
	});

	it("a new container on the same volume picks the alert group up where the first left it", async () => {
		const second = await startContainer();

		await postAlerts(alertmanager.url, [
			{
				labels: { alertname: "ContainerProbe", severity: "warning", service: "api" },
				annotations: { summary: "sent through the image" },
				endsAt: new Date(Date.now() - 1_000).toISOString(),
			},
		]);
		const resolved = await double.waitFor(
			() =>
				(double.messages.get(alertMessageId)?.embeds[0] as { title?: string } | undefined)?.title?.startsWith("✅")
					? double.messages.get(alertMessageId)
					: undefined,
			30_000,
		);
		const stopped = await stopContainer(second);

		expect(resolved.embeds[0]).toMatchObject({ title: "✅ RESOLVED · ContainerProbe" });
		expect(
			double
				.channelMessages(ALERTS)
				.filter((m) => String((m.embeds[0] as { title?: string }).title).includes("ContainerProbe")),
		).toHaveLength(1);
		expect(stopped.exitCode).toBe(0);
	});
});
