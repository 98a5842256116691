// The status page's estimate of when a provision job will be ready: each step's typical duration
// (the median of recent measured ones, else a default), laid over the DAG from what the job has
// done so far. It reads a small, fixed number of recent jobs and never the clock.
import type { QueryCtx } from "../_generated/server";
import type { StepName, StepState } from "../lib/validators";
import { STEPS } from "../registry";
import { addSample, emptyHistogram, percentile, type Histogram } from "./metricsFigures";

/** Finished provision jobs whose step durations the estimate is taken from (newest first). */
export const RECENT_JOBS = 20;

/**
 * Cold start (no finished job has measured the step yet): a live run's typical durations, as a
 * customer would rather be told a few minutes and see it sooner. Sandbox runs replace them with
 * their own measurements after the first finished job.
 */
export const DEFAULT_STEP_MS: Partial<Record<StepName, number>> = {
  convexProject: 20_000,
  workosOrg: 3_000,
  pagesProject: 5_000,
  workosUser: 3_000,
  configureBackend: 15_000,
  configureSite: 5_000,
  deployApp: 120_000,
  validate: 10_000,
  activate: 0,
};
/** A step with neither history nor a default above. */
export const FALLBACK_STEP_MS = 10_000;

export type StepEstimates = Partial<Record<StepName, number>>;

/**
 * The median duration of each step (first start to success, retries included, as in
 * docs/metrics.md) over the newest RECENT_JOBS finished provision jobs; steps none of them
 * measured are left out (the defaults apply).
 */
export async function recentStepEstimates(ctx: QueryCtx): Promise<StepEstimates> {
  const jobs = await ctx.db
    .query("provisioningJobs")
    .withIndex("by_kind_and_finishedAt", (q) => q.eq("kind", "provision").gt("finishedAt", 0))
    .order("desc")
    .take(RECENT_JOBS);
  const histograms: Partial<Record<StepName, Histogram>> = {};
  for (const job of jobs) {
    for (const s of job.steps) {
      if (s.status === "succeeded" && s.startedAt !== undefined && s.finishedAt !== undefined) {
        histograms[s.name] = addSample(histograms[s.name] ?? emptyHistogram(), s.finishedAt - s.startedAt);
      }
    }
  }
  const estimates: StepEstimates = {};
  for (const [name, h] of Object.entries(histograms) as [StepName, Histogram][]) {
    const median = percentile(h, 0.5);
    if (median !== null) estimates[name] = median;
  }
  return estimates;
}

const stepMs = (name: StepName, estimates: StepEstimates) => estimates[name] ?? DEFAULT_STEP_MS[name] ?? FALLBACK_STEP_MS;

/**
 * When the last step should finish, as of `asOf`: a succeeded step finished when it did; one in
 * progress finishes its typical duration after it started (after its next attempt, when waiting
 * to retry), but not before `asOf` (an overrunning step is assumed to finish now, not in the
 * past); a pending step starts once every step it needs is estimated done. Steps are in the
 * registry's order, which lists each step after its needs. Null for a failed step.
 */
export function estimateReadyAt(steps: StepState[], estimates: StepEstimates, asOf: number): number | null {
  const finish = new Map<StepName, number>();
  let last = asOf;
  for (const s of steps) {
    const typical = stepMs(s.name, estimates);
    let end: number;
    switch (s.status) {
      case "failed":
        return null;
      case "succeeded":
        end = s.finishedAt ?? asOf;
        break;
      case "retrying":
        end = Math.max(asOf, s.nextAttemptAt ?? asOf) + typical;
        break;
      case "running":
      case "waiting":
        end = Math.max(asOf, (s.startedAt ?? asOf) + typical);
        break;
      case "pending": {
        const ready = Math.max(asOf, ...STEPS[s.name].needs.map((need) => finish.get(need) ?? asOf));
        end = ready + typical;
        break;
      }
    }
    finish.set(s.name, end);
    last = Math.max(last, end);
  }
  return last;
}

/** The step the customer is told about: the first in progress (running, waiting or retrying), in registry order. */
export function currentStepName(steps: StepState[]): StepName | null {
  return steps.find((s) => s.status === "running" || s.status === "waiting" || s.status === "retrying")?.name ?? null;
}
