import { inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { renderLineChart } from "../../src/render/chart.ts";

function decode(png: Buffer): { width: number; height: number; pixel: (x: number, y: number) => [number, number, number] } {
	expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
	let offset = 8;
	let width = 0;
	let height = 0;
	const idat: Buffer[] = [];
	while (offset < png.length) {
		const length = png.readUInt32BE(offset);
		const type = png.toString("ascii", offset + 4, offset + 8);
		const data = png.subarray(offset + 8, offset + 8 + length);
		if (type === "IHDR") {
			width = data.readUInt32BE(0);
			height = data.readUInt32BE(4);
		}
		if (type === "IDAT") idat.push(data);
		offset += 12 + length;
	}
	const raw = inflateSync(Buffer.concat(idat));
	const stride = width * 3 + 1;
	return { width, height, pixel: (x, y) => [raw[y * stride + 1 + x * 3]!, raw[y * stride + 2 + x * 3]!, raw[y * stride + 3 + x * 3]!] };
}

describe("renderLineChart", () => {
	it("produces a valid PNG of the requested size with the data line and the limit line drawn", () => {
		const start = Date.UTC(2026, 10, 24, 12, 0);
		const points = Array.from({ length: 60 }, (_, i) => ({ x: start + i * 60_000, y: 40 + (i % 10) * 5 }));

		const image = decode(renderLineChart({ points, limit: 97, width: 400, height: 200 }));

		expect([image.width, image.height]).toEqual([400, 200]);
		const colours = new Set<string>();
		for (let y = 0; y < image.height; y++) for (let x = 0; x < image.width; x++) colours.add(image.pixel(x, y).join(","));
		expect(colours).toContain("88,101,242"); // the data line
		expect(colours).toContain("237,66,69"); // the limit line
		expect(colours).toContain("43,45,49"); // the background
	});

	it("copes with one point and with no points", () => {
		expect(decode(renderLineChart({ points: [{ x: 1, y: 3 }] })).width).toBe(640);
		expect(decode(renderLineChart({ points: [] })).height).toBe(240);
	});
});
