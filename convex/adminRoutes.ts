// Admin routes for orphaned provider resources: scan now, and clean up (a dry run unless the
// body says { "dryRun": false }). Bearer token only, every call audited, JSON both ways.
// Resources not tagged as Brain's are never listed, so no route here can touch them.
import type { HttpRouter } from "convex/server";
import { internal } from "./_generated/api";
import type { ActionCtx } from "./_generated/server";
import { json, jsonError, readDryRunBody } from "./lib/http";
import { cleanupOrphans, scanAndRecord } from "./model/orphanScan";
import { adminRoute } from "./security";

const ADMIN_ACTOR = "admin-api";

const auditRefusal = (ctx: ActionCtx, action: string, detail: string) =>
  ctx.runMutation(internal.audit.recordAdminCall, { actor: ADMIN_ACTOR, action, detail });

export function registerOrphanRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/orphans",
    method: "GET",
    handler: adminRoute("/admin/orphans", async (ctx, request, config) => {
      return json(200, await scanAndRecord(ctx, config, ADMIN_ACTOR, true));
    }),
  });

  http.route({
    path: "/admin/orphans/cleanup",
    method: "POST",
    handler: adminRoute("/admin/orphans/cleanup", async (ctx, request, config) => {
      const body = await readDryRunBody(request);
      if ("error" in body) {
        await auditRefusal(ctx, "orphans.cleanup_refused", body.error);
        return jsonError("BAD_REQUEST", body.error);
      }
      return json(200, await cleanupOrphans(ctx, config, { dryRun: body.dryRun, actor: ADMIN_ACTOR }));
    }),
  });
}
