// Operators' read view of provisioning jobs: a bounded page of jobs (newest first, optionally in
// one status) and one job with its steps, for GET /admin/jobs and the operator CLI. Read only,
// every read through an index; never returns resources, customer facts or secrets.
import { paginationOptsValidator } from "convex/server";
import { v, type Infer } from "convex/values";
import type { Doc } from "./_generated/dataModel";
import { internalQuery } from "./_generated/server";
import { vCompensationStatus, vFailureClass, vJobError, vJobKind, vJobStatus, vStepName, vStepStatus } from "./lib/validators";

/** The most jobs one page may hold (GET /admin/jobs?limit=). */
export const MAX_JOBS_PAGE = 200;

/** A job in a listing: what it is, where it stands, and why it failed. */
export const vJobListItem = v.object({
  jobId: v.id("provisioningJobs"),
  instanceId: v.id("instances"),
  kind: vJobKind,
  status: vJobStatus,
  currentStep: v.number(),
  totalSteps: v.number(),
  retryCount: v.number(),
  trigger: v.string(),
  error: v.optional(vJobError),
  compensationStatus: v.optional(vCompensationStatus),
  createdAt: v.number(),
  updatedAt: v.number(),
  finishedAt: v.optional(v.number()),
});
export type JobListItem = Infer<typeof vJobListItem>;

/** One step as an operator sees it (no work ids, no deadlines' internals). */
export const vJobStepView = v.object({
  name: vStepName,
  status: vStepStatus,
  attempts: v.number(),
  startedAt: v.optional(v.number()),
  finishedAt: v.optional(v.number()),
  nextAttemptAt: v.optional(v.number()),
  waitingForCircuit: v.optional(v.boolean()),
  lastError: v.optional(v.object({ class: vFailureClass, message: v.string(), at: v.number() })),
});

export const vJobDetail = v.object({ ...vJobListItem.fields, steps: v.array(vJobStepView) });
export type JobDetail = Infer<typeof vJobDetail>;

function listItem(job: Doc<"provisioningJobs">): JobListItem {
  return {
    jobId: job._id,
    instanceId: job.instanceId,
    kind: job.kind,
    status: job.status,
    currentStep: job.currentStep,
    totalSteps: job.totalSteps,
    retryCount: job.retryCount,
    trigger: job.trigger,
    ...(job.error ? { error: job.error } : {}),
    ...(job.compensationStatus ? { compensationStatus: job.compensationStatus } : {}),
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    ...(job.finishedAt !== undefined ? { finishedAt: job.finishedAt } : {}),
  };
}

/**
 * Jobs newest first, one page of at most MAX_JOBS_PAGE. With `status`, through `by_status`
 * (creation order within the status); without, through the table's creation-time index.
 */
export const listJobs = internalQuery({
  args: { status: v.optional(vJobStatus), paginationOpts: paginationOptsValidator },
  returns: v.object({ jobs: v.array(vJobListItem), isDone: v.boolean(), continueCursor: v.string() }),
  handler: async (ctx, { status, paginationOpts }) => {
    const bounded = { ...paginationOpts, numItems: Math.min(Math.max(1, paginationOpts.numItems), MAX_JOBS_PAGE) };
    const query =
      status === undefined
        ? ctx.db.query("provisioningJobs")
        : ctx.db.query("provisioningJobs").withIndex("by_status", (q) => q.eq("status", status));
    const page = await query.order("desc").paginate(bounded);
    return { jobs: page.page.map(listItem), isDone: page.isDone, continueCursor: page.continueCursor };
  },
});

/** One job with its steps, or null when the id is unknown or not a job id. */
export const getJob = internalQuery({
  args: { jobId: v.string() },
  returns: v.union(v.null(), vJobDetail),
  handler: async (ctx, args) => {
    const jobId = ctx.db.normalizeId("provisioningJobs", args.jobId);
    const job = jobId === null ? null : await ctx.db.get("provisioningJobs", jobId);
    if (!job) return null;
    return {
      ...listItem(job),
      steps: job.steps.map((step) => ({
        name: step.name,
        status: step.status,
        attempts: step.attempts,
        ...(step.startedAt !== undefined ? { startedAt: step.startedAt } : {}),
        ...(step.finishedAt !== undefined ? { finishedAt: step.finishedAt } : {}),
        ...(step.nextAttemptAt !== undefined ? { nextAttemptAt: step.nextAttemptAt } : {}),
        ...(step.waitingForCircuit ? { waitingForCircuit: true } : {}),
        ...(step.lastError ? { lastError: step.lastError } : {}),
      })),
    };
  },
});
