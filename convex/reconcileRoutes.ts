// POST /admin/reconcile: one reconciliation of Stripe with the instances, run before answering
// (a dry run unless the body says { "dryRun": false }). Bearer token only, every call audited.
// The comparison and its brake are in model/reconcile.ts; the run in reconciliation.ts.
import type { HttpRouter } from "convex/server";
import { z } from "zod";
import { internal } from "./_generated/api";
import { json, jsonError } from "./lib/http";
import { reconcile } from "./reconciliation";
import { adminRoute } from "./security";

const ADMIN_ACTOR = "admin-api";

/** Unknown keys are refused: a misspelt `dryrun: false` must not quietly become a dry run. */
const ReconcileBody = z.strictObject({ dryRun: z.boolean().optional() });

/** `{ dryRun }` from the body (empty: a dry run), or the message to answer 400 with. */
async function readReconcileBody(request: Request): Promise<{ dryRun: boolean } | { error: string }> {
  const text = await request.text();
  if (text.trim() === "") return { dryRun: true };
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return { error: "body is not JSON" };
  }
  const parsed = ReconcileBody.safeParse(payload);
  if (!parsed.success) return { error: 'body must be { "dryRun": boolean } (dryRun defaults to true)' };
  return { dryRun: parsed.data.dryRun ?? true };
}

export function registerReconcileRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/reconcile",
    method: "POST",
    handler: adminRoute("/admin/reconcile", async (ctx, request, config) => {
      const body = await readReconcileBody(request);
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
