// Brain's tables. Each says who writes it and who reads it; every read path has an index.
import { defineSchema, defineTable } from "convex/server";
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
} from "./lib/validators";

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
  })
    .index("by_eventId", ["eventId"])
    .index("by_checkoutSessionId_and_createdAt", ["checkoutSessionId", "createdAt"])
    .index("by_outcome_and_receivedAt", ["outcome", "receivedAt"]),

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
    healthStatus: v.optional(vHealthStatus),
    lastHealthCheckAt: v.optional(v.number()),
    unhealthySince: v.optional(v.number()),
    createdAt: v.number(),
    activatedAt: v.optional(v.number()),
  })
    .index("by_checkoutSessionId", ["checkoutSessionId"])
    .index("by_customerId", ["customerId"])
    .index("by_status_and_pagesProjectName", ["status", "resources.pagesProjectName"]),

  // The job engine's state: one document per job, its steps inline (ten, bounded).
  // Written only by provisioning mutations; read by the step actions, status page and operators.
  provisioningJobs: defineTable({
    instanceId: v.id("instances"),
    kind: v.literal("provision"),
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
    /** When the job last entered `queued`; admission takes jobs queued over a segment ago. */
    queuedAt: v.optional(v.number()),
    createdAt: v.number(),
    updatedAt: v.number(),
    finishedAt: v.optional(v.number()),
  })
    .index("by_instanceId", ["instanceId"])
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
    .index("by_status_and_queuedAt", ["status", "queuedAt"]),

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
    .index("by_status_and_nextAttemptAt", ["status", "nextAttemptAt"]),

  // Append-only: written by audit.append from every job transition and admin call;
  // read by operators. No function updates or deletes it.
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
    .index("by_action", ["action"]),

  // Health history: written by monitoring.checkInstanceHealth; read by operators.
  healthChecks: defineTable({
    instanceId: v.id("instances"),
    at: v.number(),
    overall: vHealthStatus,
    failing: v.array(v.string()),
    trigger: v.string(),
  }).index("by_instanceId", ["instanceId"]),

  // WorkOS user ids by email, so a lookup inside the TTL does not call WorkOS again.
  // Written and read by providers/workos.ts through providerCache.ts.
  workosUserCache: defineTable({
    email: v.string(),
    userId: v.string(),
    cachedAt: v.number(),
  }).index("by_email", ["email"]),

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
  }).index("by_signature", ["signature"]),

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
  }).index("by_operation", ["operation"]),

  // Orphan scans (hourly cron, operators, the admin API): only the newest few are kept.
  // Written by orphans.recordOrphanScan; read by orphans.getLastOrphanScan (dashboard).
  orphanScans: defineTable(vOrphanScan).index("by_scannedAt", ["scannedAt"]),
});
