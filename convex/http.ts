// Brain's HTTP surface. Routes parse, authenticate, call one internal function and
// map the outcome to JSON; the logic lives in the modules they call.
import { httpRouter, type FunctionReturnType } from "convex/server";
import { internal } from "./_generated/api";
import { httpAction } from "./_generated/server";
import { z } from "zod";
import { hmacSha256Hex, timingSafeEqual } from "./lib/crypto";
import { missingLiveCredentials, providerMode } from "./lib/config";
import { json, jsonError, pathParam, route, wantsJson } from "./lib/http";
import { log } from "./lib/log";
import { checkInstanceHealth } from "./model/health";
import { renderStatusPage } from "./model/statusPage";
import { verifyStripeWebhook } from "./model/stripeWebhook";
import { verifySvix } from "./lib/svix";
import { adminRoute, guard, screenUnverified, sourceOf } from "./security";
import { registerSecurityRoutes } from "./securityRoutes";
import { registerOrphanRoutes } from "./adminRoutes";
import { registerReconcileRoutes } from "./reconcileRoutes";
import { registerDeliveryRoutes } from "./deliveryRoutes";
import { registerAlertRoutes } from "./alertRoutes";
import { registerHealthRoutes } from "./healthRoutes";
import { registerMetricsRoutes } from "./metricsRoutes";
import { registerJobRoutes } from "./jobRoutes";
import { registerSecretRoutes } from "./secrets";

const http = httpRouter();
const ADMIN_ACTOR = "admin-api";

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
    const source = await sourceOf(ctx);
    if (!verified.ok) {
      // Only now, after the signature check, may the address count: a failed check is suspicious
      // and limited per address; a delivery Stripe signed never is (see docs/security.md).
      if (verified.code !== "INVALID_EVENT") {
        const refused = await screenUnverified(ctx, source, "/stripe/webhook", "webhookPerAddress");
        if (refused) return refused;
      }
      return jsonError(verified.code, verified.message);
    }
    const limited = await guard(ctx, { source, route: "/stripe/webhook", limits: [{ name: "webhookGlobal" }] });
    if (limited) return limited;
    const { event } = verified;
    // Until live credentials are complete nothing is recorded: 5xx, so Stripe redelivers it later.
    const missing = missingLiveCredentials(config);
    if (missing.length > 0) return jsonError("CONFIG_INVALID", `missing environment: ${missing.join(", ")}`);
    const pagesCapExceeded =
      event.checkout && providerMode(config, "cloudflare") === "live" ? await ctx.runQuery(internal.stripe.checkPagesCap, {}) : null;
    try {
      const { duplicate } = await ctx.runMutation(internal.stripe.recordStripeEvent, {
        ...event,
        ...(pagesCapExceeded ? { pagesCapExceeded } : {}),
        // The original bytes, for the tenant the event belongs to (only types it is forwarded).
        ...(config.TENANT_EVENT_TYPES.includes(event.type) ? { body } : {}),
      });
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
    const source = await sourceOf(ctx);
    const refused = await guard(ctx, {
      source,
      route: "/status",
      checkBlock: true,
      limits: [{ name: "statusPerAddress", key: source }, ...(sessionId ? [{ name: "statusPerSession" as const, key: sessionId.slice(0, 200) }] : [])],
    });
    if (refused) return refused;
    if (!sessionId) return jsonError("BAD_REQUEST", "query parameter session_id is required");
    const view = await ctx.runQuery(internal.provisioning.getStatusBySession, { sessionId, now: Date.now() });
    if (!view) {
      // Many unknown ids from one address is enumeration: it blocks the address.
      const blocked = await guard(ctx, { source, route: "/status", suspicious: "session_enumeration" });
      return blocked ?? jsonError("NOT_FOUND", "no checkout session with that id");
    }
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
  handler: adminRoute("/instance-health", async (ctx, request, config) => {
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
    // The probe just made, and what the rounds confirmed: status, open incident, last checks.
    const record = await ctx.runQuery(internal.monitoring.getInstanceHealthRecord, { instanceId: report.instanceId });
    return json(200, { ...report, ...record });
  }),
});

http.route({
  pathPrefix: "/retry-provisioning/",
  method: "POST",
  handler: adminRoute("/retry-provisioning", async (ctx, request, config) => {
    const jobId = pathParam(request, "/retry-provisioning/");
    if (!jobId) return jsonError("INVALID_ID", "expected /retry-provisioning/<jobId>");
    const result = await ctx.runMutation(internal.provisioning.retryJob, { jobId, actor: ADMIN_ACTOR });
    if (result.kind === "refused") return jsonError(result.code, result.message);
    return json(202, { jobId: result.jobId, status: result.status, retryCount: result.retryCount });
  }),
});

http.route({
  pathPrefix: "/cancel-provisioning/",
  method: "POST",
  handler: adminRoute("/cancel-provisioning", async (ctx, request, config) => {
    const jobId = pathParam(request, "/cancel-provisioning/");
    if (!jobId) return jsonError("INVALID_ID", "expected /cancel-provisioning/<jobId>");
    const result = await ctx.runMutation(internal.provisioning.cancelJob, { jobId, actor: ADMIN_ACTOR });
    if (result.kind === "refused") return jsonError(result.code, result.message);
    return json(202, { jobId: result.jobId, status: "failed", error: { class: "cancelled" } });
  }),
});

http.route({
  pathPrefix: "/deprovision/",
  method: "POST",
  handler: adminRoute("/deprovision", async (ctx, request) => {
    const instanceId = pathParam(request, "/deprovision/");
    if (!instanceId) return jsonError("INVALID_ID", "expected /deprovision/<instanceId>");
    const result = await ctx.runMutation(internal.lifecycle.deprovisionInstance, { instanceId, actor: ADMIN_ACTOR });
    if (result.kind === "refused") return jsonError(result.code, result.message);
    return json(202, { instanceId: result.instanceId, status: "deprovisioning" });
  }),
});

http.route({
  path: "/admin/dead-letter",
  method: "GET",
  handler: adminRoute("/admin/dead-letter", async (ctx, request, config) => {
    const jobs = await ctx.runQuery(internal.provisioning.listDeadLetter, { now: Date.now() });
    await ctx.runMutation(internal.audit.recordAdminCall, { actor: ADMIN_ACTOR, action: "admin.dead_letter_listed", detail: `${jobs.length} jobs` });
    return json(200, { jobs });
  }),
});

http.route({
  path: "/admin/circuits",
  method: "GET",
  handler: adminRoute("/admin/circuits", async (ctx, request, config) => {
    const circuits = await ctx.runQuery(internal.monitoring.listCircuits, { now: Date.now() });
    await ctx.runMutation(internal.audit.recordAdminCall, { actor: ADMIN_ACTOR, action: "admin.circuits_listed" });
    return json(200, { circuits });
  }),
});

const CallbackBody = z.object({
  jobId: z.string().min(1).max(100),
  step: z.literal("deployApp"),
  status: z.enum(["succeeded", "failed"]),
  runId: z.union([z.string().min(1).max(100), z.number().int()]).transform(String),
  dispatchId: z.string().max(200).optional(),
  message: z.string().max(2000).optional(),
  timings: z.record(z.string(), z.number()).optional(),
});

/** A progress report: one of the workflow's own steps started, succeeded or failed. */
const ProgressBody = z.object({
  jobId: z.string().min(1).max(100),
  step: z.literal("deployApp"),
  status: z.literal("progress"),
  runId: z.union([z.string().min(1).max(100), z.number().int()]).transform(String),
  dispatchId: z.string().max(200).optional(),
  progress: z.object({
    name: z.string().min(1).max(100),
    state: z.enum(["started", "succeeded", "failed"]),
    ms: z.number().int().min(0).max(86_400_000).optional(),
  }),
});

// Resend's delivery events (issue #10, docs/emails.md): svix-signed; moves a sent email to
// delivered, bounced or complained. Replays and unknown emails answer 200 and change nothing.
const ResendEventBody = z.object({ type: z.string().min(1).max(100), data: z.object({ email_id: z.string().min(1).max(200) }).passthrough() });

http.route({
  path: "/resend/webhook",
  method: "POST",
  handler: route("/resend/webhook", async (ctx, request, config) => {
    // 5xx so Resend (Svix) keeps retrying until the secret is set.
    if (!config.RESEND_WEBHOOK_SECRET) return jsonError("CONFIG_INVALID", "RESEND_WEBHOOK_SECRET is not set");
    const body = await request.text();
    const verified = await verifySvix(request.headers, body, config.RESEND_WEBHOOK_SECRET);
    const source = await sourceOf(ctx);
    if (!verified.ok) {
      const refused = await screenUnverified(ctx, source, "/resend/webhook", "resendPerAddress");
      return refused ?? jsonError(verified.code, verified.message);
    }
    const limited = await guard(ctx, { source, route: "/resend/webhook", limits: [{ name: "resendGlobal" }] });
    if (limited) return limited;
    let parsed: z.infer<typeof ResendEventBody>;
    try {
      parsed = ResendEventBody.parse(JSON.parse(body));
    } catch {
      return jsonError("BAD_REQUEST", 'body must be a Resend event {"type", "data": {"email_id"}}');
    }
    const bounce = (parsed.data as { bounce?: { type?: unknown; subType?: unknown } }).bounce;
    const detail = bounce && typeof bounce.type === "string" ? `${bounce.type}${typeof bounce.subType === "string" ? `/${bounce.subType}` : ""}` : undefined;
    const result = await ctx.runMutation(internal.notifications.recordResendEvent, {
      type: parsed.type,
      emailId: parsed.data.email_id,
      ...(detail ? { detail: detail.slice(0, 100) } : {}),
    });
    log("info", "webhook.received", { correlationId: request.headers.get("svix-id") ?? "resend", source: "resend", type: parsed.type, result: result.kind });
    return json(200, { received: true, ...result });
  }),
});

/** How old a signed callback may be, as for Stripe's signatures. */
const CALLBACK_TOLERANCE_SECONDS = 300;

http.route({
  path: "/provisioning-callback",
  method: "POST",
  handler: route("/provisioning-callback", async (ctx, request, config) => {
    const secret = config.PROVISION_CALLBACK_SECRET;
    if (!secret) return jsonError("CALLBACK_NOT_CONFIGURED", "PROVISION_CALLBACK_SECRET is not set");
    const source = await sourceOf(ctx);
    // A request that fails the signature check (unsigned, forged or a stale replay) counts against its address.
    const unverified = async (code: "CALLBACK_UNSIGNED" | "CALLBACK_BAD_SIGNATURE" | "CALLBACK_STALE", message: string) =>
      (await screenUnverified(ctx, source, "/provisioning-callback", "callbackPerAddress")) ?? jsonError(code, message);
    const header = request.headers.get("x-brain-signature");
    if (!header) return unverified("CALLBACK_UNSIGNED", "X-Brain-Signature header is required");
    const parts = Object.fromEntries(header.split(",").map((part) => part.trim().split("=", 2) as [string, string]));
    const timestamp = Number(parts.t);
    if (!Number.isInteger(timestamp) || !/^[0-9a-f]{64}$/.test(parts.v1 ?? "")) {
      return unverified("CALLBACK_BAD_SIGNATURE", "X-Brain-Signature must be t=<unix seconds>,v1=<hex HMAC-SHA256>");
    }
    const body = await request.text();
    const expected = await hmacSha256Hex(secret, `${timestamp}.${body}`);
    if (!(await timingSafeEqual(expected, parts.v1))) {
      return unverified("CALLBACK_BAD_SIGNATURE", "signature does not match the body");
    }
    if (Math.abs(Date.now() / 1000 - timestamp) > CALLBACK_TOLERANCE_SECONDS) {
      return unverified("CALLBACK_STALE", `signature timestamp is more than ${CALLBACK_TOLERANCE_SECONDS} s old`);
    }
    const limitJob = (jobId: string) => guard(ctx, { source, route: "/provisioning-callback", limits: [{ name: "callbackPerJob", key: jobId }] });
    let payload: unknown;
    try {
      payload = JSON.parse(body);
    } catch {
      return jsonError("BAD_REQUEST", "body is not JSON");
    }
    const isProgress = typeof payload === "object" && payload !== null && (payload as { status?: unknown }).status === "progress";
    let result: FunctionReturnType<typeof internal.provisioning.recordDeployCallback>;
    let report: { jobId: string; step: string; status: string };
    if (isProgress) {
      const parsed = ProgressBody.safeParse(payload);
      if (!parsed.success) {
        return jsonError("BAD_REQUEST", `a progress report must be { jobId, step: "deployApp", status: "progress", runId, dispatchId, progress: { name, state: "started" | "succeeded" | "failed", ms? } }`);
      }
      report = parsed.data;
      const limited = await limitJob(report.jobId);
      if (limited) return limited;
      const { status: _progress, ...progressReport } = parsed.data;
      result = await ctx.runMutation(internal.provisioning.recordDeployProgress, { signature: parts.v1, ...progressReport });
    } else {
      const parsed = CallbackBody.safeParse(payload);
      if (!parsed.success) {
        return jsonError("BAD_REQUEST", `body must be { jobId, step: "deployApp", status: "succeeded" | "failed", runId, dispatchId, message?, timings? }`);
      }
      report = parsed.data;
      const limited = await limitJob(report.jobId);
      if (limited) return limited;
      result = await ctx.runMutation(internal.provisioning.recordDeployCallback, { signature: parts.v1, ...parsed.data });
    }
    log("info", "callback.received", { correlationId: report.jobId, status: report.status, result });
    switch (result) {
      case "recorded":
        return json(200, { recorded: true });
      case "replayed":
        return jsonError("CALLBACK_REPLAYED", "this callback was already received");
      case "unknown_job":
        return jsonError("NOT_FOUND", `no provisioning job ${report.jobId}`);
      default:
        return jsonError("STEP_NOT_WAITING", `${report.step} of job ${report.jobId} is not waiting for a report`);
    }
  }),
});

registerOrphanRoutes(http);
registerReconcileRoutes(http);
registerDeliveryRoutes(http);
registerAlertRoutes(http);
registerHealthRoutes(http);
registerMetricsRoutes(http);
registerJobRoutes(http);
registerSecretRoutes(http);
registerSecurityRoutes(http);

// Known paths asked with the wrong method answer in the JSON error shape too.
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;
const ROUTES: { path: string; prefix: boolean; method: (typeof METHODS)[number] | readonly (typeof METHODS)[number][] }[] = [
  { path: "/stripe/webhook", prefix: false, method: "POST" },
  { path: "/resend/webhook", prefix: false, method: "POST" },
  { path: "/status", prefix: false, method: "GET" },
  { path: "/instance-health/", prefix: true, method: "GET" },
  { path: "/retry-provisioning/", prefix: true, method: "POST" },
  { path: "/provisioning-callback", prefix: false, method: "POST" },
  { path: "/admin/orphans", prefix: false, method: "GET" },
  { path: "/admin/orphans/cleanup", prefix: false, method: "POST" },
  { path: "/admin/reconcile", prefix: false, method: "POST" },
  { path: "/cancel-provisioning/", prefix: true, method: "POST" },
  { path: "/deprovision/", prefix: true, method: "POST" },
  { path: "/admin/dead-letter", prefix: false, method: "GET" },
  { path: "/admin/circuits", prefix: false, method: "GET" },
  { path: "/admin/deliveries", prefix: false, method: "GET" },
  { path: "/admin/deliveries/", prefix: true, method: "POST" },
  { path: "/admin/health", prefix: false, method: "GET" },
  { path: "/admin/metrics", prefix: false, method: "GET" },
  { path: "/admin/incidents", prefix: false, method: "GET" },
  { path: "/admin/maintenance", prefix: false, method: ["GET", "POST"] },
  { path: "/admin/jobs", prefix: false, method: "GET" },
  { path: "/admin/jobs/", prefix: true, method: "GET" },
  { path: "/admin/encryption/rotate", prefix: false, method: ["GET", "POST"] },
  { path: "/admin/security-events", prefix: false, method: "GET" },
];
for (const known of ROUTES) {
  const allowed: readonly string[] = typeof known.method === "string" ? [known.method] : known.method;
  const allow = allowed.join(", ");
  for (const method of METHODS.filter((m) => !allowed.includes(m))) {
    const handler = httpAction(async () =>
      jsonError("METHOD_NOT_ALLOWED", `${known.path} accepts ${allowed.join(" or ")} only`, { allow }),
    );
    if (known.prefix) http.route({ pathPrefix: known.path, method, handler });
    else http.route({ path: known.path, method, handler });
  }
}

export default http;
