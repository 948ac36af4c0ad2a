import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { maintenanceMatchers, maintenanceStart } from "../../src/commands/silence.ts";
import { ConfigError, loadConfig, type OpsFile } from "../../src/config.ts";
import { UserFacingError } from "../../src/errors.ts";
import type { AlertManagerClient, AlertManagerSilence } from "../../src/services/alertmanager.ts";
import { HttpStatusError, ServiceUnavailableError } from "../../src/services/http.ts";
import {
	environmentsReached,
	extendSilence,
	parseSilenceDuration,
	previewSilence,
	silenceAuthor,
	silenceTool,
} from "../../src/services/silences.ts";

const AM = { url: "http://127.0.0.1:9093", timeoutMs: 5_000 };
const ops = {
	defaultEnvironment: "production",
	environments: {
		production: { alertmanager: AM },
		staging: { alertmanager: AM },
		dev: { alertmanager: { url: "http://127.0.0.1:9094", timeoutMs: 5_000 } },
	},
	alerts: { environmentLabel: "env" },
} as unknown as Pick<OpsFile, "environments" | "alerts" | "defaultEnvironment">;
const eq = (name: string, value: string) => ({ name, value, isRegex: false, isEqual: true });
const re = (name: string, value: string) => ({ name, value, isRegex: true, isEqual: true });

describe("the environments a silence reaches", () => {
	it("are those sharing its AlertManager whose name its env matchers accept", () => {
		expect(environmentsReached(ops, "production", [eq("service", "api")])).toEqual(["production", "staging"]);
		expect(environmentsReached(ops, "production", [eq("service", "api"), eq("env", "production")])).toEqual([
			"production",
		]);
		expect(environmentsReached(ops, "production", [eq("service", "api"), re("env", "stag.*")])).toEqual(["staging"]);
		// dev has its own AlertManager: a silence in production's cannot reach it.
		expect(environmentsReached(ops, "production", [re("env", ".*"), eq("service", "api")])).not.toContain("dev");
	});

	it("count alerts without the label as the default environment, as opsbot files them", () => {
		expect(environmentsReached(ops, "staging", [eq("env", ""), eq("service", "api")])).toEqual(["production"]);
	});
});

describe("durations", () => {
	it("reads presets and typed ones, bounded by the maximum", () => {
		expect(
			["30m", "1h", "4h", "12h", "1d", "7d", "90m", "1h30m"].map((d) => parseSilenceDuration(d, 7 * 86_400_000)),
		).toEqual([1_800_000, 3_600_000, 14_400_000, 43_200_000, 86_400_000, 604_800_000, 5_400_000, 5_400_000]);
		expect(() => parseSilenceDuration("8d", 7 * 86_400_000)).toThrow("lasts at most 7 d");
		expect(() => parseSilenceDuration("forever", 7 * 86_400_000)).toThrow("Give the duration as");
		expect(() => parseSilenceDuration("0m", 7 * 86_400_000)).toThrow("Give the duration as");
	});
});

describe("maintenance windows", () => {
	it("match the environment plus the service or the matchers given", () => {
		expect(maintenanceMatchers(ops, "staging", { service: "worker" })).toEqual([
			eq("env", "staging"),
			eq("service", "worker"),
		]);
		expect(maintenanceMatchers(ops, "staging", { matchers: 'alertname="Deploy", env="staging"' })).toEqual([
			eq("env", "staging"),
			eq("alertname", "Deploy"),
		]);
		expect(() => maintenanceMatchers(ops, "staging", { matchers: 'env="production"' })).toThrow(
			'A window of staging matches env="staging"',
		);
		expect(() => maintenanceMatchers(ops, "staging", {})).toThrow("Name a service, or matchers");
	});

	it("start now, ahead or at a future time, never in the past", () => {
		const now = new Date("2026-11-24T12:00:00Z");
		expect(maintenanceStart("now", now)).toEqual(now);
		expect(maintenanceStart("+30m", now)).toEqual(new Date("2026-11-24T12:30:00Z"));
		expect(maintenanceStart("2026-11-24T15:00:00Z", now)).toEqual(new Date("2026-11-24T15:00:00Z"));
		expect(() => maintenanceStart("2026-11-24T10:00:00Z", now)).toThrow("in the past");
	});
});

describe("AlertManager's answers in words", () => {
	const draft = {
		environment: "production",
		matchers: [eq("service", "api")],
		startsAt: new Date(),
		endsAt: new Date(Date.now() + 3_600_000),
		comment: "x",
	};
	const client = (listAlerts: AlertManagerClient["listAlerts"]) => ({ url: AM.url, listAlerts }) as AlertManagerClient;

	it("shows a 400's reason and says nothing was silenced", async () => {
		const refused = previewSilence(
			{
				ops,
				alertmanager: client(() => Promise.reject(new HttpStatusError("AlertManager", 400, "bad matcher format"))),
			},
			draft,
		);
		await expect(refused).rejects.toThrow("AlertManager refused it (bad matcher format); nothing was silenced.");
	});

	it("marks no answer as unavailable (the CLI exits 69)", async () => {
		const down = previewSilence(
			{
				ops,
				alertmanager: client(() =>
					Promise.reject(new ServiceUnavailableError("AlertManager", "timeout", "timed out", 800)),
				),
			},
			draft,
		);
		await expect(down).rejects.toMatchObject({
			message: "AlertManager did not answer within 800 ms; nothing was silenced.",
			unavailable: true,
		});
		await expect(down).rejects.toBeInstanceOf(UserFacingError);
	});

	it("refuses an extension past the maximum before calling AlertManager", async () => {
		const now = Date.parse("2026-11-24T12:00:00Z");
		const silence: AlertManagerSilence = {
			id: "5b1f0c8e-2d4a-4c3b-9e8f-0a1b2c3d4e5f",
			state: "active",
			matchers: [eq("service", "api")],
			startsAt: "2026-11-24T11:00:00.000Z",
			endsAt: "2026-11-25T11:30:00.000Z",
			createdBy: "x",
			comment: "y",
		};
		const calls: unknown[] = [];
		const createSilence = async (s: unknown) => {
			calls.push(s);
			return "id";
		};
		const alertmanager = { url: AM.url, createSilence } as never;
		const record = async () => undefined;

		await expect(
			extendSilence(alertmanager, silence, 3_600_000, 86_400_000, { environment: "production", record }, now),
		).rejects.toThrow("more than 24 h from now (alerts.silences.maxDuration); nothing was changed.");
		expect(calls).toEqual([]);
	});
});

describe("which tool made a silence", () => {
	it("reads opsbot's createdBy, and anything else as outside opsbot", () => {
		expect(
			["olivia (Discord 1) via opsbot", "deploy@ci via opsbot CLI", "carol", "via opsbot x"].map(silenceTool),
		).toEqual(["opsbot", "opsbot CLI", "outside opsbot", "outside opsbot"]);
	});

	it("shows who made it without the Discord id opsbot records, and leaves other names as they are", () => {
		expect(
			["olivia (Discord 200000000000000111) via opsbot", "deploy@ci via opsbot CLI", "carol (Discord 5)", "   "].map(
				silenceAuthor,
			),
		).toEqual(["olivia via opsbot", "deploy@ci via opsbot CLI", "carol (Discord 5)", "someone"]);
	});
});

describe("access.environments in the config", () => {
	it("must name configured environments (exit 78 on start)", () => {
		const path = join(mkdtempSync(join(tmpdir(), "opsbot-silences-config-")), "opsbot.yaml");
		writeFileSync(
			path,
			'discord: { guildId: "100000000000000001", roles: { oncall: "300000000000000001" } }\n' +
				"access: { environments: { prod: [oncall] } }\nenvironments: { production: {} }\n",
		);
		let problems: readonly string[] = [];
		try {
			loadConfig({ OPSBOT_CONFIG: path }, "cli");
		} catch (err) {
			if (err instanceof ConfigError) problems = err.problems;
		}
		expect(problems).toContain("access.environments.prod: not one of the environments (production)");
	});
});
