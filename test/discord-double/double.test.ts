import {
	AttachmentBuilder,
	Client,
	DiscordAPIError,
	EmbedBuilder,
	Events,
	GatewayIntentBits,
	MessageFlags,
	type TextChannel,
} from "discord.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DiscordDouble, startDiscordDouble } from "./index.ts";

describe("Discord API double with the real discord.js client", () => {
	let double: DiscordDouble;
	let client: Client;

	beforeAll(async () => {
		double = await startDiscordDouble({
			interactionDeadlineMs: 1_000,
			guild: { roles: [{ id: "300000000000000001", name: "oncall" }] },
		});
		client = new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: double.apiUrl } });
		const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
		await client.login("test-token-without-dots");
		await ready;
	});
	afterAll(async () => {
		await client.destroy();
		await double.close();
	});

	it("logs in over the gateway and caches the guild and its channels", () => {
		expect(double.identified()).toBe(1);
		expect(client.guilds.cache.get(double.guildId)?.channels.cache.has(double.channelIds[0] ?? "")).toBe(true);
		expect(double.requests.filter((r) => r.status === 404)).toEqual([]);
	});

	it("delivers a slash command with its options and member roles; defer then editReply lands as @original", async () => {
		const seen = new Promise<{ env: string | null; roles: string[] }>((resolve) =>
			client.once(Events.InteractionCreate, async (interaction) => {
				if (!interaction.isChatInputCommand()) return;
				await interaction.deferReply({ flags: MessageFlags.Ephemeral });
				await interaction.editReply({ embeds: [new EmbedBuilder().setTitle("done")] });
				resolve({
					env: interaction.options.getString("env"),
					roles: Array.isArray(interaction.member?.roles)
						? interaction.member.roles
						: [...(interaction.member?.roles.cache.keys() ?? [])],
				});
			}),
		);

		const sent = await double.sendInteraction({
			kind: "command",
			name: "health",
			options: [{ name: "env", type: 3, value: "production" }],
			user: { roles: ["300000000000000001"] },
		});
		const first = await sent.response();
		const result = await seen;

		expect(first).toMatchObject({ type: 5, data: { flags: 64 } });
		expect(result.env).toBe("production");
		expect(result.roles).toContain("300000000000000001");
		expect(double.originalMessage(sent.id)?.embeds[0]).toMatchObject({ title: "done" });
	});

	it("lets a button's deferUpdate + editReply edit the message it was on", async () => {
		const channel = client.channels.cache.get(double.channelIds[0] ?? "") as TextChannel;
		const posted = await channel.send({
			content: "before",
			components: [{ type: 1, components: [{ type: 2, style: 1, label: "Go", custom_id: "x:go" }] }],
		});
		client.once(Events.InteractionCreate, async (interaction) => {
			if (!interaction.isButton()) return;
			await interaction.deferUpdate();
			await interaction.editReply({ content: `after ${interaction.customId}` });
		});

		const sent = await double.sendInteraction({ kind: "button", customId: "x:go", messageId: posted.id });

		expect((await sent.response()).type).toBe(6);
		const edited = await double.waitFor(() =>
			double.messages.get(posted.id)?.content === "after x:go" ? double.messages.get(posted.id) : undefined,
		);
		expect(edited.edits).toBe(1);
	});

	it("answers autocomplete, and refuses more than 25 choices like Discord", async () => {
		const results: string[] = [];
		client.on(Events.InteractionCreate, async function handler(interaction) {
			if (!interaction.isAutocomplete()) return;
			const n = Number(interaction.options.getFocused());
			await interaction.respond(Array.from({ length: n }, (_, i) => ({ name: `c${i}`, value: `c${i}` }))).then(
				() => results.push(`ok ${n}`),
				(err: DiscordAPIError) => results.push(`error ${err.code}`),
			);
			if (results.length === 2) client.off(Events.InteractionCreate, handler);
		});

		const ok = await double.sendInteraction({
			kind: "autocomplete",
			name: "health",
			options: [{ name: "env", type: 3, value: "3", focused: true }],
		});
		await ok.response();
		await double.sendInteraction({
			kind: "autocomplete",
			name: "health",
			options: [{ name: "env", type: 3, value: "26", focused: true }],
		});
		await double.waitFor(() => results.length === 2);

		expect(double.interactionResponse(ok.id)).toMatchObject({
			type: 8,
			data: { choices: [{ name: "c0" }, { name: "c1" }, { name: "c2" }] },
		});
		expect(results).toEqual(["ok 3", "error 50035"]);
		expect(double.takeViolations().map((v) => [v.operation, v.pointer, v.rule])).toEqual([
			["create_interaction_response", "/data/choices", "maxItems"],
		]);
	});

	it("stores uploaded files and edits of channel messages", async () => {
		const channel = client.channels.cache.get(double.channelIds[0] ?? "") as TextChannel;

		const message = await channel.send({
			embeds: [new EmbedBuilder().setTitle("alert")],
			files: [new AttachmentBuilder(Buffer.from("a,b\n1,2\n"), { name: "alerts.csv" })],
		});
		await message.edit({ embeds: [new EmbedBuilder().setTitle("alert (resolved)")] });

		const stored = double.messages.get(message.id);
		expect(stored?.files[0]).toMatchObject({ name: "alerts.csv", size: 8 });
		expect(stored?.embeds[0]).toMatchObject({ title: "alert (resolved)" });
		expect(stored?.edits).toBe(1);
	});

	it("rejects an embed with 26 fields with code 50035", async () => {
		const channelId = double.channelIds[0] ?? "";
		const fields = Array.from({ length: 26 }, (_, i) => ({ name: `f${i}`, value: "v" }));

		const error = await client.rest
			.post(`/channels/${channelId}/messages`, { body: { embeds: [{ title: "t", fields }] } })
			.catch((err: unknown) => err);

		expect(error).toBeInstanceOf(DiscordAPIError);
		expect((error as DiscordAPIError).code).toBe(50035);
		expect(double.takeViolations().map((v) => [v.method, v.operation, v.pointer, v.rule])).toEqual([
			["POST", "create_message", "/embeds/0/fields", "maxItems"],
		]);
	});

	it("makes discord.js wait out a 429 and retry a 500, each ending in success", async () => {
		const channel = client.channels.cache.get(double.channelIds[0] ?? "") as TextChannel;
		const path = `/channels/${channel.id}/messages`;
		const before = double.requests.length;

		double.failNext({ method: "POST", pathPrefix: path, status: 429, retryAfterSeconds: 0.3 });
		await channel.send("after a 429");
		double.failNext({ method: "POST", pathPrefix: path, status: 500 });
		await channel.send("after a 500");

		const statuses = double.requests
			.slice(before)
			.filter((r) => r.path === path && r.method === "POST")
			.map((r) => r.status);
		expect(statuses).toEqual([429, 200, 500, 200]);
	});

	it("answers a second acknowledgement with 40060 and a late one with 10062", async () => {
		const errors: number[] = [];
		const handled = new Promise<void>((resolve) => {
			client.on(Events.InteractionCreate, async function handler(interaction) {
				if (!interaction.isChatInputCommand()) return;
				if (interaction.commandName === "twice") {
					await interaction.reply("one");
					await client.rest
						.post(`/interactions/${interaction.id}/${interaction.token}/callback`, {
							body: { type: 4, data: { content: "two" } },
							auth: false,
						})
						.catch((err: DiscordAPIError) => errors.push(err.code as number));
				} else {
					await new Promise((r) => setTimeout(r, 1_100));
					await interaction.reply("late").catch((err: DiscordAPIError) => errors.push(err.code as number));
				}
				if (errors.length === 2) {
					client.off(Events.InteractionCreate, handler);
					resolve();
				}
			});
		});

		await double.sendInteraction({ kind: "command", name: "twice" });
		await double.sendInteraction({ kind: "command", name: "late" });
		await handled;

		expect(errors.sort()).toEqual([10062, 40060]);
	});

	it("stores guild commands registered by bulk overwrite", async () => {
		await client.application?.commands.set([{ name: "health", description: "Check services" }], double.guildId);

		expect(double.commands.guild.get(double.guildId)?.map((c) => c.name)).toEqual(["health"]);
	});
});
