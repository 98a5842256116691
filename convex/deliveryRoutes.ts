// Admin routes for the Stripe events forwarded to tenants: list an instance's deliveries, and
// send one again. Bearer token only, every call audited, JSON both ways; bodies never leave.
import type { HttpRouter } from "convex/server";
import { internal } from "./_generated/api";
import type { ActionCtx } from "./_generated/server";
import { json, jsonError } from "./lib/http";
import { adminRoute } from "./security";

const ADMIN_ACTOR = "admin-api";
const PREFIX = "/admin/deliveries/";
const REDELIVER = "/redeliver";

const audit = (ctx: ActionCtx, action: string, detail: string) =>
  ctx.runMutation(internal.audit.recordAdminCall, { actor: ADMIN_ACTOR, action, detail: detail.slice(0, 200) });

/** `<deliveryId>` from `/admin/deliveries/<deliveryId>/redeliver`, or null for any other shape. */
function deliveryIdOf(request: Request): string | null {
  const path = new URL(request.url).pathname;
  if (!path.startsWith(PREFIX) || !path.endsWith(REDELIVER)) return null;
  let id: string;
  try {
    id = decodeURIComponent(path.slice(PREFIX.length, path.length - REDELIVER.length));
  } catch {
    return null;
  }
  return id.length > 0 && !id.includes("/") ? id : null;
}

/**
 * `GET /admin/deliveries?instanceId=<id>[&limit=<1..200>]` → 200 `{ deliveries: [...] }` (newest first);
 * `POST /admin/deliveries/<deliveryId>/redeliver` → 202 `{ deliveryId, status: "pending" }`.
 */
export function registerDeliveryRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/deliveries",
    method: "GET",
    handler: adminRoute("/admin/deliveries", async (ctx, request) => {
      const params = new URL(request.url).searchParams;
      const instanceId = params.get("instanceId");
      if (!instanceId) return jsonError("BAD_REQUEST", "query parameter instanceId is required");
      const rawLimit = params.get("limit");
      const limit = rawLimit === null ? undefined : Number(rawLimit);
      if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 200)) {
        return jsonError("BAD_REQUEST", "limit must be an integer from 1 to 200");
      }
      const deliveries = await ctx.runQuery(internal.forwarding.listDeliveries, { instanceId, limit });
      if (!deliveries) {
        await audit(ctx, "deliveries.not_found", `instance ${instanceId}`);
        return jsonError("NOT_FOUND", `no instance ${instanceId}`);
      }
      await audit(ctx, "deliveries.listed", `instance ${instanceId}: ${deliveries.length} deliveries`);
      return json(200, { deliveries });
    }),
  });

  http.route({
    pathPrefix: PREFIX,
    method: "POST",
    handler: adminRoute("/admin/deliveries/:deliveryId/redeliver", async (ctx, request) => {
      const deliveryId = deliveryIdOf(request);
      if (!deliveryId) {
        await audit(ctx, "delivery.redeliver_refused", new URL(request.url).pathname);
        return jsonError("NOT_FOUND", "expected POST /admin/deliveries/<deliveryId>/redeliver");
      }
      // The mutation audits both the redelivery and a refusal.
      const result = await ctx.runMutation(internal.forwarding.redeliver, { deliveryId, actor: ADMIN_ACTOR });
      if (result.kind === "refused") return jsonError(result.code, result.message);
      return json(202, { deliveryId: result.deliveryId, status: result.status });
    }),
  });
}
