import pg from "pg";

/** What the pg clients of this process have sent, counted at the protocol level (countPgWire). */
export interface PgWire {
	/** Statements: each ends with a Sync (extended protocol) or is one simple Query. */
	statements: number;
	/** A round trip starts when a connection sends while nothing it sent is unanswered. */
	roundTrips: number;
	/** Simple-protocol BEGINs: one per transaction opened. */
	begins: number;
	/** From each COMMIT sent to its answer (ms). */
	readonly commitWaits: number[];
}

type Proto = Record<"sync" | "query" | "emit", (this: object, ...args: unknown[]) => unknown>;

let wire: PgWire | undefined;

/**
 * Counts statements and round trips of every pg connection of this process from now on (patching pg's
 * Connection once; later calls return the same counters). Statements pipelined behind one that is not
 * answered yet share its round trip.
 */
export function countPgWire(): PgWire {
	if (wire) return wire;
	const counts: PgWire = { statements: 0, roundTrips: 0, begins: 0, commitWaits: [] };
	wire = counts;
	/** Per connection: when each unanswered statement was sent, and whether it is a COMMIT. */
	const unanswered = new WeakMap<object, { commit: boolean; at: number }[]>();
	const proto = (pg as unknown as { Connection: { prototype: Proto } }).Connection.prototype;
	const { sync, query, emit } = proto;
	const sent = (conn: object, commit: boolean) => {
		const queue = unanswered.get(conn) ?? [];
		if (queue.length === 0) counts.roundTrips++;
		counts.statements++;
		queue.push({ commit, at: performance.now() });
		unanswered.set(conn, queue);
	};
	proto.sync = function (...args) {
		sent(this, false);
		return sync.apply(this, args);
	};
	proto.query = function (...args) {
		if (args[0] === "BEGIN") counts.begins++;
		sent(this, args[0] === "COMMIT");
		return query.apply(this, args);
	};
	proto.emit = function (event, ...args) {
		// The answer to the startup, sent by no statement, finds nothing unanswered.
		const answered = event === "readyForQuery" ? unanswered.get(this)?.shift() : undefined;
		if (answered?.commit) counts.commitWaits.push(performance.now() - answered.at);
		return emit.call(this, event, ...args);
	};
	return counts;
}
