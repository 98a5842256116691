// Instance health: checks run now through the adapters (admin API, dashboard) and
// their results, kept on the instance and in the healthChecks history.
import { paginationOptsValidator, type PaginationOptions } from "convex/server";
import { v } from "convex/values";
import { internal } from "./_generated/api";
import type { Doc } from "./_generated/dataModel";
import { internalAction, internalMutation, internalQuery, type QueryCtx } from "./_generated/server";
import { loadConfig, type Config } from "./lib/config";
import { vHealthReport, vInstanceHealthStatus, vInstanceResources, vInstanceStatus } from "./lib/validators";
import { appendAudit } from "./model/audit";
import { listCircuits as listProviderCircuits } from "./model/circuits";
import { checkInstanceHealth as runHealthCheck } from "./model/health";
import { dashboardStatus, readCounts, type DashboardStatus, type StatusCounts } from "./model/healthCounts";
import { claimDueBatches, enrollNewInstances, startDeepSweepIfDue } from "./model/healthSchedule";
import { cronBatch } from "./lib/log";

/** An instance's resources by an id that may come from a URL (null when malformed or unknown). */
export const getInstanceResources = internalQuery({
  args: { instanceId: v.string() },
  returns: v.union(
    v.null(),
    v.object({
      instanceId: v.id("instances"),
      status: vInstanceStatus,
      resources: vInstanceResources,
      healthStatus: v.optional(vInstanceHealthStatus),
      /** The Stripe event that provisioned it: the check's log lines carry it. */
      correlationId: v.optional(v.string()),
    }),
  ),
  handler: async (ctx, args) => {
    const instanceId = ctx.db.normalizeId("instances", args.instanceId);
    const instance = instanceId ? await ctx.db.get("instances", instanceId) : null;
    if (!instance) return null;
    const job = await ctx.db
      .query("provisioningJobs")
      .withIndex("by_instanceId_and_kind", (q) => q.eq("instanceId", instance._id).eq("kind", "provision"))
      .first();
    return {
      instanceId: instance._id,
      status: instance.status,
      resources: instance.resources,
      ...(instance.healthStatus ? { healthStatus: instance.healthStatus } : {}),
      ...(job ? { correlationId: job.correlationId } : {}),
    };
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

/**
 * The health cron (every minute): enrolls newly live instances, claims every batch whose round or
 * confirmation re-check falls before the next call (each runs at its own due time, so calling
 * this more often checks nobody early), and starts the deep sweep when its turn has come. Each
 * call is bounded; when more is due it continues in a follow-up call at once.
 */
export const runHealthChecks = internalMutation({
  args: {},
  returns: v.object({ enrolledMore: v.boolean(), claimedMore: v.boolean() }),
  handler: cronBatch("monitoring.runHealthChecks", async (ctx) => {
    const config = loadConfig();
    const now = Date.now();
    const enrolledMore = await enrollNewInstances(ctx, config, now);
    const claimedMore = await claimDueBatches(ctx, config, now);
    await startDeepSweepIfDue(ctx, config, now);
    if (enrolledMore || claimedMore) await ctx.scheduler.runAfter(0, internal.monitoring.runHealthChecks, {});
    return { enrolledMore, claimedMore };
  }),
});

const vDashboardStatus = v.union(v.literal("active"), v.literal("degraded"), v.literal("down"), v.literal("unchecked"));
const vStatusCounts = v.object({ active: v.number(), degraded: v.number(), down: v.number(), unchecked: v.number() });
/** Checked within the interval, give or take the cron's minute of scheduling slack. */
const COVERAGE_SLACK_MS = 60_000;
const UNENROLLED_COUNT_CAP = 1000;

/**
 * The fleet's health dashboard (run it from the Convex dashboard; GET /admin/health serves the
 * same): counts by status and plan (kept by an aggregate, never a scan), a page of live
 * instances filtered by health status, plan and creation time, and coverage, the share of live
 * instances checked within the last interval.
 */
export const getInstancesHealthStatus = internalQuery({
  args: {
    status: v.optional(vDashboardStatus),
    plan: v.optional(v.string()),
    createdFrom: v.optional(v.number()),
    createdTo: v.optional(v.number()),
    paginationOpts: paginationOptsValidator,
  },
  returns: v.object({
    counts: vStatusCounts,
    byPlan: v.record(v.string(), vStatusCounts),
    coverage: v.number(),
    instances: v.array(
      v.object({
        instanceId: v.id("instances"),
        plan: v.string(),
        healthStatus: vDashboardStatus,
        lastHealthCheckAt: v.optional(v.number()),
        unhealthySince: v.optional(v.number()),
        url: v.optional(v.string()),
        createdAt: v.number(),
      }),
    ),
    continueCursor: v.string(),
    isDone: v.boolean(),
  }),
  handler: async (ctx, args) => {
    const config = loadConfig();
    const now = Date.now();
    const { counts, byPlan } = await readCounts(ctx);
    const page = await instancesPage(ctx, args);
    const batches = new Map<string, Doc<"healthBatches"> | null>();
    const instances = [];
    for (const instance of page.page) {
      const batchId = instance.healthBatchId;
      if (batchId && !batches.has(batchId)) batches.set(batchId, await ctx.db.get("healthBatches", batchId));
      const member = batchId ? batches.get(batchId)?.members.find((m) => m.instanceId === instance._id) : undefined;
      const lastHealthCheckAt = member?.checkedAt ?? instance.lastHealthCheckAt;
      instances.push({
        instanceId: instance._id,
        plan: instance.plan,
        healthStatus: dashboardStatus(instance.healthStatus),
        ...(lastHealthCheckAt !== undefined ? { lastHealthCheckAt } : {}),
        ...(instance.unhealthySince !== undefined ? { unhealthySince: instance.unhealthySince } : {}),
        ...(instance.url !== undefined ? { url: instance.url } : {}),
        createdAt: instance.createdAt,
      });
    }
    const coverage = await readCoverage(ctx, config, now, counts);
    return { counts, byPlan, coverage, instances, continueCursor: page.continueCursor, isDone: page.isDone };
  },
});

type DashboardFilter = { status?: DashboardStatus; plan?: string; createdFrom?: number; createdTo?: number; paginationOpts: PaginationOptions };

/** Live instances by the filters, each filter combination on its own index (no scan). */
function instancesPage(ctx: QueryCtx, { status, plan, createdFrom, createdTo, paginationOpts }: DashboardFilter) {
  const healthStatus = status === "unchecked" ? undefined : status;
  const from = createdFrom ?? 0;
  const to = createdTo ?? Number.MAX_SAFE_INTEGER;
  const instances = ctx.db.query("instances");
  const query =
    status !== undefined && plan !== undefined
      ? instances.withIndex("by_status_and_plan_and_healthStatus_and_createdAt", (q) =>
          q.eq("status", "active").eq("plan", plan).eq("healthStatus", healthStatus).gte("createdAt", from).lte("createdAt", to),
        )
      : status !== undefined
        ? instances.withIndex("by_status_and_healthStatus_and_createdAt", (q) =>
            q.eq("status", "active").eq("healthStatus", healthStatus).gte("createdAt", from).lte("createdAt", to),
          )
        : plan !== undefined
          ? instances.withIndex("by_status_and_plan_and_createdAt", (q) =>
              q.eq("status", "active").eq("plan", plan).gte("createdAt", from).lte("createdAt", to),
            )
          : instances.withIndex("by_status_and_createdAt", (q) => q.eq("status", "active").gte("createdAt", from).lte("createdAt", to));
  return query.order("desc").paginate(paginationOpts);
}

/**
 * Share of live instances checked within the last interval. Reads only what is behind: batches
 * whose oldest member check is older than the interval, and live instances not enrolled yet.
 */
export async function readCoverage(ctx: QueryCtx, config: Config, now: number, counts: StatusCounts): Promise<number> {
  const cutoff = now - config.HEALTH_CHECK_INTERVAL_MS - COVERAGE_SLACK_MS;
  const unenrolled = (
    await ctx.db
      .query("instances")
      .withIndex("by_status_and_healthBatchId", (q) => q.eq("status", "active").eq("healthBatchId", undefined))
      .take(UNENROLLED_COUNT_CAP)
  ).length;
  const behind = await ctx.db
    .query("healthBatches")
    .withIndex("by_oldestCheckAt", (q) => q.lt("oldestCheckAt", cutoff))
    .collect();
  const stale = behind.reduce((sum, batch) => sum + batch.members.filter((m) => (m.checkedAt ?? 0) < cutoff).length, 0);
  const total = counts.active + counts.degraded + counts.down + counts.unchecked + unenrolled;
  return total === 0 ? 1 : (total - stale - unenrolled) / total;
}

const HISTORY_SHOWN = 20;

/** GET /instance-health's stored half: the confirmed status, the open incident and the last checks. */
export const getInstanceHealthRecord = internalQuery({
  args: { instanceId: v.id("instances") },
  returns: v.object({
    healthStatus: vDashboardStatus,
    lastHealthCheckAt: v.optional(v.number()),
    unhealthySince: v.optional(v.number()),
    incident: v.union(
      v.null(),
      v.object({
        incidentId: v.id("incidents"),
        status: v.literal("open"),
        severity: v.union(v.literal("degraded"), v.literal("down")),
        openedAt: v.number(),
        since: v.number(),
        alertedAt: v.optional(v.number()),
        failing: v.array(v.string()),
      }),
    ),
    history: v.array(
      v.object({
        at: v.number(),
        overall: v.union(v.literal("healthy"), v.literal("degraded"), v.literal("down")),
        status: v.optional(vInstanceHealthStatus),
        failing: v.array(v.string()),
        trigger: v.string(),
      }),
    ),
  }),
  handler: async (ctx, { instanceId }) => {
    const instance = await ctx.db.get("instances", instanceId);
    const batch = instance?.healthBatchId ? await ctx.db.get("healthBatches", instance.healthBatchId) : null;
    const member = batch?.members.find((m) => m.instanceId === instanceId);
    const lastHealthCheckAt = member?.checkedAt ?? instance?.lastHealthCheckAt;
    const incident = await ctx.db
      .query("incidents")
      .withIndex("by_instanceId_and_status", (q) => q.eq("instanceId", instanceId).eq("status", "open"))
      .first();
    const history = await ctx.db
      .query("healthChecks")
      .withIndex("by_instanceId_and_at", (q) => q.eq("instanceId", instanceId))
      .order("desc")
      .take(HISTORY_SHOWN);
    return {
      healthStatus: dashboardStatus(instance?.healthStatus),
      ...(lastHealthCheckAt !== undefined ? { lastHealthCheckAt } : {}),
      ...(instance?.unhealthySince !== undefined ? { unhealthySince: instance.unhealthySince } : {}),
      incident: incident
        ? {
            incidentId: incident._id,
            status: "open" as const,
            severity: incident.severity,
            openedAt: incident.openedAt,
            since: incident.since,
            ...(incident.alertedAt !== undefined ? { alertedAt: incident.alertedAt } : {}),
            failing: incident.failing,
          }
        : null,
      history: history.map((row) => ({
        at: row.at,
        overall: row.overall,
        ...(row.status ? { status: row.status } : {}),
        failing: row.failing,
        trigger: row.trigger,
      })),
    };
  },
});
