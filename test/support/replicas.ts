/**
 * The gateway lease the replica e2e files run with (the ops file's `replicas` section): short, so
 * that a standby takes over within about 8 s of kill -9 of the holder instead of the default's 20 s.
 */
export const SHORT_LEASE = { leaseSeconds: 6, renewSeconds: 2 } as const;
const { leaseSeconds, renewSeconds } = SHORT_LEASE;
export const shortLeaseYaml = `replicas: { leaseSeconds: ${leaseSeconds}, renewSeconds: ${renewSeconds} }`;
