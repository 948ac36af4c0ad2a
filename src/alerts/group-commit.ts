/**
 * Most webhooks one group commit writes. The receiver's connection cap (128) keeps batches below this in
 * practice; the bound keeps one transaction (one statement's arrays in PostgreSQL, one synchronous
 * transaction holding the event loop in SQLite) from growing without end.
 */
export const MAX_GROUP_COMMIT = 256;

/**
 * How long the first webhook of a group commit waits for others to join it, in both stores. A few
 * milliseconds of gathering mean fewer, larger commits: less CPU per webhook on two shared cores, where
 * the load, not the disk, sets the tail. SQLite's COMMIT also syncs on the event loop, so no webhook is
 * read meanwhile. Measured (bench/RESULTS.md, ack p99): SQLite at 500/s 26-44 ms committing every turn of
 * the event loop, 22-26 ms with 3 ms; PostgreSQL, medians of 9 and 16 runs, 70 -> 61 ms at 1,000/s
 * (webhooks left unsent in 3 of the 9 runs, 1 of the 16) and 36 -> 35 ms at 500/s, inside the runs' spread.
 */
export const GROUP_COMMIT_WINDOW_MS = 3;

/** Jobs written together, each caller answered for itself: see groupCommit(). */
export interface GroupCommit<Job, Result> {
	/** Queues `job` for the next group commit; settles once the transaction that wrote it has committed (or failed). */
	add(job: Job): Promise<Result>;
	/** Commits what is queued now, without waiting for the window, and waits for every commit in flight. */
	drain(): Promise<void>;
}

export interface GroupCommitOptions<Job, Result> {
	/** Writes `batch` in one transaction; the results in the batch's order. */
	commit(batch: readonly Job[]): Promise<readonly Result[]> | readonly Result[];
	/**
	 * Whether a batch that failed with `err` may have failed for one job's sake, so each job gets a
	 * transaction of its own and only the one at fault fails; otherwise every job of the batch fails with `err`.
	 */
	retryAlone(err: unknown): boolean;
	/** How long the first job waits for others to join it (ms); without it, until the next turn of the event loop. */
	windowMs?: number;
	/** Most jobs one transaction writes; reaching it starts a commit at once. */
	maxBatch?: number;
}

/**
 * Group commit: jobs that arrive within the window (or while a commit is in flight) are written
 * together, in one transaction, so one durable flush covers them all. One commit at a time; each
 * caller hears back only after the COMMIT of the transaction that wrote its job.
 */
export function groupCommit<Job, Result>(options: GroupCommitOptions<Job, Result>): GroupCommit<Job, Result> {
	const maxBatch = options.maxBatch ?? MAX_GROUP_COMMIT;
	type Waiter = { job: Job; resolve: (result: Result) => void; reject: (err: unknown) => void };
	let queue: Waiter[] = [];
	let cancelScheduled: (() => void) | undefined;
	let running: Promise<void> | undefined;

	async function commitAlone(waiter: Waiter): Promise<void> {
		try {
			waiter.resolve((await options.commit([waiter.job]))[0]!);
		} catch (err) {
			waiter.reject(err);
		}
	}

	async function commitQueued(): Promise<void> {
		while (queue.length > 0) {
			const batch = queue.slice(0, maxBatch);
			queue = queue.slice(batch.length);
			if (batch.length === 1) {
				await commitAlone(batch[0]!);
				continue;
			}
			try {
				const results = await options.commit(batch.map((w) => w.job));
				for (const [i, waiter] of batch.entries()) waiter.resolve(results[i]!);
			} catch (err) {
				if (options.retryAlone(err)) for (const waiter of batch) await commitAlone(waiter);
				else for (const waiter of batch) waiter.reject(err);
			}
		}
	}

	function start(): void {
		cancelScheduled?.();
		cancelScheduled = undefined;
		if (running) return; // the commit in flight takes what is queued when it is done
		running = commitQueued().finally(() => {
			running = undefined;
			// Jobs added between the loop's last look at the queue and here.
			if (queue.length > 0) start();
		});
	}

	function schedule(): void {
		if (options.windowMs === undefined) {
			const immediate = setImmediate(start);
			cancelScheduled = () => clearImmediate(immediate);
		} else {
			const timeout = setTimeout(start, options.windowMs);
			cancelScheduled = () => clearTimeout(timeout);
		}
	}

	return {
		add(job) {
			return new Promise<Result>((resolve, reject) => {
				queue.push({ job, resolve, reject });
				if (running) return;
				if (queue.length >= maxBatch) start();
				else if (cancelScheduled === undefined) schedule();
			});
		},
		async drain() {
			while (running || queue.length > 0) {
				if (!running) start();
				await running;
			}
		},
	};
}
