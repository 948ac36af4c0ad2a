import { describe, expect, it } from "vitest";
import { createAccessPolicy } from "../../src/discord/access.ts";

const policy = createAccessPolicy({
	discord: {
		guildId: "100000000000000001",
		opsChannels: [],
		roles: { oncall: "100000000000000100", admins: "100000000000000101" },
	},
	access: { commands: { health: ["everyone"], pool: ["oncall"] }, actions: { "pool.terminate": ["admins"] } },
});
const actor = (...roleIds: string[]) => ({ userId: "1", username: "u", roleIds });

describe("access policy", () => {
	it("allows by role name, resolved to the role id", () => {
		expect(policy.mayUseCommand(actor("100000000000000100"), "pool")).toBe(true);
		expect(policy.mayDo(actor("100000000000000101"), "pool.terminate")).toBe(true);
	});

	it("denies by default: unlisted commands and actions, and roles not named", () => {
		expect(policy.mayUseCommand(actor("100000000000000101"), "pool")).toBe(false);
		expect(policy.mayUseCommand(actor("100000000000000101"), "audit")).toBe(false);
		expect(policy.mayDo(actor("100000000000000100"), "alert.restart")).toBe(false);
	});

	it("lets everyone use what is granted to everyone", () => {
		expect(policy.mayUseCommand(actor(), "health")).toBe(true);
	});
});
