// GET /admin/security-events (issue 11, docs/security.md): the blocks suspicious activity earned,
// newest first. Bearer token only; the call is audited by adminRoute like every admin call.
import type { HttpRouter } from "convex/server";
import { internal } from "./_generated/api";
import { json, jsonError } from "./lib/http";
import { LISTED_MAX } from "./model/security";
import { adminRoute } from "./security";

export function registerSecurityRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/security-events",
    method: "GET",
    handler: adminRoute("/admin/security-events", async (ctx, request) => {
      const raw = new URL(request.url).searchParams.get("limit");
      const limit = raw === null ? 100 : Number(raw);
      if (!/^\d+$/.test(raw ?? "100") || !Number.isInteger(limit) || limit < 1 || limit > LISTED_MAX) {
        return jsonError("BAD_REQUEST", `limit must be an integer from 1 to ${LISTED_MAX}`);
      }
      const events = await ctx.runQuery(internal.security.listSecurityEvents, { limit });
      return json(200, { events });
    }),
  });
}
