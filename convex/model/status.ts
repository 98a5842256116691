// The customer's view of their own instance, looked up by the checkout session id
// they come back with. It carries nothing about anyone else, and no secrets.
import { v, type Infer } from "convex/values";
import { literals } from "convex-helpers/validators";
import type { Doc } from "../_generated/dataModel";
import type { QueryCtx } from "../_generated/server";
import { vJobError, vStepName, vStepStatus, vFailureClass } from "../lib/validators";
import { currentStepName, estimateReadyAt, recentStepEstimates } from "./eta";

export const vPublicStatus = literals("pending", "provisioning", "ready", "failed", "suspended", "deleted");

export const vStatusView = v.object({
  status: vPublicStatus,
  progress: v.object({ currentStep: v.number(), totalSteps: v.number(), percent: v.number() }),
  /** The step in progress (the first in registry order when several run), or null. */
  currentStepName: v.union(vStepName, v.null()),
  /** Estimated milliseconds left (0 once ready), or null when unknown (no job yet, failed, suspended, deleted). */
  etaMs: v.union(v.number(), v.null()),
  /** When the instance should be ready (epoch ms; when it was, once ready), or null when unknown. */
  estimatedReadyAt: v.union(v.number(), v.null()),
  steps: v.array(
    v.object({
      name: vStepName,
      status: vStepStatus,
      attempts: v.number(),
      startedAt: v.optional(v.number()),
      finishedAt: v.optional(v.number()),
      nextAttemptAt: v.optional(v.number()),
      lastError: v.optional(v.object({ class: vFailureClass, message: v.string() })),
    }),
  ),
  instanceUrl: v.optional(v.string()),
  jobId: v.union(v.id("provisioningJobs"), v.null()),
  instanceId: v.union(v.id("instances"), v.null()),
  error: v.optional(vJobError),
  message: v.string(),
});
export type StatusView = Infer<typeof vStatusView>;

const MESSAGES = {
  pending: "Your payment was received; setting up your instance starts in a moment. This page refreshes itself.",
  paymentFailed: "Your payment did not go through, so nothing was set up. Please try the checkout again.",
  queued: "Your payment was received; your instance is next in line to be set up. This page refreshes itself.",
  needsAttention: "Your payment was received, but we could not start setting up your instance. Our team has been told and will contact you.",
  awaitingPayment: "We are waiting for your payment to clear; setting up your instance starts as soon as it does.",
  provisioning: "Your instance is being set up. This page refreshes itself.",
  ready: "Your instance is ready.",
  failed: "Setting up your instance failed. Our team has been told; contact support if you need help now.",
  suspended: "Your instance is suspended because its subscription is not active. Update your billing to restore access.",
  deleted: "Your instance was deleted after its subscription ended.",
} as const;

/** A Stripe checkout session id's shape (`cs_test_…`, `cs_live_…`): checked before any read by the public query. */
export const isCheckoutSessionId = (id: string) => /^[A-Za-z0-9_-]{1,255}$/.test(id);

const NO_ESTIMATE = { currentStepName: null, etaMs: null, estimatedReadyAt: null } as const;

/**
 * The customer's view of a checkout session. `now` is the time the estimate is measured from;
 * a reactive query passes none (it must not read the clock), and the estimate is then taken
 * as of the job's last change (`updatedAt`): subscribers count down from `estimatedReadyAt`.
 */
export async function buildStatusView(ctx: QueryCtx, sessionId: string, now?: number): Promise<StatusView | null> {
  const instance = await ctx.db
    .query("instances")
    .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
    .unique();
  if (!instance) {
    // The newest by Stripe's `created`, not the last one received: Stripe does not promise
    // delivery order, and a late `completed` must not hide a newer `async_payment_failed`.
    const event = await ctx.db
      .query("stripeEvents")
      .withIndex("by_checkoutSessionId_and_createdAt", (q) => q.eq("checkoutSessionId", sessionId))
      .order("desc")
      .first();
    if (!event) return null;
    const paymentFailed = event.outcome === "payment_failed";
    if (event.outcome === "needs_attention") {
      return {
        status: "failed",
        progress: { currentStep: 0, totalSteps: 0, percent: 0 },
        ...NO_ESTIMATE,
        steps: [],
        jobId: null,
        instanceId: null,
        message: MESSAGES.needsAttention,
      };
    }
    return {
      status: paymentFailed ? "failed" : "pending",
      progress: { currentStep: 0, totalSteps: 0, percent: 0 },
      ...NO_ESTIMATE,
      steps: [],
      jobId: null,
      instanceId: null,
      message: paymentFailed
        ? MESSAGES.paymentFailed
        : event.outcome === "awaiting_payment"
          ? MESSAGES.awaitingPayment
          : MESSAGES.pending,
    };
  }
  // The provision job: suspensions and plan changes that followed are not the customer's progress.
  const job = await ctx.db
    .query("provisioningJobs")
    .withIndex("by_instanceId_and_kind", (q) => q.eq("instanceId", instance._id).eq("kind", "provision"))
    .order("desc")
    .first();
  if (!job) {
    return {
      status: "pending",
      progress: { currentStep: 0, totalSteps: 0, percent: 0 },
      ...NO_ESTIMATE,
      steps: [],
      jobId: null,
      instanceId: instance._id,
      message: MESSAGES.provisioning,
    };
  }
  // Stripe's word outlives the provision job: a suspended or deleted instance says so.
  const lifecycle =
    instance.status === "deleted" ? "deleted" : instance.status === "suspended" || instance.status === "deprovisioning" ? "suspended" : null;
  const status =
    lifecycle ??
    (job.status === "succeeded"
      ? "ready"
      : job.status === "failed"
        ? "failed"
        : job.status === "queued"
          ? "pending"
          : "provisioning");
  const estimate = await estimateFor(ctx, job, status, now ?? job.updatedAt);
  return {
    status,
    progress: {
      currentStep: job.currentStep,
      totalSteps: job.totalSteps,
      percent: Math.round((100 * job.currentStep) / job.totalSteps),
    },
    ...estimate,
    steps: job.steps.map((s) => ({
      name: s.name,
      status: s.status,
      attempts: s.attempts,
      startedAt: s.startedAt,
      finishedAt: s.finishedAt,
      nextAttemptAt: s.nextAttemptAt,
      lastError: s.lastError ? { class: s.lastError.class, message: s.lastError.message } : undefined,
    })),
    ...(status === "ready" && instance.url ? { instanceUrl: instance.url } : {}),
    jobId: job._id,
    instanceId: instance._id,
    ...(status === "failed" && job.error ? { error: job.error } : {}),
    message: job.status === "queued" && !lifecycle ? MESSAGES.queued : MESSAGES[status],
  };
}

/**
 * Ready: no time left. Pending or provisioning: the estimate from recent step durations (read
 * only then, so a finished job's view does not re-run whenever another job finishes).
 */
async function estimateFor(
  ctx: QueryCtx,
  job: Doc<"provisioningJobs">,
  status: StatusView["status"],
  asOf: number,
): Promise<Pick<StatusView, "currentStepName" | "etaMs" | "estimatedReadyAt">> {
  if (status === "ready") return { currentStepName: null, etaMs: 0, estimatedReadyAt: job.finishedAt ?? asOf };
  if (status !== "pending" && status !== "provisioning") return NO_ESTIMATE;
  const readyAt = estimateReadyAt(job.steps, await recentStepEstimates(ctx), asOf);
  return {
    currentStepName: currentStepName(job.steps),
    etaMs: readyAt === null ? null : Math.max(0, readyAt - asOf),
    estimatedReadyAt: readyAt,
  };
}
