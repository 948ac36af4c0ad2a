import type { Logger } from "../log.ts";

/** A pass run every `intervalMs` while `active`, one at a time (a second call joins the running one). */
export interface PeriodicPass<T> {
	/** Runs one pass now, or waits for the one running. */
	pass(): Promise<T>;
	/** Whether stop() was called: a long pass checks it to end early. */
	stopped(): boolean;
	/** Stops the timer and waits for the running pass. */
	stop(): Promise<void>;
}

/**
 * The loop of the relay's background passes (reconciliation, clocks, silence watch, announcements). A
 * pass that throws is logged as `failed.msg` and resolves with `failed.value`; the next tick tries again.
 */
export function startPeriodicPass<T>(options: {
	readonly run: () => Promise<T>;
	readonly intervalMs: number;
	/** Whether this replica runs passes now (the one holding the gateway); default always. */
	readonly active?: () => boolean;
	readonly log: Logger;
	readonly failed: { readonly msg: string; readonly value: T };
	/** After each pass that did not throw. */
	readonly done?: (result: T) => void;
}): PeriodicPass<T> {
	let running: Promise<T> | undefined;
	let stopped = false;
	const pass = (): Promise<T> =>
		(running ??= options
			.run()
			.then((result) => {
				options.done?.(result);
				return result;
			})
			.catch((err: unknown) => {
				options.log.error({ err }, options.failed.msg);
				return options.failed.value;
			})
			.finally(() => {
				running = undefined;
			}));
	const timer = setInterval(() => {
		if (!stopped && (options.active?.() ?? true)) void pass();
	}, options.intervalMs);
	timer.unref();
	return {
		pass,
		stopped: () => stopped,
		async stop() {
			stopped = true;
			clearInterval(timer);
			await running;
		},
	};
}
