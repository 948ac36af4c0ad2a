// From discord.js, not @discordjs/rest: discord.js loads that package's CommonJS build, an ESM import
// would load its ES module build, and an error of one build is not an instance of the other's class.
import { DiscordAPIError, HTTPError } from "discord.js";

/**
 * Why a send failed: Discord refused it (4xx: retrying cannot help), Discord or the network failed
 * (retry later), or opsbot itself failed (a bug: visible in the log, bounded retries, never silent).
 */
export type SendFailure = "refused" | "transient" | "local";

/** Sorts a send error into the three kinds delivery treats differently. */
export function classifySendError(err: unknown): SendFailure {
	if (err instanceof DiscordAPIError || err instanceof HTTPError)
		return err.status === 429 || err.status >= 500 ? "transient" : "refused";
	// undici's errors carry a stable code (UND_ERR_*), sockets an errno code; timeouts abort.
	for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
		const code = (e as { code?: unknown }).code;
		if (typeof code === "string" && /^(UND_ERR_|E[A-Z]+$)/.test(code)) return "transient";
		if (e.name === "AbortError" || e.name === "TimeoutError") return "transient";
	}
	return "local";
}
