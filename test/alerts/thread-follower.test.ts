import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { MessageOutbox } from "../../src/alerts/message-outbox.ts";
import { WebhookPayload } from "../../src/alerts/schema.ts";
import { openAlertStore } from "../../src/alerts/sqlite-store.ts";
import type { AlertStore } from "../../src/alerts/store.ts";
import { startThreadFollower } from "../../src/alerts/threads.ts";
import { firingWebhook } from "../support/alert-fixtures.ts";

const CHANNEL = "400000000000000001";

/** No card is posted in these tests, so the follower never gets as far as queueing a message. */
const noMessages = new Proxy({} as MessageOutbox, {
	get: (_target, name) => {
		throw new Error(`the follower used the message outbox (${String(name)}) before any card was posted`);
	},
});

describe("the thread follower while the first event's card is not posted yet", () => {
	let stop: (() => Promise<void>) | undefined;
	afterEach(async () => {
		await stop?.();
		stop = undefined;
	});

	it("reads each event from the history once, however often a storm wakes it", async () => {
		const store = openAlertStore(join(mkdtempSync(join(tmpdir(), "opsbot-threads-")), "alerts.sqlite"));
		let rowsRead = 0;
		let rounds = 0;
		const counted: AlertStore = {
			...store,
			// The follower looks up the first unposted event's group once per round.
			group: (id) => {
				rounds++;
				return store.group(id);
			},
			history: {
				...store.history,
				eventsAfter: async (afterId, limit) => {
					const events = await store.history.eventsAfter(afterId, limit);
					rowsRead += events.length;
					return events;
				},
			},
		};
		const follower = startThreadFollower({
			store: counted,
			messages: noMessages,
			settings: { openFor: ["critical"] },
			archive: async () => {},
			log: pino({ level: "silent" }),
			intervalMs: 3_600_000, // only wake() drives it here
		});
		stop = () => follower.stop();
		await vi.waitFor(() => expect(rowsRead).toBe(0)); // the cursor is set at the end of the history

		for (const name of ["ApiDown", "DbDown", "DiskFull"])
			await store.accept(WebhookPayload.parse(firingWebhook(name, { severity: "critical" })), [{ channel: CHANNEL }]);
		// A wake while a round runs is dropped, so wake until that many rounds have run.
		for (let wake = 1; wake <= 5; wake++)
			await vi.waitFor(() => {
				follower.wake();
				expect(rounds).toBeGreaterThanOrEqual(wake);
			});

		// Three events ("fired", one per group): read once each, not once per wake.
		expect(rowsRead).toBe(3);

		// A burst of wakes while it waits: the waiting event's group is looked up again at most every 250 ms.
		const roundsBefore = rounds;
		const burst = Date.now();
		for (let wake = 0; wake < 50; wake++) {
			follower.wake();
			await new Promise((resolve) => setTimeout(resolve, 2));
		}
		expect(rounds - roundsBefore).toBeLessThanOrEqual(Math.ceil((Date.now() - burst) / 250) + 1);
		await store.close();
	});
});
