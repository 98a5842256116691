// The public routes' defences (issue 11, docs/security.md): rate limits, suspicious-activity
// blocks and the admin tokens. Routes verify what they can first (a signature, an admin token)
// and only then screen the request: a verified request is never refused for its address.
//
// Admin authentication: named bearer tokens (ADMIN_API_TOKENS, or ADMIN_API_TOKEN as `default`)
// compared in constant time against every one; failures are limited and counted per source
// address, so one address cannot lock out another; every call is audited with the token's name.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalMutation, internalQuery, type ActionCtx } from "./_generated/server";
import { adminTokens, loadConfig, type Config } from "./lib/config";
import { timingSafeEqual } from "./lib/crypto";
import { jsonError, route } from "./lib/http";
import { log } from "./lib/log";
import { vSecurityEventView, type SecurityEventKind } from "./lib/validators";
import { UNKNOWN_SOURCE, listEvents, screen, vScreenArgs, vScreenResult, type LimitName, type ScreenResult } from "./model/security";

/** One screening of a request (block, suspicion, rate limits) in one transaction. */
export const screenRequest = internalMutation({
  args: vScreenArgs,
  returns: vScreenResult,
  handler: async (ctx, args) => screen(ctx, loadConfig(), args),
});

/** Security events (blocks), newest first: GET /admin/security-events and the dashboard. */
export const listSecurityEvents = internalQuery({
  args: { limit: v.optional(v.number()), since: v.optional(v.number()) },
  returns: v.array(vSecurityEventView),
  handler: async (ctx, { limit, since }) => listEvents(ctx, limit ?? 100, since),
});

/** The request's source address as Convex reports it (never a header the client sets). */
export async function sourceOf(ctx: ActionCtx): Promise<string> {
  const { ip } = await ctx.meta.getRequestMetadata();
  return ip ? ip.slice(0, 100) : UNKNOWN_SOURCE;
}

const seconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)));

/** The answer to a refused screening: 403 BLOCKED or 429 RATE_LIMITED, each with Retry-After. */
export function refusal(result: Exclude<ScreenResult, { kind: "ok" }>): Response {
  if (result.kind === "blocked") {
    return jsonError("BLOCKED", `this source is blocked for suspicious activity until ${new Date(result.until).toISOString()}`, {
      "retry-after": seconds(result.retryAfterMs),
    });
  }
  return jsonError("RATE_LIMITED", "too many requests; try again later", { "retry-after": seconds(result.retryAfterMs) });
}

/** Screens a request; null when it may go on, else the refusal to answer with. */
export async function guard(
  ctx: ActionCtx,
  args: { source: string; route: string; checkBlock?: boolean; suspicious?: SecurityEventKind; limits?: { name: LimitName; key?: string }[] },
): Promise<Response | null> {
  const result = await ctx.runMutation(internal.security.screenRequest, {
    source: args.source,
    route: args.route,
    checkBlock: args.checkBlock ?? false,
    ...(args.suspicious ? { suspicious: { kind: args.suspicious } } : {}),
    limits: args.limits ?? [],
  });
  if (result.kind === "ok") return null;
  log("warn", result.kind === "blocked" ? "security.refused" : "http.rate_limited", {
    correlationId: crypto.randomUUID(),
    route: args.route,
    source: args.source,
    ...(result.kind === "limited" ? { limit: result.limit } : {}),
    retryAfterMs: result.retryAfterMs,
  });
  return refusal(result);
}

/**
 * A request that failed its signature check (or carried none), from `source`: counted toward the
 * source's bad-signature block and its per-address limit. Returns the refusal if one applies,
 * else null (answer the route's own error).
 */
export function screenUnverified(ctx: ActionCtx, source: string, routeName: string, limit: "webhookPerAddress" | "resendPerAddress" | "callbackPerAddress") {
  return guard(ctx, { source, route: routeName, checkBlock: true, suspicious: "bad_signatures", limits: [{ name: limit, key: source }] });
}

// ---------------------------------------------------------------------------------------------
// Admin tokens.

const ADMIN_ACTOR = "admin-api";

/** The name of the token `presented` matches, compared in constant time against every token (no early exit). */
export async function matchAdminToken(tokens: { name: string; token: string }[], presented: string): Promise<string | null> {
  let matched: string | null = null;
  for (const { name, token } of tokens) {
    const same = await timingSafeEqual(presented, token);
    if (same && matched === null) matched = name;
  }
  return matched;
}

/** The token's name when the request carries a valid admin token, else the error response to send. */
export async function requireAdmin(ctx: ActionCtx, config: Config, request: Request): Promise<{ token: string } | Response> {
  const tokens = adminTokens(config);
  if (tokens.length === 0) {
    return jsonError("ADMIN_API_NOT_CONFIGURED", "the admin API is disabled: set ADMIN_API_TOKENS (or ADMIN_API_TOKEN) to enable it");
  }
  const path = new URL(request.url).pathname;
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer (.+)$/.exec(header);
  const name = await matchAdminToken(tokens, match ? match[1] : "");
  const source = await sourceOf(ctx);
  if (name !== null) {
    const limited = await guard(ctx, { source, route: path, limits: [{ name: "adminPerToken", key: name }] });
    return limited ?? { token: name };
  }

  // A failure: refused while the address is blocked, counted toward its block, limited per address.
  const refused = await guard(ctx, { source, route: path, checkBlock: true, suspicious: "admin_auth_failures", limits: [{ name: "adminFailuresPerAddress", key: source }] });
  log("warn", "admin.unauthorized", { correlationId: crypto.randomUUID(), path, method: request.method, token: null, source, refused: refused?.status ?? null });
  if (refused) return refused;
  await ctx.runMutation(internal.audit.recordAdminCall, {
    actor: ADMIN_ACTOR,
    action: "admin.unauthorized",
    detail: `${request.method} ${path.slice(0, 150)} from ${source}: 401`,
  });
  return jsonError("UNAUTHORIZED", "admin bearer token required: Authorization: Bearer <token>", {
    "www-authenticate": 'Bearer realm="brain-admin"',
  });
}

/** The admin token a request was authorized with. */
export type AdminIdentity = { token: string };

/**
 * An HTTP route for admins only: the bearer token is checked before `handler` runs. Every
 * authorized call is logged (admin.call) and audited (admin.call, with the token's name).
 */
export function adminRoute(name: string, handler: (ctx: ActionCtx, request: Request, config: Config, admin: AdminIdentity) => Promise<Response>) {
  return route(name, async (ctx, request, config) => {
    const admin = await requireAdmin(ctx, config, request);
    if (admin instanceof Response) return admin;
    const started = Date.now();
    const path = new URL(request.url).pathname;
    const finish = async (status: number | "error") => {
      log(status === "error" || status >= 500 ? "error" : status >= 400 ? "warn" : "info", "admin.call", {
        correlationId: crypto.randomUUID(),
        route: name,
        method: request.method,
        status,
        token: admin.token,
        durationMs: Date.now() - started,
      });
      await ctx.runMutation(internal.audit.recordAdminCall, {
        actor: ADMIN_ACTOR,
        action: "admin.call",
        token: admin.token,
        detail: `${request.method} ${path.slice(0, 150)}: ${status}`,
      });
    };
    let response: Response;
    try {
      response = await handler(ctx, request, config, admin);
    } catch (error) {
      await finish("error");
      throw error;
    }
    await finish(response.status);
    return response;
  });
}
