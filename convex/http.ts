// Brain's HTTP surface. Routes parse, authenticate, call one internal function and
// map the outcome to JSON; the logic lives in the modules they call.
import { httpRouter } from "convex/server";
import { internal } from "./_generated/api";
import { httpAction, type ActionCtx } from "./_generated/server";
import { loadConfig, type Config } from "./lib/config";
import { isBrainError } from "./lib/errors";
import { json, jsonError, pathParam, wantsJson } from "./lib/http";
import { log } from "./lib/log";
import { checkInstanceHealth } from "./model/health";
import { renderStatusPage } from "./model/statusPage";
import { verifyStripeWebhook } from "./model/stripeWebhook";
import { requireAdmin } from "./security";

const http = httpRouter();
const ADMIN_ACTOR = "admin-api";

/** Wraps a handler so configuration and unexpected errors still answer in the JSON error shape. */
function route(name: string, handler: (ctx: ActionCtx, request: Request, config: Config) => Promise<Response>) {
  return httpAction(async (ctx, request) => {
    try {
      return await handler(ctx, request, loadConfig());
    } catch (error) {
      if (isBrainError(error)) return jsonError(error.data.code, error.data.message);
      log("error", "http.unexpected", { correlationId: crypto.randomUUID(), route: name, error: String(error) });
      return jsonError("INTERNAL", "unexpected error; see the deployment's logs");
    }
  });
}

http.route({
  path: "/stripe/webhook",
  method: "POST",
  handler: route("/stripe/webhook", async (ctx, request, config) => {
    if (!config.STRIPE_WEBHOOK_SECRET) {
      // 5xx so Stripe keeps the event and redelivers once the secret is set.
      return jsonError("CONFIG_INVALID", "STRIPE_WEBHOOK_SECRET is not set");
    }
    const body = await request.text();
    const verified = await verifyStripeWebhook(body, request.headers.get("stripe-signature"), config.STRIPE_WEBHOOK_SECRET);
    if (!verified.ok) return jsonError(verified.code, verified.message);
    const { event } = verified;
    try {
      const { duplicate } = await ctx.runMutation(internal.stripe.recordStripeEvent, event);
      log("info", "webhook.received", { correlationId: event.eventId, type: event.type, duplicate });
      return json(200, { received: true, duplicate });
    } catch (error) {
      log("error", "webhook.record_failed", { correlationId: event.eventId, type: event.type, error: String(error) });
      return jsonError("EVENT_NOT_RECORDED", "the event could not be recorded; Stripe will redeliver it");
    }
  }),
});

http.route({
  path: "/status",
  method: "GET",
  handler: route("/status", async (ctx, request, config) => {
    const sessionId = new URL(request.url).searchParams.get("session_id");
    if (!sessionId) return jsonError("BAD_REQUEST", "query parameter session_id is required");
    const view = await ctx.runQuery(internal.provisioning.getStatusBySession, { sessionId });
    if (!view) return jsonError("NOT_FOUND", "no checkout session with that id");
    if (wantsJson(request)) return json(200, view);
    return new Response(renderStatusPage(view, config.SUPPORT_URL), {
      status: 200,
      headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
    });
  }),
});

http.route({
  pathPrefix: "/instance-health/",
  method: "GET",
  handler: route("/instance-health", async (ctx, request, config) => {
    const denied = await requireAdmin(ctx, config, request);
    if (denied) return denied;
    const instanceId = pathParam(request, "/instance-health/");
    if (!instanceId) return jsonError("INVALID_ID", "expected /instance-health/<instanceId>");
    const report = await checkInstanceHealth(ctx, config, instanceId, ADMIN_ACTOR);
    if (!report) {
      await ctx.runMutation(internal.audit.recordAdminCall, {
        actor: ADMIN_ACTOR,
        action: "instance.health_not_found",
        detail: instanceId.slice(0, 64),
      });
      return jsonError("NOT_FOUND", `no instance ${instanceId}`);
    }
    return json(200, report);
  }),
});

http.route({
  pathPrefix: "/retry-provisioning/",
  method: "POST",
  handler: route("/retry-provisioning", async (ctx, request, config) => {
    const denied = await requireAdmin(ctx, config, request);
    if (denied) return denied;
    const jobId = pathParam(request, "/retry-provisioning/");
    if (!jobId) return jsonError("INVALID_ID", "expected /retry-provisioning/<jobId>");
    const result = await ctx.runMutation(internal.provisioning.retryJob, { jobId, actor: ADMIN_ACTOR });
    if (result.kind === "refused") return jsonError(result.code, result.message);
    return json(202, { jobId: result.jobId, status: "running", retryCount: result.retryCount });
  }),
});

// Known paths asked with the wrong method answer in the JSON error shape too.
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;
const ROUTES: { path: string; prefix: boolean; method: (typeof METHODS)[number] }[] = [
  { path: "/stripe/webhook", prefix: false, method: "POST" },
  { path: "/status", prefix: false, method: "GET" },
  { path: "/instance-health/", prefix: true, method: "GET" },
  { path: "/retry-provisioning/", prefix: true, method: "POST" },
];
for (const known of ROUTES) {
  for (const method of METHODS.filter((m) => m !== known.method)) {
    const handler = httpAction(async () =>
      jsonError("METHOD_NOT_ALLOWED", `${known.path} accepts ${known.method} only`, { allow: known.method }),
    );
    if (known.prefix) http.route({ pathPrefix: known.path, method, handler });
    else http.route({ path: known.path, method, handler });
  }
}

export default http;
