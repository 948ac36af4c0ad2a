import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createReceiver } from "../../src/alerts/receiver.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import { OpsFileSchema } from "../../src/config.ts";
import { payload } from "../support/alert-fixtures.ts";

const TOKEN = "t".repeat(24);

function capturingLog() {
	const lines: Record<string, unknown>[] = [];
	const log = pino(
		{ level: "debug" },
		{ write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
	);
	return { log, lines };
}

/** A store file already holding one delivered group, and its page count (to cap the store at "full"). */
async function storeWithOneGroup(): Promise<{ path: string; pages: number }> {
	const path = join(mkdtempSync(join(tmpdir(), "opsbot-full-")), "alerts.sqlite");
	const store = openAlertStore(path);
	await store.accept(payload(1), [{ channel: "1" }]);
	await store.close();
	const db = new DatabaseSync(path);
	const { page_count: pages } = db.prepare("PRAGMA page_count").get() as { page_count: number };
	db.close();
	return { path, pages };
}

describe("SQLite alert store when the disk is full", () => {
	it("fails accept with SQLite's 'database or disk is full', not a failed rollback, and says not writable", async () => {
		const { path, pages } = await storeWithOneGroup();
		const store = openAlertStore(path, { maxPageCount: pages });

		const failure = await store.accept(payload(40, { groupKey: "another group" }), [{ channel: "1" }]).then(
			() => undefined,
			(err: unknown) => err as Error & { errcode?: number },
		);
		const writable = await store.writable();

		expect(failure).toBeInstanceOf(Error);
		expect(failure?.message).toBe("database or disk is full");
		expect(failure?.errcode).toBe(13); // SQLITE_FULL
		expect(writable).toBe(false);
		await store.close();
	});

	it("logs the real cause, answers AlertManager 500, /readyz 503 'not writable'; recovers once freed", async () => {
		const { path, pages } = await storeWithOneGroup();
		const full = openAlertStore(path, { maxPageCount: pages });
		const { log, lines } = capturingLog();
		const app = createReceiver({
			config: OpsFileSchema.shape.alerts
				.unwrap()
				.parse({ defaultChannel: "100000000000000001", maxBodyBytes: 1_000_000 }),
			auth: { bearerToken: TOKEN },
			store: full,
			log,
			discordState: () => "connected",
		});

		const post = await app.inject({
			method: "POST",
			url: "/alerts",
			headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
			payload: JSON.stringify(payload(40, { groupKey: "another group" })),
		});
		const ready = await app.inject({ method: "GET", url: "/readyz" });
		await app.close();
		await full.close();
		const roomy = openAlertStore(path);
		const writableAgain = await roomy.writable();
		const accepted = await roomy.accept(payload(40, { groupKey: "another group" }), [{ channel: "1" }]);

		expect(post.statusCode).toBe(500);
		const logged = lines.find((l) => l.msg === "could not store an alert group") as
			| { err?: { message?: string } }
			| undefined;
		expect(logged?.err?.message).toBe("database or disk is full");
		expect(JSON.stringify(lines)).not.toContain("cannot rollback");
		expect(ready.statusCode).toBe(503);
		expect(ready.json()).toMatchObject({ store: "not writable" });
		expect(writableAgain).toBe(true);
		expect(accepted.queued).toBe(1);
		await roomy.close();
	});

	it("stays usable after a failed write: the next transaction starts cleanly", async () => {
		const { path, pages } = await storeWithOneGroup();
		const store = openAlertStore(path, { maxPageCount: pages + 2 });

		await store.accept(payload(60, { groupKey: "too big" }), [{ channel: "1" }]).catch(() => undefined);
		const small = await store
			.accept(payload(1, { groupKey: "small", commonAnnotations: {} }), [{ channel: "1" }])
			.catch((err: unknown) => err as Error);

		expect(small).not.toBeInstanceOf(Error);
		expect(await store.pending()).toBeGreaterThanOrEqual(1);
		await store.close();
	});
});
