// The chart renderer's process (forked by chart.ts): SVG in, PNG out, one at a time, with resvg
// compiled to WebAssembly. Plain JavaScript on purpose: a .ts file here would load Node's
// TypeScript stripper (swc compiled to wasm, ~20 MiB) just to read these lines.
// Every wasm object is freed as soon as the PNG is out, so the memory held is one chart's at most
// however many charts a storm asks for (native bindings free theirs only when V8 collects them).
// Messages: ChartJob in, ChartResult out (both typed in chart.ts).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { initWasm, Resvg } from "@resvg/resvg-wasm";

const require = createRequire(import.meta.url);
const FONT_FAMILY = "JetBrains Mono";
const fonts = ["400Regular/JetBrainsMono_400Regular.ttf", "700Bold/JetBrainsMono_700Bold.ttf"].map(
	(file) => new Uint8Array(readFileSync(require.resolve(`@expo-google-fonts/jetbrains-mono/${file}`))),
);
// Listening before the wasm is ready: a job sent meanwhile waits for it instead of being dropped (in order).
const ready = initWasm(readFileSync(require.resolve("@resvg/resvg-wasm/index_bg.wasm")));

process.on("message", async (job) => {
	await ready;
	let result;
	try {
		result = { id: job.id, png: render(job) };
	} catch (err) {
		result = { id: job.id, error: err instanceof Error ? err.message : String(err) };
	}
	process.send?.(result);
	// The PNG copies (out of wasm memory, into the IPC message) are garbage now. Left to V8, they pile
	// up outside its small heap until its external-memory limit, tens of MiB above; collected here
	// the renderer stays at one chart's memory however long a storm lasts (--expose-gc, chart.ts).
	globalThis.gc?.({ type: "minor" });
});
// opsbot went away (exit, crash, SIGKILL): so does its renderer.
process.on("disconnect", () => process.exit(0));

function render(job) {
	const resvg = new Resvg(job.svg, {
		fitTo: { mode: "zoom", value: job.zoom },
		font: { fontBuffers: fonts, defaultFontFamily: FONT_FAMILY, monospaceFamily: FONT_FAMILY },
		shapeRendering: 2,
		textRendering: 1,
	});
	try {
		const image = resvg.render();
		try {
			return image.asPng();
		} finally {
			image.free();
		}
	} finally {
		resvg.free();
	}
}
