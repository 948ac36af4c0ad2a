import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { expect } from "vitest";
import { type Report, reportToEmbed, reportToText } from "../../src/render/report.ts";

const REPORT_GOLDEN_DIR = join(import.meta.dirname, "../render/golden/reports");

/**
 * Holds a report builder's output to its reviewed form in both views: the Discord embed JSON
 * (`NAME.discord.json`) and the terminal text (`NAME.txt`) under test/render/golden/reports.
 * `UPDATE_GOLDEN=1` rewrites them; review the diff before committing.
 */
export function expectReportGolden(name: string, report: Report): void {
	expectGoldenFile(`${name}.discord.json`, `${JSON.stringify(reportToEmbed(report).toJSON(), null, 2)}\n`);
	expectGoldenFile(`${name}.txt`, `${reportToText(report)}\n`);
}

/** Compares `actual` with a golden file under test/render/golden/reports (or writes it with UPDATE_GOLDEN=1). */
export function expectGoldenFile(file: string, actual: string): void {
	const path = join(REPORT_GOLDEN_DIR, file);
	if (process.env.UPDATE_GOLDEN === "1") {
		mkdirSync(dirname(path), { recursive: true });
		writeFileSync(path, actual);
		return;
	}
	let expected: string;
	try {
		expected = readFileSync(path, "utf8");
	} catch {
		throw new Error(`no golden file ${path}: run the test with UPDATE_GOLDEN=1 once and review what it wrote`);
	}
	expect(actual, `${file} differs from its golden copy (UPDATE_GOLDEN=1 rewrites it)`).toBe(expected);
}
