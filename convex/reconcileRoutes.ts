// POST /admin/reconcile: one reconciliation of Stripe with the instances, run before answering
// (a dry run unless the body says { "dryRun": false }). Bearer token only, every call audited.
// The comparison and its brake are in model/reconcile.ts; the run in reconciliation.ts.
import type { HttpRouter } from "convex/server";
import { internal } from "./_generated/api";
import { json, jsonError, readDryRunBody } from "./lib/http";
import { reconcile } from "./reconciliation";
import { adminRoute } from "./security";

const ADMIN_ACTOR = "admin-api";

export function registerReconcileRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/reconcile",
    method: "POST",
    handler: adminRoute("/admin/reconcile", async (ctx, request, config) => {
      const body = await readDryRunBody(request);
      if ("error" in body) {
        await ctx.runMutation(internal.audit.recordAdminCall, { actor: ADMIN_ACTOR, action: "reconcile.refused", detail: body.error });
        return jsonError("BAD_REQUEST", body.error);
      }
      await ctx.runMutation(internal.audit.recordAdminCall, {
        actor: ADMIN_ACTOR,
        action: "reconcile.requested",
        detail: body.dryRun ? "dry run" : "apply",
      });
      const { dryRun, braked, differences, applied } = await reconcile(ctx, config, { dryRun: body.dryRun, actor: ADMIN_ACTOR });
      return json(200, { dryRun, braked, differences, applied });
    }),
  });
}
