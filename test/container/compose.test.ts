import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseDocument } from "yaml";
import { requireBinary } from "../support/proc.ts";

// No compose tool runs offline here: the example is parsed, the keys opsbot relies on are checked,
// and its AlertManager config goes through amtool (and, in image.spec.ts, a real AlertManager).

interface Service {
	build?: string;
	image?: string;
	env_file?: string | string[];
	environment?: Record<string, string> | string[];
	volumes?: string[];
	secrets?: (string | { source: string; target?: string })[];
	configs?: (string | { source: string; target?: string })[];
	healthcheck?: { disable?: boolean; test?: unknown; interval?: string; start_period?: string };
	stop_grace_period?: string;
	read_only?: boolean;
}
interface Compose {
	services: Record<string, Service>;
	volumes?: Record<string, unknown>;
	secrets?: Record<string, { file?: string }>;
	configs?: Record<string, { content?: string; file?: string }>;
}

const text = readFileSync("compose.yaml", "utf8");
const compose = parse(text) as Compose;
const opsbot = compose.services.opsbot;
const alertmanager = compose.services.alertmanager;
const dockerfile = readFileSync("Dockerfile", "utf8");

const seconds = (duration: string | undefined) => {
	const m = /^(\d+)(s|m)$/.exec(duration ?? "");
	return m ? Number(m[1]) * (m[2] === "m" ? 60 : 1) : Number.NaN;
};
const names = (list: Service["secrets"]) => (list ?? []).map((s) => (typeof s === "string" ? s : s.source));

/** The AlertManager config embedded in compose.yaml, as AlertManager reads it. */
function composeAlertmanagerConfig(): string {
	const content = compose.configs?.alertmanager_config?.content;
	if (!content) throw new Error("compose.yaml: configs.alertmanager_config.content is missing");
	return content;
}

describe("compose.yaml, the example that joins opsbot to the team's stack", () => {
	it("is valid YAML with unique keys and both services", () => {
		const doc = parseDocument(text, { uniqueKeys: true });

		expect(doc.errors).toEqual([]);
		expect(Object.keys(compose.services)).toEqual(expect.arrayContaining(["opsbot", "alertmanager"]));
	});

	it("builds opsbot from this Dockerfile and takes its secrets from opsbot.env, never from the file", () => {
		const environmentNames = Object.values(compose.services).flatMap((s) =>
			Array.isArray(s.environment) ? s.environment.map((e) => e.split("=")[0] ?? "") : Object.keys(s.environment ?? {}),
		);

		expect(opsbot?.build).toBe(".");
		expect([opsbot?.env_file].flat()).toContain("opsbot.env");
		expect(environmentNames).toContain("OPSBOT_CONFIG");
		for (const name of environmentNames) expect(name).not.toMatch(/TOKEN|PASSWORD|SECRET|BASIC_AUTH|DATABASE_URL|KEY/);
	});

	it("mounts the ops config read-only where the image looks for it; keeps state in one named volume at /data", () => {
		const configTarget = /ENV[\s\S]*?OPSBOT_CONFIG=(\S+)/.exec(dockerfile)?.[1];
		const volumes = opsbot?.volumes ?? [];

		expect(configTarget).toBe("/config/opsbot.yaml");
		expect(volumes).toContain(`./opsbot.yaml:${configTarget}:ro`);
		const data = volumes.filter((v) => v.split(":")[1] === "/data");
		expect(data).toHaveLength(1);
		expect(Object.keys(compose.volumes ?? {})).toContain(data[0]?.split(":")[0]);
		expect(dockerfile).toMatch(/^VOLUME \["\/data"\]$/m);
	});

	it("keeps the image's healthcheck and gives SIGTERM's 15 s drain time to finish", () => {
		expect(dockerfile).toMatch(/^HEALTHCHECK .*\n?.*\/healthz/m);
		expect(opsbot?.healthcheck?.disable).not.toBe(true);
		expect(opsbot?.healthcheck?.test).toBeUndefined();
		expect(seconds(opsbot?.stop_grace_period)).toBeGreaterThan(15);
		expect(opsbot?.read_only).toBe(true);
	});

	it("declares every secret, config and volume the services use", () => {
		for (const service of Object.values(compose.services)) {
			for (const name of names(service.secrets)) expect(Object.keys(compose.secrets ?? {})).toContain(name);
			for (const name of names(service.configs)) expect(Object.keys(compose.configs ?? {})).toContain(name);
			for (const volume of service.volumes ?? []) {
				const source = volume.split(":")[0] ?? "";
				if (!source.startsWith(".") && !source.startsWith("/"))
					expect(Object.keys(compose.volumes ?? {})).toContain(source);
			}
		}
	});

	it("points AlertManager at opsbot's webhook with the token from a credentials file; amtool accepts the config", () => {
		requireBinary("/usr/bin/amtool", "amtool", "prometheus-alertmanager");
		const config = parse(composeAlertmanagerConfig()) as {
			receivers: {
				name: string;
				webhook_configs: {
					url: string;
					send_resolved: boolean;
					http_config: { authorization: { type: string; credentials_file: string } };
				}[];
			}[];
		};
		const webhook = config.receivers.find((r) => r.name === "opsbot")?.webhook_configs[0];
		const tokenSecret = alertmanager?.secrets?.find(
			(s) => typeof s !== "string" && s.source === "opsbot_webhook_token",
		);
		const dir = mkdtempSync(join(tmpdir(), "opsbot-compose-"));
		writeFileSync(join(dir, "token"), "t".repeat(32));
		writeFileSync(
			join(dir, "alertmanager.yml"),
			composeAlertmanagerConfig().replace(
				webhook?.http_config.authorization.credentials_file ?? "",
				join(dir, "token"),
			),
		);

		const out = execFileSync("/usr/bin/amtool", ["check-config", join(dir, "alertmanager.yml")], {
			encoding: "utf8",
		});

		expect(out).toContain("SUCCESS");
		expect(webhook?.url).toBe("http://opsbot:9095/alerts");
		expect(webhook?.send_resolved).toBe(true);
		expect(webhook?.http_config.authorization).toEqual({
			type: "Bearer",
			credentials_file: `/run/secrets/${
				typeof tokenSecret === "object" ? (tokenSecret.target ?? tokenSecret.source) : ""
			}`,
		});
	});
});
