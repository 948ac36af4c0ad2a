/** An expected failure the user can fix; its message is shown as written (it must hold no secrets). */
export class UserFacingError extends Error {
	/** True when a service the request needs did not answer (down, unreachable, too slow), as opposed to refusing the request; the CLI exits 69 for it. */
	readonly unavailable: boolean;
	constructor(message: string, options?: ErrorOptions & { unavailable?: boolean }) {
		super(message, options);
		this.name = "UserFacingError";
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
		message: string,
		refusal: { reason: string; target?: string; details?: Record<string, unknown> },
		options?: ErrorOptions,
	) {
		super(message, options);
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
