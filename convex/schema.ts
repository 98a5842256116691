// Brain's tables. Each says who writes it and who reads it; every read path has an index.
import { defineSchema, defineTable } from "convex/server";
import { vNotificationKind, vNotificationStatus, vRenderedEmail } from "./lib/emailTemplates";
import { v } from "convex/values";
import {
  vCheckoutSummary,
  vHealthStatus,
  vInstanceResources,
  vInstanceStatus,
  vJobError,
  vJobStatus,
  vOrphanScan,
  vCompensationStatus,
  vRetryPolicy,
  vProviderName,
  vStepState,
  vStripeEventOutcome,
  vStepName,
  vJobCustomer,
  vOrphanProvider,
  vAuditChange,
  vAuditEntry,
  vJobKind,
  vJobParams,
  vSubscriptionSummary,
  vEventRouting,
  vAppliedSubscription,
  vDeliveryStatus,
  vInstanceHealthStatus,
  vHealthMember,
  vIncidentSeverity,
  vIncidentStatus,
  vAlertType,
  vAlertChannel,
  vCheckResult,
  vDeployProgress,
  vSecurityEventKind,
} from "./lib/validators";
import { vMetricFigures } from "./model/metricsFigures";
import { vDeployKeyRotation, vSecretRotationStatus, vSecretTable } from "./model/secrets";

export default defineSchema({
  // Written by stripe.recordStripeEvent (once per event id) and stripe.processStripeEvent;
  // read by the same, and by the status page for sessions still awaiting payment.
  stripeEvents: defineTable({
    eventId: v.string(),
    type: v.string(),
    livemode: v.boolean(),
    createdAt: v.number(),
    receivedAt: v.number(),
    processedAt: v.optional(v.number()),
    outcome: vStripeEventOutcome,
    detail: v.optional(v.string()),
    checkout: v.optional(vCheckoutSummary),
    checkoutSessionId: v.optional(v.string()),
    /** Set at intake when live Cloudflare's Pages project cap was already reached. */
    pagesCapExceeded: v.optional(v.string()),
    /** customer.subscription.* events: the subscription as the event carried it. */
    subscription: v.optional(vSubscriptionSummary),
    /** Who the event belongs to (customer, subscription, metadata.instanceId). */
    routing: v.optional(vEventRouting),
    /** A forwardable event no tenant existed for at intake (a first checkout): forwarded once its instance exists. */
    forwardBody: v.optional(v.string()),
  })
    .index("by_eventId", ["eventId"])
    .index("by_checkoutSessionId_and_createdAt", ["checkoutSessionId", "createdAt"])
    .index("by_outcome_and_receivedAt", ["outcome", "receivedAt"])
    // A subscription's events (its own, and its invoices') that came before their instance existed.
    .index("by_subscriptionId_and_createdAt", ["routing.subscriptionId", "createdAt"]),

  // Written when a paid checkout is processed; read by steps (email) and operators.
  customers: defineTable({
    email: v.string(),
    name: v.optional(v.string()),
    stripeCustomerId: v.optional(v.string()),
    workosUserId: v.optional(v.string()),
    createdAt: v.number(),
  })
    .index("by_stripeCustomerId", ["stripeCustomerId"])
    .index("by_email", ["email"]),

  // One tenant stack. Written by provisioning (resources, status) and monitoring (health);
  // read by the status page, health checks and operators.
  instances: defineTable({
    customerId: v.id("customers"),
    checkoutSessionId: v.string(),
    plan: v.string(),
    status: vInstanceStatus,
    resources: vInstanceResources,
    url: v.optional(v.string()),
    /**
     * Confirmed health (after hysteresis), absent until the first check. Written by health.ts
     * when it changes, with the check that changed it (lastHealthCheckAt) and unhealthySince;
     * the per-round check times live in the instance's health batch (docs/monitoring.md).
     */
    healthStatus: v.optional(vInstanceHealthStatus),
    lastHealthCheckAt: v.optional(v.number()),
    unhealthySince: v.optional(v.number()),
    /** The health batch checking this instance (absent: not monitored, or not enrolled yet). */
    healthBatchId: v.optional(v.id("healthBatches")),
    createdAt: v.number(),
    activatedAt: v.optional(v.number()),
    /** Stripe: the customer and subscription this instance is paid by (from its checkout). */
    stripeCustomerId: v.optional(v.string()),
    stripeSubscriptionId: v.optional(v.string()),
    /** The newest subscription state applied (lifecycle.ts): older events never regress it. */
    subscription: v.optional(vAppliedSubscription),
    /** When the subscription went past_due (suspension follows SUSPEND_AFTER_PAST_DUE_MS later). */
    pastDueSince: v.optional(v.number()),
    /** The subscription ended: the instance is deprovisioned at this time unless resubscribed. */
    deprovisionAt: v.optional(v.number()),
    /** A plan change Stripe asked for that has not been applied yet (a job was running). */
    pendingPlan: v.optional(v.object({ plan: v.string(), priceId: v.string() })),
    suspendedAt: v.optional(v.number()),
    deletedAt: v.optional(v.number()),
    /** When the tenant's deploy key is next rotated, or its failed rotation retried (deployKeys.ts; absent: not planned yet). */
    deployKeyDueAt: v.optional(v.number()),
    /** The deploy-key rotation's persisted progress, so a rotation that died resumes where it stopped. */
    deployKeyRotation: v.optional(vDeployKeyRotation),
  })
    .index("by_checkoutSessionId", ["checkoutSessionId"])
    // Kept beside the one below for its order: a customer's instances by creation time (the
    // daily checkout quota reads the last 24 hours of them, model/quotas.ts).
    // eslint-disable-next-line @convex-dev/no-duplicate-indexes
    .index("by_customerId", ["customerId"])
    // Per-customer quotas (model/quotas.ts): the customer's instances that are not deleted.
    .index("by_customerId_and_status", ["customerId", "status"])
    .index("by_stripeSubscriptionId", ["stripeSubscriptionId"])
    .index("by_stripeCustomerId", ["stripeCustomerId"])
    .index("by_deprovisionAt", ["deprovisionAt"])
    .index("by_status_and_pagesProjectName", ["status", "resources.pagesProjectName"])
    // Health enrollment: live instances not in a health batch yet (health.ts).
    .index("by_status_and_healthBatchId", ["status", "healthBatchId"])
    // The health dashboard's pages (monitoring.getInstancesHealthStatus), by filter.
    .index("by_status_and_createdAt", ["status", "createdAt"])
    .index("by_status_and_healthStatus_and_createdAt", ["status", "healthStatus", "createdAt"])
    .index("by_status_and_plan_and_createdAt", ["status", "plan", "createdAt"])
    .index("by_status_and_plan_and_healthStatus_and_createdAt", ["status", "plan", "healthStatus", "createdAt"])
    // Deploy-key rotation: active instances whose key is due (deployKeys.ts).
    .index("by_status_and_deployKeyDueAt", ["status", "deployKeyDueAt"]),

  // The job engine's state: one document per job, its steps inline (ten, bounded).
  // Written only by provisioning mutations; read by the step actions, status page and operators.
  provisioningJobs: defineTable({
    instanceId: v.id("instances"),
    kind: vJobKind,
    /** A lifecycle job's parameters (a plan change's plan and variables). */
    params: v.optional(vJobParams),
    status: vJobStatus,
    steps: v.array(vStepState),
    totalSteps: v.number(),
    currentStep: v.number(),
    retryCount: v.number(),
    /** What the steps made so far; copied onto the instance when the job ends. */
    resources: v.optional(vInstanceResources),
    /** The customer facts steps need, so a step's input travels with its dispatch. */
    customer: v.optional(vJobCustomer),
    /** The retry policy in force (next attempt times are on the steps). */
    retryPolicy: v.optional(vRetryPolicy),
    correlationId: v.string(),
    trigger: v.string(),
    error: v.optional(vJobError),
    /** Cleanup of a failed job's partial resources: scheduled for `compensateAt`, running, or done. */
    compensationStatus: v.optional(vCompensationStatus),
    compensateAt: v.optional(v.number()),
    compensatedAt: v.optional(v.number()),
    /**
     * The cleanup action running now, until its lease ends (a retry or an early cleanup waits
     * for it). Only the run holding `token` clears it, so overlapping runs cannot clear early.
     */
    cleanupRun: v.optional(v.object({ token: v.string(), until: v.number() })),
    /** The deploy workflow's own steps as it reported them (signed progress reports; the last 30). */
    deployProgress: v.optional(v.array(vDeployProgress)),
    /** The deploy workflow's measured timings from its final report (ms per phase). */
    deployTimings: v.optional(v.record(v.string(), v.number())),
    /** When the job last entered `queued`; admission takes jobs queued over a segment ago. */
    queuedAt: v.optional(v.number()),
    createdAt: v.number(),
    updatedAt: v.number(),
    finishedAt: v.optional(v.number()),
  })
    // An instance's jobs in creation order (its newest job, whatever its kind: lifecycle.ts);
    // the status page reads the newest provision job by the index after it.
    // eslint-disable-next-line @convex-dev/no-duplicate-indexes
    .index("by_instanceId", ["instanceId"])
    .index("by_instanceId_and_kind", ["instanceId", "kind"])
    // Admission and the watchdog need running/queued jobs in creation order, which the
    // compound index below does not give.
    // eslint-disable-next-line @convex-dev/no-duplicate-indexes
    .index("by_status", ["status"])
    // The cleanup cron reads this one in creation order (cleanup.ts).
    // eslint-disable-next-line @convex-dev/no-duplicate-indexes
    .index("by_status_and_compensationStatus", ["status", "compensationStatus"])
    // The dead letter reads failed jobs per cleanup state and failure class, oldest first,
    // so cancelled jobs stay out of its range reads (provisioning.listDeadLetter).
    .index("by_status_and_compensationStatus_and_errorClass_and_finishedAt", [
      "status",
      "compensationStatus",
      "error.class",
      "finishedAt",
    ])
    .index("by_status_and_queuedAt", ["status", "queuedAt"])
    // The metrics rollup and getProvisioningMetrics: a kind's jobs finished, and created, in a time range.
    .index("by_kind_and_finishedAt", ["kind", "finishedAt"])
    .index("by_kind_and_createdAt", ["kind", "createdAt"]),

  // Admission's own count of running jobs. Written and read only by provisioning.admitQueuedJobs
  // (and an operator's retry), never by a hot path: see docs/contention.md.
  admission: defineTable({
    running: v.number(),
    /** When the one pending look-again run is due (absent: none pending). */
    pollAt: v.optional(v.number()),
    updatedAt: v.number(),
  }),

  // One row each time a job leaves `running` (insert-only on the hot path); admission folds
  // rows older than a segment into its count and deletes them.
  jobSlotReleases: defineTable({ jobId: v.id("provisioningJobs"), releasedAt: v.number() }).index("by_releasedAt", [
    "releasedAt",
  ]),

  // One deletion of a failed job's resource (compensation). Written by cleanup.ts; a failed
  // deletion stays pending with its next attempt time, and the cleanup cron retries it.
  cleanupTasks: defineTable({
    jobId: v.id("provisioningJobs"),
    instanceId: v.id("instances"),
    provider: vOrphanProvider,
    resourceId: v.string(),
    /** Undo order: newest-made first. */
    order: v.number(),
    /** cancelled: the job was retried before this deletion succeeded; it will not be attempted. */
    status: v.union(v.literal("pending"), v.literal("done"), v.literal("cancelled")),
    attempts: v.number(),
    lastError: v.optional(v.string()),
    nextAttemptAt: v.number(),
    doneAt: v.optional(v.number()),
  })
    .index("by_jobId_and_status", ["jobId", "status"])
    .index("by_status_and_nextAttemptAt", ["status", "nextAttemptAt"])
    // Retention: done tasks by when they finished.
    .index("by_status_and_doneAt", ["status", "doneAt"]),

  // Append-only: written only by model/audit.ts appendAudit (every change to a job, instance,
  // customer or circuit, every webhook receipt and outcome, fault injection and admin call);
  // read by operators. Nothing updates a row; only the retention pass (retention.ts) deletes
  // rows older than AUDIT_RETENTION_MS (docs/security.md).
  auditLogs: defineTable({
    ...vAuditEntry.fields,
    /**
     * The further changes of the same transition (one job transition, one row: a completion
     * that also starts two steps writes one row, not three). Readers expand them in order.
     */
    more: v.optional(v.array(vAuditChange)),
  })
    .index("by_jobId", ["jobId"])
    .index("by_instanceId", ["instanceId"])
    .index("by_action", ["action"])
    // One flow's trail (a Stripe event's receipt, outcome and the job it started) and retention.
    .index("by_correlationId", ["correlationId"])
    .index("by_at", ["at"]),

  // Health history: one row when an instance's result changes (a round whose result equals the
  // previous one writes nothing), and one per on-demand check. Written by health.ts and
  // monitoring.checkInstanceHealth; read by GET /instance-health; pruned after HEALTH_RETENTION_MS.
  healthChecks: defineTable({
    instanceId: v.id("instances"),
    at: v.number(),
    overall: vHealthStatus,
    /** The confirmed status after this check (rounds only). */
    status: v.optional(vInstanceHealthStatus),
    failing: v.array(v.string()),
    /** Per-check detail of a failed check (rounds only). */
    checks: v.optional(v.record(v.string(), vCheckResult)),
    trigger: v.string(),
  })
    .index("by_instanceId_and_at", ["instanceId", "at"])
    .index("by_at", ["at"]),

  // Health batches: up to HEALTH_BATCH_SIZE monitored instances checked together by one action,
  // each batch on its own slot of the interval. Written by health.ts (enrollment, claims, results);
  // read by the same and the health dashboard. Per-round state lives here, not on the instances.
  healthBatches: defineTable({
    /** Creation order: spreads slots evenly over the interval. */
    number: v.number(),
    /** The batch's place in the interval, as a fraction of HEALTH_CHECK_INTERVAL_MS: its rounds start at (slot + k) * interval. */
    slot: v.number(),
    size: v.number(),
    members: v.array(vHealthMember),
    /** When runHealthChecks must next look at it: the earliest member due, or the end of a claim's lease. */
    dueAt: v.number(),
    /** The run checking it now (only that run may record results). */
    claim: v.optional(v.object({ token: v.string(), runAt: v.number() })),
    /** The oldest member's last check (0 while one is unchecked): coverage reads only batches behind. */
    oldestCheckAt: v.number(),
    updatedAt: v.number(),
  })
    .index("by_dueAt", ["dueAt"])
    .index("by_size", ["size"])
    .index("by_oldestCheckAt", ["oldestCheckAt"]),

  // Fleet-wide health state: the deep sweep's schedule and claim. One row, written by health.ts.
  healthSchedule: defineTable({
    deepDueAt: v.number(),
    deepClaim: v.optional(v.object({ token: v.string(), until: v.number() })),
    lastDeepSweep: v.optional(
      v.object({ startedAt: v.number(), finishedAt: v.number(), organizations: v.number(), pagesProjects: v.number(), suspects: v.number() }),
    ),
  }),

  // Plans seen among monitored instances: the health dashboard's byPlan keys (counts come from the aggregate).
  healthPlans: defineTable({ plan: v.string() }).index("by_plan", ["plan"]),

  // An instance's time away from active: opened when its confirmed health leaves active, resolved
  // when it returns. Written by model/incidents.ts (from health.ts) and alerts.ts; read by
  // GET /admin/incidents, GET /instance-health and the metrics. Kept HEALTH_RETENTION_MS after resolving.
  incidents: defineTable({
    instanceId: v.id("instances"),
    /** The correlation id of the Stripe event that provisioned the instance (its log lines carry it). */
    correlationId: v.optional(v.string()),
    plan: v.string(),
    status: vIncidentStatus,
    /** The worst confirmed status while open. */
    severity: vIncidentSeverity,
    /** The checks failing now (or when it resolved: the last ones). */
    failing: v.array(v.string()),
    /** When the instance started failing (the alert's `since`). */
    since: v.number(),
    openedAt: v.number(),
    /** When its alert is due (since + ALERT_AFTER_MS, or a maintenance window's end); absent once alerted or resolved. */
    alertDueAt: v.optional(v.number()),
    alertedAt: v.optional(v.number()),
    /** The next reminder (ALERT_REMINDER_MS), while open and alerted. */
    remindAt: v.optional(v.number()),
    resolvedAt: v.optional(v.number()),
    /** Why it closed: `recovered`, or the instance stopped being monitored (suspended, deleted). */
    resolution: v.optional(v.string()),
    /** Notices sent for it, in order. */
    notifications: v.array(v.object({ type: vAlertType, at: v.number(), suppressed: v.optional(v.string()) })),
  })
    .index("by_instanceId_and_status", ["instanceId", "status"])
    .index("by_status_and_openedAt", ["status", "openedAt"])
    .index("by_alertDueAt", ["alertDueAt"])
    .index("by_remindAt", ["remindAt"])
    .index("by_status_and_resolvedAt", ["status", "resolvedAt"])
    // The metrics (MTTD): incidents opened in a time range, whatever their status now.
    .index("by_openedAt", ["openedAt"]),

  // Maintenance windows: alerts are held while one covers the instance (or the fleet); checks go on.
  // Written by POST /admin/maintenance; read by alerts.ts and GET /admin/maintenance.
  maintenanceWindows: defineTable({
    /** Absent: the whole fleet. */
    instanceId: v.optional(v.id("instances")),
    from: v.number(),
    until: v.number(),
    reason: v.string(),
    createdAt: v.number(),
    actor: v.string(),
  })
    .index("by_until", ["until"])
    .index("by_instanceId_and_until", ["instanceId", "until"]),

  // Each alert notice to each destination (an email address, the webhook): retried with backoff
  // for up to 24 h. Written and read by alerts.ts; pruned after HEALTH_RETENTION_MS.
  alertDeliveries: defineTable({
    /** The incident it is about (instance alerts); absent for a security alert or an operator notice. */
    incidentId: v.optional(v.id("incidents")),
    instanceId: v.optional(v.id("instances")),
    /** The block it is about (security.blocked alerts, issue 11). */
    securityEventId: v.optional(v.id("securityEvents")),
    /** An operator notice's correlation id (the Stripe event id of a checkout over quota). */
    correlationId: v.optional(v.string()),
    type: vAlertType,
    channel: vAlertChannel,
    /** The email address, or the webhook URL's host (the URL itself is configuration). */
    destination: v.string(),
    /** The JSON body as first built (the webhook re-sends it byte for byte). */
    body: v.string(),
    status: v.union(v.literal("pending"), v.literal("delivered"), v.literal("failed")),
    attempts: v.number(),
    nextAttemptAt: v.number(),
    expiresAt: v.number(),
    lastStatus: v.optional(v.number()),
    lastError: v.optional(v.string()),
    inFlight: v.optional(v.object({ token: v.string(), until: v.number() })),
    createdAt: v.number(),
    deliveredAt: v.optional(v.number()),
  })
    .index("by_incidentId", ["incidentId"])
    .index("by_status_and_nextAttemptAt", ["status", "nextAttemptAt"])
    .index("by_createdAt", ["createdAt"]),

  // Customer emails of provision jobs (issue #10, docs/emails.md): at most one row per job and
  // kind. Queued by the job engine (model/notifications.ts queueJobEmails) in the transition's own
  // transaction; sent by notifications.sendNotification on the Resend pool; moved on by Resend's
  // webhook. No address: the sender reads it from the job; `recipientHash` is a keyed hash of it.
  notifications: defineTable({
    jobId: v.id("provisioningJobs"),
    instanceId: v.id("instances"),
    kind: vNotificationKind,
    recipientHash: v.string(),
    /** `<kind>/<jobId>`, sent as Resend's Idempotency-Key on every attempt. */
    idempotencyKey: v.string(),
    status: vNotificationStatus,
    attempts: v.number(),
    nextAttemptAt: v.number(),
    expiresAt: v.number(),
    inFlight: v.optional(v.object({ token: v.string(), until: v.number() })),
    /** Rendered at the first claim and kept, so every retry sends the same bytes. */
    content: v.optional(vRenderedEmail),
    providerMessageId: v.optional(v.string()),
    /** Why the last attempt failed or the row ended; never an address. */
    lastError: v.optional(v.string()),
    createdAt: v.number(),
    updatedAt: v.number(),
    sentAt: v.optional(v.number()),
    deliveredAt: v.optional(v.number()),
  })
    .index("by_jobId_and_kind", ["jobId", "kind"])
    .index("by_status_and_nextAttemptAt", ["status", "nextAttemptAt"])
    .index("by_providerMessageId", ["providerMessageId"])
    .index("by_instanceId", ["instanceId"])
    // Retention: finished emails by their last change.
    .index("by_status_and_updatedAt", ["status", "updatedAt"]),

  // Addresses (by the keyed hash) that bounced or complained: never emailed again. Written by
  // Resend's webhook (model/notifications.ts applyResendEvent); read by every send's claim.
  emailSuppressions: defineTable({
    recipientHash: v.string(),
    reason: v.union(v.literal("bounced"), v.literal("complained")),
    notificationId: v.id("notifications"),
    at: v.number(),
  }).index("by_recipientHash", ["recipientHash"]),

  // WorkOS user ids by email, so a lookup inside the TTL does not call WorkOS again.
  // Written and read by providers/workos.ts through providerCache.ts.
  workosUserCache: defineTable({
    email: v.string(),
    userId: v.string(),
    cachedAt: v.number(),
  })
    .index("by_email", ["email"])
    // Retention: entries past their TTL.
    .index("by_cachedAt", ["cachedAt"]),

  // One circuit breaker per provider. Written by the job engine as step outcomes arrive
  // (model/circuits.ts); read by dispatch and GET /admin/circuits.
  circuits: defineTable({
    provider: v.string(),
    failures: v.number(),
    openedAt: v.optional(v.number()),
    /** The one attempt probing a half-open circuit, until it reports or its deadline passes. */
    probe: v.optional(v.object({ jobId: v.string(), step: vStepName, attempt: v.number(), until: v.number() })),
    updatedAt: v.number(),
  }).index("by_provider", ["provider"]),

  // Signatures of provisioning callbacks already accepted, so a replay changes nothing.
  // Written by provisioning.recordDeployCallback; read by the same.
  callbackReceipts: defineTable({
    signature: v.string(),
    receivedAt: v.number(),
  })
    .index("by_signature", ["signature"])
    // Retention: receipts past CALLBACK_RECEIPT_RETENTION_MS (a stale signature is refused anyway).
    .index("by_receivedAt", ["receivedAt"]),

  // Sandbox providers' simulated resources. Written and read only by providers/sandbox
  // (through sandbox.ts functions); unused in live mode.
  sandboxResources: defineTable({
    provider: vProviderName,
    kind: v.string(),
    name: v.string(),
    externalId: v.string(),
    attributes: v.record(v.string(), v.string()),
    createdAt: v.number(),
    updatedAt: v.number(),
  })
    .index("by_provider_and_kind_and_name", ["provider", "kind", "name"])
    .index("by_externalId", ["externalId"]),

  // Faults the sandbox will inject: the next `remaining` calls of `operation` fail.
  // Written by sandbox.injectFault (tests, demos, operators); consumed by sandbox operations.
  sandboxFaults: defineTable({
    operation: v.string(),
    kind: v.union(v.literal("transient"), v.literal("rate_limited"), v.literal("permanent")),
    remaining: v.number(),
    message: v.optional(v.string()),
    retryAfterMs: v.optional(v.number()),
    /** Only calls for this instance fail (a health probe of one tenant); absent: every call. */
    instanceId: v.optional(v.string()),
  }).index("by_operation_and_instanceId", ["operation", "instanceId"]),

  // Stripe events forwarded to the tenant they belong to, signed with its own secret. Queued by
  // stripe.recordStripeEvent (and checkout processing) in the transaction that records the event;
  // sent in `eventCreated` order per tenant by forwarding.ts; listed by GET /admin/deliveries.
  tenantDeliveries: defineTable({
    instanceId: v.id("instances"),
    eventId: v.string(),
    eventType: v.string(),
    /** The event's `created` (ms): the order a tenant receives its events in. */
    eventCreated: v.number(),
    /** The original event body, byte for byte (what Stripe signed; re-signed for the tenant). */
    body: v.string(),
    status: vDeliveryStatus,
    attempts: v.number(),
    /** The tenant's last HTTP status (absent: no answer, see lastError). */
    lastStatus: v.optional(v.number()),
    lastError: v.optional(v.string()),
    lastAttemptAt: v.optional(v.number()),
    nextAttemptAt: v.number(),
    /** Retries stop after this (TENANT_FORWARD_MAX_AGE_MS from queueing or the last redeliver). */
    expiresAt: v.number(),
    /** The send under way and until when it holds the tenant's queue (one send per tenant at a time). */
    inFlight: v.optional(v.object({ token: v.string(), until: v.number() })),
    createdAt: v.number(),
    deliveredAt: v.optional(v.number()),
  })
    .index("by_instanceId_and_status_and_eventCreated", ["instanceId", "status", "eventCreated"])
    .index("by_instanceId_and_eventId", ["instanceId", "eventId"])
    .index("by_status_and_nextAttemptAt", ["status", "nextAttemptAt"])
    // Retention: finished forwards by when they were queued.
    .index("by_status_and_createdAt", ["status", "createdAt"]),

  // Reconciliation runs (daily cron, POST /admin/reconcile): Stripe's subscriptions and completed
  // checkouts compared with the instances. Written by reconciliation.ts; read by getLastRun.
  reconciliationRuns: defineTable({
    startedAt: v.number(),
    finishedAt: v.number(),
    actor: v.string(),
    dryRun: v.boolean(),
    braked: v.boolean(),
    /** Why a run applied nothing though it was not a dry run (the brake, a listing failure). */
    note: v.optional(v.string()),
    subscriptionsSeen: v.number(),
    sessionsSeen: v.number(),
    /** At most the first 500 differences and applications are kept (`total` counts all). */
    total: v.number(),
    differences: v.array(
      v.object({
        type: v.union(
          v.literal("paid_not_provisioned"),
          v.literal("cancelled_still_running"),
          v.literal("status_mismatch"),
          v.literal("unknown_subscription"),
        ),
        subscriptionId: v.optional(v.string()),
        checkoutSessionId: v.optional(v.string()),
        instanceId: v.optional(v.string()),
        action: v.string(),
      }),
    ),
    applied: v.array(
      v.object({ type: v.string(), subscriptionId: v.optional(v.string()), checkoutSessionId: v.optional(v.string()), instanceId: v.optional(v.string()), action: v.string(), result: v.string() }),
    ),
  }).index("by_startedAt", ["startedAt"]),

  // Orphan scans (hourly cron, operators, the admin API): only the newest few are kept.
  // Written by orphans.recordOrphanScan; read by orphans.getLastOrphanScan (dashboard).
  orphanScans: defineTable(vOrphanScan).index("by_scannedAt", ["scannedAt"]),

  // Provisioning KPIs per hour and per UTC day (docs/metrics.md). Written only by the metrics
  // rollup (metrics.runRollup, one bounded page per mutation, resumable by phase and cursor);
  // read by metrics.getProvisioningMetrics, which merges buckets and never re-reads their jobs.
  provisioningMetrics: defineTable({
    granularity: v.union(v.literal("hour"), v.literal("day")),
    /** Bucket start (epoch ms, UTC-aligned); the key: one row per granularity and start. */
    start: v.number(),
    end: v.number(),
    /** All phases done: the figures are final and never rewritten. */
    complete: v.boolean(),
    /** The rollup's progress through the bucket: jobs finished, jobs created, then incidents. */
    phase: v.union(v.literal("finished"), v.literal("created"), v.literal("incidents"), v.literal("done")),
    /** The paginate cursor within the phase (null: its first page). */
    cursor: v.union(v.string(), v.null()),
    figures: vMetricFigures,
    updatedAt: v.number(),
  }).index("by_granularity_and_start", ["granularity", "start"]),

  // Encryption-key rotations (POST /admin/encryption/rotate, npm run rotate-encryption-key): one
  // row per target key id, its progress through the tables holding secrets. Written only by
  // secrets.ts (one bounded page per mutation, resumable from `cursor`); read by GET of the route.
  secretRotations: defineTable({
    keyId: v.string(),
    status: vSecretRotationStatus,
    table: vSecretTable,
    /** The paginate cursor within `table` (null: its first page). */
    cursor: v.union(v.string(), v.null()),
    scanned: v.number(),
    reencrypted: v.number(),
    /** Why it stopped (names a key id at most, never a key or a secret). */
    error: v.optional(v.string()),
    startedAt: v.number(),
    updatedAt: v.number(),
    finishedAt: v.optional(v.number()),
  }).index("by_keyId", ["keyId"]),

  // Suspicious activity (issue 11, docs/security.md): one row per block of a source address.
  // Written by security.screenRequest when a detection bucket runs dry; read by the same to
  // refuse a blocked source (its latest row), and by security.listSecurityEvents (operators).
  securityEvents: defineTable({
    at: v.number(),
    kind: vSecurityEventKind,
    /** The source address Convex reported for the request ("unknown" when it reported none). */
    source: v.string(),
    /** What was seen and the block it earned, for operators (never a token or a body). */
    detail: v.string(),
    /** The route the tripping request came to. */
    route: v.string(),
    /** The source's block count in a row (1, 2, ...): its cool-down doubles with each. */
    strike: v.number(),
    blockedUntil: v.number(),
  })
    .index("by_source_and_at", ["source", "at"])
    .index("by_at", ["at"]),
});
