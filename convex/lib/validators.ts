// Shapes shared by the schema, function args and returns. Types come from
// `Infer`; nothing here hand-copies a validator.
import { v, type Infer } from "convex/values";
import { literals } from "convex-helpers/validators";

/** Steps of a provision job, in the order they are listed on the status page. */
export const PROVISION_STEP_NAMES = [
  "convexProject",
  "workosOrg",
  "pagesProject",
  "workosUser",
  "configureBackend",
  "configureSite",
  "deployApp",
  "validate",
  "activate",
] as const;

/**
 * Steps of the lifecycle jobs (registry.ts JOB_KINDS says which kind runs which): the
 * deprovision job's deletions (each a provision step's undo, newest first), suspend and
 * resume, and a plan change. Each kind ends in an inline step that settles the instance.
 */
export const LIFECYCLE_STEP_NAMES = [
  "deletePagesProject",
  "deleteWorkosOrg",
  "deleteConvexProject",
  "markDeleted",
  "suspendBackend",
  "deactivateMembers",
  "markSuspended",
  "resumeBackend",
  "reactivateMembers",
  "markResumed",
  "applyPlan",
  "markPlanApplied",
] as const;

export const STEP_NAMES = [...PROVISION_STEP_NAMES, ...LIFECYCLE_STEP_NAMES] as const;
export const vStepName = literals(...STEP_NAMES);
export type StepName = Infer<typeof vStepName>;

/** What a job does to its instance: build it, or one of the lifecycle changes Stripe drives. */
export const vJobKind = literals("provision", "deprovision", "suspend", "resume", "changePlan");
export type JobKind = Infer<typeof vJobKind>;

/** What a lifecycle job needs beyond the instance (a plan change: the plan and its variables). */
export const vJobParams = v.object({
  plan: v.optional(v.string()),
  env: v.optional(v.record(v.string(), v.string())),
});
export type JobParams = Infer<typeof vJobParams>;

export const vProviderName = literals("convex", "workos", "cloudflare", "stripe", "github", "resend", "brain");
export type ProviderName = Infer<typeof vProviderName>;

/** How a step attempt failed: the three adapter classes, a missed deadline, or an operator's cancel. */
export const vFailureClass = literals("transient", "rate_limited", "permanent", "deadline", "cancelled");
export type FailureClass = Infer<typeof vFailureClass>;

export const vStepStatus = literals("pending", "running", "retrying", "waiting", "succeeded", "failed");
export type StepStatus = Infer<typeof vStepStatus>;

export const vJobStatus = literals("queued", "running", "succeeded", "failed");
export type JobStatus = Infer<typeof vJobStatus>;

export const vInstanceStatus = literals(
  "provisioning",
  "active",
  "suspended",
  "deprovisioning",
  "deleted",
  "failed",
);
export type InstanceStatus = Infer<typeof vInstanceStatus>;

/** One probe's verdict (GET /instance-health's `overall`): every check answered, some did not, none did. */
export const vHealthStatus = literals("healthy", "degraded", "down");
export type HealthStatus = Infer<typeof vHealthStatus>;

/** An instance's confirmed health after hysteresis (instances.healthStatus): the roadmap's words. */
export const vInstanceHealthStatus = literals("active", "degraded", "down");
export type InstanceHealthStatus = Infer<typeof vInstanceHealthStatus>;

/** What a health round checks: site and backend every round, the management view on the deep cadence. */
export const HEALTH_CHECK_NAMES = ["site", "backend", "organization", "pages"] as const;
export const vHealthCheckName = literals(...HEALTH_CHECK_NAMES);
export type HealthCheckName = Infer<typeof vHealthCheckName>;

/** One check's latest result. */
export const vCheckResult = v.object({
  ok: v.boolean(),
  at: v.number(),
  detail: v.string(),
  /** Site and backend probes: the response time and HTTP status, when there was an answer. */
  ms: v.optional(v.number()),
  status: v.optional(v.number()),
});
export type CheckResult = Infer<typeof vCheckResult>;

/**
 * One monitored instance inside its health batch (healthBatches.members): what to probe, its
 * confirmed status and the hysteresis streak toward another one, its latest result per check.
 */
export const vHealthMember = v.object({
  instanceId: v.id("instances"),
  /** The correlation id of the Stripe event that provisioned it: its health lines carry it. */
  correlationId: v.optional(v.string()),
  /** The plan its health counts are kept under (moved when the instance changes plan). */
  plan: v.string(),
  /** Confirmed status (after hysteresis); absent until the first check. */
  status: v.optional(vInstanceHealthStatus),
  /** The status the latest checks point to while it differs from `status`, and how many in a row. */
  candidate: v.optional(vInstanceHealthStatus),
  streak: v.number(),
  /** When the current run of failed checks began (the outage's start as Brain saw it). */
  failingSince: v.optional(v.number()),
  /** Confirmed unhealthy since (kept from failingSince when the status turned degraded or down). */
  unhealthySince: v.optional(v.number()),
  /** When this member is next checked (its batch's round, or a confirmation re-check). */
  dueAt: v.number(),
  checkedAt: v.optional(v.number()),
  checks: v.object({
    site: v.optional(vCheckResult),
    backend: v.optional(vCheckResult),
    organization: v.optional(vCheckResult),
    pages: v.optional(vCheckResult),
  }),
  /** The deep sweep's list did not show this member's organization or live Pages deployment: probe it directly. */
  deepSuspect: v.optional(v.array(literals("organization", "pages"))),
  /** The open incident, while there is one. */
  incidentId: v.optional(v.id("incidents")),
  joinedAt: v.number(),
});
export type HealthMember = Infer<typeof vHealthMember>;

export const vIncidentSeverity = literals("degraded", "down");
export type IncidentSeverity = Infer<typeof vIncidentSeverity>;
export const vIncidentStatus = literals("open", "resolved");
export const vAlertType = literals(
  "instance.degraded",
  "instance.down",
  "instance.recovered",
  /** A source address blocked for suspicious activity (docs/security.md). */
  "security.blocked",
  /** An operator notice, not an incident's: a paid checkout refused over a per-customer quota. */
  "checkout.over_quota",
  /** A tenant's deploy-key rotation keeps failing (docs/security.md). */
  "deployKey.rotation_failed",
);
export type AlertType = Infer<typeof vAlertType>;
export const vAlertChannel = literals("email", "webhook");
export type AlertChannel = Infer<typeof vAlertChannel>;

export const vStepError = v.object({ class: vFailureClass, message: v.string(), at: v.number() });

/** One step of the tenant deploy workflow as it reported it (its own step names, not Brain's). */
export const vDeployProgress = v.object({
  name: v.string(),
  state: literals("started", "succeeded", "failed"),
  at: v.number(),
  ms: v.optional(v.number()),
});
export type DeployProgress = Infer<typeof vDeployProgress>;

export const vStepState = v.object({
  name: vStepName,
  status: vStepStatus,
  /** Attempts dispatched so far, over the job's life; each attempt's number identifies it. */
  attempts: v.number(),
  /** `attempts` when a manual retry last reset the budget: the policy counts attempts after it. */
  attemptsBeforeRetry: v.optional(v.number()),
  /** Failures this step waited out while its provider's circuit was open (not counted in its budget). */
  circuitWaits: v.optional(v.number()),
  /** Parked behind its provider's open circuit: nothing is enqueued until a wake-up lets it go. */
  waitingForCircuit: v.optional(v.boolean()),
  /** deployApp: the run its dispatch started, when the provider named it; a report must match. */
  runId: v.optional(v.string()),
  /** The work pool item of the current attempt (cancelled if the job stops before it starts). */
  workId: v.optional(v.string()),
  startedAt: v.optional(v.number()),
  finishedAt: v.optional(v.number()),
  nextAttemptAt: v.optional(v.number()),
  /** When the current attempt counts as dead if it has not reported (the watchdog re-dispatches it). */
  deadlineAt: v.optional(v.number()),
  lastError: v.optional(vStepError),
});
export type StepState = Infer<typeof vStepState>;

/** The retry policy in force for a job (snapshotted when it starts or is retried). */
export const vRetryPolicy = v.object({
  maxAttempts: v.number(),
  baseDelayMs: v.number(),
  maxDelayMs: v.number(),
  jitter: v.number(),
});

export const vJobError = v.object({ step: vStepName, class: vFailureClass, message: v.string() });
export type JobError = Infer<typeof vJobError>;

/** Everything the steps produce about an instance's resources. Secrets are ciphertext. */
export const vInstanceResources = v.object({
  convexProjectId: v.optional(v.string()),
  convexProjectName: v.optional(v.string()),
  convexDeploymentName: v.optional(v.string()),
  convexDeploymentUrl: v.optional(v.string()),
  convexDeployKeyCiphertext: v.optional(v.string()),
  workosOrganizationId: v.optional(v.string()),
  workosUserId: v.optional(v.string()),
  /** The WorkOS invitation to the organization, sent when the customer had no WorkOS user yet (issue #10). */
  workosInvitationId: v.optional(v.string()),
  pagesProjectName: v.optional(v.string()),
  pagesSubdomain: v.optional(v.string()),
  /** The tenant's own Stripe signing secret (whsec_…), generated by Brain: forwards are signed with it. */
  tenantWebhookSecretCiphertext: v.optional(v.string()),
  /** Deprecated: the per-tenant Stripe webhook endpoint of earlier versions (no step makes one now). */
  stripeEndpointId: v.optional(v.string()),
  /** Deprecated: that endpoint's secret. */
  stripeEndpointSecretCiphertext: v.optional(v.string()),
  backendConfiguredAt: v.optional(v.number()),
  siteConfiguredAt: v.optional(v.number()),
  deployRunId: v.optional(v.string()),
  validatedAt: v.optional(v.number()),
});
export type InstanceResources = Infer<typeof vInstanceResources>;

/** What a step action reports. A class instance cannot cross a function boundary, so errors are values. */
export const vStepOutcome = v.union(
  v.object({ kind: v.literal("succeeded"), resources: vInstanceResources }),
  v.object({ kind: v.literal("waiting"), resources: vInstanceResources, deadlineMs: v.number() }),
  v.object({ kind: v.literal("transient"), message: v.string() }),
  v.object({ kind: v.literal("rate_limited"), message: v.string(), retryAfterMs: v.number() }),
  v.object({ kind: v.literal("permanent"), message: v.string(), providerCode: v.optional(v.string()) }),
  v.object({ kind: v.literal("deadline"), message: v.string() }),
);
export type StepOutcome = Infer<typeof vStepOutcome>;

export const vCompensationStatus = literals("scheduled", "running", "done");
export type CompensationStatus = Infer<typeof vCompensationStatus>;

/** What a provision job knows of its customer for its steps (copied at creation). */
export const vJobCustomer = v.object({ email: v.string(), customerName: v.optional(v.string()), plan: v.string() });
export type JobCustomer = Infer<typeof vJobCustomer>;

/** A step action's input: who the instance is for and what the job made so far. */
export const vStepInput = v.object({
  jobId: v.id("provisioningJobs"),
  instanceId: v.id("instances"),
  correlationId: v.string(),
  plan: v.string(),
  email: v.string(),
  customerName: v.optional(v.string()),
  resources: vInstanceResources,
  /** A lifecycle job's parameters (a plan change's variables). */
  params: v.optional(vJobParams),
});

/** One change in a transition's audit row (`auditLogs.more`): the row's own fields, less who and when. */
export const vAuditChange = v.object({
  action: v.string(),
  detail: v.optional(v.string()),
  step: v.optional(vStepName),
  attempt: v.optional(v.number()),
  delayMs: v.optional(v.number()),
  errorClass: v.optional(vFailureClass),
});
export type AuditChange = Infer<typeof vAuditChange>;

/** One entry of the audit trail: who, when, on what, and the change. */
export const vAuditEntry = v.object({
  at: v.number(),
  actor: v.string(),
  jobId: v.optional(v.id("provisioningJobs")),
  instanceId: v.optional(v.id("instances")),
  /** The flow the change belongs to: a Stripe event id, a job's correlation id (absent on rows written before it was kept). */
  correlationId: v.optional(v.string()),
  ...vAuditChange.fields,
  /** The admin token's name, on admin calls (issue 11); never the token. */
  token: v.optional(v.string()),
});

export const vStepContext = v.object({
  jobId: v.id("provisioningJobs"),
  step: vStepName,
  attempt: v.number(),
});
export type StepContext = Infer<typeof vStepContext>;

export const vStripeEventOutcome = literals(
  "received",
  "provisioning_started",
  "already_provisioned",
  "awaiting_payment",
  "payment_failed",
  "ignored",
  "needs_attention",
  /** A subscription change applied to its instance (suspend, resume, plan, deprovision). */
  "applied",
  /** Older than the subscription state the instance already applied: changes nothing. */
  "stale",
);
export type StripeEventOutcome = Infer<typeof vStripeEventOutcome>;

/** The fields of a Checkout Session that Brain keeps (never the whole payload). */
export const vCheckoutSummary = v.object({
  sessionId: v.string(),
  paymentStatus: v.string(),
  stripeCustomerId: v.optional(v.string()),
  email: v.optional(v.string()),
  name: v.optional(v.string()),
  plan: v.optional(v.string()),
  /** The subscription the session started (mode subscription). */
  subscriptionId: v.optional(v.string()),
});
export type CheckoutSummary = Infer<typeof vCheckoutSummary>;

/** Stripe's subscription statuses. */
export const vSubscriptionStatus = literals(
  "incomplete",
  "incomplete_expired",
  "trialing",
  "active",
  "past_due",
  "canceled",
  "unpaid",
  "paused",
);
export type SubscriptionStatus = Infer<typeof vSubscriptionStatus>;

/** The fields of a Subscription Brain acts on (from an event, or a snapshot Stripe returned). */
export const vSubscriptionSummary = v.object({
  subscriptionId: v.string(),
  customerId: v.optional(v.string()),
  status: vSubscriptionStatus,
  /** The first item's price: what PLANS maps to a plan. */
  priceId: v.optional(v.string()),
  /** metadata.instanceId, when the subscription names its instance. */
  instanceId: v.optional(v.string()),
});
export type SubscriptionSummary = Infer<typeof vSubscriptionSummary>;

/** Who an event belongs to: what forwarding and the lifecycle look its tenant up by. */
export const vEventRouting = v.object({
  customerId: v.optional(v.string()),
  subscriptionId: v.optional(v.string()),
  instanceId: v.optional(v.string()),
});
export type EventRouting = Infer<typeof vEventRouting>;

/** The newest subscription state an instance applied: an older event never regresses it. */
export const vAppliedSubscription = v.object({
  subscriptionId: v.string(),
  status: vSubscriptionStatus,
  priceId: v.optional(v.string()),
  /** The event's `created` in ms (a snapshot: when Stripe was asked). */
  createdAt: v.number(),
  /** The event it came from, or `snapshot:<why>` for a state Brain fetched from Stripe. */
  source: v.string(),
});
export type AppliedSubscription = Infer<typeof vAppliedSubscription>;

export const vDeliveryStatus = literals("pending", "delivered", "failed");
export type DeliveryStatus = Infer<typeof vDeliveryStatus>;

export const vResourceCheck = v.object({
  resource: v.string(),
  provider: vProviderName,
  id: v.optional(v.string()),
  ok: v.boolean(),
  detail: v.string(),
});
export type ResourceCheck = Infer<typeof vResourceCheck>;

export const vHealthReport = v.object({
  instanceId: v.id("instances"),
  overall: vHealthStatus,
  checkedAt: v.number(),
  resources: v.array(vResourceCheck),
  /** Why nothing was probed: a suspended or deleted instance is down on purpose (overall is its last known health). */
  skipped: v.optional(v.string()),
});
export type HealthReport = Infer<typeof vHealthReport>;

/** Providers where Brain creates a resource per instance (the registry's owners; tests/registry.test.ts holds them equal). */
export const vOrphanProvider = literals("convex", "workos", "cloudflare", "stripe");
export type OrphanProvider = Infer<typeof vOrphanProvider>;

/** A Brain-tagged resource no live instance references. `resourceId` is what the adapter's delete takes. */
export const vOrphan = v.object({ provider: vOrphanProvider, resourceId: v.string(), name: v.string() });
export type Orphan = Infer<typeof vOrphan>;

/** An orphan cleanup: on a dry run only `wouldDelete` is filled; otherwise `deleted` and `failed`. */
export const vOrphanCleanup = v.object({
  dryRun: v.boolean(),
  deleted: v.array(vOrphan),
  wouldDelete: v.array(vOrphan),
  failed: v.array(v.object({ provider: vOrphanProvider, resourceId: v.string(), name: v.string(), message: v.string() })),
});
export type OrphanCleanup = Infer<typeof vOrphanCleanup>;

/** What an orphan scan needs to know of the instance a resource names (null: no such instance). */
export const vInstanceRef = v.object({
  status: vInstanceStatus,
  /** The resource id the instance records per provider, when recorded. */
  recorded: v.object({
    convex: v.optional(v.string()),
    workos: v.optional(v.string()),
    cloudflare: v.optional(v.string()),
    stripe: v.optional(v.string()),
  }),
  /** A failed instance whose job's compensation has finished: nothing of it should remain. */
  cleanedUp: v.boolean(),
});
export type InstanceRef = Infer<typeof vInstanceRef>;

/** One stored orphan scan (the newest few are kept for the dashboard). */
export const vOrphanScan = v.object({
  scannedAt: v.number(),
  actor: v.string(),
  /** Orphans found; `orphans` holds at most the first 500 of them. */
  total: v.number(),
  orphans: v.array(vOrphan),
});
export type OrphanScan = Infer<typeof vOrphanScan>;

// Suspicious activity (issue 11, docs/security.md).
/** What tripped a block: a burst of failed signature checks, unknown status session ids, failed admin logins. */
export const vSecurityEventKind = literals("bad_signatures", "session_enumeration", "admin_auth_failures");
export type SecurityEventKind = Infer<typeof vSecurityEventKind>;

/** One event as GET /admin/security-events lists it. */
export const vSecurityEventView = v.object({
  at: v.number(),
  kind: vSecurityEventKind,
  source: v.string(),
  detail: v.string(),
});
export type SecurityEventView = Infer<typeof vSecurityEventView>;
