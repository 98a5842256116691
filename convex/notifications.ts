// Customer emails (issue #10, docs/emails.md): the send of one queued email (claim → one Resend
// call → record), the cron backstop and Resend's delivery events. All internal; the logic lives
// in model/notifications.ts, the templates in lib/emailTemplates.ts. Never logs an address.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalAction, internalMutation } from "./_generated/server";
import { loadConfig } from "./lib/config";
import { log, cronBatch } from "./lib/log";
import {
  applyResendEvent,
  claimEmail,
  enqueueSend,
  recordEmailAttempt,
  scrubAddresses,
  sweepDueEmails,
  vEmailClaim,
  vEmailOutcome,
  vEmailRecordResult,
  vResendEventResult,
  type EmailOutcome,
} from "./model/notifications";
import { providersFor } from "./providers";
import { ProviderError } from "./providers/types";

/** The sender's lease on one email (rendered at the first claim). */
export const claimNotification = internalMutation({
  args: { notificationId: v.id("notifications") },
  returns: vEmailClaim,
  handler: async (ctx, { notificationId }) => claimEmail(ctx, loadConfig(), notificationId),
});

/** Records one send under its lease; a failure schedules the next try on the Resend pool. */
export const recordNotificationAttempt = internalMutation({
  args: { notificationId: v.id("notifications"), token: v.string(), outcome: vEmailOutcome },
  returns: vEmailRecordResult,
  handler: async (ctx, { notificationId, token, outcome }) => recordEmailAttempt(ctx, loadConfig(), notificationId, token, outcome),
});

/**
 * Sends one email once: claim (lease) → Resend (sandbox or live, by PROVIDER_MODE_RESEND; the
 * live adapter waits for RATE_LIMIT_RESEND_RPS budget) → record. Runs on the Resend pool.
 */
export const sendNotification = internalAction({
  args: { notificationId: v.id("notifications") },
  returns: v.null(),
  handler: async (ctx, { notificationId }) => {
    const config = loadConfig();
    const claim = await ctx.runMutation(internal.notifications.claimNotification, { notificationId });
    if (claim.kind !== "claimed") return null;
    const started = Date.now();
    let outcome: EmailOutcome;
    try {
      const providers = providersFor({ ctx, config, correlationId: claim.correlationId, attempt: claim.attempt });
      const { id } = await providers.resend.sendEmail({
        to: claim.to,
        subject: claim.subject,
        html: claim.html,
        text: claim.text,
        idempotencyKey: claim.idempotencyKey,
      });
      outcome = { kind: "sent", providerMessageId: id };
    } catch (error) {
      outcome =
        error instanceof ProviderError
          ? { kind: "error", failure: error.kind === "permanent" || error.kind === "rate_limited" ? error.kind : "transient", message: scrubAddresses(error.message), ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}) }
          : // Unclassified: may cost a retry, never loses the email.
            { kind: "error", failure: "transient", message: scrubAddresses(error instanceof Error ? `${error.name}: ${error.message}` : String(error)) };
    }
    const result = await ctx.runMutation(internal.notifications.recordNotificationAttempt, { notificationId, token: claim.token, outcome });
    log(result.kind === "sent" ? "info" : "warn", "email.sent", {
      correlationId: claim.correlationId,
      jobId: claim.jobId,
      notificationId,
      kind: claim.emailKind,
      attempt: claim.attempt,
      error: outcome.kind === "error" ? outcome.message : null,
      result: result.kind,
      durationMs: Date.now() - started,
    });
    return null;
  },
});

/** A delayed send (a retry's backoff, the welcome's wait) comes due: onto the Resend pool. */
export const enqueueNotificationSend = internalMutation({
  args: { notificationId: v.id("notifications") },
  returns: v.null(),
  handler: async (ctx, { notificationId }) => {
    await enqueueSend(ctx, loadConfig(), notificationId, 0);
    return null;
  },
});

/** Cron backstop (every minute): restarts pending emails that are due (a lost send, a lapsed lease). */
export const runDueNotifications = internalMutation({
  args: {},
  returns: v.object({ restarted: v.number() }),
  handler: cronBatch("notifications.runDueNotifications", async (ctx) => ({ restarted: await sweepDueEmails(ctx, loadConfig(), Date.now()) })),
});

/** POST /resend/webhook, after the svix signature was verified: one delivery event. */
export const recordResendEvent = internalMutation({
  args: { type: v.string(), emailId: v.string(), detail: v.optional(v.string()) },
  returns: vResendEventResult,
  handler: async (ctx, args) => applyResendEvent(ctx, args),
});
