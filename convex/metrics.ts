// Provisioning KPIs (docs/metrics.md): the hourly rollup into provisioningMetrics (plus a daily
// bucket once a UTC day's 24 hours are in), and getProvisioningMetrics({ from, to }), which
// merges the buckets a range covers and reads live only what no bucket holds yet (the partial
// hours at its edges and the hours since the last rollup), so it never re-reads rolled-up jobs.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import type { Doc } from "./_generated/dataModel";
import { internalMutation, internalQuery, type MutationCtx, type QueryCtx } from "./_generated/server";
import { loadConfig } from "./lib/config";
import { fail } from "./lib/errors";
import {
  addFinishedJob,
  addIncidents,
  currentCoverage,
  dayOf,
  DAY_MS,
  hourOf,
  HOUR_MS,
  type AuditBudget,
} from "./model/metrics";
import { emptyFigures, kpis, mergeFigures, vProvisioningMetrics, type MetricFigures } from "./model/metricsFigures";
import { cronBatch } from "./lib/log";

/** Jobs read per rollup mutation (one page of one index range). */
export const JOBS_PER_PAGE = 100;
/** Audit rows one rollup mutation may read for those jobs' failures (beyond it: estimated from the job). */
export const AUDIT_ROWS_PER_PAGE = 4000;
/** An hour is rolled up once it ended this long ago (a finishing transaction has committed by then). */
export const SETTLE_MS = 2 * 60_000;
/** A bucket in progress whose chain has not moved for this long is resumed by the cron. */
export const LEASE_MS = 10 * 60_000;
/** A coverage sample is taken only by a rollup running this soon after its hour (not while catching up). */
const COVERAGE_FRESH_MS = 2 * HOUR_MS;
/** The longest range a query answers. */
export const MAX_RANGE_MS = 400 * DAY_MS;
/** Hourly buckets a query reads (days without a daily bucket); hours past it are read live. */
const HOURLY_ROWS_MAX = 24 * 40;
/** Live reads of one query: finished jobs, created jobs, audit rows. */
export const LIVE_JOBS_MAX = 1000;
const LIVE_CREATED_MAX = 4000;
const LIVE_AUDIT_ROWS = 4000;

const vPhase = v.union(v.literal("finished"), v.literal("created"), v.literal("incidents"));
type Phase = "finished" | "created" | "incidents";
type Bucket = Doc<"provisioningMetrics">;

const hourRow = (ctx: QueryCtx, start: number) =>
  ctx.db
    .query("provisioningMetrics")
    .withIndex("by_granularity_and_start", (q) => q.eq("granularity", "hour").eq("start", start))
    .unique();

const latestHourRow = (ctx: QueryCtx) =>
  ctx.db
    .query("provisioningMetrics")
    .withIndex("by_granularity_and_start", (q) => q.eq("granularity", "hour"))
    .order("desc")
    .first();

/**
 * The first hour ever rolled up: the start of the oldest provision job's UTC day, so that day
 * gets its daily bucket too (else the start of the last full hour).
 */
async function firstHour(ctx: QueryCtx, now: number): Promise<number> {
  const oldest = await ctx.db
    .query("provisioningJobs")
    .withIndex("by_kind_and_createdAt", (q) => q.eq("kind", "provision"))
    .first();
  return oldest ? dayOf(oldest.createdAt) : hourOf(now - HOUR_MS);
}

/**
 * Starts the next hour due (its row, then its first page), or resumes a bucket whose chain
 * stalled past its lease. A bucket in progress with a live lease, or no hour due: nothing.
 */
async function startNextBucket(ctx: MutationCtx, now: number): Promise<number | null> {
  const latest = await latestHourRow(ctx);
  if (latest && !latest.complete) {
    if (now - latest.updatedAt < LEASE_MS || latest.phase === "done") return null;
    await ctx.db.patch("provisioningMetrics", latest._id, { updatedAt: now });
    await ctx.scheduler.runAfter(0, internal.metrics.rollupPage, { start: latest.start, phase: latest.phase, cursor: latest.cursor });
    return latest.start;
  }
  const start = latest ? latest.end : await firstHour(ctx, now);
  if (start + HOUR_MS + SETTLE_MS > now) return null;
  await ctx.db.insert("provisioningMetrics", {
    granularity: "hour",
    start,
    end: start + HOUR_MS,
    complete: false,
    phase: "finished",
    cursor: null,
    figures: emptyFigures(),
    updatedAt: now,
  });
  await ctx.scheduler.runAfter(0, internal.metrics.rollupPage, { start, phase: "finished", cursor: null });
  return start;
}

/**
 * The rollup cron (hourly): rolls up every hour that ended since the last one, one after the
 * other. Running it twice, or while a rollup is under way, starts nothing twice.
 */
export const runRollup = internalMutation({
  args: {},
  returns: v.object({ started: v.union(v.number(), v.null()) }),
  handler: cronBatch("metrics.runRollup", async (ctx) => ({ started: await startNextBucket(ctx, Date.now()) })),
});

/**
 * One step of an hour's rollup: a page of the jobs finished in it, a page of the jobs created in
 * it, or (last) its incidents and coverage, after which the bucket is complete and the next
 * hour due starts. Only the call carrying the bucket's current phase and cursor does anything,
 * so a duplicate or a resumed chain's stale call changes nothing.
 */
export const rollupPage = internalMutation({
  args: { start: v.number(), phase: vPhase, cursor: v.union(v.string(), v.null()) },
  returns: v.null(),
  handler: async (ctx, { start, phase, cursor }) => {
    const now = Date.now();
    const row = await hourRow(ctx, start);
    if (!row || row.complete || row.phase !== phase || row.cursor !== cursor) return null;
    let figures = row.figures;
    let next: { phase: Phase; cursor: string | null };
    if (phase === "finished") {
      const page = await ctx.db
        .query("provisioningJobs")
        .withIndex("by_kind_and_finishedAt", (q) => q.eq("kind", "provision").gte("finishedAt", row.start).lt("finishedAt", row.end))
        .paginate({ cursor, numItems: JOBS_PER_PAGE });
      const budget: AuditBudget = { rows: AUDIT_ROWS_PER_PAGE };
      for (const job of page.page) figures = await addFinishedJob(ctx, figures, job, budget);
      next = page.isDone ? { phase: "created", cursor: null } : { phase, cursor: page.continueCursor };
    } else if (phase === "created") {
      const page = await ctx.db
        .query("provisioningJobs")
        .withIndex("by_kind_and_createdAt", (q) => q.eq("kind", "provision").gte("createdAt", row.start).lt("createdAt", row.end))
        .paginate({ cursor, numItems: JOBS_PER_PAGE });
      figures = { ...figures, started: figures.started + page.page.length };
      next = page.isDone ? { phase: "incidents", cursor: null } : { phase, cursor: page.continueCursor };
    } else {
      figures = await addIncidents(ctx, figures, row.start, row.end);
      if (now - row.end <= COVERAGE_FRESH_MS) {
        const coverage = await currentCoverage(ctx, loadConfig(), now);
        figures = { ...figures, coverageSum: figures.coverageSum + coverage, coverageSamples: figures.coverageSamples + 1 };
      }
      await ctx.db.patch("provisioningMetrics", row._id, { figures, complete: true, phase: "done", cursor: null, updatedAt: now });
      if (row.end % DAY_MS === 0) await rollupDay(ctx, row.end - DAY_MS, now);
      await startNextBucket(ctx, now);
      return null;
    }
    await ctx.db.patch("provisioningMetrics", row._id, { figures, phase: next.phase, cursor: next.cursor, updatedAt: now });
    await ctx.scheduler.runAfter(0, internal.metrics.rollupPage, { start, ...next });
    return null;
  },
});

/** The day's bucket from its 24 complete hours (upserted by its start); a day missing an hour gets none. */
async function rollupDay(ctx: MutationCtx, dayStart: number, now: number) {
  const hours = await ctx.db
    .query("provisioningMetrics")
    .withIndex("by_granularity_and_start", (q) => q.eq("granularity", "hour").gte("start", dayStart).lt("start", dayStart + DAY_MS))
    .take(25);
  if (hours.length !== 24 || hours.some((h) => !h.complete)) return;
  const figures = hours.reduce((sum, h) => mergeFigures(sum, h.figures), emptyFigures());
  const existing = await ctx.db
    .query("provisioningMetrics")
    .withIndex("by_granularity_and_start", (q) => q.eq("granularity", "day").eq("start", dayStart))
    .unique();
  const row = { granularity: "day" as const, start: dayStart, end: dayStart + DAY_MS, complete: true, phase: "done" as const, cursor: null, figures, updatedAt: now };
  if (existing) await ctx.db.replace("provisioningMetrics", existing._id, row);
  else await ctx.db.insert("provisioningMetrics", row);
}

type Interval = [number, number];

/** Appends [a, b), merged with the last interval when they touch. */
function pushInterval(list: Interval[], a: number, b: number) {
  if (a >= b) return;
  const last = list[list.length - 1];
  if (last && last[1] === a) last[1] = b;
  else list.push([a, b]);
}

/** What no bucket holds, read from the jobs and incidents themselves (bounded by `budget`). */
async function addLive(
  ctx: QueryCtx,
  figures: MetricFigures,
  [a, b]: Interval,
  budget: { jobs: number; created: number; audit: AuditBudget },
): Promise<MetricFigures> {
  let f = figures;
  if (budget.jobs > 0) {
    const finished = await ctx.db
      .query("provisioningJobs")
      .withIndex("by_kind_and_finishedAt", (q) => q.eq("kind", "provision").gte("finishedAt", a).lt("finishedAt", b))
      .take(budget.jobs);
    budget.jobs -= finished.length;
    for (const job of finished) f = await addFinishedJob(ctx, f, job, budget.audit);
  }
  if (budget.created > 0) {
    const created = await ctx.db
      .query("provisioningJobs")
      .withIndex("by_kind_and_createdAt", (q) => q.eq("kind", "provision").gte("createdAt", a).lt("createdAt", b))
      .take(budget.created);
    budget.created -= created.length;
    f = { ...f, started: f.started + created.length };
  }
  return addIncidents(ctx, f, a, b);
}

/** Checks a range's bounds (the route answers 400 with the same messages). */
export function rangeProblem(from: number, to: number): string | null {
  if (!Number.isFinite(from) || !Number.isFinite(to) || from < 0 || to < 0) return "from and to must be epoch milliseconds";
  if (from >= to) return "from must be before to";
  if (to - from > MAX_RANGE_MS) return `the range must not exceed ${MAX_RANGE_MS / DAY_MS} days`;
  return null;
}

/**
 * Every provisioning KPI for [from, to) (epoch ms): complete daily buckets for the whole UTC
 * days inside it, complete hourly buckets for the other whole hours, and a bounded live read of
 * the rest (the partial hours at its edges, the hours not rolled up yet). Provision jobs only.
 */
export const getProvisioningMetrics = internalQuery({
  args: { from: v.number(), to: v.number() },
  returns: vProvisioningMetrics,
  handler: async (ctx, { from, to }) => {
    const problem = rangeProblem(from, to);
    if (problem) fail("BAD_REQUEST", problem);
    const now = Date.now();
    let figures = emptyFigures();
    const live: Interval[] = [];
    const h0 = Math.ceil(from / HOUR_MS) * HOUR_MS;
    const h1 = hourOf(to);
    if (h0 >= h1) {
      pushInterval(live, from, to);
    } else {
      pushInterval(live, from, h0);
      const d0 = Math.ceil(h0 / DAY_MS) * DAY_MS;
      const d1 = dayOf(h1);
      const days =
        d0 < d1
          ? await ctx.db
              .query("provisioningMetrics")
              .withIndex("by_granularity_and_start", (q) => q.eq("granularity", "day").gte("start", d0).lt("start", d1))
              .take(Math.ceil(MAX_RANGE_MS / DAY_MS) + 1)
          : [];
      const coveredDays = new Map(days.filter((d) => d.complete).map((d) => [d.start, d] as const));
      // The whole hours no daily bucket covers, as intervals.
      const needHours: Interval[] = [];
      for (let day = d0; day < d1; day += DAY_MS) {
        const bucket = coveredDays.get(day);
        if (bucket) figures = mergeFigures(figures, bucket.figures);
        else pushInterval(needHours, Math.max(day, h0), Math.min(day + DAY_MS, h1));
      }
      if (d0 >= d1) pushInterval(needHours, h0, h1);
      else {
        needHours.unshift([h0, Math.min(d0, h1)]);
        pushInterval(needHours, Math.max(d1, h0), h1);
      }
      let hourlyLeft = HOURLY_ROWS_MAX;
      for (const [a, b] of needHours.filter(([a, b]) => a < b).sort(([x], [y]) => x - y)) {
        const rows: Bucket[] =
          hourlyLeft > 0
            ? await ctx.db
                .query("provisioningMetrics")
                .withIndex("by_granularity_and_start", (q) => q.eq("granularity", "hour").gte("start", a).lt("start", b))
                .take(Math.min(hourlyLeft, (b - a) / HOUR_MS))
            : [];
        hourlyLeft -= rows.length;
        const complete = new Map(rows.filter((r) => r.complete).map((r) => [r.start, r] as const));
        for (let hour = a; hour < b; hour += HOUR_MS) {
          const bucket = complete.get(hour);
          if (bucket) figures = mergeFigures(figures, bucket.figures);
          else pushInterval(live, hour, hour + HOUR_MS);
        }
      }
      pushInterval(live, h1, to);
    }
    live.sort(([x], [y]) => x - y);
    const budget = { jobs: LIVE_JOBS_MAX, created: LIVE_CREATED_MAX, audit: { rows: LIVE_AUDIT_ROWS } };
    for (const interval of live) figures = await addLive(ctx, figures, interval, budget);
    // Coverage is a state, not an event: a range reaching past the last rollup samples it now.
    const latest = await latestHourRow(ctx);
    const rolledTo = latest?.complete ? latest.end : (latest?.start ?? 0);
    if (to > rolledTo && from <= now) {
      const coverage = await currentCoverage(ctx, loadConfig(), now);
      figures = { ...figures, coverageSum: figures.coverageSum + coverage, coverageSamples: figures.coverageSamples + 1 };
    }
    return kpis(from, to, figures);
  },
});
