// The offline demo's health lines: polls the embedded backend's tables (t.run, so no query has
// to exist in convex/ for it) and prints when an instance's confirmed health (healthStatus)
// changes and when an incident opens, alerts or resolves.
import type { startEmbeddedBackend } from "./embedded-backend.ts";

type EmbeddedBackend = Awaited<ReturnType<typeof startEmbeddedBackend>>;

export type IncidentView = {
  instanceId: string;
  status: string;
  severity: string;
  failing: string[];
  openedAt: number;
  alertedAt?: number;
  resolvedAt?: number;
};

export type HealthSnapshot = {
  /** instanceId → confirmed health (undefined until its first confirmed check). */
  instances: Record<string, string | undefined>;
  /** incidentId → the incident, for the open ones and those resolved since the watch began. */
  incidents: Record<string, IncidentView>;
};

export const EMPTY_HEALTH: HealthSnapshot = { instances: {}, incidents: {} };

/** The lines that tell what changed between two snapshots, in a stable order. */
export function describeHealthChanges(before: HealthSnapshot, after: HealthSnapshot): string[] {
  const lines: string[] = [];
  for (const [instanceId, status] of Object.entries(after.instances)) {
    const previous = before.instances[instanceId];
    if (status === previous || status === undefined) continue;
    lines.push(
      previous === undefined
        ? `health: instance ${instanceId} is ${status} (first confirmed check)`
        : `health: instance ${instanceId} ${previous} → ${status}`,
    );
  }
  for (const [incidentId, incident] of Object.entries(after.incidents)) {
    const previous = before.incidents[incidentId];
    const failing = incident.failing.length ? ` (failing: ${incident.failing.join(", ")})` : "";
    if (!previous) {
      lines.push(`incident ${incidentId} opened: instance ${incident.instanceId} ${incident.severity}${failing}`);
    } else if (previous.severity !== incident.severity && incident.status === "open") {
      lines.push(`incident ${incidentId}: instance ${incident.instanceId} now ${incident.severity}${failing}`);
    }
    if (incident.alertedAt !== undefined && previous?.alertedAt === undefined) {
      lines.push(`incident ${incidentId} alerted: instance ${incident.instanceId} ${incident.severity}`);
    }
    if (incident.status === "resolved" && previous?.status !== "resolved") {
      const lasted = incident.resolvedAt !== undefined ? ` after ${formatDuration(incident.resolvedAt - incident.openedAt)}` : "";
      lines.push(`incident ${incidentId} resolved${lasted}: instance ${incident.instanceId}`);
    }
  }
  return lines;
}

export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

// The demo's fleet is a handful of instances; a bound keeps a large local run from slowing the poll.
const MAX_INSTANCES = 500;

/** Reads the instances' confirmed health, the open incidents and those resolved since `since`. */
export async function readHealth(t: EmbeddedBackend, since: number): Promise<HealthSnapshot> {
  return t.run(async (ctx) => {
    const instances = await ctx.db.query("instances").take(MAX_INSTANCES);
    const open = await ctx.db
      .query("incidents")
      .withIndex("by_status_and_openedAt", (q) => q.eq("status", "open"))
      .take(MAX_INSTANCES);
    const resolved = await ctx.db
      .query("incidents")
      .withIndex("by_status_and_resolvedAt", (q) => q.eq("status", "resolved").gte("resolvedAt", since))
      .take(MAX_INSTANCES);
    return {
      instances: Object.fromEntries(instances.map((i) => [i._id, i.healthStatus])),
      incidents: Object.fromEntries(
        [...open, ...resolved].map((i): [string, IncidentView] => [
          i._id,
          {
            instanceId: i.instanceId,
            status: i.status,
            severity: i.severity,
            failing: i.failing,
            openedAt: i.openedAt,
            ...(i.alertedAt !== undefined ? { alertedAt: i.alertedAt } : {}),
            ...(i.resolvedAt !== undefined ? { resolvedAt: i.resolvedAt } : {}),
          },
        ]),
      ),
    };
  });
}

/**
 * Prints health changes every `everyMs` from a baseline read now (so the state at start is not
 * reported as a change). A failed read is reported once and the watch goes on.
 */
export async function watchHealth(t: EmbeddedBackend, say: (line: string) => void, everyMs = 1000) {
  const since = Date.now();
  let last = await readHealth(t, since).catch(() => EMPTY_HEALTH);
  let reportedFailure = false;
  let polling = false;
  const timer = setInterval(() => {
    if (polling) return;
    polling = true;
    readHealth(t, since)
      .then((next) => {
        for (const line of describeHealthChanges(last, next)) say(line);
        last = next;
      })
      .catch((error: unknown) => {
        if (!reportedFailure) say(`health: could not read the instances' health (${String(error)})`);
        reportedFailure = true;
      })
      .finally(() => (polling = false));
  }, everyMs);
  return { stop: () => clearInterval(timer) };
}
