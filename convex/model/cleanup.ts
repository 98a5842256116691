// Compensation: the saga's undo of a failed job. Each resource a step made becomes one
// cleanup task, undone newest first, through the adapters; "already gone" counts as done.
// A deletion that fails stays pending with a next-attempt time for the cleanup cron.
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import type { InstanceResources, StepName } from "../lib/validators";
import type { Providers } from "../providers/types";

export type CleanupProvider = Doc<"cleanupTasks">["provider"];

/** The resource each creating step leaves behind, and the instance field that records it. */
const UNDO: { step: StepName; provider: CleanupProvider; field: keyof InstanceResources }[] = [
  { step: "convexProject", provider: "convex", field: "convexProjectId" },
  { step: "workosOrg", provider: "workos", field: "workosOrganizationId" },
  { step: "pagesProject", provider: "cloudflare", field: "pagesProjectName" },
  { step: "stripeEndpoint", provider: "stripe", field: "stripeEndpointId" },
];

/** Fields cleared from the instance once its resources are gone. */
export const FIELDS_OF: Record<CleanupProvider, (keyof InstanceResources)[]> = {
  convex: ["convexProjectId", "convexProjectName", "convexDeploymentName", "convexDeploymentUrl", "convexDeployKeyCiphertext", "backendConfiguredAt", "deployRunId"],
  workos: ["workosOrganizationId", "workosUserId"], // the membership goes with the organization; the user is the customer's
  cloudflare: ["pagesProjectName", "pagesSubdomain", "siteConfiguredAt"],
  stripe: ["stripeEndpointId", "stripeEndpointSecretCiphertext"],
};

/** Creates the cleanup tasks for what the job's instance still holds, newest first. Returns how many are pending. */
export async function planCleanup(ctx: MutationCtx, job: Doc<"provisioningJobs">): Promise<number> {
  const instance = await ctx.db.get("instances", job.instanceId);
  if (!instance) return 0;
  const finishedAt = (step: StepName) => job.steps.find((s) => s.name === step)?.finishedAt ?? 0;
  const undo = UNDO.filter((u) => instance.resources[u.field] !== undefined).sort(
    (a, b) => finishedAt(b.step) - finishedAt(a.step),
  );
  const pending = await ctx.db
    .query("cleanupTasks")
    .withIndex("by_jobId_and_status", (q) => q.eq("jobId", job._id).eq("status", "pending"))
    .take(20);
  const now = Date.now();
  let order = 0;
  for (const u of undo) {
    const resourceId = String(instance.resources[u.field]);
    order++;
    if (pending.some((t) => t.provider === u.provider && t.resourceId === resourceId)) continue;
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

/** Deletes one resource through its adapter; deletes treat "already gone" as success. */
export async function deleteResource(providers: Providers, provider: CleanupProvider, resourceId: string): Promise<void> {
  switch (provider) {
    case "convex":
      return providers.convex.deleteProject({ projectId: resourceId });
    case "workos":
      return providers.workos.deleteOrganization({ organizationId: resourceId });
    case "cloudflare":
      return providers.cloudflare.deletePagesProject({ projectName: resourceId });
    case "stripe":
      return providers.stripe.deleteWebhookEndpoint({ endpointId: resourceId });
  }
}

export type TaskId = Id<"cleanupTasks">;
