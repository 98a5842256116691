// The cost benchmark's body (run by scripts/bench-cost.mjs through vitest, with convex-test
// instrumented by scripts/bench/vitest.cost.config.mts): BENCH_CHECKOUTS paid checkouts sent
// at once through the Stripe webhook, provisioned twice on the same sandbox adapters, latency
// and fault rate: on Brain's engine, then on @convex-dev/workflow (bench/workflow/convex). Each
// run drains on a simulated clock. Writes the measurements to BENCH_RESULT_FILE.
/// <reference types="vite/client" />
import { writeFileSync } from "node:fs";
import { convexTest } from "convex-test";
import workflowTest from "@convex-dev/workflow/test";
import { expect, test, vi } from "vitest";
import workflowSchema from "../../bench/workflow/convex/schema";
import { checkoutEvent, DEFAULT_TEST_ENV, setupBackend, signedStripeRequest } from "../../tests/harness";
import { CostMeter, type Tally } from "./cost.meter";

const checkouts = Number(process.env.BENCH_CHECKOUTS ?? 100);
const faultRate = Number(process.env.BENCH_FAULT_RATE ?? 0);
const seed = Number(process.env.BENCH_SEED ?? 1);
const resultFile = process.env.BENCH_RESULT_FILE ?? "/dev/stdout";

/** The same settings for both runs. Parallelism is generous on both, so queueing does not decide the latency. */
const ENV: Record<string, string> = {
  SANDBOX_LATENCY_MS: "200",
  SANDBOX_FAULT_RATE: String(faultRate),
  SANDBOX_FAULT_SEED: String(seed),
  RETRY_MAX_ATTEMPTS: "10",
  CLEANUP_DELAY_MS: "0",
  // Brain: admit every checkout at once, each provider's pool at its maximum.
  MAX_ACTIVE_JOBS: String(Math.max(checkouts, 1)),
  CONCURRENCY_CONVEX: "100",
  CONCURRENCY_WORKOS: "100",
  CONCURRENCY_CLOUDFLARE: "100",
  CONCURRENCY_GITHUB: "100",
  CONCURRENCY_STRIPE: "100",
  CONCURRENCY_BRAIN: "100",
  // The workflow: its one workpool at the largest parallelism workpool allows.
  BENCH_WORKFLOW_PARALLELISM: "200",
};

// The simulated providers' own bookkeeping, the same in both runs, is left out.
const SANDBOX_FUNCTIONS = new Set(["sandbox:applyOperation"]);
const SANDBOX_TABLES = new Set(["app:sandboxResources", "app:sandboxFaults"]);

/** Simulated time after which a run stops waiting for instances still provisioning. */
const HORIZON_MS = 2 * 60 * 60_000;
const realNow = performance.now.bind(performance);
const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

type Backend = {
  fetch: (path: string, init?: RequestInit) => Promise<Response>;
  finishAllScheduledFunctions: (advance: () => void, maxIterations?: number) => Promise<void>;
  // Both apps share these tables' definitions (bench/workflow/convex/schema.ts takes Brain's).
  run: <T>(fn: (ctx: { db: { query: (table: "instances" | "stripeEvents") => { collect: () => Promise<unknown[]> } } }) => Promise<T>) => Promise<T>;
};

async function measure(name: "brain" | "workflow", start: () => Backend) {
  const meter = new CostMeter(SANDBOX_FUNCTIONS, SANDBOX_TABLES).install();
  const t = start();
  const wallStart = realNow();
  const clockStart = Date.now();
  meter.on = true;
  await Promise.all(
    Array.from({ length: checkouts }, async () => {
      const response = await t.fetch("/stripe/webhook", signedStripeRequest(checkoutEvent()));
      expect(response.status).toBe(200);
    }),
  );
  const snapshot = async () => {
    const on = meter.on;
    meter.on = false; // the runner's own reads are not the engine's
    const rows = await t.run(async (ctx) => ({
      instances: (await ctx.db.query("instances").collect()) as { checkoutSessionId: string; status: string; activatedAt?: number }[],
      events: (await ctx.db.query("stripeEvents").collect()) as { checkoutSessionId?: string; receivedAt: number }[],
    }));
    meter.on = on;
    return rows;
  };
  // 50 ms at a time, as bench:chaos does: a jump to the next timer would pass far-off timers
  // while work is in flight and inflate the latencies. convex-test's drain returns once nothing
  // has run for 20 turns (1 simulated second here) even when timers are pending (a retry's
  // backoff), so drain again until every instance is active or failed, or the horizon passes.
  const horizon = clockStart + HORIZON_MS;
  for (;;) {
    await t.finishAllScheduledFunctions(() => vi.advanceTimersByTime(50), 100_000_000);
    const { instances } = await snapshot();
    const settled = instances.length === checkouts && instances.every((i) => i.status === "active" || i.status === "failed");
    if (settled || Date.now() > horizon) break;
  }
  const settledMs = Date.now() - clockStart;
  // Then a minute at a time for 20 more idle minutes, so what an engine leaves scheduled after
  // the job (Brain's deployApp deadline, 15 minutes after dispatch) runs and is counted too.
  await t.finishAllScheduledFunctions(() => vi.advanceTimersByTime(60_000), 100_000_000);
  meter.on = false;
  const simulatedMs = Date.now() - clockStart;
  const wallMs = realNow() - wallStart;

  const { instances, events } = await snapshot();
  meter.uninstall();
  const receivedAt = new Map(events.map((e) => [e.checkoutSessionId, e.receivedAt]));
  const ready = instances.filter((i) => i.status === "active" && i.activatedAt !== undefined);
  const latencies = ready.map((i) => i.activatedAt! - receivedAt.get(i.checkoutSessionId)!).sort((a, b) => a - b);
  const totals = meter.totals();
  const per = (n: number) => Math.round((n / checkouts) * 10) / 10;
  const perTally = (tally: Tally) =>
    Object.fromEntries([...tally.entries()].sort((a, b) => b[1] - a[1]).map(([key, n]) => [key, Math.round((n / checkouts) * 100) / 100]));
  return {
    name,
    figures: {
      functionCallsPerInstance: per(totals.functionCalls),
      readsPerInstance: per(totals.reads),
      writesPerInstance: per(totals.writes),
      p50Ms: percentile(latencies, 50),
    },
    detail: {
      ready: ready.length,
      p95Ms: percentile(latencies, 95),
      nestedCallsPerInstance: per(totals.nestedCalls),
      excludedPerInstance: { functionCalls: per(meter.excluded.calls), reads: per(meter.excluded.reads), writes: per(meter.excluded.writes) },
      settledMs,
      simulatedMs,
      wallMs: Math.round(wallMs),
      callsByFunction: perTally(meter.calls),
      nestedCallsByFunction: perTally(meter.nestedCalls),
      readsByFunction: perTally(meter.readsByFunction),
      writesByFunction: perTally(meter.writesByFunction),
      readsByTable: perTally(meter.readsByTable),
      writesByTable: perTally(meter.writesByTable),
    },
  };
}

function applyEnv(env: Record<string, string>) {
  for (const [key, value] of Object.entries(env)) process.env[key] = value;
}

test("cost benchmark", async () => {
  vi.useFakeTimers();
  const brain = await measure("brain", () => setupBackend({ env: ENV }) as unknown as Backend);
  const workflow = await measure("workflow", () => {
    applyEnv({ ...DEFAULT_TEST_ENV, ...ENV });
    const t = convexTest({ schema: workflowSchema, modules: import.meta.glob("../../bench/workflow/convex/**/*.*s") });
    workflowTest.register(t, "workflow");
    return t as unknown as Backend;
  });
  vi.useRealTimers();
  const ratio = (a: number, b: number) => (b === 0 ? null : Math.round((a / b) * 1000) / 1000);
  const result = {
    checkouts,
    faultRate,
    brain: brain.figures,
    workflow: workflow.figures,
    ratio: {
      functionCalls: ratio(brain.figures.functionCallsPerInstance, workflow.figures.functionCallsPerInstance),
      reads: ratio(brain.figures.readsPerInstance, workflow.figures.readsPerInstance),
      writes: ratio(brain.figures.writesPerInstance, workflow.figures.writesPerInstance),
    },
  };
  writeFileSync(resultFile, JSON.stringify({ result, detail: { brain: brain.detail, workflow: workflow.detail }, seed }));
});
