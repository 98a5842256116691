// The job engine's state machine. Every transition is a plain function over the job
// document, run inside one mutation: record an outcome, decide what runs next (or
// retry later, or fail), patch once, schedule in the same transaction.
import { internal } from "../_generated/api";
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { retryDelayMs } from "../lib/backoff";
import { loadConfig, retryPolicy, type Config } from "../lib/config";
import { log } from "../lib/log";
import type { StepName, StepOutcome, StepState, StepContext } from "../lib/validators";
import { appendAudit } from "./audit";
import { initialSteps, readySteps, STEP_PROVIDER } from "./dag";
import { poolFor } from "./pools";

type Job = Doc<"provisioningJobs">;

const SYSTEM = "system:job-engine";

function setStep(steps: StepState[], name: StepName, patch: Partial<StepState>): StepState[] {
  return steps.map((s) => (s.name === name ? { ...s, ...patch } : s));
}

function stepOf(job: Job, name: StepName): StepState {
  const state = job.steps.find((s) => s.name === name);
  if (!state) throw new Error(`job ${job._id} has no step ${name}`);
  return state;
}

const completedCount = (steps: StepState[]) => steps.filter((s) => s.status === "succeeded").length;

async function enqueueStep(ctx: MutationCtx, context: StepContext, runAfterMs: number): Promise<void> {
  await poolFor(loadConfig(), STEP_PROVIDER[context.step]).enqueueAction(ctx, internal.steps.runStep, context, {
    onComplete: internal.provisioning.onStepComplete,
    context,
    retry: false,
    runAfter: runAfterMs,
  });
}

/** Marks every ready step running and enqueues it. Returns the updated steps. */
async function dispatchReady(ctx: MutationCtx, job: Job, steps: StepState[], now: number): Promise<StepState[]> {
  let next = steps;
  for (const name of readySteps(steps)) {
    const state = next.find((s) => s.name === name)!;
    const attempt = state.attempts + 1;
    next = setStep(next, name, { status: "running", attempts: attempt, startedAt: state.startedAt ?? now });
    await enqueueStep(ctx, { jobId: job._id, step: name, attempt }, 0);
    await appendAudit(ctx, { actor: SYSTEM, action: "step.started", jobId: job._id, instanceId: job.instanceId, detail: `${name} attempt ${attempt}` });
  }
  return next;
}

/**
 * Creates a provision job for an instance and starts its first steps, or queues it when
 * MAX_ACTIVE_JOBS are already running. Admission keeps a burst flowing through the DAG:
 * with every job started at once, each provider's FIFO queue would hold every job's first
 * step ahead of any job's later steps, and the later providers would sit idle.
 */
export async function startProvisionJob(
  ctx: MutationCtx,
  config: Config,
  args: { instanceId: Id<"instances">; correlationId: string; trigger: string },
): Promise<Id<"provisioningJobs">> {
  const now = Date.now();
  const steps = initialSteps();
  const running = await ctx.db
    .query("provisioningJobs")
    .withIndex("by_status", (q) => q.eq("status", "running"))
    .take(config.MAX_ACTIVE_JOBS);
  const admitted = running.length < config.MAX_ACTIVE_JOBS;
  const jobId = await ctx.db.insert("provisioningJobs", {
    instanceId: args.instanceId,
    kind: "provision",
    status: admitted ? "running" : "queued",
    steps,
    totalSteps: steps.length,
    currentStep: 0,
    retryCount: 0,
    correlationId: args.correlationId,
    trigger: args.trigger,
    createdAt: now,
    updatedAt: now,
  });
  await appendAudit(ctx, { actor: args.trigger, action: admitted ? "job.created" : "job.queued", jobId, instanceId: args.instanceId });
  if (admitted) {
    const job = (await ctx.db.get("provisioningJobs", jobId))!;
    await ctx.db.patch("provisioningJobs", jobId, { steps: await dispatchReady(ctx, job, steps, now) });
  }
  log("info", admitted ? "job.created" : "job.queued", { correlationId: args.correlationId, jobId, instanceId: args.instanceId });
  return jobId;
}

/** When a job leaves `running`, the oldest queued job (if any) takes its place. */
async function admitNextJob(ctx: MutationCtx): Promise<void> {
  const next = await ctx.db
    .query("provisioningJobs")
    .withIndex("by_status", (q) => q.eq("status", "queued"))
    .first();
  if (!next) return;
  const now = Date.now();
  await appendAudit(ctx, { actor: SYSTEM, action: "job.admitted", jobId: next._id, instanceId: next.instanceId });
  const steps = await dispatchReady(ctx, { ...next, status: "running" }, next.steps, now);
  await ctx.db.patch("provisioningJobs", next._id, { status: "running", steps, updatedAt: now });
}

/**
 * Creates a job that fails before it starts: a step is known to be impossible (a provider
 * quota, say). It stays retryable, so an operator can raise the limit and retry it.
 */
export async function startFailedJob(
  ctx: MutationCtx,
  args: { instanceId: Id<"instances">; correlationId: string; trigger: string; step: StepName; message: string },
): Promise<Id<"provisioningJobs">> {
  const now = Date.now();
  const steps = setStep(initialSteps(), args.step, {
    status: "failed",
    finishedAt: now,
    lastError: { class: "permanent", message: args.message, at: now },
  });
  const jobId = await ctx.db.insert("provisioningJobs", {
    instanceId: args.instanceId,
    kind: "provision",
    status: "failed",
    steps,
    totalSteps: steps.length,
    currentStep: 0,
    retryCount: 0,
    correlationId: args.correlationId,
    trigger: args.trigger,
    error: { step: args.step, class: "permanent", message: args.message },
    createdAt: now,
    updatedAt: now,
    finishedAt: now,
  });
  await ctx.db.patch("instances", args.instanceId, { status: "failed" });
  await appendAudit(ctx, { actor: args.trigger, action: "job.created", jobId, instanceId: args.instanceId });
  await appendAudit(ctx, { actor: SYSTEM, action: "job.failed", jobId, instanceId: args.instanceId, detail: `${args.step} (permanent): ${args.message}` });
  log("warn", "job.failed", { correlationId: args.correlationId, jobId, step: args.step, class: "permanent" });
  return jobId;
}

export type RecordResult = "recorded" | "stale";

/**
 * Records one attempt's outcome and decides what happens next. A report for an attempt
 * that is no longer the step's current one (superseded, or already recorded) changes nothing.
 */
export async function recordOutcome(
  ctx: MutationCtx,
  config: Config,
  context: StepContext,
  outcome: StepOutcome,
  actor: string = SYSTEM,
): Promise<RecordResult> {
  const job = await ctx.db.get("provisioningJobs", context.jobId);
  if (!job) return "stale";
  const state = stepOf(job, context.step);
  const live = state.status === "running" || state.status === "retrying" || state.status === "waiting";
  if (!live || state.attempts !== context.attempt) {
    log("warn", "step.stale_result", { correlationId: job.correlationId, jobId: job._id, step: context.step, attempt: context.attempt, currentAttempt: state.attempts, status: state.status });
    return "stale";
  }

  const now = Date.now();
  const audit = (action: string, detail?: string) =>
    appendAudit(ctx, { actor, action, jobId: job._id, instanceId: job.instanceId, detail });
  let steps = job.steps;
  const patch: Partial<Job> = {};

  if (outcome.kind === "succeeded" || outcome.kind === "waiting") {
    await mergeResources(ctx, job.instanceId, outcome.resources);
    if (outcome.kind === "waiting") {
      steps = setStep(steps, context.step, { status: "waiting", nextAttemptAt: undefined });
      await ctx.scheduler.runAfter(outcome.deadlineMs, internal.provisioning.expireWaitingStep, context);
      await audit("step.waiting", `${context.step} attempt ${context.attempt}: waiting up to ${outcome.deadlineMs} ms for its report`);
    } else {
      steps = setStep(steps, context.step, { status: "succeeded", finishedAt: now, nextAttemptAt: undefined });
      await audit("step.succeeded", `${context.step} attempt ${context.attempt}`);
      if (context.step === "activate") {
        Object.assign(patch, { status: "succeeded", finishedAt: now });
        await activateInstance(ctx, job.instanceId, now);
        await audit("job.succeeded");
        await admitNextJob(ctx);
      } else if (job.status === "running") {
        steps = await dispatchReady(ctx, job, steps, now);
      }
    }
  } else {
    const error = { class: outcome.kind, message: outcome.message, at: now };
    const policy = retryPolicy(config);
    const attemptsThisRun = state.attempts - (state.attemptsBeforeRetry ?? 0);
    if (job.status !== "running") {
      // The job already failed on another step; record this failure, schedule nothing.
      steps = setStep(steps, context.step, { status: "failed", finishedAt: now, lastError: error, nextAttemptAt: undefined });
      await audit("step.failed", `${context.step}: ${outcome.message}`);
    } else if (outcome.kind !== "permanent" && attemptsThisRun < policy.maxAttempts) {
      const retryAfter = outcome.kind === "rate_limited" ? outcome.retryAfterMs : undefined;
      const delay = retryDelayMs(policy, attemptsThisRun, retryAfter);
      const attempt = state.attempts + 1;
      steps = setStep(steps, context.step, { status: "retrying", attempts: attempt, lastError: error, nextAttemptAt: now + delay });
      await enqueueStep(ctx, { jobId: job._id, step: context.step, attempt }, delay);
      await audit("step.retry_scheduled", `${context.step} attempt ${attempt} in ${delay} ms after ${outcome.kind}: ${outcome.message}`);
    } else {
      const message =
        outcome.kind === "permanent"
          ? outcome.message
          : `${outcome.message} (gave up after ${attemptsThisRun} attempts)`;
      steps = setStep(steps, context.step, { status: "failed", finishedAt: now, lastError: error, nextAttemptAt: undefined });
      Object.assign(patch, { status: "failed", finishedAt: now, error: { step: context.step, class: outcome.kind, message } });
      await ctx.db.patch("instances", job.instanceId, { status: "failed" });
      await audit("step.failed", `${context.step}: ${message}`);
      await audit("job.failed", `${context.step} (${outcome.kind}): ${message}`);
      await admitNextJob(ctx);
      log("warn", "job.failed", { correlationId: job.correlationId, jobId: job._id, step: context.step, class: outcome.kind });
    }
  }

  await ctx.db.patch("provisioningJobs", job._id, {
    ...patch,
    steps,
    currentStep: completedCount(steps),
    updatedAt: now,
  });
  return "recorded";
}

async function mergeResources(ctx: MutationCtx, instanceId: Id<"instances">, resources: Doc<"instances">["resources"]) {
  if (Object.keys(resources).length === 0) return;
  const instance = await ctx.db.get("instances", instanceId);
  if (!instance) return;
  await ctx.db.patch("instances", instanceId, { resources: { ...instance.resources, ...resources } });
  if (resources.workosUserId) {
    await ctx.db.patch("customers", instance.customerId, { workosUserId: resources.workosUserId });
  }
}

async function activateInstance(ctx: MutationCtx, instanceId: Id<"instances">, now: number) {
  const instance = await ctx.db.get("instances", instanceId);
  if (!instance) return;
  const subdomain = instance.resources.pagesSubdomain;
  await ctx.db.patch("instances", instanceId, {
    status: "active",
    activatedAt: now,
    ...(subdomain ? { url: `https://${subdomain}` } : {}),
  });
}

/**
 * Resumes a failed job from its failed steps: they return to pending with a fresh
 * attempt budget, and every step whose inputs are done starts again. Steps that
 * succeeded are kept; a step still in flight is left to finish.
 */
export type RetryResult =
  | { kind: "retried"; jobId: Id<"provisioningJobs">; retryCount: number }
  | { kind: "refused"; code: "NOT_FOUND" | "JOB_NOT_FAILED"; message: string };

export async function retryFailedJob(
  ctx: MutationCtx,
  rawJobId: string,
  actor: string,
): Promise<RetryResult> {
  // Refusals are returned, not thrown, so their audit entries commit.
  const jobId = ctx.db.normalizeId("provisioningJobs", rawJobId);
  const job = jobId ? await ctx.db.get("provisioningJobs", jobId) : null;
  if (!jobId || !job) {
    await appendAudit(ctx, { actor, action: "job.retry_refused", detail: `no job ${rawJobId.slice(0, 64)}` });
    return { kind: "refused", code: "NOT_FOUND", message: `no provisioning job ${rawJobId}` };
  }
  if (job.status !== "failed") {
    await appendAudit(ctx, { actor, action: "job.retry_refused", jobId, instanceId: job.instanceId, detail: `job is ${job.status}` });
    return { kind: "refused", code: "JOB_NOT_FAILED", message: `job ${jobId} is ${job.status}; only a failed job can be retried` };
  }
  const now = Date.now();
  let steps = job.steps.map((s): StepState =>
    s.status === "failed"
      ? { name: s.name, status: "pending", attempts: s.attempts, attemptsBeforeRetry: s.attempts, startedAt: s.startedAt }
      : s,
  );
  const retryCount = job.retryCount + 1;
  await appendAudit(ctx, { actor, action: "job.retried", jobId, instanceId: job.instanceId, detail: `retry ${retryCount}` });
  await ctx.db.patch("instances", job.instanceId, { status: "provisioning" });
  steps = await dispatchReady(ctx, { ...job, status: "running" }, steps, now);
  await ctx.db.patch("provisioningJobs", jobId, {
    status: "running",
    steps,
    retryCount,
    error: undefined,
    finishedAt: undefined,
    currentStep: completedCount(steps),
    updatedAt: now,
  });
  log("info", "job.retried", { correlationId: job.correlationId, jobId, retryCount, actor });
  return { kind: "retried", jobId, retryCount };
}
