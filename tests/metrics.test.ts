// Provisioning KPIs (convex/metrics.ts, model/metrics*.ts, GET /admin/metrics): real jobs through
// the sandbox (a clean one, one recovered from transient faults, one failed for good) give the
// figures their documents and audit trails say; the hourly rollup is idempotent, bounded to a
// page per mutation and resumable; a range merges daily and hourly buckets with a live tail.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { JOBS_PER_PAGE } from "../convex/metrics";
import { DAY_MS, HOUR_MS } from "../convex/model/metrics";
import { addSample, emptyHistogram, percentile } from "../convex/model/metricsFigures";
import { adminHeaders, drain, sendCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

const MINUTE = 60_000;
/** A UTC midnight: the day buckets' boundaries are known. */
const DAY0 = Date.UTC(2030, 0, 7);

async function provision(t: TestBackend, fault?: { operation: string; kind: "transient" | "permanent"; times: number }) {
  if (fault) await t.mutation(internal.sandbox.injectFault, fault);
  const { sessionId } = await sendCheckout(t);
  await drain(t);
  const { body } = await statusOf(t, sessionId);
  return t.run(async (ctx) => (await ctx.db.get("provisioningJobs", body.jobId as Id<"provisioningJobs">))!);
}

const nearestRank = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.max(1, Math.ceil(p * values.length)) - 1];
const within5 = (actual: number | null, expected: number) => {
  expect(actual).not.toBeNull();
  expect(Math.abs(actual! - expected)).toBeLessThanOrEqual(Math.max(1, expected * 0.05));
};

/** Runs the rollup chain the cron starts to its end (runAfter(0) pages only). */
async function rollUp(t: TestBackend) {
  await t.mutation(internal.metrics.runRollup, {});
  await t.finishAllScheduledFunctions(() => vi.advanceTimersByTime(0), 100_000);
}

const buckets = (t: TestBackend) => t.run((ctx) => ctx.db.query("provisioningMetrics").collect());

async function insertJob(t: TestBackend, fields: { createdAt: number; finishedAt: number; status: "succeeded" | "failed"; errorClass?: "permanent" }) {
  return t.run(async (ctx) => {
    const customerId = await ctx.db.insert("customers", { email: "m@example.com", createdAt: fields.createdAt });
    const instanceId = await ctx.db.insert("instances", {
      customerId,
      checkoutSessionId: `cs_metrics_${Math.random().toString(36).slice(2)}`,
      plan: "starter",
      status: fields.status === "succeeded" ? "active" : "failed",
      resources: {},
      createdAt: fields.createdAt,
    });
    const ok = fields.status === "succeeded";
    return ctx.db.insert("provisioningJobs", {
      instanceId,
      kind: "provision",
      status: fields.status,
      steps: [
        { name: "convexProject", status: ok ? "succeeded" : "failed", attempts: 1, startedAt: fields.createdAt, finishedAt: fields.finishedAt, ...(ok ? {} : { lastError: { class: "permanent" as const, message: "x", at: fields.finishedAt } }) },
      ],
      totalSteps: 1,
      currentStep: ok ? 1 : 0,
      retryCount: 0,
      correlationId: "metrics-test",
      trigger: "test",
      ...(ok ? {} : { error: { step: "convexProject" as const, class: "permanent" as const, message: "x" } }),
      createdAt: fields.createdAt,
      updatedAt: fields.finishedAt,
      finishedAt: fields.finishedAt,
    });
  });
}

describe("KPIs from real provisioning jobs", () => {
  test("success rate, durations, failures by step and class, retries and auto-recovery match the jobs, live and after the rollup", async () => {
    vi.setSystemTime(DAY0 + 10 * MINUTE);
    const t = setupBackend({ env: { RETRY_JITTER: "0" } });
    const clean = await provision(t);
    const recovered = await provision(t, { operation: "workosOrg", kind: "transient", times: 2 });
    const failed = await provision(t, { operation: "pagesProject", kind: "permanent", times: 1 });
    expect([clean.status, recovered.status, failed.status]).toEqual(["succeeded", "succeeded", "failed"]);

    const range = { from: DAY0, to: DAY0 + DAY_MS };
    const live = await t.query(internal.metrics.getProvisioningMetrics, range);
    expect(live.jobs).toEqual({ started: 3, succeeded: 2, failed: 1 });
    expect(live.successRate).toBeCloseTo(2 / 3, 10);
    // Two automatic retries of workosOrg (transient), one permanent pagesProject failure.
    expect(live.failuresByStep).toEqual({ workosOrg: 2, pagesProject: 1 });
    expect(live.failuresByClass).toEqual({ transient: 2, permanent: 1 });
    expect(live.retriesPerJob).toBeCloseTo(2 / 3, 10);
    // Two jobs had a failed attempt; one of them recovered on its own.
    expect(live.autoRecoveryRate).toBe(0.5);

    const e2e = [clean, recovered].map((j) => j.finishedAt! - j.createdAt);
    expect(live.durationMs.avg).toBe(Math.round((e2e[0] + e2e[1]) / 2));
    within5(live.durationMs.p50, nearestRank(e2e, 0.5));
    within5(live.durationMs.p95, nearestRank(e2e, 0.95));
    for (const name of ["workosOrg", "deployApp", "activate"]) {
      const samples = [clean, recovered, failed]
        .map((j) => j.steps.find((s) => s.name === name)!)
        .filter((s) => s.status === "succeeded")
        .map((s) => s.finishedAt! - s.startedAt!);
      expect(live.stepDurationMs[name].count).toBe(samples.length);
      expect(live.stepDurationMs[name].avg).toBe(Math.round(samples.reduce((a, b) => a + b, 0) / samples.length));
      within5(live.stepDurationMs[name].p95, nearestRank(samples, 0.95));
    }
    // The recovered job's workosOrg waited out two backoffs (1 s, then 2 s): the slowest workosOrg.
    expect(live.stepDurationMs.workosOrg.p95).toBeGreaterThanOrEqual(3000);
    expect(live.stepDurationMs.activate.avg).toBe(0);
    // Coverage is monitoring's own figure (the fresh instances are not enrolled yet).
    const dashboard = await t.query(internal.monitoring.getInstancesHealthStatus, { paginationOpts: { cursor: null, numItems: 1 } });
    expect(live.healthCoverage).toBe(dashboard.coverage);

    // Once the hours are rolled up, the buckets give the same figures without re-reading the jobs.
    vi.setSystemTime(DAY0 + DAY_MS + 30 * MINUTE);
    await rollUp(t);
    const rows = await buckets(t);
    expect(rows.filter((r) => r.granularity === "hour" && r.complete).length).toBe(24);
    expect(rows.filter((r) => r.granularity === "day")).toHaveLength(1);
    const rolled = await t.query(internal.metrics.getProvisioningMetrics, range);
    expect({ ...rolled, healthCoverage: null }).toEqual({ ...live, healthCoverage: null });
  });

  test("a cancelled job counts as failed with class cancelled, not as a failed attempt", async () => {
    vi.setSystemTime(DAY0 + 10 * MINUTE);
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    vi.advanceTimersByTime(1);
    await t.finishInProgressScheduledFunctions();
    const { body } = await statusOf(t, sessionId);
    const cancel = await t.fetch(`/cancel-provisioning/${body.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(cancel.status).toBe(202);
    await drain(t);
    const metrics = await t.query(internal.metrics.getProvisioningMetrics, { from: DAY0, to: DAY0 + DAY_MS });
    expect(metrics.jobs).toMatchObject({ succeeded: 0, failed: 1 });
    expect(metrics.failuresByClass).toEqual({ cancelled: 1 });
    expect(metrics.autoRecoveryRate).toBeNull();
    expect(metrics.durationMs).toEqual({ avg: null, p50: null, p95: null });
  });
});

describe("health incidents", () => {
  test("MTTD is openedAt − since over incidents opened in the range; MTTR is resolvedAt − since over those recovered in it", async () => {
    vi.setSystemTime(DAY0 + 5 * HOUR_MS);
    const t = setupBackend();
    const since = DAY0 + HOUR_MS;
    await t.run(async (ctx) => {
      const customerId = await ctx.db.insert("customers", { email: "i@example.com", createdAt: DAY0 });
      const instanceId = await ctx.db.insert("instances", { customerId, checkoutSessionId: "cs_inc", plan: "starter", status: "active", resources: {}, createdAt: DAY0 });
      const base = { instanceId, plan: "starter", severity: "down" as const, failing: ["site"], notifications: [] };
      await ctx.db.insert("incidents", { ...base, status: "resolved", since, openedAt: since + MINUTE, resolvedAt: since + 10 * MINUTE, resolution: "recovered" });
      await ctx.db.insert("incidents", { ...base, status: "resolved", since, openedAt: since + 3 * MINUTE, resolvedAt: since + 30 * MINUTE, resolution: "recovered" });
      // Closed because the instance stopped being monitored: not a repair.
      await ctx.db.insert("incidents", { ...base, status: "resolved", since, openedAt: since + 2 * MINUTE, resolvedAt: since + 50 * MINUTE, resolution: "deleted" });
    });
    const metrics = await t.query(internal.metrics.getProvisioningMetrics, { from: DAY0, to: DAY0 + 4 * HOUR_MS });
    expect(metrics.mttdMs).toBe(2 * MINUTE);
    expect(metrics.mttrMs).toBe(20 * MINUTE);
    await rollUp(t);
    expect(await t.query(internal.metrics.getProvisioningMetrics, { from: DAY0, to: DAY0 + 4 * HOUR_MS })).toMatchObject({ mttdMs: 2 * MINUTE, mttrMs: 20 * MINUTE });
    // Outside the range: nothing to measure.
    expect(await t.query(internal.metrics.getProvisioningMetrics, { from: DAY0 + 3 * HOUR_MS, to: DAY0 + 4 * HOUR_MS })).toMatchObject({ mttdMs: null, mttrMs: null });
  });
});

describe("the rollup", () => {
  test("is idempotent: a second cron run, a duplicate page and a rerun after completion change nothing", async () => {
    vi.setSystemTime(DAY0 + 3 * HOUR_MS + 10 * MINUTE);
    const t = setupBackend();
    await insertJob(t, { createdAt: DAY0 + 10 * MINUTE, finishedAt: DAY0 + 11 * MINUTE, status: "succeeded" });
    await insertJob(t, { createdAt: DAY0 + HOUR_MS + 5 * MINUTE, finishedAt: DAY0 + HOUR_MS + 6 * MINUTE, status: "failed" });
    // Two cron runs at once: one bucket, one chain.
    expect(await t.mutation(internal.metrics.runRollup, {})).toEqual({ started: DAY0 });
    expect(await t.mutation(internal.metrics.runRollup, {})).toEqual({ started: null });
    await t.finishAllScheduledFunctions(() => vi.advanceTimersByTime(0), 100_000);
    const first = await buckets(t);
    expect(first.map((r) => [r.start, r.complete])).toEqual([
      [DAY0, true],
      [DAY0 + HOUR_MS, true],
      [DAY0 + 2 * HOUR_MS, true],
    ]);
    expect(first[0].figures).toMatchObject({ started: 1, succeeded: 1, failed: 0 });
    expect(first[1].figures).toMatchObject({ started: 1, succeeded: 0, failed: 1, failuresByClass: { permanent: 1 } });
    // Nothing is due until hour 3 has ended; a replayed page of a finished bucket is ignored.
    await rollUp(t);
    await t.mutation(internal.metrics.rollupPage, { start: DAY0, phase: "finished", cursor: null });
    await t.mutation(internal.metrics.rollupPage, { start: DAY0, phase: "incidents", cursor: null });
    const again = await buckets(t);
    expect(again.map(({ figures, start, complete }) => ({ figures, start, complete }))).toEqual(
      first.map(({ figures, start, complete }) => ({ figures, start, complete })),
    );
  });

  test("is bounded: one page of jobs per mutation, each continuing from the cursor the last one stored", async () => {
    vi.setSystemTime(DAY0 + HOUR_MS + 10 * MINUTE);
    const t = setupBackend();
    const n = 2 * JOBS_PER_PAGE + 30;
    for (let i = 0; i < n; i++) {
      await insertJob(t, { createdAt: DAY0 + i * 1000, finishedAt: DAY0 + i * 1000 + 500 + i, status: "succeeded" });
    }
    await t.mutation(internal.metrics.runRollup, {});
    // Drive the pages by hand (the scheduled copies become stale) and watch each one's reach.
    const row = async () => (await buckets(t)).find((r) => r.start === DAY0)!;
    const seen: number[] = [];
    for (let i = 0; i < 3; i++) {
      const before = await row();
      await t.mutation(internal.metrics.rollupPage, { start: DAY0, phase: before.phase as "finished", cursor: before.cursor });
      seen.push((await row()).figures.succeeded);
    }
    expect(seen).toEqual([JOBS_PER_PAGE, 2 * JOBS_PER_PAGE, n]);
    expect((await row()).phase).toBe("created");
    // The earlier scheduled copies are stale and do nothing; the last page's continuation finishes the bucket.
    await t.finishAllScheduledFunctions(() => vi.advanceTimersByTime(0), 100_000);
    const done = await row();
    expect(done.complete).toBe(true);
    expect(done.figures).toMatchObject({ started: n, succeeded: n });
    const samples = Array.from({ length: n }, (_, i) => 500 + i);
    const metrics = await t.query(internal.metrics.getProvisioningMetrics, { from: DAY0, to: DAY0 + HOUR_MS });
    within5(metrics.durationMs.p50, nearestRank(samples, 0.5));
    within5(metrics.durationMs.p95, nearestRank(samples, 0.95));
  });

  test("a stalled chain is resumed by the cron once its lease has passed", async () => {
    vi.setSystemTime(DAY0 + HOUR_MS + 10 * MINUTE);
    const t = setupBackend();
    await insertJob(t, { createdAt: DAY0 + MINUTE, finishedAt: DAY0 + 2 * MINUTE, status: "succeeded" });
    await t.mutation(internal.metrics.runRollup, {});
    // Lose the scheduled page (a deploy, say): drop every pending scheduled function.
    await t.run(async (ctx) => {
      for (const job of await ctx.db.system.query("_scheduled_functions").collect()) await ctx.scheduler.cancel(job._id);
    });
    expect((await buckets(t))[0]).toMatchObject({ complete: false, phase: "finished" });
    expect(await t.mutation(internal.metrics.runRollup, {})).toEqual({ started: null });
    vi.advanceTimersByTime(11 * MINUTE);
    expect(await t.mutation(internal.metrics.runRollup, {})).toEqual({ started: DAY0 });
    await t.finishAllScheduledFunctions(() => vi.advanceTimersByTime(0), 100_000);
    expect((await buckets(t))[0]).toMatchObject({ complete: true, figures: { succeeded: 1, started: 1 } });
  });
});

describe("ranges", () => {
  test("a range spanning a daily bucket, hourly buckets, partial edge hours and the unrolled tail counts every job once, from the buckets", async () => {
    vi.setSystemTime(DAY0 + DAY_MS + 5 * HOUR_MS + 30 * MINUTE);
    const t = setupBackend();
    const dayJob = await insertJob(t, { createdAt: DAY0 + 3 * HOUR_MS, finishedAt: DAY0 + 3 * HOUR_MS + 1000, status: "succeeded" });
    await insertJob(t, { createdAt: DAY0 + 15 * HOUR_MS, finishedAt: DAY0 + 15 * HOUR_MS + 10, status: "failed" });
    await insertJob(t, { createdAt: DAY0 + DAY_MS + 2 * HOUR_MS, finishedAt: DAY0 + DAY_MS + 2 * HOUR_MS + 2000, status: "succeeded" });
    await rollUp(t);
    const rows = await buckets(t);
    expect(rows.filter((r) => r.granularity === "day").map((r) => r.start)).toEqual([DAY0]);
    expect(rows.filter((r) => r.granularity === "hour" && r.start >= DAY0 + DAY_MS).length).toBe(5);
    // Finished after the last rollup: read live.
    await insertJob(t, { createdAt: DAY0 + DAY_MS + 5 * HOUR_MS + 10 * MINUTE, finishedAt: DAY0 + DAY_MS + 5 * HOUR_MS + 11 * MINUTE, status: "succeeded" });
    // The day's job is gone from the table: the daily bucket still counts it (no job is re-read).
    await t.run((ctx) => ctx.db.delete("provisioningJobs", dayJob));

    const all = await t.query(internal.metrics.getProvisioningMetrics, { from: DAY0, to: Date.now() });
    expect(all.jobs).toEqual({ started: 4, succeeded: 3, failed: 1 });
    expect(all.successRate).toBe(0.75);
    const expected = [1000, 2000, MINUTE];
    expect(all.durationMs.avg).toBe(Math.round((1000 + 2000 + MINUTE) / 3));
    within5(all.durationMs.p50, nearestRank(expected, 0.5));
    expect(all.durationMs.p95).toBe(MINUTE);

    // Unaligned edges: from inside hour 14 of day 0 to inside hour 2 of day 1.
    const middle = await t.query(internal.metrics.getProvisioningMetrics, { from: DAY0 + 14 * HOUR_MS + 30 * MINUTE, to: DAY0 + DAY_MS + 2 * HOUR_MS + 30 * MINUTE });
    expect(middle.jobs).toEqual({ started: 2, succeeded: 1, failed: 1 });
    expect(middle.failuresByStep).toEqual({ convexProject: 1 });
    // Only the tail.
    const tail = await t.query(internal.metrics.getProvisioningMetrics, { from: DAY0 + DAY_MS + 5 * HOUR_MS, to: Date.now() });
    expect(tail.jobs).toEqual({ started: 1, succeeded: 1, failed: 0 });
  });

  test("percentiles of many hourly buckets merge their histograms within 5%", () => {
    let h = emptyHistogram();
    const values = Array.from({ length: 1000 }, (_, i) => Math.round(1000 * Math.exp(i / 200)));
    for (const value of values) h = addSample(h, value);
    for (const p of [0.5, 0.95, 0.99]) within5(percentile(h, p), nearestRank(values, p));
    expect(percentile(h, 1)).toBe(Math.max(...values));
    expect(h.bins.length).toBeLessThan(60);
  });
});

describe("GET /admin/metrics", () => {
  test("serves the query's KPIs for from and to; 401 without the token; 400 BAD_REQUEST for a bad range", async () => {
    vi.setSystemTime(DAY0 + 3 * HOUR_MS);
    const t = setupBackend();
    await insertJob(t, { createdAt: DAY0 + HOUR_MS, finishedAt: DAY0 + HOUR_MS + 1500, status: "succeeded" });
    const ok = await t.fetch(`/admin/metrics?from=${DAY0}&to=${DAY0 + 2 * HOUR_MS}`, { headers: adminHeaders() });
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as Record<string, unknown>;
    expect(body).toEqual(await t.query(internal.metrics.getProvisioningMetrics, { from: DAY0, to: DAY0 + 2 * HOUR_MS }));
    expect(Object.keys(body).sort()).toEqual(
      ["from", "to", "jobs", "successRate", "durationMs", "stepDurationMs", "failuresByStep", "failuresByClass", "retriesPerJob", "autoRecoveryRate", "mttdMs", "mttrMs", "healthCoverage"].sort(),
    );
    expect(body).toMatchObject({ jobs: { started: 1, succeeded: 1, failed: 0 }, successRate: 1, durationMs: { avg: 1500 } });
    // ISO times work too; the default range is the last 24 hours.
    const iso = await t.fetch(`/admin/metrics?from=${new Date(DAY0).toISOString()}&to=${new Date(DAY0 + 2 * HOUR_MS).toISOString()}`, { headers: adminHeaders() });
    expect(((await iso.json()) as Doc<"provisioningMetrics">["figures"] & { jobs: unknown }).jobs).toEqual({ started: 1, succeeded: 1, failed: 0 });
    const byDefault = (await (await t.fetch("/admin/metrics", { headers: adminHeaders() })).json()) as { from: number; to: number };
    expect(byDefault.to - byDefault.from).toBe(DAY_MS);

    const unauthorized = await t.fetch(`/admin/metrics?from=${DAY0}&to=${DAY0 + HOUR_MS}`);
    expect(unauthorized.status).toBe(401);
    expect(await unauthorized.json()).toMatchObject({ error: { code: "UNAUTHORIZED" } });
    for (const [query, message] of [
      ["from=yesterday", /from must be epoch milliseconds or an ISO-8601 time/],
      [`from=${DAY0 + HOUR_MS}&to=${DAY0}`, /from must be before to/],
      [`from=0&to=${DAY0}`, /must not exceed 400 days/],
    ] as const) {
      const response = await t.fetch(`/admin/metrics?${query}`, { headers: adminHeaders() });
      expect(response.status).toBe(400);
      const error = ((await response.json()) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe("BAD_REQUEST");
      expect(error.message).toMatch(message);
    }
    const post = await t.fetch("/admin/metrics", { method: "POST", headers: adminHeaders() });
    expect(post.status).toBe(405);
  });
});
