import { crc32, deflateSync } from "node:zlib";

/**
 * A small line chart rendered straight to PNG in-process: no browser, no native canvas. The
 * chart libraries on npm all draw through a canvas (a native addon and system fonts), which is
 * more than one line with axis figures needs; node:zlib gives us deflate and CRC-32 for PNG.
 */

/** One point: x is a Unix time in ms, y a value. */
export interface ChartPoint {
	readonly x: number;
	readonly y: number;
}

/** What to draw. `limit` draws a red line (e.g. usable connections). */
export interface LineChart {
	readonly title?: string;
	readonly points: readonly ChartPoint[];
	readonly limit?: number | undefined;
	readonly width?: number;
	readonly height?: number;
}

type Rgb = readonly [number, number, number];
const BACKGROUND: Rgb = [0x2b, 0x2d, 0x31]; // Discord's dark theme, so the image sits well in an embed
const GRID: Rgb = [0x45, 0x48, 0x4f];
const TEXT: Rgb = [0xb5, 0xba, 0xc1];
const LINE: Rgb = [0x58, 0x65, 0xf2];
const LIMIT: Rgb = [0xed, 0x42, 0x45];

// 3x5 glyphs for the figures on the axes.
const GLYPHS: Record<string, string> = {
	"0": "111101101101111",
	"1": "010110010010111",
	"2": "111001111100111",
	"3": "111001111001111",
	"4": "101101111001001",
	"5": "111100111001111",
	"6": "111100111101111",
	"7": "111001010010010",
	"8": "111101111101111",
	"9": "111101111001111",
	":": "000010000010000",
	".": "000000000000010",
	"-": "000000111000000",
	" ": "000000000000000",
};

class Canvas {
	readonly pixels: Uint8Array;
	readonly width: number;
	readonly height: number;
	constructor(width: number, height: number, fill: Rgb) {
		this.width = width;
		this.height = height;
		this.pixels = new Uint8Array(width * height * 3);
		for (let i = 0; i < width * height; i++) this.pixels.set(fill, i * 3);
	}
	set(x: number, y: number, c: Rgb): void {
		const xi = Math.round(x);
		const yi = Math.round(y);
		if (xi < 0 || yi < 0 || xi >= this.width || yi >= this.height) return;
		this.pixels.set(c, (yi * this.width + xi) * 3);
	}
	line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thickness = 1, dash = 0): void {
		const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
		for (let i = 0; i <= steps; i++) {
			if (dash > 0 && Math.floor(i / dash) % 2 === 1) continue;
			const x = x0 + ((x1 - x0) * i) / steps;
			const y = y0 + ((y1 - y0) * i) / steps;
			for (let t = 0; t < thickness; t++) this.set(x, y + t - Math.floor(thickness / 2), c);
		}
	}
	text(x: number, y: number, s: string, c: Rgb, scale = 2): void {
		let cx = x;
		for (const ch of s) {
			const glyph = GLYPHS[ch];
			if (glyph) {
				for (let i = 0; i < 15; i++) {
					if (glyph[i] !== "1") continue;
					for (let dx = 0; dx < scale; dx++) for (let dy = 0; dy < scale; dy++) this.set(cx + (i % 3) * scale + dx, y + Math.floor(i / 3) * scale + dy, c);
				}
			}
			cx += 4 * scale;
		}
	}
	png(): Buffer {
		const stride = this.width * 3;
		const raw = Buffer.alloc((stride + 1) * this.height);
		for (let y = 0; y < this.height; y++) {
			raw[y * (stride + 1)] = 0; // filter: none
			raw.set(this.pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
		}
		const header = Buffer.alloc(13);
		header.writeUInt32BE(this.width, 0);
		header.writeUInt32BE(this.height, 4);
		header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
		return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
	}
}

function chunk(type: string, data: Buffer): Buffer {
	const length = Buffer.alloc(4);
	length.writeUInt32BE(data.length);
	const typed = Buffer.concat([Buffer.from(type, "ascii"), data]);
	const crc = Buffer.alloc(4);
	crc.writeUInt32BE(crc32(typed));
	return Buffer.concat([length, typed, crc]);
}

function timeLabel(ms: number): string {
	const d = new Date(ms);
	return `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
}

/** Renders the points as a PNG line chart with y figures, UTC times, and the limit line. */
export function renderLineChart(chart: LineChart): Buffer {
	const width = chart.width ?? 640;
	const height = chart.height ?? 240;
	const canvas = new Canvas(width, height, BACKGROUND);
	const left = 56;
	const right = width - 16;
	const top = 16;
	const bottom = height - 28;
	const points = [...chart.points].sort((a, b) => a.x - b.x);
	const xMin = points[0]?.x ?? 0;
	const xMax = Math.max(points.at(-1)?.x ?? 1, xMin + 1);
	const yTop = niceCeiling(Math.max(1, chart.limit ?? 0, ...points.map((p) => p.y)));
	const px = (x: number) => left + ((x - xMin) / (xMax - xMin)) * (right - left);
	const py = (y: number) => bottom - (y / yTop) * (bottom - top);
	for (let i = 0; i <= 4; i++) {
		const value = (yTop * i) / 4;
		canvas.line(left, py(value), right, py(value), GRID);
		const label = Number.isInteger(value) ? String(value) : value.toFixed(1);
		canvas.text(left - 8 - label.length * 8, py(value) - 5, label, TEXT);
	}
	for (const x of [xMin, (xMin + xMax) / 2, xMax]) {
		const label = timeLabel(x);
		canvas.text(Math.min(right - label.length * 8, Math.max(left, px(x) - label.length * 4)), bottom + 10, label, TEXT);
	}
	if (chart.limit !== undefined) canvas.line(left, py(chart.limit), right, py(chart.limit), LIMIT, 2, 6);
	for (let i = 1; i < points.length; i++) {
		const a = points[i - 1] as ChartPoint;
		const b = points[i] as ChartPoint;
		canvas.line(px(a.x), py(a.y), px(b.x), py(b.y), LINE, 3);
	}
	if (points.length === 1) canvas.line(px(points[0]!.x) - 2, py(points[0]!.y), px(points[0]!.x) + 2, py(points[0]!.y), LINE, 5);
	return canvas.png();
}

function niceCeiling(value: number): number {
	const magnitude = 10 ** Math.floor(Math.log10(value));
	for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
	return 10 * magnitude;
}
