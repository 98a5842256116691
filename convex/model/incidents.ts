// Incidents: an instance's time away from active, and the alerts it sends. health.ts calls these
// from the mutation that records a batch's results, in the same transaction as the status change,
// so an incident and the status it stands for are never out of step.
//
// CONTRACT (implemented by the alerts work; health.ts relies on it exactly):
// - openIncident: inserts an `open` incident (notifications: []), sets alertDueAt = since + ALERT_AFTER_MS
//   and schedules the alert for then (a cron backstop finds due ones if the schedule is lost).
//   Returns its id. Never sends anything itself.
// - updateIncident: the open incident's severity (worst seen, down > degraded) and failing checks
//   changed; sends nothing (one alert per incident).
// - resolveIncident: marks it resolved at `at` with `resolution`; when an alert went out for it and
//   the resolution is "recovered", queues one `instance.recovered` notice; clears alertDueAt/remindAt.
import type { Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import type { Config } from "../lib/config";
import type { IncidentSeverity } from "../lib/validators";

export type IncidentOpening = {
  instanceId: Id<"instances">;
  plan: string;
  severity: IncidentSeverity;
  failing: string[];
  /** When the instance started failing (the alert's `since`). */
  since: number;
  at: number;
};

export async function openIncident(ctx: MutationCtx, config: Config, opening: IncidentOpening): Promise<Id<"incidents">> {
  return await ctx.db.insert("incidents", {
    instanceId: opening.instanceId,
    plan: opening.plan,
    status: "open",
    severity: opening.severity,
    failing: opening.failing,
    since: opening.since,
    openedAt: opening.at,
    alertDueAt: opening.since + config.ALERT_AFTER_MS,
    notifications: [],
  });
}

export async function updateIncident(
  ctx: MutationCtx,
  _config: Config,
  incidentId: Id<"incidents">,
  update: { severity: IncidentSeverity; failing: string[]; at: number },
): Promise<void> {
  const incident = await ctx.db.get("incidents", incidentId);
  if (!incident || incident.status !== "open") return;
  const severity = incident.severity === "down" ? "down" : update.severity;
  await ctx.db.patch("incidents", incidentId, { severity, failing: update.failing });
}

export async function resolveIncident(
  ctx: MutationCtx,
  _config: Config,
  incidentId: Id<"incidents">,
  resolution: { at: number; resolution: string; failing?: string[] },
): Promise<void> {
  const incident = await ctx.db.get("incidents", incidentId);
  if (!incident || incident.status !== "open") return;
  await ctx.db.patch("incidents", incidentId, {
    status: "resolved",
    resolvedAt: resolution.at,
    resolution: resolution.resolution,
    alertDueAt: undefined,
    remindAt: undefined,
    ...(resolution.failing ? { failing: resolution.failing } : {}),
  });
}
