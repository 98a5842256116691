// Brain's retry policy: capped exponential backoff with jitter. Decided here,
// applied by the step-recording mutation; the workpool's own retry is off.
export type RetryPolicy = { maxAttempts: number; baseDelayMs: number; maxDelayMs: number; jitter: number };

/**
 * Delay before attempt `attempt + 1`, after `attempt` attempts failed.
 * attempt 1 -> about base, then doubling, capped at maxDelayMs. Jitter spreads
 * each delay by +/- `jitter` (a fraction) so a burst of failures does not retry in lockstep.
 * `random` is injectable so tests can assert exact delays.
 */
export function backoffDelayMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exponential = policy.baseDelayMs * 2 ** Math.max(0, attempt - 1);
  const capped = Math.min(policy.maxDelayMs, exponential);
  const spread = 1 - policy.jitter + 2 * policy.jitter * random();
  return Math.max(0, Math.min(policy.maxDelayMs, Math.round(capped * spread)));
}

/** A provider's retry-after wins when it asks for longer than our own backoff. */
export function retryDelayMs(
  policy: RetryPolicy,
  attempt: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const ours = backoffDelayMs(policy, attempt, random);
  return retryAfterMs === undefined ? ours : Math.max(ours, retryAfterMs);
}
