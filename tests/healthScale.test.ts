// Fleet health at scale: 1,000 and 10,000 live instances seeded straight into the database,
// the health cron driven on fake timers (scripts/bench/healthFleet.ts, shared with
// `npm run bench:health`). Each fleet gets one cold round (everyone due at once), then one
// metered interval of the steady schedule: every instance checked exactly once, and the
// function calls, documents read and documents written per instance bounded and the same at
// both sizes. The simulated providers' own bookkeeping is left out of the figures (a live
// probe is an HTTP request, not a Convex function).
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { coldRound, runCron, seedFleet, steadyRound, type RoundCost } from "../scripts/bench/healthFleet";
import { setupBackend } from "./harness";

const INTERVAL_MS = 300_000;
const START = Date.UTC(2026, 0, 5, 12, 0, 30);

beforeEach(() => vi.useFakeTimers({ now: START }));
afterEach(() => vi.useRealTimers());

/** Upper bounds per instance per interval, well above what a healthy fleet costs today. */
const BOUNDS = { functionCallsPerInstance: 0.3, readsPerInstance: 3, writesPerInstance: 0.5 };
const FIGURES = ["functionCallsPerInstance", "readsPerInstance", "writesPerInstance"] as const;

describe("a fleet of 1,000 and of 10,000 instances", () => {
  const costs = new Map<number, RoundCost>();

  test.each([1_000, 10_000])(
    "%i instances: everyone is checked in one round, then exactly once per interval, at a bounded cost per instance",
    async (size) => {
      const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0", HEALTH_CHECK_INTERVAL_MS: String(INTERVAL_MS) } });
      await seedFleet(t, size);
      expect(await coldRound(t, size)).toBeLessThan(INTERVAL_MS);
      await runCron(t, INTERVAL_MS / 60_000); // every batch settles on its own slot
      const cost = await steadyRound(t, size, INTERVAL_MS);
      expect(cost.checkedOnce).toBe(size);
      for (const figure of FIGURES) expect(cost[figure], figure).toBeLessThan(BOUNDS[figure]);
      // One run per batch of 100 per interval: the read of each member, no second pass.
      expect(cost.byFunction["query healthRounds:loadBatchTargets"]).toBeCloseTo(0.01, 5);
      costs.set(size, cost);
    },
    20 * 60_000,
  );

  test("the figures per instance are within 10% of each other at 1,000 and at 10,000", () => {
    const small = costs.get(1_000);
    const large = costs.get(10_000);
    if (!small || !large) throw new Error("run the whole file: this compares the two fleets measured above");
    for (const figure of FIGURES) {
      const spread = Math.abs(small[figure] - large[figure]) / Math.max(small[figure], large[figure]);
      expect(spread, `${figure}: ${small[figure]} at 1,000, ${large[figure]} at 10,000`).toBeLessThan(0.1);
    }
  });
});
