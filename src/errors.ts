import { type Text, textToPlain } from "./render/report.ts";

/**
 * An expected failure the user can fix (it must hold no secrets). Its words are report text: plain
 * strings are literal, values are typed parts (`{ code }`, `{ strong }`, `{ time }`), so each view
 * shows them its way: Discord with textToMarkdown, the terminal with textToPlain (which is also the
 * error's `message`, for logs and anything that reads it as a string).
 */
export class UserFacingError extends Error {
	readonly text: Text;
	/**
	 * True when a service the request needs did not answer (down, unreachable, too slow), as opposed to refusing the
	 * request; the CLI exits 69 for it.
	 */
	readonly unavailable: boolean;
	constructor(text: Text, options?: ErrorOptions & { unavailable?: boolean }) {
		super(textToPlain(text), options);
		this.name = "UserFacingError";
		this.text = text;
		this.unavailable = options?.unavailable ?? false;
	}
}

/** A person tried something their roles do not allow. */
export class PermissionDeniedError extends UserFacingError {
	constructor(what: string) {
		super(`You are not allowed to ${what}. Ask an admin to add one of your roles to opsbot's access list.`);
		this.name = "PermissionDeniedError";
	}
}

/**
 * A button or form press refused before anything ran (stale, forged, expired, someone else's): the
 * message goes to the user, and the router records `reason` (short, for the action log) against
 * `target` (default: the customId) and `details`.
 */
export class PressRefusedError extends UserFacingError {
	readonly reason: string;
	readonly target: string | undefined;
	readonly details: Record<string, unknown> | undefined;
	constructor(
		text: Text,
		refusal: { reason: string; target?: string; details?: Record<string, unknown> },
		options?: ErrorOptions,
	) {
		super(text, options);
		this.name = "PressRefusedError";
		this.reason = refusal.reason;
		this.target = refusal.target;
		this.details = refusal.details;
	}
}

/** Promise that rejects after `ms` unless `work` settles first; `onTimeout` lets the caller abort the work. */
export async function withTimeout<T>(work: Promise<T>, ms: number, onTimeout?: () => void): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	const timeout = new Promise<never>((_, reject) => {
		timer = setTimeout(() => {
			onTimeout?.();
			reject(new TimeoutError(ms));
		}, ms);
	});
	try {
		return await Promise.race([work, timeout]);
	} finally {
		clearTimeout(timer);
	}
}

/** Raised by withTimeout; `ms` is the budget that ran out. */
export class TimeoutError extends Error {
	readonly ms: number;
	constructor(ms: number) {
		super(`timed out after ${ms} ms`);
		this.name = "TimeoutError";
		this.ms = ms;
	}
}
