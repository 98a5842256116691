// Drives a burst of signed checkouts through Brain on fake timers, in waves, polling the
// status page between them, so creations, completions and status reads of different jobs
// fall inside each other's concurrency window as they would in a real burst.
import { drain, sendCheckout, statusOf, type TestBackend } from "../harness";

/** Runs scheduled work for `simulatedMs` of simulated time, `stepMs` at a time (drainFor, finer). */
export async function runFor(t: TestBackend, simulatedMs: number, stepMs = 100) {
  const { vi } = await import("vitest");
  const start = Date.now();
  class HorizonReached extends Error {}
  try {
    await t.finishAllScheduledFunctions(() => {
      if (Date.now() - start >= simulatedMs) throw new HorizonReached();
      vi.advanceTimersByTime(stepMs);
    }, 1_000_000);
  } catch (error) {
    if (!(error instanceof HorizonReached)) throw error;
  }
}

export type BurstOptions = { checkouts: number; waves: number; waveGapMs: number; pollsPerWave: number };

/** Sends `checkouts` in `waves`, `waveGapMs` of simulated time apart, polls some sessions' status in between, then drains. */
export async function runBurst(t: TestBackend, options: BurstOptions) {
  const sessions: string[] = [];
  const perWave = Math.ceil(options.checkouts / options.waves);
  const poll = async () => {
    // The newest few and the oldest few: pending, provisioning and ready pages are all read.
    const picks = new Set([...sessions.slice(-options.pollsPerWave), ...sessions.slice(0, options.pollsPerWave)]);
    for (const sessionId of picks) await statusOf(t, sessionId);
  };
  while (sessions.length < options.checkouts) {
    const wave = Math.min(perWave, options.checkouts - sessions.length);
    const sent = await Promise.all(Array.from({ length: wave }, () => sendCheckout(t)));
    for (const { sessionId, response } of sent) {
      if (response.status !== 200) throw new Error(`checkout ${sessionId} answered ${response.status}`);
      sessions.push(sessionId);
    }
    await poll();
    await runFor(t, options.waveGapMs);
    await poll();
  }
  await drain(t);
  await poll();
  return sessions;
}
