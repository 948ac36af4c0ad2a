import { PermissionFlagsBits as P } from "discord.js";
import { describe, expect, it } from "vitest";
import { channelPermissions } from "../../src/services/doctor.ts";

const GUILD = "100000000000000001";
const BOT = "100000000000000002";
const BOT_ROLE = "300000000000000001";
const OTHER_ROLE = "300000000000000002";
const role = (id: string, bits: bigint) => ({ id, name: id, permissions: bits.toString(), mentionable: false });
const overwrite = (id: string, type: 0 | 1, allow: bigint, deny: bigint) => ({
	id,
	type,
	allow: allow.toString(),
	deny: deny.toString(),
});

describe("the bot's permissions in a channel, as Discord computes them", () => {
	const roles = [
		role(GUILD, P.ViewChannel),
		role(BOT_ROLE, P.SendMessages | P.EmbedLinks),
		role(OTHER_ROLE, P.AttachFiles),
	];

	it("adds @everyone's and the bot's roles, not roles it does not hold", () => {
		const bits = channelPermissions(GUILD, BOT, [BOT_ROLE], roles, []);
		expect(bits & (P.ViewChannel | P.SendMessages | P.EmbedLinks)).toBe(P.ViewChannel | P.SendMessages | P.EmbedLinks);
		expect(bits & P.AttachFiles).toBe(0n);
	});

	it("applies @everyone's overwrite, then the roles' (allow wins over @everyone's deny), then the member's", () => {
		const denyAll = overwrite(GUILD, 0, 0n, P.SendMessages | P.EmbedLinks | P.ViewChannel);
		expect(channelPermissions(GUILD, BOT, [BOT_ROLE], roles, [denyAll]) & P.EmbedLinks).toBe(0n);
		const roleAllows = overwrite(BOT_ROLE, 0, P.EmbedLinks | P.ViewChannel, 0n);
		const withRole = channelPermissions(GUILD, BOT, [BOT_ROLE], roles, [denyAll, roleAllows]);
		expect(withRole & (P.EmbedLinks | P.ViewChannel)).toBe(P.EmbedLinks | P.ViewChannel);
		expect(withRole & P.SendMessages).toBe(0n);
		const memberDenies = overwrite(BOT, 1, 0n, P.ViewChannel);
		expect(channelPermissions(GUILD, BOT, [BOT_ROLE], roles, [denyAll, roleAllows, memberDenies]) & P.ViewChannel).toBe(
			0n,
		);
	});

	it("gives everything to an administrator, whatever the overwrites say", () => {
		const admin = [...roles, role("300000000000000003", P.Administrator)];
		const bits = channelPermissions(GUILD, BOT, ["300000000000000003"], admin, [
			overwrite(GUILD, 0, 0n, P.SendMessages),
		]);
		expect(bits & P.SendMessages).toBe(P.SendMessages);
	});
});
