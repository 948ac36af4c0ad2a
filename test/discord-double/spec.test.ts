import { describe, expect, it } from "vitest";
import { startDiscordDouble } from "./index.ts";
import { DISCORD_SPEC_PATH, formatViolation, readDiscordSpec, type SpecRequest, specViolations } from "./spec.ts";

const CHANNEL = "400000000000000001";
const button = (customId: string, label = "Ack") => ({ type: 2, style: 1, label, custom_id: customId });
const row = (...components: unknown[]) => ({ type: 1, components });

function request(overrides: Partial<SpecRequest>): SpecRequest {
	return {
		method: "POST",
		path: `/channels/${CHANNEL}/messages`,
		query: new URLSearchParams(),
		kind: "json",
		body: { content: "hi" },
		fileFields: [],
		...overrides,
	};
}
/** [pointer, rule] of each violation, the part a reader of a failing test acts on. */
const broken = (overrides: Partial<SpecRequest>) => specViolations(request(overrides)).map((v) => [v.pointer, v.rule]);

describe("the Discord double's request validator (Discord's OpenAPI spec plus its documented limits)", () => {
	it(
		"passes what opsbot sends: an alert with embeds and buttons, a deferred reply, an edit with an upload, a " +
			"command registration",
		() => {
			const alert = {
				content: "<@&300000000000000001>",
				embeds: [
					{
						title: "🔥 ApiDown",
						description: "down",
						color: 0xe74c3c,
						fields: [{ name: "Host", value: "api-1", inline: true }],
						footer: { text: "opsbot" },
						timestamp: new Date(0).toISOString(),
					},
				],
				components: [
					row(button("alert:ack:1"), button("alert:silence:1", "Silence 1h"), {
						type: 2,
						style: 5,
						label: "Runbook",
						url: "https://runbooks.example.com/api",
					}),
				],
				allowed_mentions: { parse: [], roles: ["300000000000000001"] },
				nonce: "abc",
				enforce_nonce: true,
			};

			expect(broken({ body: alert })).toEqual([]);
			expect(
				broken({
					path: "/interactions/1/tok-abc/callback",
					query: new URLSearchParams({ with_response: "true" }),
					body: { type: 5, data: { flags: 64 } },
				}),
			).toEqual([]);
			expect(
				broken({
					method: "PATCH",
					path: "/webhooks/1/tok-abc/messages/@original",
					kind: "multipart",
					body: {
						embeds: [{ title: "chart", image: { url: "attachment://chart.png" } }],
						attachments: [{ id: 0, filename: "chart.png" }],
					},
					fileFields: ["files[0]"],
				}),
			).toEqual([]);
			expect(
				broken({
					method: "PUT",
					path: "/applications/1/guilds/2/commands",
					body: [
						{
							name: "health",
							description: "Check services",
							default_member_permissions: "0",
							options: [{ type: 3, name: "env", description: "Environment", autocomplete: true }],
						},
					],
				}),
			).toEqual([]);
			expect(broken({ method: "GET", path: "/gateway/bot", kind: "none", body: undefined })).toEqual([]);
		},
	);

	it("names a route Discord does not have, and a method the route does not take", () => {
		expect(broken({ path: "/channels/1/messagez" })).toEqual([["", "route"]]);
		expect(broken({ method: "PUT", path: `/channels/${CHANNEL}/messages` })).toEqual([["", "method"]]);
	});

	it("checks path and query parameters against their schemas", () => {
		expect(broken({ path: "/channels/general/messages" })).toContainEqual(["path/channel_id", "pattern"]);
		expect(
			broken({ method: "GET", kind: "none", body: undefined, query: new URLSearchParams({ limit: "101" }) }),
		).toEqual([["query/limit", "maximum"]]);
		expect(
			broken({ method: "GET", kind: "none", body: undefined, query: new URLSearchParams({ limit: "50" }) }),
		).toEqual([]);
		expect(broken({ query: new URLSearchParams({ wait: "true" }) })).toEqual([["query/wait", "additionalProperties"]]);
	});

	it("checks a JSON body, and multipart's payload_json, against the operation's schema, pointing at the fault", () => {
		expect(broken({ body: { embeds: [{ title: "t".repeat(257) }] } })).toEqual([["/embeds/0/title", "maxLength"]]);
		expect(
			broken({ kind: "multipart", body: { embeds: [{ title: "t", color: "red" }] }, fileFields: ["files[0]"] }),
		).toEqual([["/embeds/0/color", "type"]]);
		expect(
			broken({
				path: "/interactions/1/tok/callback",
				body: {
					type: 8,
					data: { choices: Array.from({ length: 26 }, (_, i) => ({ name: `c${i}`, value: `c${i}` })) },
				},
			}),
		).toEqual([["/data/choices", "maxItems"]]);
		expect(
			broken({
				path: "/interactions/1/tok/callback",
				body: {
					type: 4,
					data: { embeds: [{ title: "t" }], components: [row({ ...button("a"), label: "x".repeat(81) })] },
				},
			}),
		).toEqual([["/data/components/0/components/0/label", "maxLength"]]);
		expect(broken({ method: "GET", path: `/channels/${CHANNEL}`, kind: "json", body: { name: "x" } })).toEqual([
			["", "content-type"],
		]);
	});

	it("checks uploads against files[n]: field names, and attachments naming an upload the request does not carry", () => {
		expect(broken({ kind: "multipart", body: { content: "x" }, fileFields: ["file"] })).toEqual([
			["files/0", "files[n]"],
		]);
		expect(broken({ kind: "multipart", body: { content: "x" }, fileFields: ["files[10]"] })).toEqual([
			["files/0", "files[n]"],
		]);
		expect(
			broken({
				kind: "multipart",
				body: { content: "x", attachments: [{ id: 0 }, { id: 1 }] },
				fileFields: ["files[0]"],
			}),
		).toEqual([["/attachments/1/id", "files[n]"]]);
	});

	it("enforces the documented limits the spec leaves out", () => {
		expect(broken({ body: { content: "x".repeat(2_001) } })).toEqual([["/content", "content-length"]]);
		expect(broken({ body: { content: "x".repeat(2_000) } })).toEqual([]);
		const big = (i: number) => ({ title: `e${i}`, description: "d".repeat(1_990) });
		expect(broken({ body: { embeds: [big(1), big(2), big(3), big(4)] } })).toEqual([["/embeds", "embeds-total"]]);
		expect(broken({ body: { components: Array.from({ length: 6 }, (_, i) => row(button(`b${i}`))) } })).toEqual([
			["/components", "action-rows"],
		]);
		expect(broken({ body: { components: [row(button("same")), row(button("same"))] } })).toEqual([
			["/components/1/components/0/custom_id", "unique-custom-id"],
		]);
		expect(broken({ body: { embeds: [] } })).toEqual([["", "empty-message"]]);
		expect(broken({ method: "PATCH", path: `/channels/${CHANNEL}/messages/1`, body: { embeds: [] } })).toEqual([]);
		expect(broken({ path: "/interactions/1/tok/callback", body: { type: 4, data: { flags: 64 } } })).toEqual([
			["/data", "empty-message"],
		]);
	});

	it("enforces the fields each button style needs", () => {
		const withButton = (b: unknown) => broken({ body: { content: "x", components: [row(b)] } });

		expect(withButton({ type: 2, style: 5, label: "Runbook", custom_id: "x" })).toEqual([
			["/components/0/components/0/url", "button-style"],
			["/components/0/components/0/custom_id", "button-style"],
		]);
		expect(withButton({ type: 2, style: 1, label: "Ack" })).toEqual([
			["/components/0/components/0/custom_id", "button-style"],
		]);
		expect(withButton({ type: 2, style: 2, custom_id: "a" })).toEqual([
			["/components/0/components/0/label", "button-style"],
		]);
		expect(withButton({ type: 2, style: 4, label: "Go", custom_id: "a", url: "https://example.com" })).toEqual([
			["/components/0/components/0/url", "button-style"],
		]);
	});

	it("names the request, the pointer and the rule in one line", () => {
		const [violation] = specViolations(request({ body: { content: "x".repeat(2_001) } }));

		expect(formatViolation(violation!)).toBe(
			`POST /channels/${CHANNEL}/messages (create_message): /content: content-length: content is 2001 characters; ` +
				`Discord takes at most 2,000`,
		);
	});

	it("says where the spec is expected when it is missing", () => {
		expect(DISCORD_SPEC_PATH.endsWith("/shared/discord-api-spec/openapi.json")).toBe(true);
		expect(() => readDiscordSpec("/nonexistent/openapi.json")).toThrow(
			/Discord's OpenAPI spec not found at \/nonexistent\/openapi.json.*\.\.\/shared\/discord-api-spec\/openapi\.json/,
		);
	});
});

describe("the Discord double refuses what Discord would, and fails the test", () => {
	it("answers 400 with Discord's error shape, records the violation; close() rejects while one is left", async () => {
		const double = await startDiscordDouble({ guild: { channels: [{ id: CHANNEL, name: "ops" }] } });
		const res = await fetch(`${double.apiUrl}/v10/channels/${CHANNEL}/messages`, {
			method: "POST",
			headers: { "content-type": "application/json" },
			body: JSON.stringify({ content: "x".repeat(2_001) }),
		});

		expect(res.status).toBe(400);
		expect(await res.json()).toEqual({
			code: 50035,
			message: "Invalid Form Body",
			errors: {
				content: {
					_errors: [
						{
							code: "BASE_TYPE_INVALID",
							message: "content-length: content is 2001 characters; Discord takes at most 2,000",
						},
					],
				},
			},
		});
		expect(double.channelMessages(CHANNEL)).toEqual([]);
		expect(double.violations.map((v) => [v.method, v.path, v.pointer, v.rule])).toEqual([
			["POST", `/channels/${CHANNEL}/messages`, "/content", "content-length"],
		]);
		await expect(double.close()).rejects.toThrow(
			`POST /channels/${CHANNEL}/messages (create_message): /content: content-length`,
		);
	});

	it("answers 404 for a route Discord does not have; takeViolations() hands the violations to the test", async () => {
		const double = await startDiscordDouble();
		try {
			const res = await fetch(`${double.apiUrl}/v10/channels/${double.channelIds[0]}/messagez`, {
				method: "POST",
				headers: { "content-type": "application/json" },
				body: "{}",
			});

			expect(res.status).toBe(404);
			expect(double.takeViolations().map((v) => v.rule)).toEqual(["route"]);
			expect(double.violations).toEqual([]);
		} finally {
			await double.close();
		}
	});
});
