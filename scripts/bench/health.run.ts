// The health benchmark's body (run by scripts/bench-health.mjs through vitest, with convex-test
// instrumented by scripts/bench/vitest.health.config.mts): BENCH_INSTANCES live instances on
// the sandbox providers, the health cron on a simulated clock. Measures one cold round (everyone
// due at once), one metered steady interval, the provider API requests of the interval that
// holds the fleet-wide deep sweep, and the mean time to detect outages started at random
// moments. Writes the figures to BENCH_RESULT_FILE.
import { writeFileSync } from "node:fs";
import { expect, test, vi } from "vitest";
import { setupBackend } from "../../tests/harness";
import { budgetOver, coldRound, intervalWithDeepSweep, measureDetection, MINUTE, runCron, seedFleet, steadyRound } from "./healthFleet";

const instances = Number(process.env.BENCH_INSTANCES ?? 1000);
const samples = Number(process.env.BENCH_OUTAGES ?? 20);
const seed = Number(process.env.BENCH_SEED ?? 1);
const resultFile = process.env.BENCH_RESULT_FILE ?? "/dev/stdout";

const INTERVAL_MS = Number(process.env.HEALTH_CHECK_INTERVAL_MS ?? 300_000);
const ALERT_AFTER_MS = Number(process.env.ALERT_AFTER_MS ?? 600_000);

test("health benchmark", async () => {
  // A fixed start, a little into an interval, so a seed repeats its figures.
  vi.useFakeTimers({ now: Date.UTC(2026, 0, 5, 12, 0, 30) });
  const t = setupBackend({
    env: {
      SANDBOX_LATENCY_MS: "0",
      HEALTH_CHECK_INTERVAL_MS: String(INTERVAL_MS),
      ALERT_AFTER_MS: String(ALERT_AFTER_MS),
      ALERT_EMAILS: "oncall@example.com",
    },
  });
  const ids = await seedFleet(t, instances);
  const roundMs = await coldRound(t, instances);
  await runCron(t, Math.round(INTERVAL_MS / MINUTE));
  const cost = await steadyRound(t, instances, INTERVAL_MS);
  expect(cost.checkedOnce).toBe(instances);
  const busiest = await intervalWithDeepSweep(t, INTERVAL_MS);
  expect(busiest.sweep, "the deep sweep finished within its interval").toBeDefined();
  const detection = await measureDetection(t, ids, { samples, seed, intervalMs: INTERVAL_MS, alertAfterMs: ALERT_AFTER_MS });
  vi.useRealTimers();

  const round3 = (n: number) => Math.round(n * 1000) / 1000;
  const providerRequests = Object.fromEntries(
    (["cloudflare", "workos", "convex"] as const).map((provider) => [
      provider,
      { requests: busiest.requests[provider] ?? 0, budget: budgetOver(provider, INTERVAL_MS) },
    ]),
  );
  const result = {
    instances,
    roundMs,
    intervalMs: INTERVAL_MS,
    functionCallsPerInstance: round3(cost.functionCallsPerInstance),
    readsPerInstance: round3(cost.readsPerInstance),
    writesPerInstance: round3(cost.writesPerInstance),
    providerRequests,
    mttdMs: { down: detection.down, alert: detection.alert },
  };
  const detail = {
    checkedOnce: cost.checkedOnce,
    callsByFunction: cost.byFunction,
    deepSweep: busiest.sweep,
    outages: detection.detections.length,
    detections: detection.detections.map((d) => ({ downMs: d.downAt! - d.darkAt, alertMs: d.alertAt! - d.darkAt })),
  };
  writeFileSync(resultFile, JSON.stringify({ result, detail }));
}, 4 * 60 * 60_000);
