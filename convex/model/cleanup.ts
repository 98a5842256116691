// Compensation: the saga's undo of a failed job. Each resource a step made becomes one
// cleanup task, undone newest first, through the adapters; "already gone" counts as done.
// A deletion that fails stays pending with a next-attempt time for the cleanup cron.
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import type { InstanceResources, StepName } from "../lib/validators";
import { UNDOABLE } from "../registry";
import type { Providers } from "../providers/types";
import { deleteOwned, listOwned } from "./orphans";

export type CleanupProvider = Doc<"cleanupTasks">["provider"];

/** Fields cleared from the instance once a provider's resource is gone (the undo beside its do). */
export function fieldsClearedBy(provider: CleanupProvider): readonly (keyof InstanceResources)[] {
  return UNDOABLE.filter((u) => u.provider === provider).flatMap((u) => u.clears);
}

/** Creates the cleanup tasks for what the job's instance still holds, newest first. Returns how many are pending. */
export async function planCleanup(ctx: MutationCtx, job: Doc<"provisioningJobs">): Promise<number> {
  const instance = await ctx.db.get("instances", job.instanceId);
  if (!instance) return 0;
  const stepOf = (step: StepName) => job.steps.find((s) => s.name === step);
  const finishedAt = (step: StepName) => stepOf(step)?.finishedAt ?? Number.MAX_SAFE_INTEGER;
  // A recorded resource is deleted by its id. A create that was attempted but never recorded
  // (its response lost, or still in flight when the job failed) may have acted anyway: it is
  // found by the instance it is tagged with and deleted too.
  const undo = UNDOABLE.filter((u) => instance.resources[u.recorded] !== undefined || (stepOf(u.step)?.attempts ?? 0) > 0).sort(
    (a, b) => finishedAt(b.step) - finishedAt(a.step),
  );
  const pending = await ctx.db
    .query("cleanupTasks")
    .withIndex("by_jobId_and_status", (q) => q.eq("jobId", job._id).eq("status", "pending"))
    .take(20);
  const done = await ctx.db
    .query("cleanupTasks")
    .withIndex("by_jobId_and_status", (q) => q.eq("jobId", job._id).eq("status", "done"))
    .take(50);
  const now = Date.now();
  let order = 0;
  const lastDone = (provider: CleanupProvider) =>
    done.filter((t) => t.provider === provider).reduce<number | undefined>((m, t) => Math.max(m ?? 0, t.doneAt ?? 0), undefined);
  for (const u of undo) {
    const recorded = instance.resources[u.recorded];
    if (recorded === undefined) {
      // An unrecorded create needs a new sweep only if an attempt ended after the last one
      // (an attempt still running reports later and triggers another round itself).
      const swept = lastDone(u.provider);
      const ended = stepOf(u.step)?.finishedAt;
      if (swept !== undefined && (ended === undefined || ended <= swept)) continue;
    }
    const resourceId = recorded !== undefined ? String(recorded) : `${BY_INSTANCE}${instance._id}`;
    order++;
    if (pending.some((t) => t.provider === u.provider && t.resourceId === resourceId)) continue;
    if (recorded !== undefined && done.some((t) => t.provider === u.provider && t.resourceId === resourceId)) continue;
    await ctx.db.insert("cleanupTasks", {
      jobId: job._id,
      instanceId: job.instanceId,
      provider: u.provider,
      resourceId,
      order,
      status: "pending",
      attempts: 0,
      nextAttemptAt: now,
    });
  }
  return (
    await ctx.db
      .query("cleanupTasks")
      .withIndex("by_jobId_and_status", (q) => q.eq("jobId", job._id).eq("status", "pending"))
      .take(20)
  ).length;
}

/** A task id for "whatever this provider holds tagged with the instance". */
export const BY_INSTANCE = "instance:";

/** Deletes one resource through its adapter ("already gone" is success), or, for a
 * `instance:<id>` task, every resource of the provider tagged with that instance. */
export async function deleteResource(providers: Providers, provider: CleanupProvider, resourceId: string): Promise<void> {
  if (!resourceId.startsWith(BY_INSTANCE)) return deleteOwned(providers, provider, resourceId);
  const instanceId = resourceId.slice(BY_INSTANCE.length);
  for (const owned of await listOwned(providers, provider)) {
    if (owned.instanceId === instanceId) await deleteOwned(providers, provider, owned.id);
  }
}

export type TaskId = Id<"cleanupTasks">;
