// Compensation of failed jobs and the retry of deletions that failed. A job that fails for
// good schedules startCompensation (after CLEANUP_DELAY_MS, or at once when cancelled);
// a manual retry before then makes it a no-op (the job's retryCount moved on).
import { v } from "convex/values";
import { internal } from "./_generated/api";
import type { Doc, Id } from "./_generated/dataModel";
import { internalAction, internalMutation, internalQuery, type MutationCtx } from "./_generated/server";
import { backoffDelayMs } from "./lib/backoff";
import { loadConfig } from "./lib/config";
import { vOrphanProvider } from "./lib/validators";
import { log, cronBatch } from "./lib/log";
import { appendAudit } from "./model/audit";
import { deleteResource, fieldsClearedBy, planCleanup } from "./model/cleanup";
import { outcomeForError } from "./providers/classify";
import { providersFor } from "./providers";

const ACTOR = "system:cleanup";

/** How long a cleanup run holds its job before another may start (an action dying holds it no longer). */
export const CLEANUP_LEASE_MS = 15 * 60_000;

export const cleanupRunning = (job: Doc<"provisioningJobs">, now: number) => (job.cleanupRun?.until ?? 0) > now;

/** Starts a cleanup run of the job's pending deletions under a fresh lease. */
async function beginCleanupRun(ctx: MutationCtx, jobId: Id<"provisioningJobs">, fields: Partial<Doc<"provisioningJobs">> = {}) {
  const now = Date.now();
  const token = crypto.randomUUID();
  await ctx.db.patch("provisioningJobs", jobId, { ...fields, cleanupRun: { token, until: now + CLEANUP_LEASE_MS }, updatedAt: now });
  await ctx.scheduler.runAfter(0, internal.cleanup.runCleanup, { jobId, token });
}

export const startCompensation = internalMutation({
  args: { jobId: v.id("provisioningJobs"), retryCount: v.number() },
  returns: v.null(),
  handler: async (ctx, { jobId, retryCount }) => {
    const job = await ctx.db.get("provisioningJobs", jobId);
    if (!job || job.status !== "failed" || job.retryCount !== retryCount || job.compensationStatus !== "scheduled") {
      return null; // retried, or already under way
    }
    const pending = await planCleanup(ctx, job);
    await appendAudit(ctx, { actor: ACTOR, action: "job.compensation_started", jobId, instanceId: job.instanceId, detail: `${pending} resources` });
    await beginCleanupRun(ctx, jobId, { compensationStatus: "running" });
    return null;
  },
});

export const correlationOf = internalQuery({
  args: { jobId: v.id("provisioningJobs") },
  returns: v.union(v.string(), v.null()),
  handler: async (ctx, { jobId }) => (await ctx.db.get("provisioningJobs", jobId))?.correlationId ?? null,
});

export const listPendingTasks = internalQuery({
  args: { jobId: v.id("provisioningJobs") },
  returns: v.array(v.object({ taskId: v.id("cleanupTasks"), provider: vOrphanProvider, resourceId: v.string(), order: v.number() })),
  handler: async (ctx, { jobId }) => {
    const tasks = await ctx.db
      .query("cleanupTasks")
      .withIndex("by_jobId_and_status", (q) => q.eq("jobId", jobId).eq("status", "pending"))
      .take(20);
    return tasks
      .sort((a, b) => a.order - b.order)
      .map((t) => ({ taskId: t._id, provider: t.provider, resourceId: t.resourceId, order: t.order }));
  },
});

/** Deletes the job's pending resources newest first, recording each result, then closes the compensation. */
export const runCleanup = internalAction({
  args: { jobId: v.id("provisioningJobs"), token: v.optional(v.string()) },
  returns: v.null(),
  handler: async (ctx, { jobId, token }) => {
    const config = loadConfig();
    // The job's own correlation id (the Stripe event that started it), so its cleanup reads with it.
    const correlationId = (await ctx.runQuery(internal.cleanup.correlationOf, { jobId })) ?? `cleanup:${jobId}`;
    const providers = providersFor({ ctx, config, correlationId });
    for (const task of await ctx.runQuery(internal.cleanup.listPendingTasks, { jobId })) {
      let error: string | undefined;
      try {
        await deleteResource(providers, task.provider, task.resourceId);
      } catch (e) {
        const { outcome } = outcomeForError(e);
        error = "message" in outcome ? outcome.message : String(e);
      }
      await ctx.runMutation(internal.cleanup.recordCleanupResult, { taskId: task.taskId, error });
    }
    await ctx.runMutation(internal.cleanup.finishCompensation, { jobId, ...(token ? { token } : {}) });
    return null;
  },
});

export const recordCleanupResult = internalMutation({
  args: { taskId: v.id("cleanupTasks"), error: v.optional(v.string()) },
  returns: v.null(),
  handler: async (ctx, { taskId, error }) => {
    const task = await ctx.db.get("cleanupTasks", taskId);
    if (!task || task.status !== "pending") return null;
    const now = Date.now();
    const what = `${task.provider} ${task.resourceId}`;
    if (error !== undefined) {
      const attempts = task.attempts + 1;
      const delay = backoffDelayMs({ maxAttempts: Infinity, baseDelayMs: 60_000, maxDelayMs: 60 * 60_000, jitter: 0.2 }, attempts);
      await ctx.db.patch("cleanupTasks", taskId, { attempts, lastError: error, nextAttemptAt: now + delay });
      await appendAudit(ctx, { actor: ACTOR, action: "resource.delete_failed", jobId: task.jobId, instanceId: task.instanceId, detail: `${what}: ${error}` });
      const job = await ctx.db.get("provisioningJobs", task.jobId);
      log("warn", "cleanup.delete_failed", { correlationId: job?.correlationId ?? task.jobId, jobId: task.jobId, provider: task.provider, attempts });
      return null;
    }
    await ctx.db.patch("cleanupTasks", taskId, { status: "done", attempts: task.attempts + 1, doneAt: now, lastError: undefined });
    const instance = await ctx.db.get("instances", task.instanceId);
    if (instance) {
      const resources = { ...instance.resources };
      for (const field of fieldsClearedBy(task.provider)) delete resources[field];
      await ctx.db.patch("instances", task.instanceId, { resources });
    }
    await appendAudit(ctx, { actor: ACTOR, action: "resource.deleted", jobId: task.jobId, instanceId: task.instanceId, detail: what });
    return null;
  },
});

export const finishCompensation = internalMutation({
  args: { jobId: v.id("provisioningJobs"), token: v.optional(v.string()) },
  returns: v.null(),
  handler: async (ctx, { jobId, token }) => {
    const job = await ctx.db.get("provisioningJobs", jobId);
    if (!job || job.compensationStatus !== "running") return null;
    // Another run took over since (a late result, the cron, an operator): it closes, not this one.
    if (job.cleanupRun && job.cleanupRun.token !== token && cleanupRunning(job, Date.now())) return null;
    const pending = await ctx.db
      .query("cleanupTasks")
      .withIndex("by_jobId_and_status", (q) => q.eq("jobId", jobId).eq("status", "pending"))
      .first();
    const now = Date.now();
    if (pending) {
      // The cleanup cron retries what failed; until then the job may be retried or cleaned up now.
      await ctx.db.patch("provisioningJobs", jobId, { cleanupRun: undefined, updatedAt: now });
      return null;
    }
    await ctx.db.patch("provisioningJobs", jobId, { compensationStatus: "done", cleanupRun: undefined, compensatedAt: now, updatedAt: now });
    await appendAudit(ctx, { actor: ACTOR, action: "job.compensated", jobId, instanceId: job.instanceId });
    return null;
  },
});

/** Cron: re-runs the cleanup of every job with a deletion due for another attempt. */
export const retryPendingCleanups = internalMutation({
  args: {},
  returns: v.number(),
  handler: cronBatch("cleanup.retryPendingCleanups", async (ctx) => {
    const due = await ctx.db
      .query("cleanupTasks")
      .withIndex("by_status_and_nextAttemptAt", (q) => q.eq("status", "pending").lte("nextAttemptAt", Date.now()))
      .take(100);
    const jobIds = [...new Set(due.map((t) => t.jobId))];
    const now = Date.now();
    for (const jobId of jobIds) {
      const job = await ctx.db.get("provisioningJobs", jobId);
      // A run under way will reach these tasks itself.
      if (!job || cleanupRunning(job, now)) continue;
      await beginCleanupRun(ctx, jobId);
    }
    // A cleanup whose action died after its last deletion but before closing has nothing
    // pending: close it here.
    const running = await ctx.db
      .query("provisioningJobs")
      .withIndex("by_status_and_compensationStatus", (q) => q.eq("status", "failed").eq("compensationStatus", "running"))
      .take(100);
    for (const job of running) {
      if (jobIds.includes(job._id) || cleanupRunning(job, now)) continue;
      await ctx.scheduler.runAfter(0, internal.cleanup.finishCompensation, { jobId: job._id });
    }
    return jobIds.length;
  }),
});

/** Operator (dead letter): clean up a failed job's partial resources now instead of after the delay. */
export const compensateNow = internalMutation({
  args: { jobId: v.id("provisioningJobs"), actor: v.string() },
  returns: v.boolean(),
  handler: async (ctx, { jobId, actor }) => {
    const job = await ctx.db.get("provisioningJobs", jobId);
    if (!job || job.status !== "failed") return false;
    // A cleanup stuck on a failing deletion (between the cron's attempts) can be run again now.
    const stalled = job.compensationStatus === "running" && !cleanupRunning(job, Date.now());
    if (job.compensationStatus !== "scheduled" && !stalled) return false;
    await appendAudit(ctx, { actor, action: "job.compensation_requested", jobId, instanceId: job.instanceId });
    if (stalled) {
      await beginCleanupRun(ctx, jobId);
      return true;
    }
    await ctx.db.patch("provisioningJobs", jobId, { compensateAt: Date.now() });
    await ctx.scheduler.runAfter(0, internal.cleanup.startCompensation, { jobId, retryCount: job.retryCount });
    return true;
  },
});
