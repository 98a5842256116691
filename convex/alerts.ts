// Incident alerts (issue #9): the one alert per incident and its reminders, the sends to every
// destination (ALERT_EMAILS by Resend, the signed ALERT_WEBHOOK_URL), the cron backstop, the
// maintenance windows and the admin reads. All internal; the logic lives in model/alerts.ts and
// model/incidents.ts. Never logs a secret, the webhook URL or an email address.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalAction, internalMutation, internalQuery, type ActionCtx } from "./_generated/server";
import { ALERT_DELIVERY_HEADER, ALERT_SIGNATURE_HEADER, alertSignatureHeader } from "./lib/alertSignature";
import { loadConfig, type Config } from "./lib/config";
import { log, cronBatch } from "./lib/log";
import { vIncidentStatus } from "./lib/validators";
import {
  alertEmail,
  claimDelivery,
  createWindow,
  fireDueAlert,
  fireDueReminder,
  listWindows,
  pruneAlertHistory as pruneHistory,
  recordAttempt,
  sweepDue,
  vAlertClaim,
  vAlertOutcome,
  vAlertRecordResult,
  vCreateWindowResult,
  vFireResult,
  vMaintenanceView,
  vPruneResult,
  vSweepResult,
  type AlertClaim,
  type AlertOutcome,
} from "./model/alerts";
import { incidentView, listIncidents as listIncidentViews, openIncidentOf, vIncidentView } from "./model/incidents";
import { providersFor } from "./providers";
import { ProviderError } from "./providers/types";

/** Scheduled for alertDueAt by openIncident (and again at a maintenance window's end); idempotent. */
export const fireAlert = internalMutation({
  args: { incidentId: v.id("incidents") },
  returns: vFireResult,
  handler: async (ctx, { incidentId }) => fireDueAlert(ctx, loadConfig(), incidentId),
});

/** Scheduled for remindAt (ALERT_REMINDER_MS > 0); idempotent. */
export const fireReminder = internalMutation({
  args: { incidentId: v.id("incidents") },
  returns: vFireResult,
  handler: async (ctx, { incidentId }) => fireDueReminder(ctx, loadConfig(), incidentId),
});

/** Cron backstop (every minute): starts due alerts, due reminders and due deliveries, each bounded. */
export const runDueAlerts = internalMutation({
  args: {},
  returns: vSweepResult,
  handler: cronBatch("alerts.runDueAlerts", async (ctx) => sweepDue(ctx, Date.now())),
});

/** The instance's open incident as GET /admin/incidents shows it, or null. */
export const openIncidentFor = internalQuery({
  args: { instanceId: v.id("instances") },
  returns: v.union(v.null(), vIncidentView),
  handler: async (ctx, { instanceId }) => {
    const incident = await openIncidentOf(ctx, instanceId);
    return incident ? incidentView(incident) : null;
  },
});

/** GET /admin/incidents: newest first; null when `instanceId` names no instance. */
export const listIncidents = internalQuery({
  args: { status: v.optional(vIncidentStatus), instanceId: v.optional(v.string()), limit: v.number() },
  returns: v.union(v.null(), v.array(vIncidentView)),
  handler: async (ctx, args) => listIncidentViews(ctx, args),
});

/** POST /admin/maintenance: audited, refusals too. */
export const createMaintenanceWindow = internalMutation({
  args: { instanceId: v.optional(v.string()), from: v.number(), until: v.number(), reason: v.string(), actor: v.string() },
  returns: vCreateWindowResult,
  handler: async (ctx, args) => createWindow(ctx, args),
});

/** GET /admin/maintenance: current, upcoming and recently ended windows. */
export const listMaintenanceWindows = internalQuery({
  args: { now: v.number() },
  returns: v.array(vMaintenanceView),
  handler: async (ctx, { now }) => listWindows(ctx, now),
});

/**
 * One bounded retention pass over alert history (HEALTH_RETENTION_MS); schedules itself again
 * while there is more. For the health retention cron.
 */
export const pruneAlertHistory = internalMutation({
  args: {},
  returns: vPruneResult,
  handler: cronBatch("alerts.pruneAlertHistory", async (ctx) => {
    const result = await pruneHistory(ctx, loadConfig(), Date.now());
    if (result.more) await ctx.scheduler.runAfter(0, internal.alerts.pruneAlertHistory, {});
    return result;
  }),
});

/** The sender's lease on one delivery. */
export const claimAlertDelivery = internalMutation({
  args: { deliveryId: v.id("alertDeliveries") },
  returns: vAlertClaim,
  handler: async (ctx, { deliveryId }) => claimDelivery(ctx, loadConfig(), deliveryId),
});

/** Records one send under its lease token; a result whose lease was taken over changes nothing. */
export const recordAlertAttempt = internalMutation({
  args: { deliveryId: v.id("alertDeliveries"), token: v.string(), outcome: vAlertOutcome },
  returns: vAlertRecordResult,
  handler: async (ctx, { deliveryId, token, outcome }) => recordAttempt(ctx, deliveryId, token, outcome),
});

/**
 * Sends one delivery once: claim (lease) → send → record. Recording a failure schedules the next
 * try; any number may be scheduled at once, only the lease holder sends.
 */
export const sendAlertDelivery = internalAction({
  args: { deliveryId: v.id("alertDeliveries") },
  returns: v.null(),
  handler: async (ctx, { deliveryId }) => {
    const config = loadConfig();
    const claim = await ctx.runMutation(internal.alerts.claimAlertDelivery, { deliveryId });
    if (claim.kind !== "claimed") return null;
    const started = Date.now();
    let outcome: AlertOutcome;
    try {
      outcome = claim.channel === "webhook" ? await postWebhook(config, claim) : await sendEmail(ctx, config, claim);
    } catch (error) {
      outcome = { kind: "error", message: describeError(error, config), ...(error instanceof ProviderError && error.status ? { status: error.status } : {}) };
    }
    const result = await ctx.runMutation(internal.alerts.recordAlertAttempt, { deliveryId, token: claim.token, outcome });
    log(result.kind === "delivered" ? "info" : "warn", "alert.sent", {
      correlationId: claim.correlationId,
      deliveryId,
      channel: claim.channel,
      type: claim.type,
      attempt: claim.attempt,
      status: outcome.kind === "answered" ? outcome.status : null,
      error: outcome.kind === "error" ? outcome.message : null,
      result: result.kind,
      durationMs: Date.now() - started,
    });
    return null;
  },
});

type Claimed = Extract<AlertClaim, { kind: "claimed" }>;

/** POSTs the stored body byte for byte, signed afresh for this attempt. */
async function postWebhook(config: Config, claim: Claimed): Promise<AlertOutcome> {
  const url = config.ALERT_WEBHOOK_URL;
  const secret = config.ALERT_WEBHOOK_SECRET;
  if (!url || !secret) return { kind: "error", message: "ALERT_WEBHOOK_URL or ALERT_WEBHOOK_SECRET is not set" };
  const signature = await alertSignatureHeader(claim.body, secret, Date.now() / 1000);
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", [ALERT_DELIVERY_HEADER]: claim.deliveryId, [ALERT_SIGNATURE_HEADER]: signature },
    body: claim.body,
    signal: AbortSignal.timeout(config.PROVIDER_TIMEOUT_MS),
  });
  // Only the status matters; read the body to release the connection.
  await response.arrayBuffer().catch(() => undefined);
  return { kind: "answered", status: response.status };
}

/** One email to the delivery's address; the delivery id is the idempotency key, so a retry never sends twice. */
async function sendEmail(ctx: ActionCtx, config: Config, claim: Claimed): Promise<AlertOutcome> {
  const { subject, text, html } = alertEmail(claim.body);
  const providers = providersFor({ ctx, config, correlationId: claim.correlationId });
  await providers.resend.sendEmail({ to: claim.destination, subject, html, text, idempotencyKey: claim.deliveryId });
  return { kind: "sent" };
}

/** Why a send failed, fit for lastError and the logs: no webhook URL, no email address. */
function describeError(error: unknown, config: Config): string {
  const base =
    error instanceof ProviderError
      ? `${error.kind}: ${error.message}`
      : error instanceof Error
        ? `${error.name}: ${error.message}${error.cause instanceof Error ? ` (${error.cause.message})` : ""}`
        : String(error);
  let message = base;
  if (config.ALERT_WEBHOOK_URL) message = message.split(config.ALERT_WEBHOOK_URL).join("<webhook>");
  return message.replace(/[^\s@<>()"',;:]+@[^\s@<>()"',;:]+/g, "<address>").slice(0, 500);
}
