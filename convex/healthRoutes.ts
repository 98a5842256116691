// Admin route for the fleet's health dashboard: GET /admin/health serves what
// monitoring.getInstancesHealthStatus returns, with the same filters as query parameters.
// Bearer token only, every call audited, JSON both ways.
import type { HttpRouter } from "convex/server";
import { internal } from "./_generated/api";
import { isBrainError } from "./lib/errors";
import { log } from "./lib/log";
import { json, jsonError } from "./lib/http";
import { adminRoute } from "./security";

const ADMIN_ACTOR = "admin-api";
const STATUSES = ["active", "degraded", "down", "unchecked"] as const;
type Status = (typeof STATUSES)[number];
const PLAN = /^[a-z0-9_-]{1,40}$/;

type Filters = { status?: Status; plan?: string; createdFrom?: number; createdTo?: number; cursor: string | null; numItems: number };

/** The query parameters as filters, or the first problem with them. */
export function parseHealthFilters(params: URLSearchParams): Filters | { error: string } {
  const status = params.get("status");
  if (status !== null && !(STATUSES as readonly string[]).includes(status)) {
    return { error: `status must be one of ${STATUSES.join(", ")}` };
  }
  const plan = params.get("plan");
  if (plan !== null && !PLAN.test(plan)) return { error: "plan must be a plan name (lower-case letters, digits, _ or -)" };
  const time = (name: string): number | undefined | { error: string } => {
    const raw = params.get(name);
    if (raw === null) return undefined;
    const value = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
    return Number.isFinite(value) ? value : { error: `${name} must be epoch milliseconds or an ISO-8601 time` };
  };
  const createdFrom = time("createdFrom");
  const createdTo = time("createdTo");
  for (const value of [createdFrom, createdTo]) if (typeof value === "object") return value;
  if (typeof createdFrom === "number" && typeof createdTo === "number" && createdFrom > createdTo) {
    return { error: "createdFrom must not be after createdTo" };
  }
  const rawLimit = params.get("limit");
  const numItems = rawLimit === null ? 50 : Number(rawLimit);
  if (!(Number.isInteger(numItems) && numItems >= 1 && numItems <= 200)) return { error: "limit must be an integer from 1 to 200" };
  return {
    ...(status !== null ? { status: status as Status } : {}),
    ...(plan !== null ? { plan } : {}),
    ...(typeof createdFrom === "number" ? { createdFrom } : {}),
    ...(typeof createdTo === "number" ? { createdTo } : {}),
    cursor: params.get("cursor"),
    numItems,
  };
}

/** `GET /admin/health?status=&plan=&createdFrom=&createdTo=&cursor=&limit=` → the dashboard's view. */
export function registerHealthRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/health",
    method: "GET",
    handler: adminRoute("/admin/health", async (ctx, request) => {
      const filters = parseHealthFilters(new URL(request.url).searchParams);
      if ("error" in filters) return jsonError("BAD_REQUEST", filters.error);
      const { cursor, numItems, ...rest } = filters;
      let view;
      try {
        view = await ctx.runQuery(internal.monitoring.getInstancesHealthStatus, { ...rest, paginationOpts: { cursor, numItems } });
      } catch (error) {
        // A cursor from another query (or made up) is refused by paginate.
        // What a malformed cursor throws differs by runtime (offline it is a JSON parse error): with a
        // cursor given, any failure that is not Brain's own is the cursor's (found by npm run fuzz).
        if (cursor !== null && !isBrainError(error)) {
          log("warn", "http.bad_cursor", { correlationId: crypto.randomUUID(), route: "/admin/health", error: String(error).slice(0, 200) });
          return jsonError("BAD_REQUEST", "cursor is not valid for these filters");
        }
        throw error;
      }
      await ctx.runMutation(internal.audit.recordAdminCall, {
        actor: ADMIN_ACTOR,
        action: "health.listed",
        detail: `${view.instances.length} instances; coverage ${(view.coverage * 100).toFixed(1)}%`,
      });
      const { isDone, continueCursor, ...body } = view;
      return json(200, { ...body, ...(isDone ? {} : { continueCursor }) });
    }),
  });
}
