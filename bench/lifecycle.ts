import { randomBytes } from "node:crypto";
import { type StoredMessage, startDiscordDouble } from "../test/discord-double/index.ts";
import { postAlerts, startAlertManager } from "../test/support/alertmanager.ts";
import { startTestBot } from "../test/support/bot.ts";
import { freePort } from "../test/support/proc.ts";
import { type BenchRow, round } from "./types.ts";

const CHANNEL = "400000000000000001";
const PIPELINE = "400000000000000009";
const LEADS = "300000000000000007";
/** The configured clocks, short so a run takes a minute: what is measured is the delay past them. */
const ESCALATE_AFTER_MS = 6_000;
const RECONCILE_INTERVAL_MS = 5_000;
const GRACE_MS = 5_000;
const DEADMAN_AFTER_MS = 6_000;
const RUNS = 3;

const title = (m: StoredMessage | undefined) => String((m?.embeds[0] as { title?: string } | undefined)?.title ?? "");

/**
 * The latency targets, through the shipped process (node src/main.ts, SQLite store) against a
 * real AlertManager 0.25 and the Discord double: how long after each clock ran out Discord got the post.
 * - escalation: mention posted - (alert start + afterMinutes); target +15 s;
 * - lost webhook (AlertManager points at a dead port): card posted - (alert start + grace); target
 *   within one interval + 15 s;
 * - lost resolution (send_resolved off): card resolved - (resolution + grace); target interval + 15 s;
 * - dead man: notice posted - (Watchdog heartbeat + afterMinutes); target +60 s.
 */
export async function run(): Promise<BenchRow[]> {
	const token = randomBytes(24).toString("hex");
	const port = await freePort();
	const dead = `http://127.0.0.1:${await freePort()}/alerts`;
	const webhookUrl = `http://127.0.0.1:${port}/alerts`;
	const double = await startDiscordDouble({
		guild: {
			channels: [
				{ id: CHANNEL, name: "alerts" },
				{ id: PIPELINE, name: "pipeline" },
			],
			roles: [{ id: LEADS, name: "leads" }],
		},
	});
	const alertmanager = await startAlertManager({ webhookUrl, bearerToken: token });
	const bot = await startTestBot(
		double,
		`discord: { guildId: "${double.guildId}", roles: { leads: "${LEADS}" } }
environments:
  production:
    alertmanager: { url: "${alertmanager.url}", timeoutMs: 2000 }
alerts:
  listen: { host: 127.0.0.1, port: ${port} }
  defaultChannel: "${CHANNEL}"
  regroupMinutes: 0
  reconcile: { intervalSeconds: ${RECONCILE_INTERVAL_MS / 1000}, graceSeconds: ${GRACE_MS / 1000}, ` +
			`alertmanagerSettleSeconds: 0, receivers: [opsbot] }
  deadman: { alertname: Watchdog, afterMinutes: ${DEADMAN_AFTER_MS / 60_000}, channel: "${PIPELINE}" }
  routes:
    - match: { team: db }
      channel: "${CHANNEL}"
      escalation: { afterMinutes: ${ESCALATE_AFTER_MS / 60_000}, mention: [leads] }
`,
		{ WEBHOOK_TOKEN: token },
	);
	const wait = <T>(probe: () => T | undefined) => double.waitFor(probe, 120_000);
	const postedAt = new Map<string, number>();
	// When each message or edit reached the double, as Discord would see it.
	const seenAt = (probe: () => StoredMessage | undefined) =>
		wait(() => {
			const m = probe();
			if (!m) return undefined;
			const key = `${m.id}:${m.edits}:${title(m)}`;
			if (!postedAt.has(key)) postedAt.set(key, Date.now());
			return postedAt.get(key);
		});
	const rows: BenchRow[] = [];
	try {
		const escalation: number[] = [];
		const lost: number[] = [];
		const gone: number[] = [];
		for (let i = 0; i < RUNS; i++) {
			const start = Date.now();
			await postAlerts(alertmanager.url, [{ labels: { alertname: `Esc${i}`, team: "db", severity: "critical" } }]);
			const at = await seenAt(() =>
				double.channelMessages(CHANNEL).find((m) => m.content.startsWith("📣") && m.content.includes(`Esc${i}`)),
			);
			escalation.push(at - (start + ESCALATE_AFTER_MS));
		}
		await alertmanager.reconfigure({ webhookUrl: dead, bearerToken: token });
		for (let i = 0; i < RUNS; i++) {
			const start = Date.now();
			await postAlerts(alertmanager.url, [{ labels: { alertname: `Lost${i}`, severity: "warning" } }]);
			const at = await seenAt(() => double.channelMessages(CHANNEL).find((m) => title(m).includes(`Lost${i}`)));
			lost.push(at - (start + GRACE_MS));
		}
		for (let i = 0; i < RUNS; i++) {
			const labels = { alertname: `Lost${i}`, severity: "warning" };
			const end = Date.now();
			await postAlerts(alertmanager.url, [{ labels, endsAt: new Date(end - 1_000).toISOString() }]);
			const at = await seenAt(() =>
				double.channelMessages(CHANNEL).find((m) => title(m).startsWith("✅") && title(m).includes(`Lost${i}`)),
			);
			gone.push(at - (end + GRACE_MS));
		}
		await alertmanager.reconfigure({ webhookUrl, bearerToken: token });
		const beat = Date.now();
		await postAlerts(alertmanager.url, [{ labels: { alertname: "Watchdog", severity: "none" } }]);
		// The watch began when the bot started: its first silence was alarmed long ago. The heartbeat ends it
		// ("back"); the next silence's notice is the one measured, from when the Watchdog was fired (an
		// over-estimate by AlertManager's group_wait, 1 s here).
		await wait(() => double.channelMessages(PIPELINE).find((m) => m.content.startsWith("✅")));
		const deadman = await seenAt(() => double.channelMessages(PIPELINE).filter((m) => m.content.startsWith("🚨"))[1]);
		const worst = (xs: number[]) => round(Math.max(...xs) / 1000);
		const note = `${RUNS} runs, worst; under load (other helpers' tests on the 2-core machine)`;
		rows.push(
			{
				bench: "lifecycle",
				metric: "escalation mention after afterMinutes",
				value: worst(escalation),
				unit: "s",
				note: `target +15 s; ${note}`,
			},
			{
				bench: "lifecycle",
				metric: "lost webhook posted after the grace",
				value: worst(lost),
				unit: "s",
				note: `target interval (5 s) + 15 s; ${note}`,
			},
			{
				bench: "lifecycle",
				metric: "lost resolution shown after the grace",
				value: worst(gone),
				unit: "s",
				note: `target interval (5 s) + 15 s; ${note}`,
			},
			{
				bench: "lifecycle",
				metric: "dead-man notice after afterMinutes",
				value: round((deadman - beat - DEADMAN_AFTER_MS) / 1000),
				unit: "s",
				note: "target +60 s; one run, from firing the Watchdog (includes its group_wait)",
			},
		);
	} finally {
		await bot.stop();
		await alertmanager.stop();
		await double.close();
	}
	return rows;
}
