// The job engine's state machine. Every transition is a plain function over the job
// document, run inside one mutation: record an outcome, decide what runs next (or
// retry later, or fail), patch once, schedule in the same transaction.
import { internal } from "../_generated/api";
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { retryDelayMs } from "../lib/backoff";
import { retryPolicy, stepDeadlineMs, type Config } from "../lib/config";
import { log } from "../lib/log";
import type { JobError, StepName, StepOutcome, StepState, StepContext } from "../lib/validators";
import { appendAudit } from "./audit";
import { circuitWaitMs, recordCircuit } from "./circuits";
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

async function enqueueStep(ctx: MutationCtx, config: Config, context: StepContext, runAfterMs: number): Promise<void> {
  await poolFor(config, STEP_PROVIDER[context.step]).enqueueAction(ctx, internal.steps.runStep, context, {
    onComplete: internal.provisioning.onStepComplete,
    context,
    retry: false,
    runAfter: runAfterMs,
  });
}

/** Marks every ready step running (with its deadline) and enqueues it. Returns the updated steps. */
async function dispatchReady(
  ctx: MutationCtx,
  config: Config,
  job: Job,
  steps: StepState[],
  now: number,
): Promise<StepState[]> {
  let next = steps;
  for (const name of readySteps(steps)) {
    const state = next.find((s) => s.name === name)!;
    const attempt = state.attempts + 1;
    // With the provider's circuit open, the step waits for the cool-down instead of failing.
    const wait = await circuitWaitMs(ctx, config, STEP_PROVIDER[name], now);
    next = setStep(next, name, {
      status: "running",
      attempts: attempt,
      startedAt: state.startedAt ?? now,
      nextAttemptAt: wait > 0 ? now + wait : undefined,
      deadlineAt: now + wait + stepDeadlineMs(config, name),
    });
    await enqueueStep(ctx, config, { jobId: job._id, step: name, attempt }, wait);
    await appendAudit(ctx, { actor: SYSTEM, action: "step.started", jobId: job._id, instanceId: job.instanceId, detail: `${name} attempt ${attempt}` });
  }
  return next;
}

type JobOrigin = { instanceId: Id<"instances">; correlationId: string; trigger: string };

function insertJob(ctx: MutationCtx, config: Config, origin: JobOrigin, status: Job["status"], steps: StepState[], now: number) {
  return ctx.db.insert("provisioningJobs", {
    instanceId: origin.instanceId,
    kind: "provision",
    status,
    steps,
    totalSteps: steps.length,
    currentStep: 0,
    retryCount: 0,
    retryPolicy: retryPolicy(config),
    correlationId: origin.correlationId,
    trigger: origin.trigger,
    createdAt: now,
    updatedAt: now,
  });
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
  const jobId = await insertJob(ctx, config, args, admitted ? "running" : "queued", steps, now);
  await appendAudit(ctx, { actor: args.trigger, action: admitted ? "job.created" : "job.queued", jobId, instanceId: args.instanceId });
  if (admitted) {
    const job = (await ctx.db.get("provisioningJobs", jobId))!;
    await ctx.db.patch("provisioningJobs", jobId, { steps: await dispatchReady(ctx, config, job, steps, now) });
  }
  log("info", admitted ? "job.created" : "job.queued", { correlationId: args.correlationId, jobId, instanceId: args.instanceId });
  return jobId;
}

/** When a job leaves `running`, the oldest queued job (if any) takes its place. */
export async function admitNextJob(ctx: MutationCtx, config: Config): Promise<void> {
  const next = await ctx.db
    .query("provisioningJobs")
    .withIndex("by_status", (q) => q.eq("status", "queued"))
    .first();
  if (!next) return;
  const now = Date.now();
  await appendAudit(ctx, { actor: SYSTEM, action: "job.admitted", jobId: next._id, instanceId: next.instanceId });
  const steps = await dispatchReady(ctx, config, { ...next, status: "running" }, next.steps, now);
  await ctx.db.patch("provisioningJobs", next._id, { status: "running", steps, updatedAt: now });
}

/**
 * Creates a job that fails before it starts: a step is known to be impossible (a provider
 * quota, say). It stays retryable, so an operator can raise the limit and retry it.
 */
export async function startFailedJob(
  ctx: MutationCtx,
  config: Config,
  args: { instanceId: Id<"instances">; correlationId: string; trigger: string; step: StepName; message: string },
): Promise<Id<"provisioningJobs">> {
  const now = Date.now();
  const steps = setStep(initialSteps(), args.step, {
    status: "failed",
    finishedAt: now,
    lastError: { class: "permanent", message: args.message, at: now },
  });
  const jobId = await insertJob(ctx, config, args, "failed", steps, now);
  await appendAudit(ctx, { actor: args.trigger, action: "job.created", jobId, instanceId: args.instanceId });
  const job = (await ctx.db.get("provisioningJobs", jobId))!;
  const error = { step: args.step, class: "permanent" as const, message: args.message };
  await ctx.db.patch("provisioningJobs", jobId, await failJob(ctx, config, job, error, SYSTEM, config.CLEANUP_DELAY_MS));
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
  // A permanent error or a rate limit means the provider answered: it says nothing about its health.
  // Nor does an attempt skipped because its job had already stopped.
  const circuit =
    outcome.kind === "permanent" || outcome.kind === "rate_limited" || job.status !== "running"
      ? { tripped: false }
      : await recordCircuit(ctx, config, STEP_PROVIDER[context.step], outcome.kind === "transient" || outcome.kind === "deadline", now);

  if (outcome.kind === "succeeded" || outcome.kind === "waiting") {
    await mergeResources(ctx, job.instanceId, outcome.resources);
    if (outcome.kind === "waiting") {
      steps = setStep(steps, context.step, { status: "waiting", nextAttemptAt: undefined, deadlineAt: now + outcome.deadlineMs });
      await ctx.scheduler.runAfter(outcome.deadlineMs, internal.provisioning.expireWaitingStep, context);
      await audit("step.waiting", `${context.step} attempt ${context.attempt}: waiting up to ${outcome.deadlineMs} ms for its report`);
    } else {
      steps = setStep(steps, context.step, { status: "succeeded", finishedAt: now, nextAttemptAt: undefined, deadlineAt: undefined });
      await audit("step.succeeded", `${context.step} attempt ${context.attempt}`);
      if (context.step === "activate") {
        Object.assign(patch, { status: "succeeded", finishedAt: now });
        await activateInstance(ctx, job.instanceId, now);
        await audit("job.succeeded");
        await admitNextJob(ctx, config);
      } else if (job.status === "running") {
        steps = await dispatchReady(ctx, config, job, steps, now);
      } else if (job.compensationStatus === "running" || job.compensationStatus === "done") {
        // A step still running when the job failed (or was cancelled) made something after
        // the cleanup took its inventory: clean that up too.
        Object.assign(patch, { compensationStatus: "scheduled", compensateAt: now });
        await ctx.scheduler.runAfter(0, internal.cleanup.startCompensation, { jobId: job._id, retryCount: job.retryCount });
        await audit("job.compensation_scheduled", `late result of ${context.step}`);
      }
    }
  } else {
    const error = { class: outcome.kind, message: outcome.message, at: now };
    const policy = job.retryPolicy ?? retryPolicy(config);
    const attemptsThisRun = state.attempts - (state.attemptsBeforeRetry ?? 0);
    // While the provider's circuit is open a failure does not burn the step's budget, but only
    // for CIRCUIT_MAX_WAITS failures: an outage that never ends still fails the job in the end.
    const waitsOutOutage = circuit.tripped && (state.circuitWaits ?? 0) < config.CIRCUIT_MAX_WAITS;
    const idle = { nextAttemptAt: undefined, deadlineAt: undefined };
    if (job.status !== "running") {
      // The job already failed (or was cancelled); record this failure, schedule no retry.
      steps = setStep(steps, context.step, { status: "failed", finishedAt: now, lastError: error, ...idle });
      await audit("step.failed", `${context.step}: ${outcome.message}`);
      if (job.compensationStatus === "running" || job.compensationStatus === "done") {
        // A failed attempt may still have acted (a lost response): clean up once more.
        Object.assign(patch, { compensationStatus: "scheduled", compensateAt: now });
        await ctx.scheduler.runAfter(0, internal.cleanup.startCompensation, { jobId: job._id, retryCount: job.retryCount });
      }
    } else if (outcome.kind !== "permanent" && (waitsOutOutage || attemptsThisRun < policy.maxAttempts)) {
      const retryAfter = outcome.kind === "rate_limited" ? outcome.retryAfterMs : undefined;
      const circuitWait = await circuitWaitMs(ctx, config, STEP_PROVIDER[context.step], now);
      const delay = Math.max(retryDelayMs(policy, attemptsThisRun, retryAfter), circuitWait);
      const attempt = state.attempts + 1;
      steps = setStep(steps, context.step, {
        status: "retrying",
        attempts: attempt,
        // While the provider's circuit is open, a failure does not burn the step's budget.
        ...(waitsOutOutage
          ? { attemptsBeforeRetry: (state.attemptsBeforeRetry ?? 0) + 1, circuitWaits: (state.circuitWaits ?? 0) + 1 }
          : {}),
        lastError: error,
        nextAttemptAt: now + delay,
        deadlineAt: now + delay + stepDeadlineMs(config, context.step),
      });
      await enqueueStep(ctx, config, { jobId: job._id, step: context.step, attempt }, delay);
      await audit("step.retry_scheduled", `${context.step} attempt ${attempt} in ${delay} ms after ${outcome.kind}: ${outcome.message}`);
    } else {
      const message =
        outcome.kind === "permanent"
          ? outcome.message
          : `${outcome.message} (gave up after ${attemptsThisRun} attempts)`;
      steps = setStep(steps, context.step, { status: "failed", finishedAt: now, lastError: error, ...idle });
      await audit("step.failed", `${context.step}: ${message}`);
      Object.assign(
        patch,
        await failJob(ctx, config, job, { step: context.step, class: outcome.kind, message }, actor, config.CLEANUP_DELAY_MS),
      );
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

/**
 * The job fails for good: the instance is failed, the next queued job is admitted, and the
 * partial resources are scheduled for cleanup after `cleanupDelayMs` (unless retried first).
 * Returns the job fields to patch.
 */
async function failJob(
  ctx: MutationCtx,
  config: Config,
  job: Job,
  error: JobError,
  actor: string,
  cleanupDelayMs: number,
): Promise<Partial<Job>> {
  const now = Date.now();
  await ctx.db.patch("instances", job.instanceId, { status: "failed" });
  await appendAudit(ctx, { actor, action: "job.failed", jobId: job._id, instanceId: job.instanceId, detail: `${error.step} (${error.class}): ${error.message}` });
  await ctx.scheduler.runAfter(cleanupDelayMs, internal.cleanup.startCompensation, { jobId: job._id, retryCount: job.retryCount });
  // Only a job leaving `running` frees a slot (a queued or never-started job held none).
  if (job.status === "running") await admitNextJob(ctx, config);
  log("warn", "job.failed", { correlationId: job.correlationId, jobId: job._id, step: error.step, class: error.class });
  return { status: "failed", finishedAt: now, error, compensationStatus: "scheduled", compensateAt: now + cleanupDelayMs };
}

export type CancelResult =
  | { kind: "cancelled"; jobId: Id<"provisioningJobs"> }
  | { kind: "refused"; code: "NOT_FOUND" | "JOB_NOT_IN_PROGRESS"; message: string };

/**
 * Stops a job between steps: nothing new starts, the job fails with class `cancelled`, and its
 * partial resources are removed at once. A step still running finishes; if it made something,
 * its result schedules one more cleanup.
 */
export async function cancelJob(ctx: MutationCtx, config: Config, rawJobId: string, actor: string): Promise<CancelResult> {
  const jobId = ctx.db.normalizeId("provisioningJobs", rawJobId);
  const job = jobId ? await ctx.db.get("provisioningJobs", jobId) : null;
  if (!jobId || !job) {
    await appendAudit(ctx, { actor, action: "job.cancel_refused", detail: `no job ${rawJobId.slice(0, 64)}` });
    return { kind: "refused", code: "NOT_FOUND", message: `no provisioning job ${rawJobId}` };
  }
  if (job.status !== "running" && job.status !== "queued") {
    await appendAudit(ctx, { actor, action: "job.cancel_refused", jobId, instanceId: job.instanceId, detail: `job is ${job.status}` });
    return { kind: "refused", code: "JOB_NOT_IN_PROGRESS", message: `job ${jobId} is ${job.status}; only a job in progress can be cancelled` };
  }
  const inFlight = job.steps.find((s) => s.status === "running" || s.status === "retrying" || s.status === "waiting");
  const step = inFlight?.name ?? job.steps.find((s) => s.status !== "succeeded")?.name ?? "activate";
  const now = Date.now();
  // Steps waiting for a retry will find the job no longer running and record themselves failed.
  const fields = await failJob(ctx, config, job, { step, class: "cancelled", message: `cancelled by ${actor}` }, actor, 0);
  await ctx.db.patch("provisioningJobs", jobId, { ...fields, updatedAt: now });
  return { kind: "cancelled", jobId };
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
  | { kind: "refused"; code: "NOT_FOUND" | "JOB_NOT_FAILED" | "COMPENSATION_IN_PROGRESS"; message: string };

export async function retryFailedJob(
  ctx: MutationCtx,
  config: Config,
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
  if (job.compensationStatus === "running") {
    await appendAudit(ctx, { actor, action: "job.retry_refused", jobId, instanceId: job.instanceId, detail: "compensation in progress" });
    return { kind: "refused", code: "COMPENSATION_IN_PROGRESS", message: `job ${jobId} is being cleaned up; retry once that finishes` };
  }
  const now = Date.now();
  // After compensation nothing remains, so every step runs again (same deterministic names).
  const compensated = job.compensationStatus === "done";
  const reset = (s: StepState): StepState => ({
    name: s.name,
    status: "pending",
    attempts: s.attempts,
    attemptsBeforeRetry: s.attempts,
    startedAt: s.startedAt,
  });
  let steps = job.steps.map((s): StepState => (s.status === "failed" || compensated ? reset(s) : s));
  const retryCount = job.retryCount + 1;
  await appendAudit(ctx, { actor, action: "job.retried", jobId, instanceId: job.instanceId, detail: `retry ${retryCount}` });
  await ctx.db.patch("instances", job.instanceId, { status: "provisioning" });
  // The scheduled cleanup sees the new retryCount and does nothing.
  steps = await dispatchReady(ctx, config, { ...job, status: "running", retryCount }, steps, now);
  await ctx.db.patch("provisioningJobs", jobId, {
    status: "running",
    steps,
    retryCount,
    retryPolicy: retryPolicy(config),
    error: undefined,
    finishedAt: undefined,
    compensationStatus: undefined,
    compensateAt: undefined,
    currentStep: completedCount(steps),
    updatedAt: now,
  });
  log("info", "job.retried", { correlationId: job.correlationId, jobId, retryCount, actor });
  return { kind: "retried", jobId, retryCount };
}
