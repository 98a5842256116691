// Customer emails of provision jobs (issue #10): the outbox behind convex/notifications.ts.
//
// - Queued by the job engine (jobs.ts applyEvent) in the transaction of the transition itself:
//   provisioning_started when the job is admitted, instance_ready and welcome when it succeeds,
//   provisioning_failed when it fails for good. At most one row per job and kind
//   (`by_jobId_and_kind`), so a replayed transition queues nothing.
// - No address is stored: the row keeps a keyed hash of it (for bounces and suppression); the
//   sender reads the address from the job when it claims the row, and the claim returns it to
//   the action only.
// - One send at a time per row (a lease, as model/alerts.ts), on the Resend work pool; a failure
//   retries with backoff (Resend's Retry-After honoured) for EMAIL_MAX_AGE_MS, always with the same
//   idempotency key and the same rendered bytes, so Resend delivers it once. A Resend outage only
//   delays the email: nothing here touches the job.
// - Resend's webhook (svix-signed) moves a sent row to delivered, bounced or complained; a bounced
//   or complained address is recorded (`emailSuppressions`) and never emailed again.
//
// Never logs an email address.
import { v, type Infer } from "convex/values";
import { internal } from "../_generated/api";
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import { backoffDelayMs, type RetryPolicy } from "../lib/backoff";
import type { Config } from "../lib/config";
import { hmacSha256Hex } from "../lib/crypto";
import {
  renderEmail,
  vNotificationKind,
  vNotificationStatus,
  type EmailData,
  type NotificationKind,
  type NotificationStatus,
  type RenderedEmail,
} from "../lib/emailTemplates";
import { log } from "../lib/log";
import { appendAudit } from "./audit";
import type { Job } from "./decide";
import { mergeHistograms, percentile, emptyHistogram } from "./metricsFigures";
import { poolFor } from "./pools";

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;


/**
 * Retried this long after it was queued, then given up (`failed`). Under Resend's 24 h
 * idempotency window, so a retry can never send a second copy of an email Resend took.
 */
export const EMAIL_MAX_AGE_MS = 23 * HOUR;
/** 5 s doubling, capped at 10 min, ±20 %: an outage of hours is still tried every ~10 min. */
export const EMAIL_RETRY: RetryPolicy = { maxAttempts: Number.MAX_SAFE_INTEGER, baseDelayMs: 5 * SECOND, maxDelayMs: 10 * MINUTE, jitter: 0.2 };
/** The welcome email waits this long after ready, and while the ready email is still pending. */
export const WELCOME_DELAY_MS = MINUTE;
/** Without enough measured jobs, the started email estimates this (docs/emails.md). */
export const DEFAULT_ETA_MS = 10 * MINUTE;
/** Finished jobs the measured estimate needs; daily buckets it reads. */
const ETA_MIN_SAMPLES = 5;
const ETA_DAYS = 7;
/** Due rows one cron run restarts. */
export const SWEEP_LIMIT = 100;

export const leaseMs = (config: Config) => config.PROVIDER_TIMEOUT_MS + MINUTE;

type Notification = Doc<"notifications">;

/** The keyed hash that stands for an address (lower-cased): suppressions and bounces match on it. */
export const recipientHash = (config: Config, address: string) =>
  hmacSha256Hex(config.ENCRYPTION_KEY ?? "brain-sandbox-recipient-key", `recipient:${address.trim().toLowerCase()}`);

/** `<kind>/<jobId>`: Resend's suggested `<event-type>/<entity-id>`; the same on every retry. */
export const idempotencyKeyOf = (kind: NotificationKind, jobId: Id<"provisioningJobs">) => `${kind}/${jobId}`;

/** Replaces anything that looks like an email address (provider messages may quote it). */
export const scrubAddresses = (text: string) => text.replace(/[^\s@<>()"',;:]+@[^\s@<>()"',;:]+/g, "<address>").slice(0, 500);

// ---------------------------------------------------------------------------------------------
// Queueing, from the engine.

/**
 * Puts one send on the Resend pool now, or after `delayMs` by a scheduled enqueue (a durable
 * timer, so the pool holds only sends that may run now).
 */
export async function enqueueSend(ctx: MutationCtx, config: Config, notificationId: Id<"notifications">, delayMs: number): Promise<void> {
  if (delayMs > 0) {
    await ctx.scheduler.runAfter(delayMs, internal.notifications.enqueueNotificationSend, { notificationId });
    return;
  }
  await poolFor(config, "resend").enqueueAction(ctx, internal.notifications.sendNotification, { notificationId }, { retry: false });
}

async function recipientOf(ctx: QueryCtx, job: Job): Promise<string | null> {
  if (job.customer?.email && job.customer.email !== "unknown") return job.customer.email;
  const instance = await ctx.db.get("instances", job.instanceId);
  const customer = instance ? await ctx.db.get("customers", instance.customerId) : null;
  return customer?.email ?? null;
}

/** Queues one `kind` email of the job unless one was queued before. Returns whether it queued. */
export async function queueEmail(ctx: MutationCtx, config: Config, job: Job, kind: NotificationKind, delayMs = 0): Promise<boolean> {
  const existing = await ctx.db
    .query("notifications")
    .withIndex("by_jobId_and_kind", (q) => q.eq("jobId", job._id).eq("kind", kind))
    .first();
  if (existing) return false;
  const address = await recipientOf(ctx, job);
  if (!address) {
    log("warn", "email.no_recipient", { correlationId: job.correlationId, jobId: job._id, kind });
    return false;
  }
  const now = Date.now();
  const notificationId = await ctx.db.insert("notifications", {
    jobId: job._id,
    instanceId: job.instanceId,
    kind,
    recipientHash: await recipientHash(config, address),
    idempotencyKey: idempotencyKeyOf(kind, job._id),
    status: "pending",
    attempts: 0,
    nextAttemptAt: now + delayMs,
    expiresAt: now + delayMs + EMAIL_MAX_AGE_MS,
    createdAt: now,
    updatedAt: now,
  });
  await enqueueSend(ctx, config, notificationId, delayMs);
  log("info", "email.queued", { correlationId: job.correlationId, jobId: job._id, notificationId, kind });
  return true;
}

/**
 * The engine's hook (jobs.ts applyEvent, startFailedJob): from the job before and after one
 * transition, the customer emails it calls for. Provision jobs only. Decides nothing about the
 * job; a replayed or stale transition changes no status and so queues nothing.
 */
export async function queueJobEmails(ctx: MutationCtx, config: Config, before: Pick<Job, "status"> | null, after: Job): Promise<void> {
  if (after.kind !== "provision") return;
  const from = before?.status ?? null;
  if (from === after.status) return;
  if (from === "queued" && after.status === "running") await queueEmail(ctx, config, after, "provisioning_started");
  else if (after.status === "succeeded") {
    await queueEmail(ctx, config, after, "instance_ready");
    await queueEmail(ctx, config, after, "welcome", WELCOME_DELAY_MS);
  } else if (after.status === "failed") await queueEmail(ctx, config, after, "provisioning_failed");
}

// ---------------------------------------------------------------------------------------------
// Sending: claim, record, sweep.

export const vEmailClaim = v.union(
  v.object({
    kind: v.literal("claimed"),
    notificationId: v.id("notifications"),
    jobId: v.id("provisioningJobs"),
    correlationId: v.string(),
    emailKind: vNotificationKind,
    token: v.string(),
    attempt: v.number(),
    idempotencyKey: v.string(),
    /** The address: returned to the sending action only, never stored on the row or logged. */
    to: v.string(),
    subject: v.string(),
    text: v.string(),
    html: v.string(),
  }),
  v.object({
    kind: v.literal("none"),
    reason: v.union(v.literal("gone"), v.literal("done"), v.literal("busy"), v.literal("waiting"), v.literal("behind"), v.literal("expired"), v.literal("suppressed"), v.literal("moot")),
  }),
);
export type EmailClaim = Infer<typeof vEmailClaim>;

/** The status page URL of the instance's checkout, when this deployment knows its own URL. */
const statusUrlOf = (config: Config, instance: Doc<"instances">) =>
  config.CONVEX_SITE_URL ? `${config.CONVEX_SITE_URL.replace(/\/$/, "")}/status?session_id=${encodeURIComponent(instance.checkoutSessionId)}` : undefined;

/** Median end-to-end time of the jobs that succeeded over the last ETA_DAYS daily buckets, if enough were measured. */
export async function measuredEtaMs(ctx: QueryCtx): Promise<number | null> {
  const days = await ctx.db
    .query("provisioningMetrics")
    .withIndex("by_granularity_and_start", (q) => q.eq("granularity", "day"))
    .order("desc")
    .take(ETA_DAYS);
  const merged = days.reduce((h, day) => mergeHistograms(h, day.figures.duration), emptyHistogram());
  if (merged.count < ETA_MIN_SAMPLES) return null;
  return percentile(merged, 0.5);
}

async function emailDataFor(ctx: QueryCtx, config: Config, row: Notification, job: Job): Promise<EmailData | null> {
  const instance = await ctx.db.get("instances", job.instanceId);
  if (!instance) return null;
  const base: EmailData = {
    plan: job.customer?.plan ?? instance.plan,
    ...(job.customer?.customerName ? { customerName: job.customer.customerName } : {}),
    ...(config.SUPPORT_URL ? { supportUrl: config.SUPPORT_URL } : {}),
    ...(config.SUPPORT_EMAIL ? { supportEmail: config.SUPPORT_EMAIL } : {}),
  };
  const statusUrl = statusUrlOf(config, instance);
  const instanceUrl = instance.url;
  const loginUrl = instanceUrl ? `${instanceUrl.replace(/\/$/, "")}${config.TENANT_LOGIN_PATH}` : undefined;
  switch (row.kind) {
    case "provisioning_started": {
      const measured = await measuredEtaMs(ctx);
      return { ...base, etaMinutes: Math.round((measured ?? DEFAULT_ETA_MS) / MINUTE), etaMeasured: measured !== null, ...(statusUrl ? { statusUrl } : {}) };
    }
    case "instance_ready":
      return { ...base, ...(instanceUrl ? { instanceUrl } : {}), ...(loginUrl ? { loginUrl } : {}) };
    case "provisioning_failed":
      return { ...base, ...(statusUrl ? { statusUrl } : {}) };
    case "welcome": {
      const resources = { ...instance.resources, ...job.resources };
      return {
        ...base,
        ...(instanceUrl ? { instanceUrl } : {}),
        ...(loginUrl ? { loginUrl } : {}),
        signIn: resources.workosInvitationId ? "invited" : "existing",
      };
    }
  }
}

async function end(ctx: MutationCtx, row: Notification, status: NotificationStatus, lastError: string, now: number) {
  await ctx.db.patch("notifications", row._id, { status, lastError, inFlight: undefined, updatedAt: now });
}

/** Leases a due row for one send (rendering it the first time), or says why not. */
export async function claimEmail(ctx: MutationCtx, config: Config, notificationId: Id<"notifications">): Promise<EmailClaim> {
  const now = Date.now();
  const row = await ctx.db.get("notifications", notificationId);
  if (!row) return { kind: "none", reason: "gone" };
  if (row.status !== "pending") return { kind: "none", reason: "done" };
  if (row.inFlight && row.inFlight.until > now) return { kind: "none", reason: "busy" };
  if (row.nextAttemptAt > now) return { kind: "none", reason: "waiting" };
  if (now > row.expiresAt) {
    await end(ctx, row, "failed", `expired after ${row.attempts} attempts (last: ${row.lastError ?? "none"})`.slice(0, 500), now);
    await auditEnd(ctx, row, "email.failed", `expired after ${row.attempts} attempts`);
    return { kind: "none", reason: "expired" };
  }
  const suppressed = await ctx.db
    .query("emailSuppressions")
    .withIndex("by_recipientHash", (q) => q.eq("recipientHash", row.recipientHash))
    .first();
  if (suppressed) {
    await end(ctx, row, "failed", `not sent: the address ${suppressed.reason} an earlier email`, now);
    await auditEnd(ctx, row, "email.suppressed", `the address ${suppressed.reason} an earlier email`);
    return { kind: "none", reason: "suppressed" };
  }
  const job = await ctx.db.get("provisioningJobs", row.jobId);
  if (!job) {
    await end(ctx, row, "cancelled", "the job is gone", now);
    return { kind: "none", reason: "moot" };
  }
  // Sent only while the job has failed for good: a job retried meanwhile no longer has.
  if (row.kind === "provisioning_failed" && job.status !== "failed" && row.attempts === 0) {
    await end(ctx, row, "cancelled", `not sent: the job was retried (now ${job.status})`, now);
    return { kind: "none", reason: "moot" };
  }
  if (row.kind === "welcome") {
    const ready = await ctx.db
      .query("notifications")
      .withIndex("by_jobId_and_kind", (q) => q.eq("jobId", row.jobId).eq("kind", "instance_ready"))
      .first();
    if (ready?.status === "pending") {
      await ctx.db.patch("notifications", row._id, { nextAttemptAt: Math.max(ready.nextAttemptAt, now) + WELCOME_DELAY_MS, updatedAt: now });
      await enqueueSend(ctx, config, row._id, Math.max(ready.nextAttemptAt - now, 0) + WELCOME_DELAY_MS);
      return { kind: "none", reason: "behind" };
    }
  }
  const to = await recipientOf(ctx, job);
  if (!to || (await recipientHash(config, to)) !== row.recipientHash) {
    await end(ctx, row, "failed", "not sent: the job's recipient changed or is gone", now);
    return { kind: "none", reason: "moot" };
  }
  let content: RenderedEmail | undefined = row.content;
  if (!content) {
    const data = await emailDataFor(ctx, config, row, job);
    if (!data) {
      await end(ctx, row, "cancelled", "the instance is gone", now);
      return { kind: "none", reason: "moot" };
    }
    content = renderEmail(row.kind, data);
  }
  const token = crypto.randomUUID();
  const until = now + leaseMs(config);
  // Rendered once, kept: every retry sends the same bytes under the same idempotency key.
  await ctx.db.patch("notifications", row._id, { inFlight: { token, until }, nextAttemptAt: until, content, updatedAt: now });
  return {
    kind: "claimed",
    notificationId: row._id,
    jobId: row.jobId,
    correlationId: job.correlationId,
    emailKind: row.kind,
    token,
    attempt: row.attempts + 1,
    idempotencyKey: row.idempotencyKey,
    to,
    ...content,
  };
}

/** What one send came to (never an address). */
export const vEmailOutcome = v.union(
  v.object({ kind: v.literal("sent"), providerMessageId: v.string() }),
  v.object({
    kind: v.literal("error"),
    failure: v.union(v.literal("transient"), v.literal("rate_limited"), v.literal("permanent")),
    message: v.string(),
    retryAfterMs: v.optional(v.number()),
  }),
);
export type EmailOutcome = Infer<typeof vEmailOutcome>;

export const vEmailRecordResult = v.union(
  v.object({ kind: v.literal("sent") }),
  v.object({ kind: v.literal("retrying"), nextAttemptAt: v.number() }),
  v.object({ kind: v.literal("failed") }),
  v.object({ kind: v.literal("stale") }),
);
export type EmailRecordResult = Infer<typeof vEmailRecordResult>;

async function auditEnd(ctx: MutationCtx, row: Notification, action: string, detail: string) {
  await appendAudit(ctx, { actor: "system:emails", action, jobId: row.jobId, instanceId: row.instanceId, detail: `${row.kind}: ${scrubAddresses(detail)}`.slice(0, 500) });
}

/**
 * Records one send under its lease. Accepted: sent. Permanent (Resend refused it): failed, not
 * retried. Otherwise tried again after EMAIL_RETRY's backoff (or Resend's Retry-After, if longer)
 * until EMAIL_MAX_AGE_MS, with the same idempotency key.
 */
export async function recordEmailAttempt(
  ctx: MutationCtx,
  config: Config,
  notificationId: Id<"notifications">,
  token: string,
  outcome: EmailOutcome,
  random: () => number = Math.random,
): Promise<EmailRecordResult> {
  const now = Date.now();
  const row = await ctx.db.get("notifications", notificationId);
  if (!row || row.status !== "pending" || row.inFlight?.token !== token) return { kind: "stale" };
  const attempts = row.attempts + 1;
  if (outcome.kind === "sent") {
    await ctx.db.patch("notifications", notificationId, {
      attempts,
      status: "sent",
      providerMessageId: outcome.providerMessageId,
      sentAt: now,
      lastError: undefined,
      inFlight: undefined,
      updatedAt: now,
    });
    return { kind: "sent" };
  }
  const lastError = scrubAddresses(`${outcome.failure}: ${outcome.message}`);
  if (outcome.failure === "permanent" || now >= row.expiresAt) {
    await ctx.db.patch("notifications", notificationId, { attempts, status: "failed", lastError, inFlight: undefined, updatedAt: now });
    await auditEnd(ctx, row, "email.failed", lastError);
    log("warn", "email.failed", { correlationId: row.jobId, notificationId, kind: row.kind, attempts });
    return { kind: "failed" };
  }
  const delay = Math.max(backoffDelayMs(EMAIL_RETRY, attempts, random), outcome.retryAfterMs ?? 0);
  const nextAttemptAt = Math.min(now + delay, row.expiresAt);
  await ctx.db.patch("notifications", notificationId, { attempts, lastError, nextAttemptAt, inFlight: undefined, updatedAt: now });
  await enqueueSend(ctx, config, notificationId, nextAttemptAt - now);
  return { kind: "retrying", nextAttemptAt };
}

/** The cron backstop: restarts up to SWEEP_LIMIT pending rows that are due (a lost send, a lease that lapsed). */
export async function sweepDueEmails(ctx: MutationCtx, config: Config, now: number): Promise<number> {
  const due = await ctx.db
    .query("notifications")
    .withIndex("by_status_and_nextAttemptAt", (q) => q.eq("status", "pending").lte("nextAttemptAt", now))
    .take(SWEEP_LIMIT);
  for (const row of due) await enqueueSend(ctx, config, row._id, 0);
  return due.length;
}

// ---------------------------------------------------------------------------------------------
// Resend's delivery events.

/** The Resend event types that move a row; others are acknowledged and ignored. */
const EVENT_STATUS: Record<string, NotificationStatus> = {
  "email.delivered": "delivered",
  "email.bounced": "bounced",
  "email.complained": "complained",
};
/** A later event never moves a row back: delivered < bounced/complained (a complaint follows delivery). */
const RANK: Partial<Record<NotificationStatus, number>> = { sent: 1, delivered: 2, bounced: 3, complained: 3 };

export const vResendEventResult = v.union(
  v.object({ kind: v.literal("updated"), status: vNotificationStatus }),
  v.object({ kind: v.literal("ignored"), reason: v.string() }),
);
export type ResendEventResult = Infer<typeof vResendEventResult>;

/** Applies one verified Resend event to the row of its email id; replays change nothing. */
export async function applyResendEvent(ctx: MutationCtx, event: { type: string; emailId: string; detail?: string }): Promise<ResendEventResult> {
  const status = EVENT_STATUS[event.type];
  if (!status) return { kind: "ignored", reason: `type ${event.type.slice(0, 64)}` };
  const row = await ctx.db
    .query("notifications")
    .withIndex("by_providerMessageId", (q) => q.eq("providerMessageId", event.emailId))
    .first();
  if (!row) return { kind: "ignored", reason: "unknown email" };
  if ((RANK[row.status] ?? 99) >= (RANK[status] ?? 0)) return { kind: "ignored", reason: `already ${row.status}` };
  const now = Date.now();
  await ctx.db.patch("notifications", row._id, {
    status,
    updatedAt: now,
    ...(status === "delivered" ? { deliveredAt: now } : { lastError: scrubAddresses(`${status}${event.detail ? `: ${event.detail}` : ""}`) }),
  });
  if (status === "bounced" || status === "complained") {
    const known = await ctx.db
      .query("emailSuppressions")
      .withIndex("by_recipientHash", (q) => q.eq("recipientHash", row.recipientHash))
      .first();
    if (!known) await ctx.db.insert("emailSuppressions", { recipientHash: row.recipientHash, reason: status, notificationId: row._id, at: now });
    await auditEnd(ctx, row, `email.${status}`, event.detail ?? status);
  }
  log(status === "delivered" ? "info" : "warn", "email.event", { correlationId: row.jobId, notificationId: row._id, kind: row.kind, status });
  return { kind: "updated", status };
}
