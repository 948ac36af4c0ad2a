import { readFileSync } from "node:fs";

/**
 * /proc/PID/stat's fields after the command name (field 3 is index 0). The name is cut at the last ") ",
 * as a name may hold one itself.
 */
export function statFields(pid: number): string[] {
	const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
	return stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
}

/** CPU time (user + system) the process has used so far, in ms (clock ticks of 10 ms). */
export function cpuOf(pid: number): number {
	const fields = statFields(pid);
	return (Number(fields[11]) + Number(fields[12])) * 10;
}
