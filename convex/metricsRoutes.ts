// Admin route for the provisioning KPIs: GET /admin/metrics?from=&to= serves what
// metrics.getProvisioningMetrics returns for that range. Bearer token only, every call audited.
import type { HttpRouter } from "convex/server";
import { internal } from "./_generated/api";
import { json, jsonError } from "./lib/http";
import { rangeProblem } from "./metrics";
import { DAY_MS } from "./model/metrics";
import { adminRoute } from "./security";

const ADMIN_ACTOR = "admin-api";

/** `from` and `to` (epoch milliseconds or ISO-8601; default the last 24 hours), or the first problem with them. */
export function parseMetricsRange(params: URLSearchParams, now: number): { from: number; to: number } | { error: string } {
  const time = (name: string): number | undefined | { error: string } => {
    const raw = params.get(name);
    if (raw === null) return undefined;
    const value = /^\d+$/.test(raw) ? Number(raw) : /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : Number.NaN;
    return Number.isFinite(value) ? value : { error: `${name} must be epoch milliseconds or an ISO-8601 time` };
  };
  const to = time("to");
  if (typeof to === "object") return to;
  const from = time("from");
  if (typeof from === "object") return from;
  const end = to ?? now;
  const range = { from: from ?? end - DAY_MS, to: end };
  const problem = rangeProblem(range.from, range.to);
  return problem ? { error: problem } : range;
}

/** `GET /admin/metrics?from=&to=` → the KPIs of [from, to). */
export function registerMetricsRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/metrics",
    method: "GET",
    handler: adminRoute("/admin/metrics", async (ctx, request) => {
      const range = parseMetricsRange(new URL(request.url).searchParams, Date.now());
      if ("error" in range) return jsonError("BAD_REQUEST", range.error);
      const metrics = await ctx.runQuery(internal.metrics.getProvisioningMetrics, range);
      await ctx.runMutation(internal.audit.recordAdminCall, {
        actor: ADMIN_ACTOR,
        action: "metrics.read",
        detail: `${new Date(range.from).toISOString()} to ${new Date(range.to).toISOString()}: ${metrics.jobs.succeeded + metrics.jobs.failed} jobs finished`,
      });
      return json(200, metrics);
    }),
  });
}
