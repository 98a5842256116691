// The provisioning job engine's function surface: step completions, the deploy
// report, manual retry, and the reads the status page, steps and operators use.
// State changes only here (through model/jobs.ts), each in one mutation.
import { v } from "convex/values";
import { vOnCompleteArgs } from "@convex-dev/workpool";
import type { Id } from "./_generated/dataModel";
import { internalMutation, internalQuery, type MutationCtx } from "./_generated/server";
import { loadConfig } from "./lib/config";
import {
  vInstanceResources,
  vJobError,
  vJobKind,
  vJobStatus,
  vFailureClass,
  vStepContext,
  vStepInput,
  vStepName,
  vStepOutcome,
  vStepState,
  type StepName,
  type StepOutcome,
} from "./lib/validators";
import {
  admitQueuedJobs as admitQueued,
  applyEvent,
  cancelJob as cancelRunningJob,
  resyncAdmission,
  retryFailedJob,
} from "./model/jobs";
import { log, cronBatch } from "./lib/log";
import { buildStatusView, vStatusView } from "./model/status";

/** Workpool completion of one step attempt: the action's outcome, or how it died. */
export const onStepComplete = internalMutation({
  args: vOnCompleteArgs(vStepContext, vStepOutcome),
  returns: v.null(),
  handler: async (ctx, { context, result }) => {
    let outcome: StepOutcome;
    if (result.kind === "success") outcome = result.returnValue;
    else if (result.kind === "failed") outcome = { kind: "transient", message: `step action failed: ${result.error}` };
    else outcome = { kind: "transient", message: "step action was canceled before it finished" };
    const job = await ctx.db.get("provisioningJobs", context.jobId);
    if (job) await applyEvent(ctx, loadConfig(), job, { kind: "outcome", step: context.step, attempt: context.attempt, outcome });
    return null;
  },
});

/** A step waiting for an external report (deployApp) that missed its deadline fails transiently. */
export const expireWaitingStep = internalMutation({
  args: vStepContext,
  returns: v.null(),
  handler: async (ctx, context) => {
    const job = await ctx.db.get("provisioningJobs", context.jobId);
    const state = job?.steps.find((s) => s.name === context.step);
    if (!job || !state || state.status !== "waiting" || state.attempts !== context.attempt) return null;
    await applyEvent(ctx, loadConfig(), job, {
      kind: "deadline",
      step: context.step,
      attempt: context.attempt,
      message: `${context.step}: no report arrived before the step's deadline`,
    });
    return null;
  },
});

/** A step parked behind its provider's circuit looks again: it goes (maybe as the probe) or waits on. */
export const onCircuitWake = internalMutation({
  args: vStepContext,
  returns: v.null(),
  handler: async (ctx, context) => {
    const job = await ctx.db.get("provisioningJobs", context.jobId);
    if (job) await applyEvent(ctx, loadConfig(), job, { kind: "circuitWake", step: context.step, attempt: context.attempt });
    return null;
  },
});

/** Admission (kicked a segment after a job queues or frees its slot; the watchdog backs it up). */
export const admitQueuedJobs = internalMutation({
  args: { poll: v.optional(v.boolean()) },
  returns: v.object({ admitted: v.number(), running: v.number() }),
  handler: async (ctx, { poll }) => admitQueued(ctx, loadConfig(), poll ?? false),
});

const vDeployReport = {
  step: vStepName,
  status: v.union(v.literal("succeeded"), v.literal("failed")),
  runId: v.string(),
  dispatchId: v.optional(v.string()),
  message: v.optional(v.string()),
};

/**
 * The deploy run's report (from the workflow's callback, or the sandbox's simulated run).
 * Accepted only while the step waits, only for its current dispatch and only from its run.
 */
export const recordDeployReport = internalMutation({
  args: { jobId: v.id("provisioningJobs"), ...vDeployReport, reporter: v.string() },
  returns: v.union(v.literal("recorded"), v.literal("not_waiting")),
  handler: async (ctx, { jobId, reporter, ...report }) => applyDeployReport(ctx, jobId, report, reporter),
});

/**
 * POST /provisioning-callback, after the route checked the signature and its age: records
 * the signature (a replay changes nothing) and the report, in one transaction.
 */
export const recordDeployCallback = internalMutation({
  args: { signature: v.string(), jobId: v.string(), ...vDeployReport, timings: v.optional(v.record(v.string(), v.number())) },
  returns: v.union(v.literal("recorded"), v.literal("not_waiting"), v.literal("replayed"), v.literal("unknown_job")),
  handler: async (ctx, { signature, jobId: rawJobId, timings, ...report }) => {
    const seen = await ctx.db
      .query("callbackReceipts")
      .withIndex("by_signature", (q) => q.eq("signature", signature))
      .unique();
    if (seen) return "replayed";
    const jobId = ctx.db.normalizeId("provisioningJobs", rawJobId);
    if (!jobId) return "unknown_job";
    const result = await applyDeployReport(ctx, jobId, report, "github:workflow");
    // Only an accepted report leaves a receipt: a rejected one changes nothing.
    if (result === "recorded") {
      await ctx.db.insert("callbackReceipts", { signature, receivedAt: Date.now() });
      if (timings && Object.keys(timings).length > 0) await ctx.db.patch("provisioningJobs", jobId, { deployTimings: timings });
    }
    return result;
  },
});

/** Progress entries kept per job: a workflow has a handful of steps, each reported twice. */
const DEPLOY_PROGRESS_KEPT = 30;

/**
 * One signed progress report from the deploy workflow (a workflow step started, succeeded or
 * failed), accepted under the same rules as its final report: for the current dispatch of a
 * dispatched deployApp step, each signature once. The job keeps the reports, with timings.
 */
export const recordDeployProgress = internalMutation({
  args: {
    signature: v.string(),
    jobId: v.string(),
    step: vStepName,
    runId: v.string(),
    dispatchId: v.optional(v.string()),
    progress: v.object({ name: v.string(), state: v.union(v.literal("started"), v.literal("succeeded"), v.literal("failed")), ms: v.optional(v.number()) }),
  },
  returns: v.union(v.literal("recorded"), v.literal("not_waiting"), v.literal("replayed"), v.literal("unknown_job")),
  handler: async (ctx, { signature, jobId: rawJobId, step, runId, dispatchId, progress }) => {
    const seen = await ctx.db
      .query("callbackReceipts")
      .withIndex("by_signature", (q) => q.eq("signature", signature))
      .unique();
    if (seen) return "replayed";
    const jobId = ctx.db.normalizeId("provisioningJobs", rawJobId);
    if (!jobId) return "unknown_job";
    const job = await ctx.db.get("provisioningJobs", jobId);
    if (!job) return "unknown_job";
    const state = job.steps.find((s) => s.name === step);
    const dispatched = state !== undefined && (state.status === "waiting" || state.status === "running");
    if (!dispatched || dispatchId !== `${job._id}-${state.attempts}` || (state.runId !== undefined && state.runId !== runId)) {
      log("warn", "deploy_progress.refused", { correlationId: job.correlationId, jobId, step, state: state?.status ?? "none" });
      return "not_waiting";
    }
    const entry = { ...progress, at: Date.now() };
    await ctx.db.patch("provisioningJobs", jobId, { deployProgress: [...(job.deployProgress ?? []), entry].slice(-DEPLOY_PROGRESS_KEPT) });
    await ctx.db.insert("callbackReceipts", { signature, receivedAt: entry.at });
    log("info", "deploy_progress.received", { correlationId: job.correlationId, jobId, workflowStep: progress.name, state: progress.state, ms: progress.ms });
    return "recorded";
  },
});

async function applyDeployReport(
  ctx: MutationCtx,
  jobId: Id<"provisioningJobs">,
  report: { step: StepName; status: "succeeded" | "failed"; runId: string; dispatchId?: string; message?: string },
  reporter: string,
): Promise<"recorded" | "not_waiting"> {
  const job = await ctx.db.get("provisioningJobs", jobId);
  if (!job) return "not_waiting";
  const decision = await applyEvent(ctx, loadConfig(), job, { kind: "deployReport", ...report }, reporter);
  if (decision.kind !== "applied") {
    log("warn", "deploy_report.refused", { correlationId: job.correlationId, jobId, reason: decision.kind === "refused" ? decision.message : decision.reason });
    return "not_waiting";
  }
  return "recorded";
}

/**
 * Everything a step action needs, or null when this attempt is no longer current. Steps get
 * their input with their dispatch; this serves jobs created before that and operators.
 */
export const getStepInput = internalQuery({
  args: vStepContext,
  returns: v.union(v.null(), vStepInput),
  handler: async (ctx, args) => {
    const job = await ctx.db.get("provisioningJobs", args.jobId);
    const state = job?.steps.find((s) => s.name === args.step);
    if (!job || !state || state.attempts !== args.attempt) return null;
    // A failed or cancelled job starts nothing new, not even a retry already queued.
    if (job.status !== "running") return null;
    if (state.status !== "running" && state.status !== "retrying") return null;
    const instance = await ctx.db.get("instances", job.instanceId);
    if (!instance) return null;
    const customer = await ctx.db.get("customers", instance.customerId);
    if (!customer) return null;
    return {
      jobId: job._id,
      instanceId: instance._id,
      correlationId: job.correlationId,
      plan: instance.plan,
      email: customer.email,
      customerName: customer.name,
      resources: { ...instance.resources, ...job.resources },
    };
  },
});

/** Manual retry of a failed job (admin API, dashboard). Refuses a job that is not failed. */
export const retryJob = internalMutation({
  args: { jobId: v.string(), actor: v.string() },
  returns: v.union(
    v.object({
      kind: v.literal("retried"),
      jobId: v.id("provisioningJobs"),
      retryCount: v.number(),
      status: v.union(v.literal("running"), v.literal("queued")),
    }),
    v.object({
      kind: v.literal("refused"),
      code: v.union(v.literal("NOT_FOUND"), v.literal("JOB_NOT_FAILED"), v.literal("COMPENSATION_IN_PROGRESS")),
      message: v.string(),
    }),
  ),
  handler: async (ctx, args) => retryFailedJob(ctx, loadConfig(), args.jobId, args.actor),
});

/** Manual cancel of a job in progress (admin API, dashboard): it stops between steps and compensates. */
export const cancelJob = internalMutation({
  args: { jobId: v.string(), actor: v.string() },
  returns: v.union(
    v.object({ kind: v.literal("cancelled"), jobId: v.id("provisioningJobs") }),
    v.object({
      kind: v.literal("refused"),
      code: v.union(v.literal("NOT_FOUND"), v.literal("JOB_NOT_IN_PROGRESS")),
      message: v.string(),
    }),
  ),
  handler: async (ctx, args) => cancelRunningJob(ctx, loadConfig(), args.jobId, args.actor),
});

/**
 * Watchdog (cron, every minute): any step past its deadline counts as a dead attempt
 * (class `deadline`) and is retried under the policy; a late result from that attempt is
 * then stale and changes nothing. Running jobs are at most MAX_ACTIVE_JOBS, so one pass
 * reads a bounded set. It also admits queued jobs if a slot is free.
 */
export const runWatchdog = internalMutation({
  args: {},
  returns: v.object({ expired: v.number() }),
  handler: cronBatch("provisioning.runWatchdog", async (ctx) => {
    const config = loadConfig();
    const now = Date.now();
    const running = await ctx.db
      .query("provisioningJobs")
      .withIndex("by_status", (q) => q.eq("status", "running"))
      // Admission bounds running jobs by MAX_ACTIVE_JOBS; manual retries may add a few more.
      .take(Math.max(config.MAX_ACTIVE_JOBS * 4, 1000));
    let expired = 0;
    for (const found of running) {
      for (const name of found.steps.map((s) => s.name)) {
        // Re-read: an earlier expiry in this pass may have changed the job.
        const job = (await ctx.db.get("provisioningJobs", found._id))!;
        const state = job.steps.find((s) => s.name === name)!;
        const live = state.status === "running" || state.status === "retrying" || state.status === "waiting";
        if (!live || state.deadlineAt === undefined || state.deadlineAt > now) continue;
        const decision = await applyEvent(
          ctx,
          config,
          job,
          { kind: "deadline", step: name, attempt: state.attempts, message: `${name} attempt ${state.attempts} passed its deadline without reporting` },
          "system:watchdog",
        );
        if (decision.kind === "applied" && !state.waitingForCircuit) expired++;
      }
    }
    if (running.length < Math.max(config.MAX_ACTIVE_JOBS * 4, 1000)) {
      // Jobs this pass failed left running (and inserted their release): count what is left.
      let stillRunning = 0;
      for (const found of running) if ((await ctx.db.get("provisioningJobs", found._id))?.status === "running") stillRunning++;
      await resyncAdmission(ctx, stillRunning);
    }
    return { expired };
  }),
});

/** The public status view of the instance bought in one checkout session, or null if unknown. */
export const getStatusBySession = internalQuery({
  // `now`: the time the ETA is measured from (the HTTP route's clock); without it, the job's last change.
  args: { sessionId: v.string(), now: v.optional(v.number()) },
  returns: v.union(v.null(), vStatusView),
  handler: async (ctx, args) => buildStatusView(ctx, args.sessionId, args.now),
});

/**
 * Dead letter: jobs that failed for good (permanent error or attempts exhausted) and have been
 * neither retried nor cleaned up yet, oldest first, with how long each has waited.
 */
export const listDeadLetter = internalQuery({
  args: { now: v.number(), limit: v.optional(v.number()) },
  returns: v.array(
    v.object({
      jobId: v.id("provisioningJobs"),
      instanceId: v.id("instances"),
      kind: vJobKind,
      step: vStepName,
      class: vFailureClass,
      message: v.string(),
      failedAt: v.number(),
      waitingMs: v.number(),
    }),
  ),
  handler: async (ctx, { now, limit }) => {
    // Waiting for their cleanup, or with a cleanup whose deletions keep failing. Cancelled
    // jobs are never dead letters, so they are left out of the range reads themselves (one
    // range per cleanup state and non-cancelled class, each in finishedAt order): however
    // many there are, they cannot fill the read window and hide real entries. The ranges are
    // merged oldest first, reading at most `take` jobs plus one lookahead per range.
    const take = Math.min(limit ?? 200, 1000);
    const classes = vFailureClass.members.map((member) => member.value).filter((c) => c !== "cancelled");
    // A failed lifecycle job (suspend, deprovision, …) has no cleanup state: it waits for its retry.
    const streams = (["scheduled", "running", undefined] as const).flatMap((compensationStatus) =>
      classes.map((failureClass) =>
        ctx.db
          .query("provisioningJobs")
          .withIndex("by_status_and_compensationStatus_and_errorClass_and_finishedAt", (q) =>
            q.eq("status", "failed").eq("compensationStatus", compensationStatus).eq("error.class", failureClass),
          )
          [Symbol.asyncIterator](),
      ),
    );
    const next = async (stream: (typeof streams)[number]) => {
      const result = await stream.next();
      return result.done ? null : result.value;
    };
    const heads = await Promise.all(streams.map(next));
    const jobs: NonNullable<(typeof heads)[number]>[] = [];
    while (jobs.length < take) {
      let oldest: number | null = null;
      for (let i = 0; i < heads.length; i++) {
        const head = heads[i];
        if (head && (oldest === null || (head.finishedAt ?? 0) < (heads[oldest]!.finishedAt ?? 0))) oldest = i;
      }
      if (oldest === null) break;
      jobs.push(heads[oldest]!);
      heads[oldest] = await next(streams[oldest]);
    }
    await Promise.all(streams.map((stream, i) => (heads[i] ? stream.return?.() : undefined)));
    return jobs
      .map((job) => {
        const failedAt = job.finishedAt ?? job.updatedAt;
        return {
          jobId: job._id,
          instanceId: job.instanceId,
          kind: job.kind,
          step: job.error!.step,
          class: job.error!.class,
          message: job.error!.message,
          failedAt,
          waitingMs: Math.max(0, now - failedAt),
        };
      });
  },
});

const vJobSummary = v.object({
  jobId: v.id("provisioningJobs"),
  instanceId: v.id("instances"),
  status: vJobStatus,
  currentStep: v.number(),
  totalSteps: v.number(),
  retryCount: v.number(),
  steps: v.array(vStepState),
  error: v.optional(vJobError),
  createdAt: v.number(),
  updatedAt: v.number(),
});

/** Dashboard: jobs in one status, newest first (at most `limit`, default 50). */
export const listJobsByStatus = internalQuery({
  args: { status: vJobStatus, limit: v.optional(v.number()) },
  returns: v.array(vJobSummary),
  handler: async (ctx, args) => {
    const jobs = await ctx.db
      .query("provisioningJobs")
      .withIndex("by_status", (q) => q.eq("status", args.status))
      .order("desc")
      .take(Math.min(args.limit ?? 50, 500));
    return jobs.map((job) => ({
      jobId: job._id,
      instanceId: job.instanceId,
      status: job.status,
      currentStep: job.currentStep,
      totalSteps: job.totalSteps,
      retryCount: job.retryCount,
      steps: job.steps,
      error: job.error,
      createdAt: job.createdAt,
      updatedAt: job.updatedAt,
    }));
  },
});
