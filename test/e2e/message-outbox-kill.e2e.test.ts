import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { messageNonce } from "../../src/alerts/message-outbox.ts";
import { openAlertStore } from "../../src/alerts/store.ts";
import { type DiscordDouble, startDiscordDouble } from "../discord-double/index.ts";
import { type MainProcess, spawnMain } from "../support/main-process.ts";
import { freePort } from "../support/proc.ts";

const CHANNEL = "400000000000000001";
const ROLE = "500000000000000001";

describe("npm start killed with SIGKILL while Discord takes a queued message", () => {
	let double: DiscordDouble;
	let main: MainProcess | undefined;
	beforeAll(async () => {
		double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "alerts" }] } });
	});
	afterAll(async () => {
		main?.child.kill("SIGKILL");
		await double.close();
	});

	it("posts the message exactly once after the restart, and records its id", async () => {
		const stateDir = mkdtempSync(join(tmpdir(), "opsbot-message-kill-"));
		const port = await freePort();
		const ops = [
			`discord: { guildId: "${double.guildId}" }`,
			"environments: { production: {} }",
			`stateDir: ${stateDir}`,
			"alerts:",
			`  listen: { host: 127.0.0.1, port: ${port} }`,
			`  defaultChannel: "${CHANNEL}"`,
			"",
		].join("\n");
		const env = {
			DISCORD_TOKEN: "double-token",
			DISCORD_APPLICATION_ID: double.applicationId,
			DISCORD_API_URL: double.apiUrl,
			WEBHOOK_TOKEN: randomBytes(24).toString("hex"),
		};
		const key = "escalation:group-1:1:1";
		const content = `<@&${ROLE}> DiskFilling still firing after 15 minutes`;
		// Queued as a caller in the process would (the store file is the process's own).
		const queuing = openAlertStore(join(stateDir, "alerts.sqlite"));
		await queuing.enqueueMessage({
			kind: "post",
			key,
			target: { channel: CHANNEL },
			content,
			mentions: { roles: [ROLE] },
		});
		await queuing.close();
		// Discord takes the post, but only answers once the process is dead: the process never hears it was posted.
		const held = double.holdNext({ method: "POST", pathPrefix: `/channels/${CHANNEL}/messages` });

		main = spawnMain(ops, env);
		await held.held;
		main.child.kill("SIGKILL");
		await main.exited;
		held.release();
		await double.waitFor(() => double.channelMessages(CHANNEL).some((m) => m.content === content), 10_000);

		main = spawnMain(ops, env);
		const posts = () =>
			double.requests.filter((r) => r.method === "POST" && r.path === `/channels/${CHANNEL}/messages`);
		await double.waitFor(() => posts().length >= 2 && posts().every((p) => p.status !== 0), 30_000);
		await double.waitFor(() => main!.output().includes("alert receiver listening"), 20_000);
		const reader = openAlertStore(join(stateDir, "alerts.sqlite"));
		const outcome = await vi.waitFor(
			async () => {
				const read = await reader.messageOutcome(key);
				if (read?.state !== "sent") throw new Error(`not recorded yet: ${JSON.stringify(read)}`);
				return read;
			},
			{ timeout: 10_000, interval: 100 },
		);
		await reader.close();

		const messages = double.channelMessages(CHANNEL).filter((m) => m.content === content);
		expect(messages).toHaveLength(1);
		expect(posts()).toHaveLength(2);
		expect(posts().map((p) => (p.body as { nonce?: string }).nonce)).toEqual([messageNonce(key), messageNonce(key)]);
		expect(posts()[1]!.body).toMatchObject({ allowed_mentions: { parse: [], roles: [ROLE], users: [] } });
		expect(outcome).toMatchObject({ state: "sent", id: messages[0]!.id });
	});
});
