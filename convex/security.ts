// Admin authentication: a bearer token compared in constant time, with failed
// attempts rate limited so the token cannot be brute-forced. Admins are never
// throttled by someone else's failures.
import type { ActionCtx } from "./_generated/server";
import type { Config } from "./lib/config";
import { timingSafeEqual } from "./lib/crypto";
import { jsonError, route } from "./lib/http";
import { log } from "./lib/log";
import { MINUTE, rateLimiter } from "./model/rateLimiter";

/** Returns null when the request carries the admin token, else the error response to send. */
export async function requireAdmin(ctx: ActionCtx, config: Config, request: Request): Promise<Response | null> {
  if (!config.ADMIN_API_TOKEN) {
    return jsonError("ADMIN_API_NOT_CONFIGURED", "the admin API is disabled: set ADMIN_API_TOKEN to enable it");
  }
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer (.+)$/.exec(header);
  if (match && (await timingSafeEqual(match[1], config.ADMIN_API_TOKEN))) return null;

  const limit = await rateLimiter.limit(ctx, "adminAuthFailures");
  log("warn", "admin.unauthorized", { correlationId: crypto.randomUUID(), path: new URL(request.url).pathname });
  if (!limit.ok) {
    const seconds = Math.ceil((limit.retryAfter ?? MINUTE) / 1000);
    return jsonError("RATE_LIMITED", "too many failed admin authentications; try again later", {
      "retry-after": String(seconds),
    });
  }
  return jsonError("UNAUTHORIZED", "admin bearer token required: Authorization: Bearer <ADMIN_API_TOKEN>", {
    "www-authenticate": 'Bearer realm="brain-admin"',
  });
}

/** An HTTP route for admins only: the bearer token is checked before `handler` runs. */
export function adminRoute(name: string, handler: (ctx: ActionCtx, request: Request, config: Config) => Promise<Response>) {
  return route(name, async (ctx, request, config) => (await requireAdmin(ctx, config, request)) ?? handler(ctx, request, config));
}
