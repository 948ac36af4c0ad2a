/**
 * This process's container restarts in flight. Shutdown waits for them up to their own timeout
 * (longer than the usual drain), and if it cannot wait any more, each is recorded as interrupted
 * and its user told, instead of vanishing with the process.
 */
export interface RunningRestarts {
	/**
	 * Adds a restart that ends by `until` (epoch ms); `interrupt` records and answers it if the process must stop first.
	 * Returns its removal.
	 */
	add(until: number, interrupt: () => Promise<void>): () => void;
	/** When the last restart running now must have ended, or undefined when none runs. */
	until(): number | undefined;
	/** Calls `interrupt` of every restart still running, once each. */
	interruptAll(): Promise<void>;
}

export function createRunningRestarts(): RunningRestarts {
	const running = new Set<{ until: number; interrupt: () => Promise<void> }>();
	return {
		add(until, interrupt) {
			const entry = { until, interrupt };
			running.add(entry);
			return () => void running.delete(entry);
		},
		until() {
			return running.size === 0 ? undefined : Math.max(...[...running].map((r) => r.until));
		},
		async interruptAll() {
			const entries = [...running];
			running.clear();
			await Promise.allSettled(entries.map((r) => r.interrupt()));
		},
	};
}
