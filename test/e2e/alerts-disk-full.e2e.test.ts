import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmdirSync, statfsSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { firingWebhook } from "../support/alert-fixtures.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { embedTitle as title } from "../support/cards.ts";

const CHANNEL = "400000000000000001";
const token = randomBytes(24).toString("hex");

/** Writes `dir/filler` until only `leaveBytes` are free on its file system (0: until the file system refuses). */
function fill(dir: string, leaveBytes: number): string {
	const path = join(dir, "filler");
	const fd = openSync(path, "a");
	try {
		const { bavail, bsize } = statfsSync(dir);
		let left = bavail * bsize - leaveBytes;
		const chunk = Buffer.alloc(64 * 1024, 1);
		for (let size = chunk.length; left > 0 || leaveBytes === 0; ) {
			try {
				left -= writeSync(fd, chunk, 0, leaveBytes === 0 ? size : Math.min(size, left));
			} catch (err) {
				if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
				if (leaveBytes > 0 || size === 1) break;
				size = Math.max(1, size >> 2);
			}
		}
	} finally {
		closeSync(fd);
	}
	return path;
}

// D5: on a full disk a message Discord took could not be marked delivered, and was posted again about once a second.
// D8: /readyz said "writable" on a disk where nearly every real webhook failed.
describe("a full disk under opsbot's state directory (a 4 MiB tmpfs)", () => {
	let double: DiscordDouble;
	let bot: TestBot;
	let stateDir: string;

	beforeAll(async () => {
		if (process.getuid?.() !== 0)
			throw new Error("mounting a tmpfs needs root: run this test as root (e.g. in the CI container)");
		stateDir = mkdtempSync(join(tmpdir(), "opsbot-tmpfs-"));
		execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", stateDir]);
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
		bot = await startTestBot(
			double,
			`discord: { guildId: "${double.guildId}" }
environments: { production: {} }
stateDir: ${stateDir}
alerts:
  listen: { host: 127.0.0.1, port: 0 }
  defaultChannel: "${CHANNEL}"
`,
			{ WEBHOOK_TOKEN: token },
			// A full disk under the SQLite state file: the embedded backend whatever OPSBOT_E2E_STATE says.
			{ embedded: true },
		);
	});
	afterAll(async () => {
		await bot?.stop();
		await double?.close();
		if (stateDir) {
			execFileSync("umount", [stateDir]);
			rmdirSync(stateDir);
		}
	});

	const post = (body: unknown) =>
		fetch(`${bot.webhookUrl}/alerts`, {
			method: "POST",
			headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
			body: JSON.stringify(body),
		}).then((r) => r.status);
	const readyz = async () => (await fetch(`${bot.webhookUrl}/readyz`)).json() as Promise<{ store: string }>;
	const cards = (name: string) => double.channelMessages(CHANNEL).filter((m) => title(m).includes(name));
	const posts = (name: string) =>
		double.requests.filter(
			(r) => r.method === "POST" && r.path === `/channels/${CHANNEL}/messages` && JSON.stringify(r.body).includes(name),
		);
	const logged = (msg: string) => bot.logs().filter((l) => String(l.msg).startsWith(msg));
	const stoppedMetric = async () =>
		/opsbot_alert_delivery_stopped\{channel="400000000000000001"\} (\d)/.exec(
			await (await fetch(`${bot.webhookUrl}/metrics`)).text(),
		)?.[1];

	it("posts a message Discord took exactly once while the store cannot record it, stops the channel, and goes " +
		"on when there is room", {
		timeout: 90_000,
	}, async () => {
		// Discord answers the post only once the disk is full: the post succeeds, recording it cannot.
		const hold = double.holdNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages` });
		expect(await post(firingWebhook("DiskFullFirst"))).toBe(202);
		await hold.held;
		const filler = fill(stateDir, 0);
		hold.release();

		// Stopped with a clear error and a metric; the store is probed again with a backoff, and nothing is posted meanwhile.
		await double
			.waitFor(() => logged("the alert store still cannot be written").length >= 2, 30_000)
			.catch(() => undefined);
		expect(posts("DiskFullFirst")).toHaveLength(1);
		expect(logged("alert delivery stopped in this channel: the alert store cannot be written")).toHaveLength(1);
		expect(logged("the alert store still cannot be written").length).toBeGreaterThanOrEqual(2);
		expect(await stoppedMetric()).toBe("1");
		expect(await post(firingWebhook("DiskFullSecond"))).toBe(500);
		expect((await readyz()).store).toBe("not writable");

		unlinkSync(filler);
		await double.waitFor(() => logged("alert delivery goes on in this channel").length > 0, 30_000);
		// AlertManager sends the refused webhook again; the first group resolves: its message is edited, not posted again.
		expect(await post(firingWebhook("DiskFullSecond"))).toBe(202);
		const resolved = { ...firingWebhook("DiskFullFirst"), status: "resolved" };
		resolved.alerts = resolved.alerts.map((a) => ({ ...a, status: "resolved", endsAt: new Date().toISOString() }));
		expect(await post(resolved)).toBe(202);
		await double.waitFor(
			() => cards("DiskFullSecond")[0] && cards("DiskFullFirst").some((m) => title(m).startsWith("✅")),
			20_000,
		);

		expect(posts("DiskFullFirst")).toHaveLength(1);
		expect(cards("DiskFullFirst")).toHaveLength(1);
		expect(cards("DiskFullSecond")).toHaveLength(1);
		expect(await stoppedMetric()).toBe("0");
	});

	it("says 'not writable' on /readyz when the disk has no room for the webhooks it receives, and 'writable' " +
		"again when it has", {
		timeout: 90_000,
	}, async () => {
		const typical = (i: number) => firingWebhook(`DiskNearlyFull${i}`, { description: "d".repeat(15_000) });
		for (let i = 0; i < 3; i++) expect(await post(typical(i))).toBe(202);
		expect(await readyz()).toEqual({ discord: "connected", store: "writable" });

		const filler = fill(stateDir, 280 * 1024);
		const ready = await readyz();
		const statuses: number[] = [];
		for (let i = 3; i < 33; i++) statuses.push(await post(typical(i)));
		unlinkSync(filler);

		expect(ready.store).toBe("not writable");
		// /readyz was right: webhooks of the size it receives fail on that disk.
		expect(statuses.filter((s) => s === 500).length).toBeGreaterThan(0);
		expect((await readyz()).store).toBe("writable");
	});
});
