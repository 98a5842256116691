// Instance health: checks run now through the adapters (admin API, dashboard) and
// their results, kept on the instance and in the healthChecks history.
import { v } from "convex/values";
import { internalAction, internalMutation, internalQuery } from "./_generated/server";
import { loadConfig } from "./lib/config";
import { vHealthReport, vInstanceHealthStatus, vInstanceResources, vInstanceStatus } from "./lib/validators";
import { appendAudit } from "./model/audit";
import { listCircuits as listProviderCircuits } from "./model/circuits";
import { checkInstanceHealth as runHealthCheck } from "./model/health";

/** An instance's resources by an id that may come from a URL (null when malformed or unknown). */
export const getInstanceResources = internalQuery({
  args: { instanceId: v.string() },
  returns: v.union(
    v.null(),
    v.object({ instanceId: v.id("instances"), status: vInstanceStatus, resources: vInstanceResources, healthStatus: v.optional(vInstanceHealthStatus) }),
  ),
  handler: async (ctx, args) => {
    const instanceId = ctx.db.normalizeId("instances", args.instanceId);
    const instance = instanceId ? await ctx.db.get("instances", instanceId) : null;
    return instance
      ? { instanceId: instance._id, status: instance.status, resources: instance.resources, ...(instance.healthStatus ? { healthStatus: instance.healthStatus } : {}) }
      : null;
  },
});

/**
 * Records an on-demand check in the health history. The confirmed status (healthStatus) moves
 * only with the rounds' hysteresis (health.ts), so one probe never changes it.
 */
export const recordHealthCheck = internalMutation({
  args: { report: vHealthReport, trigger: v.string() },
  returns: v.null(),
  handler: async (ctx, { report, trigger }) => {
    const instance = await ctx.db.get("instances", report.instanceId);
    if (!instance) return null;
    await ctx.db.insert("healthChecks", {
      instanceId: report.instanceId,
      at: report.checkedAt,
      overall: report.overall,
      failing: report.resources.filter((r) => !r.ok).map((r) => r.resource),
      trigger,
    });
    await appendAudit(ctx, {
      actor: trigger,
      action: "instance.health_checked",
      instanceId: report.instanceId,
      detail: report.overall,
    });
    return null;
  },
});

/** Each provider's circuit breaker: closed, open (steps wait) or half-open (next attempt probes). */
export const listCircuits = internalQuery({
  args: { now: v.number() },
  returns: v.array(
    v.object({
      provider: v.string(),
      state: v.union(v.literal("closed"), v.literal("open"), v.literal("half_open")),
      failures: v.number(),
      openedAt: v.optional(v.number()),
    }),
  ),
  handler: async (ctx, { now }) => listProviderCircuits(ctx, loadConfig(), now),
});

/** Dashboard / operator: check one instance's resources now. */
export const checkInstanceHealth = internalAction({
  args: { instanceId: v.string() },
  returns: v.union(v.null(), vHealthReport),
  handler: async (ctx, { instanceId }) => runHealthCheck(ctx, loadConfig(), instanceId, "operator:dashboard"),
});
