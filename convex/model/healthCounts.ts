// The fleet's health counts per plan and status, kept by @convex-dev/aggregate so the dashboard
// reads O(plans) counts instead of scanning instances. One namespace per plan (a plan's writes
// never contend with another's); the key is the dashboard status, the id the instance.
import { DirectAggregate } from "@convex-dev/aggregate";
import { components } from "../_generated/api";
import type { Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import type { InstanceHealthStatus } from "../lib/validators";

export const DASHBOARD_STATUSES = ["active", "degraded", "down", "unchecked"] as const;
export type DashboardStatus = (typeof DASHBOARD_STATUSES)[number];
export type StatusCounts = Record<DashboardStatus, number>;

const counts = new DirectAggregate<{ Key: [DashboardStatus]; Id: string; Namespace: string }>(components.healthCounts);

export const dashboardStatus = (status: InstanceHealthStatus | undefined): DashboardStatus => status ?? "unchecked";

/** Records a newly monitored instance (idempotent). */
export async function countJoined(ctx: MutationCtx, instanceId: Id<"instances">, plan: string, status: DashboardStatus) {
  await counts.insertIfDoesNotExist(ctx, { namespace: plan, key: [status], id: instanceId });
  const known = await ctx.db.query("healthPlans").withIndex("by_plan", (q) => q.eq("plan", plan)).unique();
  if (!known) await ctx.db.insert("healthPlans", { plan });
}

/** Moves an instance to another status and/or plan. */
export async function countMoved(
  ctx: MutationCtx,
  instanceId: Id<"instances">,
  from: { plan: string; status: DashboardStatus },
  to: { plan: string; status: DashboardStatus },
) {
  if (from.plan === to.plan && from.status === to.status) return;
  await counts.replaceOrInsert(
    ctx,
    { namespace: from.plan, key: [from.status], id: instanceId },
    { namespace: to.plan, key: [to.status] },
  );
  if (from.plan !== to.plan) {
    const known = await ctx.db.query("healthPlans").withIndex("by_plan", (q) => q.eq("plan", to.plan)).unique();
    if (!known) await ctx.db.insert("healthPlans", { plan: to.plan });
  }
}

/** Forgets an instance that is no longer monitored (idempotent). */
export async function countLeft(ctx: MutationCtx, instanceId: Id<"instances">, plan: string, status: DashboardStatus) {
  await counts.deleteIfExists(ctx, { namespace: plan, key: [status], id: instanceId });
}

const zero = (): StatusCounts => ({ active: 0, degraded: 0, down: 0, unchecked: 0 });

/** Counts by status for the fleet and for each plan. */
export async function readCounts(ctx: QueryCtx): Promise<{ counts: StatusCounts; byPlan: Record<string, StatusCounts> }> {
  const plans = (await ctx.db.query("healthPlans").take(1000)).map((row) => row.plan);
  const totals = zero();
  const byPlan: Record<string, StatusCounts> = {};
  const queries = plans.flatMap((plan) =>
    DASHBOARD_STATUSES.map((status) => ({ namespace: plan, bounds: { prefix: [status] as [DashboardStatus] } })),
  );
  const values = queries.length > 0 ? await counts.countBatch(ctx, queries) : [];
  plans.forEach((plan, p) => {
    const row = zero();
    DASHBOARD_STATUSES.forEach((status, s) => {
      row[status] = values[p * DASHBOARD_STATUSES.length + s];
      totals[status] += row[status];
    });
    byPlan[plan] = row;
  });
  return { counts: totals, byPlan };
}
