// Incidents: an instance's time away from active, and the alerts it sends. health.ts calls these
// from the mutation that records a batch's results, in the same transaction as the status change,
// so an incident and the status it stands for are never out of step.
//
// CONTRACT (health.ts relies on it exactly):
// - openIncident: inserts an `open` incident (notifications: []), sets alertDueAt = since + ALERT_AFTER_MS
//   and schedules alerts.fireAlert for then (runDueAlerts, the cron backstop, finds due ones if the
//   schedule is lost). Returns its id; an instance that already has an open incident gets that one,
//   updated. Never sends anything itself.
// - updateIncident: the open incident's severity (worst seen, down > degraded) and failing checks
//   changed; sends nothing (one alert per incident).
// - resolveIncident: marks it resolved at `at` with `resolution`; when an alert went out for it and
//   the resolution is "recovered", queues one `instance.recovered` notice to every destination;
//   clears alertDueAt/remindAt. Any other resolution (suspended, deleted) sends nothing.
import { v, type Infer } from "convex/values";
import { internal } from "../_generated/api";
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import type { Config } from "../lib/config";
import { log } from "../lib/log";
import { vIncidentSeverity, vIncidentStatus, type IncidentSeverity } from "../lib/validators";
import { queueNotice, threadOf, withNotification } from "./alerts";

export type IncidentOpening = {
  instanceId: Id<"instances">;
  /** The instance's provisioning event: the incident's log lines carry it. */
  correlationId?: string;
  plan: string;
  severity: IncidentSeverity;
  failing: string[];
  /** When the instance started failing (the alert's `since`). */
  since: number;
  at: number;
};

export const RECOVERED = "recovered";

const worst = (a: IncidentSeverity, b: IncidentSeverity): IncidentSeverity => (a === "down" || b === "down" ? "down" : "degraded");

/** The instance's open incident, if any (at most one: openIncident keeps it so). */
export const openIncidentOf = (ctx: QueryCtx, instanceId: Id<"instances">) =>
  ctx.db
    .query("incidents")
    .withIndex("by_instanceId_and_status", (q) => q.eq("instanceId", instanceId).eq("status", "open"))
    .first();

export async function openIncident(ctx: MutationCtx, config: Config, opening: IncidentOpening): Promise<Id<"incidents">> {
  const existing = await openIncidentOf(ctx, opening.instanceId);
  if (existing) {
    await updateIncident(ctx, config, existing._id, opening);
    return existing._id;
  }
  const alertDueAt = opening.since + config.ALERT_AFTER_MS;
  const incidentId = await ctx.db.insert("incidents", {
    instanceId: opening.instanceId,
    ...(opening.correlationId ? { correlationId: opening.correlationId } : {}),
    plan: opening.plan,
    status: "open",
    severity: opening.severity,
    failing: opening.failing,
    since: opening.since,
    openedAt: opening.at,
    alertDueAt,
    notifications: [],
  });
  await ctx.scheduler.runAt(alertDueAt, internal.alerts.fireAlert, { incidentId });
  log("info", "incident.opened", { correlationId: opening.correlationId ?? incidentId, incidentId, instanceId: opening.instanceId, severity: opening.severity, alertDueAt });
  return incidentId;
}

export async function updateIncident(
  ctx: MutationCtx,
  _config: Config,
  incidentId: Id<"incidents">,
  update: { severity: IncidentSeverity; failing: string[]; at: number },
): Promise<void> {
  const incident = await ctx.db.get("incidents", incidentId);
  if (!incident || incident.status !== "open") return;
  const severity = worst(incident.severity, update.severity);
  const sameFailing = incident.failing.length === update.failing.length && incident.failing.every((name, i) => name === update.failing[i]);
  if (severity === incident.severity && sameFailing) return; // an unchanged round writes nothing
  await ctx.db.patch("incidents", incidentId, { severity, failing: update.failing });
}

export async function resolveIncident(
  ctx: MutationCtx,
  config: Config,
  incidentId: Id<"incidents">,
  resolution: { at: number; resolution: string; failing?: string[] },
): Promise<void> {
  const incident = await ctx.db.get("incidents", incidentId);
  if (!incident || incident.status !== "open") return;
  const notify = incident.alertedAt !== undefined && resolution.resolution === RECOVERED;
  const failing = resolution.failing ?? incident.failing;
  await ctx.db.patch("incidents", incidentId, {
    status: "resolved",
    resolvedAt: resolution.at,
    resolution: resolution.resolution,
    alertDueAt: undefined,
    remindAt: undefined,
    failing,
    ...(notify ? { notifications: withNotification(incident.notifications, { type: "instance.recovered", at: resolution.at }) } : {}),
  });
  if (notify) await queueNotice(ctx, config, { ...incident, failing }, "instance.recovered", resolution.at);
  log("info", "incident.resolved", { correlationId: threadOf(incident), incidentId, instanceId: incident.instanceId, resolution: resolution.resolution, notified: notify });
}

// ---------------------------------------------------------------------------------------------
// Views: GET /admin/incidents, GET /instance-health.

export const vIncidentView = v.object({
  incidentId: v.id("incidents"),
  instanceId: v.id("instances"),
  status: vIncidentStatus,
  severity: vIncidentSeverity,
  openedAt: v.number(),
  alertedAt: v.optional(v.number()),
  resolvedAt: v.optional(v.number()),
  failing: v.array(v.string()),
  plan: v.string(),
  since: v.number(),
});
export type IncidentView = Infer<typeof vIncidentView>;

export const incidentView = (incident: Doc<"incidents">): IncidentView => ({
  incidentId: incident._id,
  instanceId: incident.instanceId,
  status: incident.status,
  severity: incident.severity,
  openedAt: incident.openedAt,
  ...(incident.alertedAt !== undefined ? { alertedAt: incident.alertedAt } : {}),
  ...(incident.resolvedAt !== undefined ? { resolvedAt: incident.resolvedAt } : {}),
  failing: incident.failing,
  plan: incident.plan,
  since: incident.since,
});

export const INCIDENTS_LIMIT_MAX = 200;
export const INCIDENTS_LIMIT_DEFAULT = 50;

/**
 * The newest `limit` incidents (by openedAt), of one status or both, of one instance or the fleet.
 * Null when `instanceId` names no instance. Each status is read from its own index range, then merged.
 */
export async function listIncidents(
  ctx: QueryCtx,
  filter: { status?: "open" | "resolved"; instanceId?: string; limit: number },
): Promise<IncidentView[] | null> {
  const statuses = filter.status ? [filter.status] : (["open", "resolved"] as const);
  let instanceId: Id<"instances"> | null = null;
  if (filter.instanceId !== undefined) {
    instanceId = ctx.db.normalizeId("instances", filter.instanceId);
    if (!instanceId || !(await ctx.db.get("instances", instanceId))) return null;
  }
  const rows = (
    await Promise.all(
      statuses.map((status) =>
        instanceId
          ? // An instance's incidents are inserted as they open: creation order is openedAt order.
            ctx.db
              .query("incidents")
              .withIndex("by_instanceId_and_status", (q) => q.eq("instanceId", instanceId).eq("status", status))
              .order("desc")
              .take(filter.limit)
          : ctx.db
              .query("incidents")
              .withIndex("by_status_and_openedAt", (q) => q.eq("status", status))
              .order("desc")
              .take(filter.limit),
      ),
    )
  ).flat();
  rows.sort((a, b) => b.openedAt - a.openedAt || b._creationTime - a._creationTime);
  return rows.slice(0, filter.limit).map(incidentView);
}
