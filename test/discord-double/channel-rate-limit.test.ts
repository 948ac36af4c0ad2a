import { describe, expect, it } from "vitest";
import { startDiscordDouble } from "./index.ts";

const A = "400000000000000001";
const B = "400000000000000002";

async function post(apiUrl: string, channel: string) {
	const res = await fetch(`${apiUrl}/v10/channels/${channel}/messages`, {
		method: "POST",
		headers: { "content-type": "application/json", authorization: "Bot x" },
		body: JSON.stringify({ content: "hi" }),
	});
	return {
		status: res.status,
		headers: res.headers,
		body: (await res.json()) as { id?: string; retry_after?: number; global?: boolean },
	};
}

describe("Discord double with a per-channel rate limit", () => {
	it("takes 5 message writes per window per channel, then answers 429 with retry_after and bucket headers", async () => {
		const double = await startDiscordDouble({
			guild: {
				channels: [
					{ id: A, name: "a" },
					{ id: B, name: "b" },
				],
			},
			channelRateLimit: { count: 5, windowMs: 1_000 },
		});
		try {
			const first = await Promise.all(Array.from({ length: 5 }, () => post(double.apiUrl, A)));
			const edit = await fetch(`${double.apiUrl}/v10/channels/${A}/messages/${first[0]!.body.id}`, {
				method: "PATCH",
				headers: { "content-type": "application/json" },
				body: JSON.stringify({ content: "edited" }),
			});
			const other = await post(double.apiUrl, B);
			await new Promise((resolve) => setTimeout(resolve, 1_050));
			const later = await post(double.apiUrl, A);

			expect(first.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
			expect(first.map((r) => r.headers.get("x-ratelimit-remaining")).sort()).toEqual(["0", "1", "2", "3", "4"]);
			expect(first[0]!.headers.get("x-ratelimit-limit")).toBe("5");
			expect(first[0]!.headers.get("x-ratelimit-bucket")).toBe("channel-messages");
			expect(edit.status).toBe(429); // posts and edits share the channel's bucket
			const limited = (await edit.json()) as { retry_after: number; global: boolean };
			expect(limited.retry_after).toBeGreaterThan(0);
			expect(limited.retry_after).toBeLessThanOrEqual(1);
			expect(limited.global).toBe(false);
			expect(edit.headers.get("retry-after")).toBe("1");
			expect(edit.headers.get("x-ratelimit-scope")).toBe("user");
			expect(other.status).toBe(200); // another channel has its own bucket
			expect(later.status).toBe(200);
			expect(double.requests.filter((r) => r.status === 429)).toHaveLength(1);
		} finally {
			await double.close();
		}
	});

	it("keeps the unlimited default when no channel limit is asked for", async () => {
		const double = await startDiscordDouble({ guild: { channels: [{ id: A, name: "a" }] } });
		try {
			const answers = await Promise.all(Array.from({ length: 12 }, () => post(double.apiUrl, A)));

			expect(
				answers.every(
					(r) =>
						r.status === 200 &&
						r.headers.get("x-ratelimit-remaining") === "49" &&
						r.headers.get("x-ratelimit-bucket") === "double",
				),
			).toBe(true);
		} finally {
			await double.close();
		}
	});
});
