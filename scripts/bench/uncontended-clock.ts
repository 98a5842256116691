// A clock for benchmarks that share a machine: it stops while the kernel keeps this process's
// main thread waiting for a CPU, so a busy machine slows a run down without making it look
// slower. Brain's embedded backend, its token buckets and the provider fakes all run on the main
// thread, so once installed they all pace, enforce and measure in this one time base.
// Linux only: it reads the thread's run-queue wait from /proc/thread-self/schedstat.
import { closeSync, openSync, readSync } from "node:fs";

type Timer = ReturnType<typeof setTimeout>;

export type UncontendedClock = {
  /** Milliseconds of run-queue wait (time the thread was ready but off the CPU) since install. */
  waitedMs(): number;
  /** Milliseconds the main thread ran on a CPU since install. */
  ranMs(): number;
  /** Restores the real Date.now, setTimeout and clearTimeout. */
  uninstall(): void;
};

/**
 * Replaces Date.now, setTimeout and clearTimeout with versions on the uncontended clock:
 * wall time minus the main thread's run-queue wait since install. Timers that fire on the real
 * clock before their uncontended due time re-arm for the rest. setInterval, setImmediate,
 * performance.now and `new Date()` keep real time (nothing the benchmark measures reads them).
 */
export function installUncontendedClock(): UncontendedClock {
  const fd = openSync("/proc/thread-self/schedstat", "r");
  const buffer = Buffer.alloc(128);
  // Fields: time on CPU, time waiting on a run queue (both ns), timeslices run.
  const field = (index: number) => Number(buffer.toString("latin1", 0, readSync(fd, buffer, 0, buffer.length, 0)).split(" ")[index]) / 1e6;
  const runQueueWaitMs = () => field(1);
  const ranAtInstall = field(0);

  const realDateNow = Date.now;
  const realSetTimeout = globalThis.setTimeout;
  const realClearTimeout = globalThis.clearTimeout;
  const origin = realDateNow() - performance.now();
  const waitedAtInstall = runQueueWaitMs();
  let waited = 0;
  let readAt = -Infinity;
  let last = 0;

  const now = (): number => {
    const real = performance.now();
    // Reading the wait is a syscall; Date.now is called often, so re-read at most every 0.2 ms.
    if (real - readAt >= 0.2) {
      waited = runQueueWaitMs() - waitedAtInstall;
      readAt = real;
    }
    // Wait accrued before a re-read shows up at the re-read, so never step backwards.
    last = Math.max(last, origin + real - waited);
    return Math.floor(last);
  };

  // The handle callers hold is the first real timer; a re-armed timer is found through it.
  const current = new WeakMap<Timer, Timer>();
  function setTimeoutUncontended(callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]): Timer {
    const delay = Math.max(0, Number(ms) || 0);
    const due = now() + delay;
    const handle: Timer = realSetTimeout(fire, delay);
    function fire() {
      const left = due - now();
      if (left <= 0) return callback(...args);
      const next = realSetTimeout(fire, left);
      if (!handle.hasRef()) next.unref();
      current.set(handle, next);
    }
    return handle;
  }
  function clearTimeoutUncontended(handle: Timer | string | number | undefined) {
    if (handle && typeof handle === "object") realClearTimeout(current.get(handle) ?? handle);
    else realClearTimeout(handle);
  }

  Date.now = now;
  globalThis.setTimeout = setTimeoutUncontended as typeof setTimeout;
  globalThis.clearTimeout = clearTimeoutUncontended as typeof clearTimeout;
  return {
    waitedMs: () => runQueueWaitMs() - waitedAtInstall,
    ranMs: () => field(0) - ranAtInstall,
    uninstall: () => {
      Date.now = realDateNow;
      globalThis.setTimeout = realSetTimeout;
      globalThis.clearTimeout = realClearTimeout;
      closeSync(fd);
    },
  };
}
