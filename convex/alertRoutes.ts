// Admin routes for incidents and maintenance windows (GET /admin/incidents, POST and GET
// /admin/maintenance). Bearer token only, every call audited, JSON both ways.
import type { HttpRouter } from "convex/server";
import { z } from "zod";
import { internal } from "./_generated/api";
import type { ActionCtx } from "./_generated/server";
import { json, jsonError } from "./lib/http";
import { INCIDENTS_LIMIT_DEFAULT, INCIDENTS_LIMIT_MAX } from "./model/incidents";
import { REASON_MAX } from "./model/alerts";
import { adminRoute } from "./security";

const ADMIN_ACTOR = "admin-api";

const audit = (ctx: ActionCtx, action: string, detail: string) =>
  ctx.runMutation(internal.audit.recordAdminCall, { actor: ADMIN_ACTOR, action, detail: detail.slice(0, 200) });

/** Epoch milliseconds, or an ISO-8601 date-time (`2030-01-01T00:00:00Z`). */
const Instant = z.union([
  z.number().finite().nonnegative(),
  z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/, "must be epoch milliseconds or an ISO-8601 date-time")
    .transform((text, ctx) => {
      const ms = Date.parse(text);
      if (Number.isNaN(ms)) {
        ctx.addIssue({ code: "custom", message: "is not a valid date" });
        return z.NEVER;
      }
      return ms;
    }),
]);

const MaintenanceBody = z.strictObject({
  instanceId: z.string().min(1).max(100).optional(),
  from: Instant,
  until: Instant,
  reason: z.string().trim().min(1, `must be 1 to ${REASON_MAX} characters`).max(REASON_MAX, `must be 1 to ${REASON_MAX} characters`),
});

const problemsOf = (error: z.ZodError) => error.issues.map((issue) => `${issue.path.join(".") || "body"} ${issue.message}`).join("; ");

/**
 * - `POST /admin/maintenance` `{ instanceId?, from, until, reason }` → 201 `{ maintenanceId, instanceId?, from, until, reason }`
 * - `GET /admin/maintenance` → 200 `{ windows: [...] }`
 * - `GET /admin/incidents?status=open|resolved&instanceId=&limit=` → 200 `{ incidents: [...] }`, newest first
 */
export function registerAlertRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/maintenance",
    method: "POST",
    handler: adminRoute("/admin/maintenance", async (ctx, request) => {
      let payload: unknown;
      try {
        payload = JSON.parse(await request.text());
      } catch {
        await audit(ctx, "maintenance.refused", "body is not JSON");
        return jsonError("BAD_REQUEST", "body is not JSON");
      }
      const parsed = MaintenanceBody.safeParse(payload);
      if (!parsed.success) {
        const message = `body must be { instanceId?, from, until, reason }: ${problemsOf(parsed.error)}`;
        await audit(ctx, "maintenance.refused", message);
        return jsonError("BAD_REQUEST", message);
      }
      // The mutation checks the times against its own clock and audits the window or the refusal.
      const result = await ctx.runMutation(internal.alerts.createMaintenanceWindow, { ...parsed.data, actor: ADMIN_ACTOR });
      if (result.kind === "refused") return jsonError(result.code, result.message);
      const { createdAt: _createdAt, ...window } = result.window;
      return json(201, window);
    }),
  });

  http.route({
    path: "/admin/maintenance",
    method: "GET",
    handler: adminRoute("/admin/maintenance", async (ctx) => {
      const windows = await ctx.runQuery(internal.alerts.listMaintenanceWindows, { now: Date.now() });
      await audit(ctx, "maintenance.listed", `${windows.length} windows`);
      return json(200, { windows });
    }),
  });

  http.route({
    path: "/admin/incidents",
    method: "GET",
    handler: adminRoute("/admin/incidents", async (ctx, request) => {
      const params = new URL(request.url).searchParams;
      const status = params.get("status");
      if (status !== null && status !== "open" && status !== "resolved") {
        await audit(ctx, "incidents.refused", "bad status");
        return jsonError("BAD_REQUEST", "status must be open or resolved");
      }
      const rawLimit = params.get("limit");
      const limit = rawLimit === null ? INCIDENTS_LIMIT_DEFAULT : Number(rawLimit);
      if (!(Number.isInteger(limit) && limit >= 1 && limit <= INCIDENTS_LIMIT_MAX)) {
        await audit(ctx, "incidents.refused", "bad limit");
        return jsonError("BAD_REQUEST", `limit must be an integer from 1 to ${INCIDENTS_LIMIT_MAX}`);
      }
      const instanceId = params.get("instanceId");
      if (instanceId === "") {
        await audit(ctx, "incidents.refused", "empty instanceId");
        return jsonError("BAD_REQUEST", "instanceId must not be empty");
      }
      const incidents = await ctx.runQuery(internal.alerts.listIncidents, {
        limit,
        ...(status !== null ? { status } : {}),
        ...(instanceId !== null ? { instanceId } : {}),
      });
      if (!incidents) {
        await audit(ctx, "incidents.not_found", `instance ${instanceId}`);
        return jsonError("NOT_FOUND", `no instance ${instanceId}`);
      }
      await audit(ctx, "incidents.listed", `${status ?? "all"}${instanceId ? ` of ${instanceId}` : ""}: ${incidents.length}`);
      return json(200, { incidents });
    }),
  });
}
