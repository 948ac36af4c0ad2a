import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bothStateBackends } from "../alerts/state-database.ts";
import {
	type DiscordDouble,
	type SentInteraction,
	type StoredMessage,
	startDiscordDouble,
} from "../discord-double/index.ts";
import { postAlerts, startAlertManager, type TestAlertManager } from "../support/alertmanager.ts";
import { startTestBot, type TestBot } from "../support/bot.ts";
import { cardsTitled, embedDescription as description, embedTitle as title } from "../support/cards.ts";
import { freePort } from "../support/proc.ts";
import { shortLeaseYaml } from "../support/replicas.ts";

const CHANNEL = "400000000000000001";
const LEADS = "300000000000000007";
const ONCALL = "300000000000000001";
const oncall = { id: "200000000000000031", username: "olivia", roles: [ONCALL] };
const second = { id: "200000000000000032", username: "sam", roles: [ONCALL] };

/**
 * Escalation and acknowledgement timeouts through the shipped process, fired through a real
 * AlertManager, on both stores. Clocks are configured in fractions of a minute (3 s) and read every
 * second; the short gateway lease lets the PostgreSQL bot restarted after kill -9 deliver at once.
 */
describe.each(bothStateBackends("opsbot_escalation"))(
	"escalation and acknowledgement timeouts (%s store, npm start's process, real AlertManager)",
	(_s, env) => {
		let double: DiscordDouble;
		let alertmanager: TestAlertManager;
		let bot: TestBot;
		let opsYaml: string;
		let botEnv: Record<string, string>;
		const token = randomBytes(24).toString("hex");

		beforeAll(async () => {
			const port = await freePort();
			[double, alertmanager] = await Promise.all([
				startDiscordDouble({
					guild: {
						channels: [{ id: CHANNEL, name: "alerts" }],
						roles: [
							{ id: ONCALL, name: "oncall" },
							{ id: LEADS, name: "leads" },
						],
					},
				}),
				startAlertManager({ webhookUrl: `http://127.0.0.1:${port}/alerts`, bearerToken: token }),
			]);
			opsYaml = `discord: { guildId: "${double.guildId}", roles: { oncall: "${ONCALL}", leads: "${LEADS}" } }
access:
  actions: { alert.ack: [oncall] }
environments:
  production:
    alertmanager: { url: "${alertmanager.url}", timeoutMs: 2000 }
# One state directory for both processes of the kill -9 below (SQLite): the restarted one finds the key.
stateDir: ${mkdtempSync(join(tmpdir(), "opsbot-escalation-"))}
${shortLeaseYaml}
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
  clocks: { intervalSeconds: 1 }
  routes:
    - match: { team: db }
      channel: "${CHANNEL}"
      escalation: { afterMinutes: 0.05, mention: [leads] }
    - match: { team: web }
      channel: "${CHANNEL}"
      ackTimeoutMinutes: 0.05
      escalation: { afterMinutes: 0.5, mention: [leads, "user:${oncall.id}"] }
`;
			botEnv = { WEBHOOK_TOKEN: token, ...(await env()) };
			bot = await startTestBot(double, opsYaml, botEnv);
		});
		afterAll(async () => {
			await bot?.stop();
			await alertmanager?.stop();
			await double?.close();
		});

		const byTitle = (re: RegExp) => cardsTitled(double, CHANNEL, re);
		/**
		 * Presses Acknowledge as `user` until the press lands (the card names them): a press in the moment
		 * between the card's post and the store recording its message id is refused as an earlier episode's.
		 */
		async function acknowledge(card: StoredMessage, user: typeof oncall): Promise<void> {
			const ack = JSON.stringify(card.components).match(/alert:ack:[0-9a-f]{32}/)![0];
			for (let attempt = 0; ; attempt++) {
				const press = await double.sendInteraction({ kind: "button", customId: ack, messageId: card.id, user });
				await press.response();
				const outcome = await double.waitFor(
					() =>
						description(double.messages.get(card.id)).includes(`<@${user.id}>`)
							? "acknowledged"
							: [...double.messages.values()].find((m) => m.interactionId === press.id && m.content)?.content,
					20_000,
				);
				if (outcome === "acknowledged") return;
				if (!outcome.includes("earlier episode") || attempt > 20) throw new Error(`acknowledge: ${outcome}`);
				await new Promise((r) => setTimeout(r, 100));
			}
		}
		/** The action log's records of `action`, oldest first, from the state file or opsbot_state.actions. */
		async function logged(action: string): Promise<{ actor: { userId: string }; result: string; details?: unknown }[]> {
			const url = botEnv.STATE_DATABASE_URL;
			if (!url) return (await bot.actionLog.recent(50, { action })).reverse();
			const client = new pg.Client({ connectionString: url });
			await client.connect();
			try {
				const { rows } = await client.query<{ user_id: string; result: string; details: unknown }>(
					"SELECT user_id, result, details FROM opsbot_state.actions WHERE action = $1 ORDER BY id",
					[action],
				);
				return rows.map((r) => ({ actor: { userId: r.user_id }, result: r.result, details: r.details }));
			} finally {
				await client.end();
			}
		}
		/**
		 * PostgreSQL only: makes every acknowledgement written to the group of card `messageId` take a second
		 * inside its transaction (a trigger), so a second press reads the group before the first one commits.
		 * Returns the function that removes the trigger; undefined on SQLite.
		 */
		async function slowAckWrites(messageId: string): Promise<(() => Promise<void>) | undefined> {
			const url = botEnv.STATE_DATABASE_URL;
			if (!url) return undefined;
			const client = new pg.Client({ connectionString: url });
			await client.connect();
			const recorded = "SELECT id FROM opsbot_state.groups WHERE message_id = $1";
			await double.waitFor(async () => ((await client.query(recorded, [messageId])).rowCount ?? 0) > 0 || undefined);
			await client.query(`CREATE FUNCTION opsbot_state.slow_ack() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$`);
			await client.query(`CREATE TRIGGER slow_ack BEFORE UPDATE OF ack ON opsbot_state.groups FOR EACH ROW
			WHEN (NEW.ack IS DISTINCT FROM OLD.ack) EXECUTE FUNCTION opsbot_state.slow_ack()`);
			return async () => {
				await client.query("DROP TRIGGER slow_ack ON opsbot_state.groups; DROP FUNCTION opsbot_state.slow_ack()");
				await client.end();
			};
		}
		const postsWith = (text: string) =>
			double.requests.filter(
				(r) =>
					r.method === "POST" &&
					r.path === `/channels/${CHANNEL}/messages` &&
					String((r.body as { content?: string }).content ?? "").includes(text),
			);

		it("mentions the route's escalation target once when a group still fires unacknowledged, and says so on the card", {
			timeout: 120_000,
		}, async () => {
			await postAlerts(alertmanager.url, [
				{ labels: { alertname: "DbDown", severity: "critical", env: "production", team: "db" } },
			]);
			const card = await double.waitFor(() => byTitle(/^🔴 CRITICAL · DbDown · production$/)[0], 30_000);

			const mention = await double.waitFor(
				() => double.channelMessages(CHANNEL).find((m) => m.content.startsWith("📣")),
				30_000,
			);
			expect(mention.content).toMatch(
				new RegExp(`^📣 <@&${LEADS}> 🔴 DbDown on production has fired for \\d+ s and nobody acknowledged it\\.$`),
			);
			const [posted] = postsWith("📣");
			expect(posted?.body).toMatchObject({
				allowed_mentions: { parse: [], roles: [LEADS], users: [] },
				message_reference: { message_id: card.id, channel_id: CHANNEL },
			});
			await double.waitFor(() => description(double.messages.get(card.id)).includes("📣 escalated to"), 30_000);
			expect(description(double.messages.get(card.id))).toContain(`📣 escalated to <@&${LEADS}>`);
			await double.waitFor(async () => (await logged("alert.escalate")).length > 0 || undefined, 10_000);
			const escalations = await logged("alert.escalate");
			expect(escalations).toHaveLength(1);
			expect(escalations[0]).toMatchObject({ actor: { userId: "opsbot" }, details: { roles: [LEADS], users: [] } });

			// kill -9 and a restart neither repeat it (its key is in the store) nor send a second one.
			await bot.kill();
			bot = await startTestBot(double, opsYaml, botEnv);
			// Two whole passes of the restarted process' clocks, each of which would have queued it again: a pass
			// records what it queued in the action log before it is done, so a repeat would be there already.
			await double.waitFor(() => bot.logs().filter((l) => l.msg === "escalation pass done").length >= 2, 30_000);
			expect(await logged("alert.escalate")).toHaveLength(1);
			expect(
				postsWith("📣 <@&").filter((r) => String((r.body as { content: string }).content).includes("DbDown")),
			).toHaveLength(1);
		});

		it("reminds the acker once the ack runs out while the group still fires; the card shows it ran out", async () => {
			await postAlerts(alertmanager.url, [
				{ labels: { alertname: "WebSlow", severity: "warning", env: "production", team: "web" } },
			]);
			const card = await double.waitFor(() => byTitle(/^🟠 WARNING · WebSlow · production$/)[0], 30_000);
			await acknowledge(card, oncall);

			const reminder = await double.waitFor(
				() => double.channelMessages(CHANNEL).find((m) => m.content.startsWith("⌛") && m.content.includes("WebSlow")),
				30_000,
			);
			expect(reminder.content).toBe(
				`⌛ <@${oncall.id}> your acknowledgement of 🟠 WebSlow on production ran out after 3 s; it still fires.` +
					" Acknowledge it again, or hand it on.",
			);
			const [posted] = postsWith("⌛");
			expect(posted?.body).toMatchObject({ allowed_mentions: { parse: [], roles: [], users: [oncall.id] } });
			const expired = await double.waitFor(
				() => (title(double.messages.get(card.id)).startsWith("🟠") ? double.messages.get(card.id) : undefined),
				20_000,
			);
			expect(description(expired)).toContain(`⌛ acknowledgement by <@${oncall.id}> ran out`);
			expect(await logged("alert.ack-expired")).toHaveLength(1);
		});

		it("answers a second Acknowledge from someone else with who got there first, and lets them take over", async () => {
			await postAlerts(alertmanager.url, [
				{ labels: { alertname: "DbSlow", severity: "warning", env: "production", team: "db" } },
			]);
			const card = await double.waitFor(() => byTitle(/^🟠 WARNING · DbSlow · production$/)[0], 30_000);
			// The card loses its Acknowledge button once acknowledged: the second press reuses its customId.
			const ack = JSON.stringify(card.components).match(/alert:ack:[0-9a-f]{32}/)![0];
			await acknowledge(card, oncall);

			const again = await double.sendInteraction({ kind: "button", customId: ack, messageId: card.id, user: second });
			await again.response();
			const answer = await double.waitFor(
				() => [...double.messages.values()].find((m) => m.interactionId === again.id && m.content),
				10_000,
			);
			expect(answer.content).toMatch(
				new RegExp(`^<@${oncall.id}> got there first \\(acknowledged <t:\\d+:R>\\)\\. Take it over\\?$`),
			);
			expect(description(double.messages.get(card.id))).toContain(`acknowledged by <@${oncall.id}>`);
			expect((await logged("alert.ack")).filter((r) => r.result.startsWith("refused: already"))).toHaveLength(1);

			const takeover = JSON.stringify(answer.components).match(/alert:takeover:[0-9a-f]{32}:\d+:\d+:\d+/)![0];
			await (
				await double.sendInteraction({ kind: "button", customId: takeover, messageId: answer.id, user: second })
			).response();
			await double.waitFor(
				() => description(double.messages.get(card.id)).includes(`acknowledged by <@${second.id}>`),
				20_000,
			);
			expect((await logged("alert.ack")).filter((r) => r.result === "ok: taken over")).toHaveLength(1);

			// The answer showed olivia's acknowledgement; pressed again now that it is sam's, it takes nothing over.
			const stale = await double.sendInteraction({
				kind: "button",
				customId: takeover,
				messageId: answer.id,
				user: oncall,
			});
			await stale.response();
			const refused = await double.waitFor(
				() => [...double.messages.values()].find((m) => m.interactionId === stale.id && m.content),
				10_000,
			);
			expect(refused.content).toContain("The acknowledgement changed since this answer; nothing was taken over.");
			expect((await logged("alert.ack")).filter((r) => r.result === "refused: acknowledgement changed")).toHaveLength(
				1,
			);
			expect(description(double.messages.get(card.id))).toContain(`acknowledged by <@${second.id}>`);
		});

		it("lets exactly one of two Acknowledges pressed at the same instant by two people win; the other hears who did", {
			timeout: 90_000,
		}, async () => {
			await postAlerts(alertmanager.url, [
				{ labels: { alertname: "ApiRace", severity: "warning", env: "production" } },
			]);
			const card = await double.waitFor(() => byTitle(/^🟠 WARNING · ApiRace · production$/)[0], 30_000);
			const ack = JSON.stringify(card.components).match(/alert:ack:[0-9a-f]{32}/)![0];
			const people = [oncall, second];
			const byPeople = async () =>
				(await logged("alert.ack")).filter((r) => people.some((u) => u.id === r.actor.userId));
			let outcome: { actor: { userId: string }; result: string }[] = [];
			let presses: SentInteraction[] = [];
			// On PostgreSQL the race is made certain: a write of the acknowledgement takes a second to commit, so
			// both presses read the group before either writes (the SQLite process runs a press's read and write
			// without yielding, so there the two presses can only race in time).
			const removeTrigger = await slowAckWrites(card.id);
			// Both press together; a press before the store recorded the card's id is refused as an earlier
			// episode's (see acknowledge()), so both press again until the presses reach the card.
			try {
				for (let attempt = 0; attempt < 20; attempt++) {
					const before = (await byPeople()).length;
					presses = await Promise.all(
						people.map((user) => double.sendInteraction({ kind: "button", customId: ack, messageId: card.id, user })),
					);
					await Promise.all(presses.map((p) => p.response()));
					outcome = await double.waitFor(async () => {
						const records = (await byPeople()).slice(before);
						return records.length >= 2 ? records : undefined;
					}, 20_000);
					if (!outcome.some((r) => r.result.includes("earlier episode"))) break;
					await new Promise((r) => setTimeout(r, 100));
				}
			} finally {
				await removeTrigger?.();
			}
			expect(outcome.map((r) => r.result).sort()).toEqual(["ok", "refused: already acknowledged"]);
			const winner = people.find((u) => outcome.some((r) => r.actor.userId === u.id && r.result === "ok"))!;
			const loser = people.find((u) => u !== winner)!;
			const loserPress = presses[people.indexOf(loser)]!;
			const answer = await double.waitFor(
				() => [...double.messages.values()].find((m) => m.interactionId === loserPress.id && m.content),
				10_000,
			);
			expect(answer.content).toMatch(
				new RegExp(`^<@${winner.id}> got there first \\(acknowledged <t:\\d+:R>\\)\\. Take it over\\?$`),
			);
			const winnerPress = presses[people.indexOf(winner)]!;
			expect([...double.messages.values()].filter((m) => m.interactionId === winnerPress.id && m.content)).toEqual([]);
			await double.waitFor(
				() => description(double.messages.get(card.id)).includes(`acknowledged by <@${winner.id}>`),
				20_000,
			);
			expect(description(double.messages.get(card.id))).not.toContain(`acknowledged by <@${loser.id}>`);
		});
	},
);
