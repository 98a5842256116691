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
  return route(name, async (ctx, request, config) => {
    const refused = await requireAdmin(ctx, config, request);
    if (refused) return refused;
    // One line per authorized admin call (refusals log admin.unauthorized): route, method, answer, time.
    const started = Date.now();
    const line = (status: number | "error") => ({
      correlationId: crypto.randomUUID(),
      route: name,
      method: request.method,
      status,
      durationMs: Date.now() - started,
    });
    try {
      const response = await handler(ctx, request, config);
      log(response.status >= 500 ? "error" : response.status >= 400 ? "warn" : "info", "admin.call", line(response.status));
      return response;
    } catch (error) {
      log("warn", "admin.call", line("error"));
      throw error;
    }
  });
}
