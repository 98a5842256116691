// The chaos benchmark's body (run by scripts/bench-chaos.mjs through vitest): BENCH_CHECKOUTS
// paid checkouts at once, sandbox providers failing BENCH_FAULT_RATE of the calls that create
// or change something (mixed 5xx, 429, timeouts, lost responses), seeded by BENCH_SEED, all on
// a simulated clock. Writes the result JSON to BENCH_RESULT_FILE.
import { writeFileSync } from "node:fs";
import { expect, test, vi } from "vitest";
import { TransactionMetricsTracker } from "convex-test/dist/transactionMetrics.js";
import { internal } from "../../convex/_generated/api";
import { checkoutEvent, setupBackend, signedStripeRequest } from "../../tests/harness";

const checkouts = Number(process.env.BENCH_CHECKOUTS ?? 1000);
const faultRate = Number(process.env.BENCH_FAULT_RATE ?? 0.2);
const seed = Number(process.env.BENCH_SEED ?? 1);
const resultFile = process.env.BENCH_RESULT_FILE ?? "/dev/stdout";

// Count every top-level transaction (a query or mutation, components included) and every
// document written, through convex-test's own per-transaction metrics.
let transactions = 0;
let documentsWritten = 0;
const proto = TransactionMetricsTracker.prototype as unknown as {
  startTransaction: (...args: unknown[]) => void;
  trackWrite: (...args: unknown[]) => void;
  _layers?: unknown[];
};
const originalStart = proto.startTransaction;
const originalWrite = proto.trackWrite;
proto.startTransaction = function (this: { _layers: unknown[] }, ...args: unknown[]) {
  if (this._layers.length === 0) transactions++;
  return originalStart.apply(this, args);
};
proto.trackWrite = function (...args: unknown[]) {
  documentsWritten++;
  return originalWrite.apply(this, args);
};

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

test("chaos benchmark", async () => {
  vi.useFakeTimers();
  const t = setupBackend({
    env: {
      SANDBOX_FAULT_RATE: String(faultRate),
      SANDBOX_FAULT_SEED: String(seed),
      SANDBOX_LATENCY_MS: "200",
      RETRY_MAX_ATTEMPTS: "10",
      MAX_ACTIVE_JOBS: "100",
      CLEANUP_DELAY_MS: "0",
    },
  });
  const baseline = { transactions, documentsWritten };
  const started = Date.now();
  const sessions = await Promise.all(
    Array.from({ length: checkouts }, async () => {
      const event = checkoutEvent();
      const response = await t.fetch("/stripe/webhook", signedStripeRequest(event));
      expect(response.status).toBe(200);
      return event.data.object.id;
    }),
  );
  // Advance the clock 50 ms at a time: runAllTimers (or next-timer) would jump it past
  // far-off timers (a deploy deadline, say) while work is still in flight, inflating latencies.
  // Between drains, play the crons convex-test does not run: the watchdog every minute and
  // the cleanup retry, until no job is in progress.
  let watchdogRescues = 0;
  for (let minute = 0; minute < 120; minute++) {
    await t.finishAllScheduledFunctions(() => vi.advanceTimersByTime(50), 100_000_000);
    const inProgress = await t.run(async (ctx) =>
      (await ctx.db.query("provisioningJobs").withIndex("by_status", (q) => q.eq("status", "running")).take(1)).length +
      (await ctx.db.query("provisioningJobs").withIndex("by_status", (q) => q.eq("status", "queued")).take(1)).length,
    );
    if (inProgress === 0) break;
    vi.advanceTimersByTime(60_000);
    watchdogRescues += (await t.mutation(internal.provisioning.runWatchdog, {})).expired;
    await t.mutation(internal.cleanup.retryPendingCleanups, {});
  }

  const summary = await t.run(async (ctx) => {
    const jobs = await ctx.db.query("provisioningJobs").collect();
    const events = await ctx.db.query("stripeEvents").collect();
    const instances = await ctx.db.query("instances").collect();
    const resources = await ctx.db.query("sandboxResources").collect();
    return { jobs, events, instances, resources };
  });
  const receivedAt = new Map(summary.events.map((e) => [e.checkoutSessionId, e.receivedAt]));
  const bySession = new Map(summary.instances.map((i) => [i._id as string, i]));
  const ready = summary.jobs.filter((j) => j.status === "succeeded");
  const failed = summary.jobs.filter((j) => j.status === "failed");
  const stuck = summary.jobs.filter((j) => j.status === "running" || j.status === "queued").length + (checkouts - summary.jobs.length);
  const latencies = ready
    .map((j) => j.finishedAt! - receivedAt.get(bySession.get(j.instanceId)!.checkoutSessionId)!)
    .sort((a, b) => a - b);
  const faulted = summary.jobs.filter((j) => j.steps.some((s) => s.attempts > 1 || s.lastError));
  const autoRecovered = faulted.length === 0 ? 1 : faulted.filter((j) => j.status === "succeeded" && j.retryCount === 0).length / faulted.length;
  const attempts = summary.jobs.reduce((n, j) => n + j.steps.reduce((m, s) => m + s.attempts, 0), 0);
  const dispatchedSteps = summary.jobs.reduce((n, j) => n + j.steps.filter((s) => s.attempts > 0).length, 0);

  // Leaked: a simulated resource no active instance holds. Duplicated: one instance holding two.
  const active = new Set(summary.instances.filter((i) => i.status === "active").map((i) => i._id as string));
  const owner = (r: (typeof summary.resources)[number]) => r.attributes.instanceId ?? (r.kind === "organization" || r.kind === "webhookEndpoint" ? r.name : undefined);
  const tracked = summary.resources.filter((r) => ["project", "organization", "pagesProject", "webhookEndpoint"].includes(r.kind));
  const leaked = tracked.filter((r) => !active.has(owner(r) ?? "")).length;
  const perInstanceKind = new Map<string, number>();
  for (const r of tracked) perInstanceKind.set(`${owner(r)}:${r.kind}`, (perInstanceKind.get(`${owner(r)}:${r.kind}`) ?? 0) + 1);
  const duplicated = [...perInstanceKind.values()].filter((n) => n > 1).length;

  const result = {
    checkouts,
    ready: ready.length,
    failed: failed.length,
    stuck,
    leaked,
    duplicated,
    autoRecovered: Math.round(autoRecovered * 1000) / 1000,
    retriesPerJob: Math.round(((attempts - dispatchedSteps) / Math.max(1, summary.jobs.length)) * 100) / 100,
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    p99Ms: percentile(latencies, 99),
    functionCallsPerInstance: Math.round(((transactions - baseline.transactions) / checkouts) * 10) / 10,
    writesPerInstance: Math.round(((documentsWritten - baseline.documentsWritten) / checkouts) * 10) / 10,
  };
  const stuckJobs = summary.jobs
    .filter((j) => j.status === "running" || j.status === "queued")
    .slice(0, 3)
    .map((j) => ({ status: j.status, steps: j.steps.filter((s) => s.status !== "succeeded") }));
  writeFileSync(resultFile, JSON.stringify({ result, stuckJobs, watchdogRescues, simulatedMs: Date.now() - started, faultedJobs: faulted.length, sessions: sessions.length }));
  vi.useRealTimers();
});
