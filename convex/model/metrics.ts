// What the metrics read to fill a bucket's figures (model/metricsFigures.ts): provision jobs
// finished and created in a time range, the failed attempts of their last run (from the audit
// trail, read only for jobs that show a failure), incidents opened and recovered, and the
// fleet's health-check coverage. The rollup (metrics.ts) and the live part of a range query
// both go through these, so a bucket and a live stretch count alike. See docs/metrics.md.
import type { Doc } from "../_generated/dataModel";
import type { QueryCtx } from "../_generated/server";
import type { Config } from "../lib/config";
import { readCoverage } from "../monitoring";
import { expandAudit } from "./audit";
import { readCounts } from "./healthCounts";
import { RECOVERED } from "./incidents";
import { addSample, emptyHistogram, type MetricFigures } from "./metricsFigures";

export const HOUR_MS = 60 * 60_000;
export const DAY_MS = 24 * HOUR_MS;
/** Audit rows read per job with a failure (a job's trail is ~10-40 rows; the rest is estimated). */
export const AUDIT_ROWS_PER_JOB = 200;
/** Incidents read per range and kind (opened, resolved): more than any hour sees. */
export const INCIDENTS_PER_RANGE = 1000;

type Job = Doc<"provisioningJobs">;
type Failure = { step: string; errorClass: string };
type Run = { failures: Failure[]; retries: number };

const LIVE = new Set(["running", "retrying", "waiting"]);

/** Whether the job document shows any failed attempt (else its audit trail is not read). */
function showsFailure(job: Job): boolean {
  return job.status === "failed" || job.retryCount > 0 || job.steps.some((s) => s.attempts > 1 || s.lastError !== undefined);
}

/**
 * The failed attempts and automatic retries of the job's last run (after its last manual
 * retry, up to its finish), read off its audit trail: step.retry_scheduled and step.failed carry
 * the step and the error class; a job.failed without a step.failed before it (a cancel, a job
 * failed before it started) counts once at its step.
 */
export function lastRunFromAudit(entries: { action: string; step?: string; errorClass?: string }[]): Run | null {
  let run: Run = { failures: [], retries: 0 };
  let ended = false;
  let stepFailed = false;
  for (const entry of entries) {
    if (entry.action === "job.retried") {
      run = { failures: [], retries: 0 };
      ended = false;
      stepFailed = false;
      continue;
    }
    if (ended) continue;
    const failure = { step: entry.step ?? "unknown", errorClass: entry.errorClass ?? "transient" };
    if (entry.action === "step.retry_scheduled") {
      run.retries += 1;
      run.failures.push(failure);
    } else if (entry.action === "step.failed") {
      stepFailed = true;
      run.failures.push(failure);
    } else if (entry.action === "job.failed") {
      if (!stepFailed) run.failures.push(failure);
      ended = true;
    } else if (entry.action === "job.succeeded") {
      ended = true;
    }
  }
  // A trail without the finish (older rows than the audit kept, or none): the caller estimates.
  return ended ? run : null;
}

/** When the audit budget is spent, or the trail lacks the finish: the failures as the job document shows them (classes from each step's last error). */
export function lastRunFromJob(job: Job): Run {
  const run: Run = { failures: [], retries: 0 };
  for (const s of job.steps) {
    const attempts = s.attempts - (s.attemptsBeforeRetry ?? 0);
    const failed = Math.max(0, attempts - (s.status === "succeeded" || LIVE.has(s.status) ? 1 : 0));
    const errorClass = s.lastError?.class ?? "transient";
    for (let i = 0; i < failed; i++) run.failures.push({ step: s.name, errorClass });
    run.retries += Math.max(0, failed - (s.status === "failed" ? 1 : 0));
  }
  if (job.error && !job.steps.some((s) => s.name === job.error!.step && s.status === "failed")) {
    run.failures.push({ step: job.error.step, errorClass: job.error.class });
  }
  return run;
}

/** Budget shared by one mutation or query: audit rows it may still read. */
export type AuditBudget = { rows: number };

/** Adds one finished provision job (its outcome, durations, failures and retries) to the figures. */
export async function addFinishedJob(ctx: QueryCtx, f: MetricFigures, job: Job, budget: AuditBudget): Promise<MetricFigures> {
  if (job.finishedAt === undefined || (job.status !== "succeeded" && job.status !== "failed")) return f;
  const out: MetricFigures = { ...f, steps: { ...f.steps }, failuresByStep: { ...f.failuresByStep }, failuresByClass: { ...f.failuresByClass } };
  if (job.status === "succeeded") {
    out.succeeded += 1;
    out.duration = addSample(out.duration, job.finishedAt - job.createdAt);
  } else {
    out.failed += 1;
  }
  for (const s of job.steps) {
    if (s.status === "succeeded" && s.startedAt !== undefined && s.finishedAt !== undefined) {
      out.steps[s.name] = addSample(out.steps[s.name] ?? emptyHistogram(), s.finishedAt - s.startedAt);
    }
  }
  if (!showsFailure(job)) return out;
  let run: Run;
  if (budget.rows >= AUDIT_ROWS_PER_JOB) {
    const rows = await ctx.db
      .query("auditLogs")
      .withIndex("by_jobId", (q) => q.eq("jobId", job._id))
      .take(AUDIT_ROWS_PER_JOB);
    budget.rows -= rows.length;
    const fromAudit = rows.length < AUDIT_ROWS_PER_JOB ? lastRunFromAudit(rows.flatMap(({ _id, _creationTime, ...row }) => expandAudit(row))) : null;
    run = fromAudit ?? lastRunFromJob(job);
  } else {
    run = lastRunFromJob(job);
  }
  for (const { step, errorClass } of run.failures) {
    out.failuresByStep[step] = (out.failuresByStep[step] ?? 0) + 1;
    out.failuresByClass[errorClass] = (out.failuresByClass[errorClass] ?? 0) + 1;
  }
  out.retries += run.retries;
  if (run.failures.some((failure) => failure.errorClass !== "cancelled")) {
    out.withFailure += 1;
    if (job.status === "succeeded" && job.retryCount === 0) out.autoRecovered += 1;
  }
  return out;
}

/** Adds incidents opened in [start, end) (detection) and resolved as recovered in it (repair). */
export async function addIncidents(ctx: QueryCtx, f: MetricFigures, start: number, end: number): Promise<MetricFigures> {
  const opened = await ctx.db
    .query("incidents")
    .withIndex("by_openedAt", (q) => q.gte("openedAt", start).lt("openedAt", end))
    .take(INCIDENTS_PER_RANGE);
  const resolved = await ctx.db
    .query("incidents")
    .withIndex("by_status_and_resolvedAt", (q) => q.eq("status", "resolved").gte("resolvedAt", start).lt("resolvedAt", end))
    .take(INCIDENTS_PER_RANGE);
  const out = { ...f };
  for (const incident of opened) {
    out.detected += 1;
    out.detectMsSum += Math.max(0, incident.openedAt - incident.since);
  }
  for (const incident of resolved) {
    if (incident.resolution !== RECOVERED || incident.resolvedAt === undefined) continue;
    out.recovered += 1;
    out.repairMsSum += Math.max(0, incident.resolvedAt - incident.since);
  }
  return out;
}

/** The fleet's health-check coverage now (monitoring's own reading: aggregate counts, batches behind). */
export async function currentCoverage(ctx: QueryCtx, config: Config, now: number): Promise<number> {
  const { counts } = await readCounts(ctx);
  return readCoverage(ctx, config, now, counts);
}

export const hourOf = (ms: number) => Math.floor(ms / HOUR_MS) * HOUR_MS;
export const dayOf = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;
