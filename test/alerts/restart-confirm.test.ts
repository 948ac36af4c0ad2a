import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { alertRestartConfirm } from "../../src/alerts/buttons.ts";
import type { ComponentInteraction, HandlerContext } from "../../src/discord/handler.ts";

const GROUP = "0123456789abcdef0123456789abcdef";

/**
 * A confirmed restart's run step with what it talks to recorded in one list, in order: the restart claim
 * (taken, released), the SSH command's answer and the presser's reply. Only what the run step reads is here.
 */
function restartScene(ssh: () => Promise<{ code: number; stdout: string; stderr: string }>) {
	const steps: string[] = [];
	const ctx = {
		config: {
			ops: {
				environments: { production: { ssh: { host: "127.0.0.1", containers: ["api"] } } },
				alerts: { restartCooldownSeconds: 300 },
			},
			env: {},
		},
		log: pino({ level: "silent" }),
		actor: { userId: "200000000000000001", username: "olivia", roleIds: [] },
		services: {
			alertState: {
				restarts: {
					acquire: async () => {
						steps.push("claim taken");
						return { ok: true };
					},
					release: async () => void steps.push("claim released"),
				},
				running: { add: () => () => undefined },
				store: { history: { record: async () => undefined }, setRestart: async () => undefined },
			},
			ssh: {
				run: async () => {
					steps.push("docker restart");
					return ssh();
				},
			},
			metrics: { alertActions: { inc: () => undefined } },
			actionLog: { record: async () => undefined },
		},
	} as unknown as HandlerContext;
	const interaction = {
		editReply: async (reply: { content: string }) => void steps.push(`reply: ${reply.content}`),
	} as unknown as ComponentInteraction;
	const confirmed = { kind: "alert.restart", environment: "production", container: "api", groupId: GROUP, episode: 1 };
	return { steps, run: () => alertRestartConfirm.run(interaction, confirmed as never, ctx) };
}

describe("a confirmed restart", () => {
	// Whoever reads the answer and presses again at once must meet the cooldown, not "already running".
	it.each([
		{
			outcome: "it restarted",
			answer: { code: 0, stdout: "api\n", stderr: "" },
			reply: "🔁 Restarted `api` on `127.0.0.1`.",
		},
		{
			outcome: "the restart failed, and only once",
			answer: { code: 1, stdout: "", stderr: "Error: No such container: api\n" },
			reply: "Restart of `api` failed (exit 1): `Error: No such container: api`",
		},
	])("releases its claim before the reply says $outcome", async ({ answer, reply }) => {
		const scene = restartScene(async () => answer);
		await scene.run();
		expect(scene.steps).toEqual(["claim taken", "docker restart", "claim released", `reply: ${reply}`]);
	});

	it("releases its claim when the SSH command itself fails", async () => {
		const scene = restartScene(async () => {
			throw new Error("connect ECONNREFUSED 127.0.0.1:22");
		});
		await expect(scene.run()).rejects.toThrow("ECONNREFUSED");
		expect(scene.steps).toEqual(["claim taken", "docker restart", "claim released"]);
	});
});
