import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/**
 * Makes the README's pictures of real messages from the goldens (test/render/golden/reports/*.discord.json):
 * Discord-dark-theme HTML, screenshotted by headless Chromium from Debian (`apt-get install -y chromium`).
 *   node scripts/make-pictures.ts          re-make every picture and record its sources' hashes
 *   node scripts/make-pictures.ts --html   write the HTML only (next to the pictures, for a look in a browser)
 * docs/pictures/pictures.json lists each picture, its goldens and their SHA-256; test/pictures.test.ts
 * (no browser) fails when a golden changed and its picture was not re-made.
 * Not faithful: Noto fonts rather than gg sans, times drawn in UTC, mentions drawn by id.
 */

export const MANIFEST = "docs/pictures/pictures.json";
const GOLDENS = "test/render/golden/reports";

/** One picture: the goldens it shows, side by side, and the hashes they had when it was made. */
export interface PictureEntry {
	readonly picture: string;
	readonly caption: string;
	readonly goldens: readonly string[];
	/** Charts attach placeholder bytes in the goldens; this image stands in for `attachment://NAME`. */
	readonly attachments?: Readonly<Record<string, string>>;
	/** What "now" is for relative times (`<t:…:R>`). */
	readonly now: string;
	sha256?: Record<string, string>;
}

export function sha256(path: string): string {
	return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Every file a picture is made from: its goldens and its stand-in attachments. */
export function sourcesOf(entry: PictureEntry): string[] {
	return [...entry.goldens.map((g) => join(GOLDENS, g)), ...Object.values(entry.attachments ?? {})];
}

type Json = Record<string, unknown>;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function timeText(seconds: number, style: string, now: number): string {
	const d = new Date(seconds * 1000);
	const month = d.toLocaleString("en-GB", { month: "long", timeZone: "UTC" });
	const hm = `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
	if (style === "R") {
		const minutes = Math.round((now - seconds * 1000) / 60_000);
		const abs = Math.abs(minutes);
		const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
		const amount =
			abs < 60
				? unit(abs, "minute")
				: abs < 2880
					? unit(Math.round(abs / 60), "hour")
					: unit(Math.round(abs / 1440), "day");
		return minutes >= 0 ? `${amount} ago` : `in ${amount}`;
	}
	if (style === "t") return hm;
	if (style === "T") return `${hm}:${String(d.getUTCSeconds()).padStart(2, "0")}`;
	return `${d.getUTCDate()} ${month} ${d.getUTCFullYear()} ${hm}`;
}

/** Discord's markdown, the subset opsbot writes: escapes, bold, italics, code, masked links, mentions, times. */
function markdown(text: string, now: number, rich = true): string {
	const slots: string[] = [];
	const keep = (html: string) => `\u0000${slots.push(html) - 1}\u0000`;
	let s = text.replace(/\\([^A-Za-z0-9\s])/g, (_, c: string) => keep(esc(c)));
	s = s.replace(/`([^`]+)`/g, (_, c: string) => keep(`<code>${esc(c)}</code>`));
	if (rich) {
		s = s.replace(/<t:(\d+)(?::([tTdDfFR]))?>/g, (_, n: string, style = "f") =>
			keep(`<span class="time">${esc(timeText(Number(n), style, now))}</span>`),
		);
		s = s.replace(/<@&(\d+)>/g, () => keep(`<span class="mention">@oncall</span>`));
		s = s.replace(/<@!?(\d+)>/g, (_, id: string) =>
			keep(`<span class="mention">@${id.endsWith("3") ? "bob" : "alice"}</span>`),
		);
		s = s.replace(/<#(\d+)>/g, () => keep(`<span class="mention">#ops</span>`));
		s = s.replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, (_, label: string) => keep(`<a>${esc(label)}</a>`));
	}
	s = esc(s);
	s = s
		.replace(/\*\*(.+?)\*\*/gs, "<b>$1</b>")
		.replace(/(^|[^*])\*([^*\n]+)\*/g, "$1<i>$2</i>")
		.replace(/__(.+?)__/g, "<u>$1</u>");
	return s.replace(/\u0000(\d+)\u0000/g, (_, i: string) => slots[Number(i)] ?? "").replace(/\n/g, "<br>");
}

function embedHtml(embed: Json, now: number, attachments: Readonly<Record<string, string>>): string {
	const colour = `#${Number(embed.color ?? 0x202225)
		.toString(16)
		.padStart(6, "0")}`;
	const fields = (embed.fields as Json[] | undefined) ?? [];
	// Discord's grid: consecutive inline fields share a row, up to 3, splitting its 12 columns; others take a row.
	const spans: number[] = [];
	for (let i = 0; i < fields.length; ) {
		let run = 0;
		while (run < 3 && fields[i + run]?.inline) run++;
		if (run === 0) run = 1;
		for (let k = 0; k < run; k++) spans.push(12 / run);
		i += run;
	}
	const cells = fields.map(
		(f, i) =>
			`<div class="field" style="grid-column:span ${spans[i]}"><div ` +
			`class="fname">${markdown(String(f.name), now, false)}</div><div ` +
			`class="fvalue">${markdown(String(f.value), now)}</div></div>`,
	);
	const image = (embed.image as Json | undefined)?.url;
	const imageFile = typeof image === "string" ? attachments[image.replace("attachment://", "")] : undefined;
	const footer = (embed.footer as Json | undefined)?.text;
	const timestamp =
		typeof embed.timestamp === "string" ? timeText(Date.parse(embed.timestamp) / 1000, "f", now) : undefined;
	return `<div class="embed" style="border-left-color:${colour}">
${embed.title ? `<div class="title">${markdown(String(embed.title), now, false)}</div>` : ""}
${embed.description ? `<div class="desc">${markdown(String(embed.description), now)}</div>` : ""}
${cells.length > 0 ? `<div class="fields">${cells.join("")}</div>` : ""}
${imageFile ? `<img class="image" src="data:image/png;base64,${readFileSync(imageFile).toString("base64")}">` : ""}
${footer || timestamp ? `<div class="footer">${esc([footer, timestamp].filter(Boolean).join(" • "))}</div>` : ""}
</div>`;
}

function componentsHtml(rows: Json[]): string {
	const styles: Record<number, string> = { 1: "primary", 2: "secondary", 3: "success", 4: "danger", 5: "secondary" };
	return rows
		.map((row) => {
			const parts = ((row.components as Json[] | undefined) ?? []).map((c) => {
				const emoji = (c.emoji as Json | undefined)?.name;
				if (c.type === 2)
					return (
						`<span class="button ` +
						`${styles[Number(c.style)] ?? "secondary"}${c.disabled ? " disabled" : ""}">` +
						`${esc([emoji, c.label].filter(Boolean).join(" "))}</span>`
					);
				return `<span class="select">${esc(String(c.placeholder ?? "Select…"))}<span class="chevron">⌄</span></span>`;
			});
			return `<div class="row">${parts.join("")}</div>`;
		})
		.join("");
}

/** One golden as a Discord message: content, one embed, attached files, components. */
function messageHtml(golden: Json, now: number, attachments: Readonly<Record<string, string>>): string {
	const embed =
		(golden.embed as Json | undefined) ??
		(golden.title !== undefined || golden.description !== undefined ? golden : undefined);
	const content =
		typeof golden.content === "string" && golden.content
			? `<div class="content">${markdown(golden.content, now)}</div>`
			: "";
	const files = ((golden.files as Json[] | undefined) ?? []).filter(
		(f) => !attachments[String(f.name)] || !JSON.stringify(embed ?? {}).includes(`attachment://${String(f.name)}`),
	);
	const fileCards = files.map((f) => `<div class="file">📄 ${esc(String(f.name))}</div>`).join("");
	return (
		`<div class="message"><div class="avatar">🤖</div><div class="body"><div class="author">opsbot <span ` +
		`class="bot">APP</span> <span class="when">Today at ` +
		`${esc(timeText(now / 1000, "t", now))}</span></div>${content}` +
		`${embed ? embedHtml(embed, now, attachments) : ""}${fileCards}` +
		`${componentsHtml((golden.components as Json[] | undefined) ?? [])}</div></div>`
	);
}

const CSS =
	`
body{margin:0;background:#313338;color:#dbdee1;font:16px/1.375 "Noto Sans",sans-serif;width:max-content}
.page{display:flex;gap:24px;padding:16px 20px;align-items:flex-start}
.message{display:flex;gap:16px;width:580px}
.avatar{width:40px;height:40px;border-radius:50%;background:#5865f2;display:flex;align-items:center;` +
	`justify-content:center;flex:none}
.author{font-weight:600;color:#f2f3f5}` +
	`.bot{background:#5865f2;color:#fff;font-size:10px;padding:1px 4px;border-radius:3px;vertical-align:2px}
.when{color:#949ba4;font-size:12px;font-weight:400;margin-left:4px}
.content{margin:2px 0 4px}
.embed{max-width:520px;background:#2b2d31;border-left:4px solid;border-radius:4px;` +
	`padding:8px 16px 16px 12px;margin-top:4px;box-sizing:border-box}
.title{font-weight:600;color:#f2f3f5;margin-top:8px}
.desc{font-size:14px;line-height:18px;margin-top:8px}
.fields{display:grid;grid-template-columns:repeat(12,1fr);gap:8px;margin-top:8px}
.field{font-size:14px;line-height:18px}
.fname{font-weight:600;color:#f2f3f5;margin-bottom:2px}
.image{display:block;max-width:400px;max-height:300px;border-radius:4px;margin-top:16px}
.footer{font-size:12px;color:#b5bac1;margin-top:8px}
code{font:13px "Noto Sans Mono",monospace;background:#1e1f22;border-radius:3px;padding:0 3px}
a{color:#00a8fc}.mention{background:rgba(88,101,242,.3);color:#c9cdfb;border-radius:3px;padding:0 2px}
.time{background:#3f4147;border-radius:3px;padding:0 2px}
.row{display:flex;gap:8px;margin-top:8px;flex-wrap:wrap}
.button{height:32px;line-height:32px;padding:0 16px;border-radius:3px;font-size:14px;font-weight:500;color:#fff}
.primary{background:#5865f2}.secondary{background:#4e5058}.success{background:#248046}` +
	`.danger{background:#da373c}.disabled{opacity:.5}
.select{display:flex;justify-content:space-between;width:400px;height:40px;line-height:40px;` +
	`padding:0 12px;background:#1e1f22;border-radius:4px;color:#949ba4;box-sizing:border-box}
.file{margin-top:8px;width:400px;padding:12px;background:#2b2d31;` +
	`border:1px solid #1e1f22;border-radius:4px;color:#00a8fc}
`;

/** The page for one picture: its goldens side by side. The script's height measure goes in the title. */
export function pictureHtml(entry: PictureEntry): string {
	const now = Date.parse(entry.now);
	const messages = entry.goldens.map((g) =>
		messageHtml(JSON.parse(readFileSync(join(GOLDENS, g), "utf8")) as Json, now, entry.attachments ?? {}),
	);
	return (
		`<!doctype html><html><head><meta charset="utf-8"><style>${CSS}</style></head><body><div ` +
		`class="page">${messages.join("")}</div>
<script>document.title = document.querySelector(".page").scrollWidth + "x" + ` +
		`document.querySelector(".page").scrollHeight</script></body></html>`
	);
}

const CHROMIUM_FLAGS = [
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--hide-scrollbars",
];

function chromium(args: string[]): string {
	const binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
	if (!binary) throw new Error("Chromium not found. Install it with: apt-get install -y chromium");
	const profile = mkdtempSync(join(tmpdir(), "opsbot-chromium-"));
	try {
		return execFileSync(binary, [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, ...args], {
			encoding: "utf8",
			stdio: ["ignore", "pipe", "ignore"],
			timeout: 60_000,
		});
	} finally {
		rmSync(profile, { recursive: true, force: true });
	}
}

function main(): void {
	const htmlOnly = process.argv.includes("--html");
	const entries = JSON.parse(readFileSync(MANIFEST, "utf8")) as PictureEntry[];
	for (const entry of entries) {
		const html = pictureHtml(entry);
		const out = resolve("docs/pictures", entry.picture);
		if (htmlOnly) {
			writeFileSync(out.replace(/\.png$/, ".html"), html);
			continue;
		}
		const dir = mkdtempSync(join(tmpdir(), "opsbot-picture-"));
		const page = join(dir, "page.html");
		writeFileSync(page, html);
		// First the page's own size (the script writes it into the title), then a screenshot of exactly that.
		const size = /<title>(\d+)x(\d+)<\/title>/.exec(
			chromium(["--window-size=2400,3000", "--dump-dom", `file://${page}`]),
		);
		if (!size) throw new Error(`could not measure ${entry.picture}`);
		chromium([`--window-size=${size[1]},${size[2]}`, `--screenshot=${out}`, `file://${page}`]);
		rmSync(dir, { recursive: true, force: true });
		entry.sha256 = Object.fromEntries(sourcesOf(entry).map((source) => [source, sha256(source)]));
		console.log(`${entry.picture}: ${size[1]}×${size[2]} from ${entry.goldens.join(", ")}`);
	}
	if (!htmlOnly) writeFileSync(MANIFEST, `${JSON.stringify(entries, null, "\t")}\n`);
}

if (import.meta.main) main();
