import type { Level, Report, ReportField, ReportLine } from "../render/report.ts";
import type { DoctorResult, FindingState } from "../services/doctor.ts";

/**
 * `opsbot doctor`'s report (a CLI command, no slash command: it checks the bot's own set-up). One line
 * per finding, what to do after an arrow; the host keys to pin and the AlertManager receiver as fields.
 */

const FINDING_LEVEL: Record<FindingState, Level> = { ok: "ok", off: "ok", degraded: "warn", broken: "critical" };

export function doctorReport(result: DoctorResult): Report {
	const count = (state: FindingState) => result.findings.filter((f) => f.state === state).length;
	const broken = count("broken");
	const degraded = count("degraded");
	const level: Level = broken > 0 ? "critical" : degraded > 0 ? "warn" : "ok";
	const lines: ReportLine[] = result.findings.map((f) => ({
		level: FINDING_LEVEL[f.state],
		label: f.subject,
		text: `${f.state === "off" ? "off: " : ""}${f.detail}${f.fix ? ` → ${f.fix}` : ""}`,
	}));
	const fields: ReportField[] = [
		...result.hostKeys.map((k) => ({
			label: `Host key of ${k.host}`,
			value: [`${k.fingerprint}, for environments.${k.environment}.ssh:\n`, { code: k.configLine }],
		})),
		...(result.alertmanagerSnippet ? [{ label: "alertmanager.yml", value: { code: result.alertmanagerSnippet } }] : []),
	];
	return {
		title:
			level === "ok"
				? "opsbot set-up: all good"
				: `opsbot set-up: ` +
					`${[broken > 0 ? `${broken} broken` : "", degraded > 0 ? `${degraded} degraded` : ""].filter(Boolean).join(", ")}`,
		level,
		summary:
			`${count("ok")} ok · ${degraded} degraded · ${broken} broken · ${count("off")} off — ` +
			`${result.configPath}, ran in ${result.durationMs} ms`,
		lines,
		...(fields.length > 0 ? { fields } : {}),
		at: result.startedAt,
	};
}
