// The job engine's interpreter: load the job and the circuit rows an event may touch, ask
// decide() for the transition, patch the job once and perform the effects, all in the one
// mutation the event arrived in. Plus job creation and admission, which decide() does not own.
import { internal } from "../_generated/api";
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import { retryPolicy, stepDeadlineMs, type Config } from "../lib/config";
import { log } from "../lib/log";
import type { WorkId } from "@convex-dev/workpool";
import type { AuditChange, JobCustomer, JobKind, JobParams, StepName, StepState } from "../lib/validators";
import type { StepInput } from "./steps";
import { JOB_KINDS, STEPS, UNDOABLE } from "../registry";
import { kickForwarding, stopForwarding } from "./forwarding";
import { nextLifecycleJob } from "./lifecycleRules";
import { appendAudit } from "./audit";
import { circuitSettings, loadCircuits, saveCircuit } from "./circuits";
import { initialSteps } from "./dag";
import { decide, type Decision, type DecideContext, type Effect, type EngineEvent, type Job } from "./decide";
import { poolFor } from "./pools";
import { queueJobEmails } from "./notifications";

const SYSTEM = "system:job-engine";

/**
 * Admission takes jobs queued, and slots released, more than one segment ago. A Convex
 * mutation runs well under a second, so nothing admission reads can still be written by a
 * transaction running concurrently with it: job creation and step completion never collide
 * with it (docs/contention.md). The price is up to a segment of extra wait before a job starts.
 */
export const ADMISSION_SEGMENT_MS = 1_000;

function contextFor(config: Config, job: Job, circuits: DecideContext["circuits"], now: number): DecideContext {
  return {
    now,
    policy: retryPolicy(config),
    circuit: { ...circuitSettings(config), maxWaits: config.CIRCUIT_MAX_WAITS },
    cleanupDelayMs: config.CLEANUP_DELAY_MS,
    deadlineMs: (step: StepName) => stepDeadlineMs(config, step),
    circuits,
    random: Math.random,
  };
}

/** Providers whose circuit an event on this job may consult: those of its unfinished steps. */
const providersOf = (job: Job) => job.steps.filter((s) => s.status !== "succeeded").map((s) => STEPS[s.name].provider);

/** Decides `event` for `job` and applies the result. Stale and refused events change nothing. */
export async function applyEvent(ctx: MutationCtx, config: Config, job: Job, event: EngineEvent, actor: string = SYSTEM): Promise<Decision> {
  const now = Date.now();
  // A retry may restart every step, so it consults every provider's circuit.
  const circuits = await loadCircuits(ctx, event.kind === "retry" ? job.steps.map((s) => STEPS[s.name].provider) : providersOf(job));
  const decision = decide(job, event, contextFor(config, job, circuits, now));
  if (decision.kind === "stale") {
    log("warn", "job.stale_event", { correlationId: job.correlationId, jobId: job._id, on: event.kind, reason: decision.reason });
    return decision;
  }
  if (decision.kind === "refused") return decision;
  const after = { ...job, ...decision.patch } as Job;
  // Effects first: an enqueue or a timer hands back the id the step keeps; then one patch.
  const kept: Partial<Record<StepName, Partial<StepState>>> = {};
  const changes: AuditChange[] = [];
  for (const effect of decision.effects) {
    if (effect.kind === "audit") {
      const { kind: _kind, ...change } = effect;
      changes.push(change);
      continue;
    }
    const update = await perform(ctx, config, after, effect, actor, now);
    if (update) kept[update.step] = { ...kept[update.step], ...update.fields };
  }
  // Every applied transition is on record, even one decide() gave no audit change of its own.
  if (changes.length === 0) changes.push({ action: "job.updated", detail: `on ${event.kind}` });
  // One transition, one audit row: its first change, and the rest in order under `more`.
  const [first, ...more] = changes;
  await appendAudit(ctx, { actor, correlationId: job.correlationId, jobId: job._id, instanceId: job.instanceId, ...first, ...(more.length > 0 ? { more } : {}) });
  const steps = decision.patch.steps?.map((s) => (kept[s.name] ? { ...s, ...kept[s.name] } : s));
  await ctx.db.patch("provisioningJobs", job._id, { ...decision.patch, ...(steps ? { steps } : {}) });
  // Customer emails the transition calls for (started, ready + welcome, failed), once per job and kind.
  await queueJobEmails(ctx, config, job, after);
  log(after.status === "failed" ? "warn" : "info", "job.transition", {
    correlationId: job.correlationId,
    jobId: job._id,
    kind: job.kind,
    on: event.kind,
    ...("step" in event && typeof event.step === "string" ? { step: event.step } : {}),
    from: job.status,
    to: after.status,
    changes: changes.map((c) => c.action).join(",") || undefined,
  });
  return decision;
}

type StepUpdate = { step: StepName; fields: Partial<StepState> } | void;

async function perform(ctx: MutationCtx, config: Config, job: Job, effect: Effect, actor: string, now: number): Promise<StepUpdate> {
  const context = (step: StepName, attempt: number) => ({ jobId: job._id, step, attempt });
  switch (effect.kind) {
    case "enqueue": {
      const stepContext = context(effect.step, effect.attempt);
      // The step's input travels with its dispatch: the action needs no read of its own.
      const input = job.customer ? stepInput(job, job.customer) : undefined;
      const workId = await poolFor(config, STEPS[effect.step].provider).enqueueAction(
        ctx,
        internal.steps.runStep,
        { ...stepContext, ...(input ? { input } : {}) },
        { onComplete: internal.provisioning.onStepComplete, context: stepContext, retry: false, runAfter: effect.delayMs },
      );
      return { step: effect.step, fields: { workId } };
    }
    case "cancelWork":
      // A retry waiting in its pool for a job that stopped: the pool reports it canceled.
      await poolFor(config, STEPS[effect.step].provider).cancel(ctx, effect.workId as WorkId);
      return;

    case "wakeAt":
      await ctx.scheduler.runAfter(effect.delayMs, internal.provisioning.onCircuitWake, context(effect.step, effect.attempt));
      return;
    case "expireAt":
      // Not cancelled when the report comes: it then finds the step no longer waiting.
      await ctx.scheduler.runAfter(effect.delayMs, internal.provisioning.expireWaitingStep, context(effect.step, effect.attempt));
      return;
    case "audit": {
      const { kind: _kind, ...entry } = effect;
      await appendAudit(ctx, { actor, correlationId: job.correlationId, jobId: job._id, instanceId: job.instanceId, ...entry });
      return;
    }
    case "mergeResources":
      return mergeResources(ctx, job.instanceId, effect.resources);
    case "circuit":
      return saveCircuit(ctx, effect.provider, effect.row, now, { actor, correlationId: job.correlationId, jobId: job._id, instanceId: job.instanceId });
    case "syncInstance":
      return syncInstance(ctx, config, job, effect.outcome, now);
    case "resumeFromInstance": {
      const instance = await ctx.db.get("instances", job.instanceId);
      if (!instance) return;
      const running = JOB_KINDS[job.kind].startStatus;
      if (running) await ctx.db.patch("instances", job.instanceId, { status: running });
      // What cleanup left is what this run starts from (the same names adopt it).
      job.resources = instance.resources;
      await ctx.db.patch("provisioningJobs", job._id, { resources: instance.resources });
      return;
    }
    case "compensate":
      await ctx.scheduler.runAfter(effect.delayMs, internal.cleanup.startCompensation, { jobId: job._id, retryCount: job.retryCount });
      return;
    case "cancelCleanup": {
      const pending = await ctx.db
        .query("cleanupTasks")
        .withIndex("by_jobId_and_status", (q) => q.eq("jobId", job._id).eq("status", "pending"))
        .take(50);
      for (const task of pending) await ctx.db.patch("cleanupTasks", task._id, { status: "cancelled" });
      return;
    }
    case "releaseSlot":
      // Insert-only: no two finishing jobs touch the same document. Admission folds it in on
      // its next run (it polls while jobs wait for a slot).
      await ctx.db.insert("jobSlotReleases", { jobId: job._id, releasedAt: now });
      return;
    case "queueForAdmission":
      await kickAdmission(ctx);
      return;
  }
}

/** Admission runs a segment after the change that may let a job in. */
const kickAdmission = (ctx: MutationCtx) => ctx.scheduler.runAfter(ADMISSION_SEGMENT_MS + 1, internal.provisioning.admitQueuedJobs, {});

async function mergeResources(ctx: MutationCtx, instanceId: Id<"instances">, resources: Doc<"instances">["resources"]) {
  const instance = await ctx.db.get("instances", instanceId);
  if (!instance) return;
  await ctx.db.patch("instances", instanceId, { resources: { ...instance.resources, ...resources } });
  if (resources.workosUserId) {
    await ctx.db.patch("customers", instance.customerId, { workosUserId: resources.workosUserId });
  }
}

/**
 * The job ended: the instance takes what the job's kind settles on (JOB_KINDS) and what the
 * job made. A provision job's instance is active or failed; a lifecycle job that failed leaves
 * the instance as it is and is retried later by the lifecycle.
 */
async function syncInstance(ctx: MutationCtx, config: Config, job: Job, outcome: "succeeded" | "failed", now: number) {
  const instance = await ctx.db.get("instances", job.instanceId);
  if (!instance) return;
  if (job.kind !== "provision" && outcome === "failed") {
    // Retried later by the lifecycle, unless an operator cancelled it (they retry it by hand).
    if (job.error?.class !== "cancelled") await scheduleLifecycleReview(ctx, instance._id, lifecycleRetryDelayMs(job.retryCount));
    return;
  }
  const resources = { ...instance.resources, ...job.resources };
  switch (job.kind) {
    case "provision": {
      const status = outcome === "succeeded" ? "active" : "failed";
      const subdomain = resources.pagesSubdomain;
      await ctx.db.patch("instances", job.instanceId, {
        status,
        resources,
        ...(status === "active" ? { activatedAt: now, ...(subdomain ? { url: `https://${subdomain}` } : {}) } : {}),
      });
      if (resources.workosUserId && resources.workosUserId !== instance.resources.workosUserId) {
        await ctx.db.patch("customers", instance.customerId, { workosUserId: resources.workosUserId });
      }
      if (status === "active") await kickForwarding(ctx, instance._id);
      break;
    }
    case "deprovision": {
      // Every undo succeeded: what they deleted leaves the record; the history stays.
      const cleared = { ...resources };
      for (const undo of UNDOABLE) {
        const id = cleared[undo.recorded];
        if (id !== undefined) {
          await appendAudit(ctx, { actor: SYSTEM, correlationId: job.correlationId, action: "resource.deleted", jobId: job._id, instanceId: job.instanceId, detail: `${undo.provider} ${String(id)}` });
        }
        for (const field of undo.clears) delete cleared[field];
      }
      delete cleared.tenantWebhookSecretCiphertext;
      await ctx.db.patch("instances", job.instanceId, { status: "deleted", resources: cleared, deletedAt: now, deprovisionAt: undefined, url: undefined });
      await stopForwarding(ctx, instance._id, "the instance was deprovisioned");
      break;
    }
    case "suspend":
      await ctx.db.patch("instances", job.instanceId, { status: "suspended", suspendedAt: now });
      break;
    case "resume":
      await ctx.db.patch("instances", job.instanceId, { status: "active", suspendedAt: undefined });
      await kickForwarding(ctx, instance._id);
      break;
    case "changePlan": {
      const plan = job.params?.plan ?? instance.plan;
      const pendingPlan = instance.pendingPlan?.plan === plan ? undefined : instance.pendingPlan;
      await ctx.db.patch("instances", job.instanceId, { plan, pendingPlan });
      await appendAudit(ctx, { actor: SYSTEM, correlationId: job.correlationId, action: "instance.plan_changed", jobId: job._id, instanceId: job.instanceId, detail: `${instance.plan} -> ${plan}` });
      break;
    }
  }
  // Stripe may have asked for another change while this job ran (a cancel mid-provisioning).
  const after = (await ctx.db.get("instances", job.instanceId))!;
  if (nextLifecycleJob(after, config, now) !== null) await scheduleLifecycleReview(ctx, instance._id, 0);
}

/** Everything a step action needs, built from the job alone. */
export function stepInput(job: Job, customer: JobCustomer): StepInput {
  return {
    jobId: job._id,
    instanceId: job.instanceId,
    correlationId: job.correlationId,
    plan: customer.plan,
    email: customer.email,
    ...(customer.customerName !== undefined ? { customerName: customer.customerName } : {}),
    resources: job.resources ?? {},
    ...(job.params ? { params: job.params } : {}),
  };
}

type JobOrigin = { instanceId: Id<"instances">; correlationId: string; trigger: string; customer?: JobCustomer };

function insertJob(
  ctx: MutationCtx,
  config: Config,
  origin: JobOrigin,
  fields: Pick<Job, "status" | "steps"> & Partial<Job>,
  now: number,
  kind: JobKind = "provision",
) {
  return ctx.db.insert("provisioningJobs", {
    instanceId: origin.instanceId,
    kind,
    totalSteps: fields.steps.length,
    currentStep: 0,
    retryCount: 0,
    retryPolicy: retryPolicy(config),
    correlationId: origin.correlationId,
    trigger: origin.trigger,
    resources: {},
    ...(origin.customer ? { customer: origin.customer } : {}),
    createdAt: now,
    updatedAt: now,
    ...fields,
  });
}

/**
 * Creates a provision job, queued for admission. Creation reads nothing another checkout or
 * a step completion writes; admission (admitQueuedJobs) starts it a segment later when one
 * of MAX_ACTIVE_JOBS slots is free. Admission keeps a burst flowing through the DAG: with
 * every job started at once, each provider's FIFO queue would hold every job's first step
 * ahead of any job's later steps, and the later providers would sit idle.
 */
export async function startProvisionJob(ctx: MutationCtx, config: Config, origin: JobOrigin): Promise<Id<"provisioningJobs">> {
  const now = Date.now();
  const jobId = await insertJob(ctx, config, origin, { status: "queued", steps: initialSteps(), queuedAt: now }, now);
  await appendAudit(ctx, { actor: origin.trigger, correlationId: origin.correlationId, action: "job.created", jobId, instanceId: origin.instanceId });
  await kickAdmission(ctx);
  log("info", "job.created", { correlationId: origin.correlationId, jobId, instanceId: origin.instanceId });
  return jobId;
}

/**
 * Creates a lifecycle job (deprovision, suspend, resume, plan change) of an instance, queued for
 * admission like any job. It starts from the resources the instance holds; the instance takes the
 * kind's running status at once (a suspension is visible before its job runs). The caller has
 * checked that no other job of the instance is in progress.
 */
export async function startLifecycleJob(
  ctx: MutationCtx,
  config: Config,
  instance: Doc<"instances">,
  kind: Exclude<JobKind, "provision">,
  origin: { trigger: string; correlationId: string; params?: JobParams },
): Promise<Id<"provisioningJobs">> {
  const now = Date.now();
  const customer = await ctx.db.get("customers", instance.customerId);
  const jobCustomer: JobCustomer = {
    email: customer?.email ?? "unknown",
    plan: instance.plan,
    ...(customer?.name !== undefined ? { customerName: customer.name } : {}),
  };
  const jobId = await insertJob(
    ctx,
    config,
    { instanceId: instance._id, correlationId: origin.correlationId, trigger: origin.trigger, customer: jobCustomer },
    { status: "queued", steps: initialSteps(kind), queuedAt: now, resources: instance.resources, ...(origin.params ? { params: origin.params } : {}) },
    now,
    kind,
  );
  const running = JOB_KINDS[kind].startStatus;
  if (running && instance.status !== running) await ctx.db.patch("instances", instance._id, { status: running });
  await appendAudit(ctx, { actor: origin.trigger, correlationId: origin.correlationId, action: "job.created", jobId, instanceId: instance._id, detail: kind });
  await kickAdmission(ctx);
  log("info", "job.created", { correlationId: origin.correlationId, jobId, instanceId: instance._id, kind });
  return jobId;
}

/** After a lifecycle job failed: 1 min, doubling per retry, at most an hour. */
export function lifecycleRetryDelayMs(retryCount: number): number {
  return Math.min(60 * 60_000, 60_000 * 2 ** Math.min(retryCount, 10));
}

/** The lifecycle looks at the instance again (lifecycle.reviewInstance) after `delayMs`. */
export async function scheduleLifecycleReview(ctx: MutationCtx, instanceId: Id<"instances">, delayMs: number): Promise<void> {
  await ctx.scheduler.runAfter(delayMs, internal.lifecycle.reviewInstance, { instanceId });
}

/**
 * Creates a job that fails before it starts: a step is known to be impossible (a provider
 * quota, say). It stays retryable, so an operator can raise the limit and retry it.
 */
export async function startFailedJob(
  ctx: MutationCtx,
  config: Config,
  origin: JobOrigin & { step: StepName; message: string },
): Promise<Id<"provisioningJobs">> {
  const now = Date.now();
  const steps: StepState[] = initialSteps().map((s) =>
    s.name === origin.step ? { ...s, status: "failed", finishedAt: now, lastError: { class: "permanent", message: origin.message, at: now } } : s,
  );
  const error = { step: origin.step, class: "permanent" as const, message: origin.message };
  const jobId = await insertJob(ctx, config, origin, {
    status: "failed",
    steps,
    error,
    finishedAt: now,
    compensationStatus: "scheduled",
    compensateAt: now + config.CLEANUP_DELAY_MS,
  }, now);
  const job = (await ctx.db.get("provisioningJobs", jobId))!;
  await appendAudit(ctx, { actor: origin.trigger, correlationId: origin.correlationId, action: "job.created", jobId, instanceId: origin.instanceId });
  for (const effect of [
    { kind: "syncInstance", outcome: "failed" },
    { kind: "audit", action: "job.failed", step: origin.step, errorClass: "permanent", detail: `${origin.step} (permanent): ${origin.message}` },
    { kind: "compensate", delayMs: config.CLEANUP_DELAY_MS },
  ] as Effect[]) {
    await perform(ctx, config, job, effect, SYSTEM, now);
  }
  await queueJobEmails(ctx, config, null, job);
  return jobId;
}

/** Jobs admission folds in per run; more reschedule it. */
const ADMISSION_BATCH = 100;

/**
 * Admission: folds released slots into its own count and starts the oldest queued jobs while
 * slots are free. It reads only rows older than a segment and a count only it writes.
 */
export async function admitQueuedJobs(ctx: MutationCtx, config: Config, poll = false): Promise<{ admitted: number; running: number }> {
  const now = Date.now();
  const cutoff = now - ADMISSION_SEGMENT_MS;
  const state = await ctx.db.query("admission").first();
  let running = state?.running ?? 0;
  const releases = await ctx.db
    .query("jobSlotReleases")
    .withIndex("by_releasedAt", (q) => q.lt("releasedAt", cutoff))
    .take(ADMISSION_BATCH);
  for (const release of releases) await ctx.db.delete("jobSlotReleases", release._id);
  running = Math.max(0, running - releases.length);
  const free = Math.max(0, config.MAX_ACTIVE_JOBS - running);
  const queued =
    free === 0
      ? []
      : await ctx.db
          .query("provisioningJobs")
          .withIndex("by_status_and_queuedAt", (q) => q.eq("status", "queued").lt("queuedAt", cutoff))
          .take(Math.min(free, ADMISSION_BATCH));
  let admitted = 0;
  for (const job of queued) {
    const decision = await applyEvent(ctx, config, job, { kind: "admit" });
    if (decision.kind === "applied") admitted++;
  }
  running += admitted;
  // This run is the pending look-again, or one is still due: either way at most one is pending.
  // A poll is pending until it has had a segment to run (it may be due but not yet started).
  let pollAt = poll || (state?.pollAt ?? 0) + ADMISSION_SEGMENT_MS <= now ? undefined : state?.pollAt;
  if (releases.length === ADMISSION_BATCH || admitted === ADMISSION_BATCH) {
    // A full batch may leave more behind it.
    await ctx.scheduler.runAfter(0, internal.provisioning.admitQueuedJobs, {});
  } else if (pollAt === undefined && admitted === queued.length && (free === 0 || free === admitted)) {
    // Jobs may still wait for a slot: look again a segment on, when more releases are folded in.
    const waiting = await ctx.db
      .query("provisioningJobs")
      .withIndex("by_status_and_queuedAt", (q) => q.eq("status", "queued").lt("queuedAt", cutoff))
      .first();
    if (waiting) {
      pollAt = now + ADMISSION_SEGMENT_MS;
      await ctx.scheduler.runAfter(ADMISSION_SEGMENT_MS, internal.provisioning.admitQueuedJobs, { poll: true });
    }
  }
  const fields = { running, pollAt, updatedAt: now };
  if (state) await ctx.db.patch("admission", state._id, fields);
  else await ctx.db.insert("admission", fields);
  return { admitted, running };
}

/**
 * Whether a manual retry may start at once: a slot is free and no job queued before it is
 * waiting. An operator's call, not a hot path, so it may read the whole picture.
 */
export async function slotFreeNow(ctx: MutationCtx, config: Config): Promise<boolean> {
  const state = await ctx.db.query("admission").first();
  const released = (await ctx.db.query("jobSlotReleases").withIndex("by_releasedAt").take(config.MAX_ACTIVE_JOBS + 1)).length;
  const waiting = await ctx.db
    .query("provisioningJobs")
    .withIndex("by_status_and_queuedAt", (q) => q.eq("status", "queued"))
    .first();
  return !waiting && (state?.running ?? 0) - released < config.MAX_ACTIVE_JOBS;
}

/** Counts a job an operator started outside admission, so admission's count stays true. */
export async function takeSlot(ctx: MutationCtx): Promise<void> {
  const state = await ctx.db.query("admission").first();
  if (state) await ctx.db.patch("admission", state._id, { running: state.running + 1, updatedAt: Date.now() });
  else await ctx.db.insert("admission", { running: 1, updatedAt: Date.now() });
}

/**
 * Watchdog backstop: sets admission's count to the jobs actually running (a lost release
 * would otherwise leak a slot for good), then lets admission run.
 */
export async function resyncAdmission(ctx: MutationCtx, runningNow: number): Promise<void> {
  const state = await ctx.db.query("admission").first();
  const pending = (await ctx.db.query("jobSlotReleases").withIndex("by_releasedAt").take(1000)).length;
  // Releases not yet folded in will be subtracted again by admission.
  const running = runningNow + pending;
  if (state && state.running !== running) await ctx.db.patch("admission", state._id, { running, updatedAt: Date.now() });
  else if (!state) await ctx.db.insert("admission", { running, updatedAt: Date.now() });
  await kickAdmission(ctx);
}

export type CancelResult =
  | { kind: "cancelled"; jobId: Id<"provisioningJobs"> }
  | { kind: "refused"; code: "NOT_FOUND" | "JOB_NOT_IN_PROGRESS"; message: string };

/** Operator cancel: refusals are returned, not thrown, so their audit entries commit. */
export async function cancelJob(ctx: MutationCtx, config: Config, rawJobId: string, actor: string): Promise<CancelResult> {
  const jobId = ctx.db.normalizeId("provisioningJobs", rawJobId);
  const job = jobId ? await ctx.db.get("provisioningJobs", jobId) : null;
  if (!jobId || !job) {
    await appendAudit(ctx, { actor, action: "job.cancel_refused", detail: `no job ${rawJobId.slice(0, 64)}` });
    return { kind: "refused", code: "NOT_FOUND", message: `no provisioning job ${rawJobId}` };
  }
  const decision = await applyEvent(ctx, config, job, { kind: "cancel", by: actor }, actor);
  if (decision.kind !== "applied") {
    const message = decision.kind === "refused" ? decision.message : decision.reason;
    await appendAudit(ctx, { actor, correlationId: job.correlationId, action: "job.cancel_refused", jobId, instanceId: job.instanceId, detail: `job is ${job.status}` });
    return { kind: "refused", code: "JOB_NOT_IN_PROGRESS", message };
  }
  return { kind: "cancelled", jobId };
}

export type RetryResult =
  | { kind: "retried"; jobId: Id<"provisioningJobs">; retryCount: number; status: "running" | "queued" }
  | { kind: "refused"; code: "NOT_FOUND" | "JOB_NOT_FAILED" | "COMPENSATION_IN_PROGRESS"; message: string };

/**
 * Operator retry of a failed job: its failed steps (all of them once cleanup started) run
 * again. It starts at once when a slot is free, else it queues like any job.
 */
export async function retryFailedJob(ctx: MutationCtx, config: Config, rawJobId: string, actor: string): Promise<RetryResult> {
  const jobId = ctx.db.normalizeId("provisioningJobs", rawJobId);
  const job = jobId ? await ctx.db.get("provisioningJobs", jobId) : null;
  if (!jobId || !job) {
    await appendAudit(ctx, { actor, action: "job.retry_refused", detail: `no job ${rawJobId.slice(0, 64)}` });
    return { kind: "refused", code: "NOT_FOUND", message: `no provisioning job ${rawJobId}` };
  }
  const admit = job.status === "failed" && (await slotFreeNow(ctx, config));
  const decision = await applyEvent(ctx, config, job, { kind: "retry", by: actor, admit }, actor);
  if (decision.kind !== "applied") {
    const code = decision.kind === "refused" && decision.code === "COMPENSATION_IN_PROGRESS" ? "COMPENSATION_IN_PROGRESS" : "JOB_NOT_FAILED";
    const message = decision.kind === "refused" ? decision.message : decision.reason;
    const detail = code === "COMPENSATION_IN_PROGRESS" ? "compensation in progress" : `job is ${job.status}`;
    await appendAudit(ctx, { actor, correlationId: job.correlationId, action: "job.retry_refused", jobId, instanceId: job.instanceId, detail });
    return { kind: "refused", code, message };
  }
  if (admit) await takeSlot(ctx);
  const retryCount = job.retryCount + 1;
  log("info", "job.retried", { correlationId: job.correlationId, jobId, retryCount, actor, admitted: admit });
  return { kind: "retried", jobId, retryCount, status: admit ? "running" : "queued" };
}
