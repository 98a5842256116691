// The tenant's life after provisioning, driven by Stripe: a subscription's state is applied to
// its instance (never older over newer), and the instance is moved to where it should be by a
// lifecycle job on the same engine (suspend, resume, plan change, deprovision). One job of an
// instance runs at a time; when it ends, the instance is reviewed again (jobs.ts syncInstance).
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import type { Config } from "../lib/config";
import { log } from "../lib/log";
import type { EventRouting, StripeEventOutcome, SubscriptionSummary } from "../lib/validators";
import { appendAudit } from "./audit";
import { retryFailedJob, scheduleLifecycleReview, startLifecycleJob } from "./jobs";
import { compareWithApplied, hasEnded, keepsAccess, nextLifecycleJob } from "./lifecycleRules";
import { planForPrice } from "./steps";

type Instance = Doc<"instances">;

/** The newest job of an instance, whatever its kind. */
export const latestJob = (ctx: QueryCtx, instanceId: Id<"instances">) =>
  ctx.db
    .query("provisioningJobs")
    .withIndex("by_instanceId", (q) => q.eq("instanceId", instanceId))
    .order("desc")
    .first();

const inProgress = (job: Doc<"provisioningJobs"> | null) => job !== null && (job.status === "queued" || job.status === "running");

/** Instances of a Stripe customer that still exist (bounded: a customer has a handful). */
async function instancesOfCustomer(ctx: QueryCtx, customerId: string): Promise<Instance[]> {
  const rows = await ctx.db
    .query("instances")
    .withIndex("by_stripeCustomerId", (q) => q.eq("stripeCustomerId", customerId))
    .take(50);
  return rows.filter((i) => i.status !== "deleted");
}

/** An instance whose subscription ended and that waits out its grace: a new subscription resumes it. */
const inGrace = (instance: Instance) => instance.deprovisionAt !== undefined && instance.status !== "deleted";

/**
 * The instance a subscription belongs to: the one its metadata names, the one paid by it, or
 * (a new subscription of the customer) the customer's instance in its grace period, or the one
 * whose checkout carried no subscription id. Null when none: the event is not a tenant's yet.
 */
export async function instanceForSubscription(ctx: QueryCtx, subscription: SubscriptionSummary): Promise<Instance | null> {
  if (subscription.instanceId) {
    const id = ctx.db.normalizeId("instances", subscription.instanceId);
    const named = id ? await ctx.db.get("instances", id) : null;
    if (named) return named;
  }
  const paidBy = await ctx.db
    .query("instances")
    .withIndex("by_stripeSubscriptionId", (q) => q.eq("stripeSubscriptionId", subscription.subscriptionId))
    .first();
  if (paidBy) return paidBy;
  if (!subscription.customerId) return null;
  const ofCustomer = await instancesOfCustomer(ctx, subscription.customerId);
  if (keepsAccess(subscription.status)) {
    const waiting = ofCustomer.find(inGrace);
    if (waiting) return waiting;
  }
  return ofCustomer.find((i) => i.stripeSubscriptionId === undefined) ?? null;
}

/**
 * The instances an event belongs to: the one `metadata.instanceId` names, else those paid by its
 * subscription, else the customer's. An event never reaches a tenant it does not belong to:
 * with a subscription id, only that subscription's instance counts.
 */
export async function instancesForRouting(ctx: QueryCtx, routing: EventRouting | undefined): Promise<Id<"instances">[]> {
  if (!routing) return [];
  if (routing.instanceId) {
    const id = ctx.db.normalizeId("instances", routing.instanceId);
    const named = id ? await ctx.db.get("instances", id) : null;
    if (named && named.status !== "deleted") return [named._id];
  }
  if (routing.subscriptionId) {
    const paidBy = await ctx.db
      .query("instances")
      .withIndex("by_stripeSubscriptionId", (q) => q.eq("stripeSubscriptionId", routing.subscriptionId))
      .take(5);
    const live = paidBy.filter((i) => i.status !== "deleted");
    if (live.length > 0) return live.map((i) => i._id);
    // A new subscription of a customer in grace is routed by customer below.
  }
  if (!routing.customerId) return [];
  const ofCustomer = await instancesOfCustomer(ctx, routing.customerId);
  if (routing.subscriptionId) {
    // An event of a subscription no instance is paid by yet: the customer's one waiting for it.
    const waiting = ofCustomer.filter((i) => inGrace(i) || i.stripeSubscriptionId === undefined);
    return waiting.length === 1 ? [waiting[0]._id] : [];
  }
  return ofCustomer.map((i) => i._id);
}

export type ApplyResult = { outcome: StripeEventOutcome; detail: string; instanceId?: Id<"instances">; tie?: boolean };

/**
 * Applies a subscription's state to its instance, unless an older event or an equal one:
 * records it, sets or clears the past-due and deprovision clocks, queues a plan change, and moves
 * the instance at once (lifecycle review). A same-second event with another state is a tie: the
 * caller fetches Stripe's snapshot and applies that (`tie: true`).
 */
export async function applySubscription(
  ctx: MutationCtx,
  config: Config,
  subscription: SubscriptionSummary,
  at: { createdAt: number; source: string; actor: string; snapshot: boolean },
): Promise<ApplyResult> {
  const instance = await instanceForSubscription(ctx, subscription);
  if (!instance) return { outcome: "ignored", detail: `no instance for subscription ${subscription.subscriptionId}` };
  if (instance.status === "deleted") return { outcome: "ignored", detail: `instance ${instance._id} is deleted`, instanceId: instance._id };
  const now = Date.now();
  const switching = instance.subscription !== undefined && instance.subscription.subscriptionId !== subscription.subscriptionId;
  if (switching && !(inGrace(instance) && keepsAccess(subscription.status)) && !subscription.instanceId) {
    // The customer's other subscription: it is not this instance's while this one is paid by its own.
    return { outcome: "ignored", detail: `instance ${instance._id} is paid by ${instance.subscription!.subscriptionId}`, instanceId: instance._id };
  }
  const verdict = compareWithApplied(instance.subscription, { subscription, createdAt: at.createdAt, snapshot: at.snapshot });
  if (verdict === "stale") {
    return { outcome: "stale", detail: `older than the ${instance.subscription!.status} state applied from ${instance.subscription!.source}`, instanceId: instance._id };
  }
  if (verdict === "same") return { outcome: "ignored", detail: "the state already applied", instanceId: instance._id };
  if (verdict === "tie") {
    return { outcome: "applied", detail: "same second as the state applied: Stripe's snapshot decides", instanceId: instance._id, tie: true };
  }

  // A price change needs a plan Brain knows: an unknown price changes nothing at all.
  const previousPrice = instance.subscription?.subscriptionId === subscription.subscriptionId ? instance.subscription.priceId : undefined;
  let pendingPlan = instance.pendingPlan;
  if (subscription.priceId && subscription.priceId !== previousPrice) {
    const plan = planForPrice(config, subscription.priceId);
    if (!plan && previousPrice !== undefined) {
      await appendAudit(ctx, { actor: at.actor, correlationId: at.source, action: "instance.unknown_price", instanceId: instance._id, detail: subscription.priceId });
      return { outcome: "needs_attention", detail: `price ${subscription.priceId} is not in PLANS: nothing changed`, instanceId: instance._id };
    }
    if (plan) pendingPlan = plan.plan === instance.plan ? undefined : { plan: plan.plan, priceId: subscription.priceId };
  }

  const ended = hasEnded(subscription.status);
  const patch: Partial<Instance> = {
    subscription: {
      subscriptionId: subscription.subscriptionId,
      status: subscription.status,
      ...(subscription.priceId ? { priceId: subscription.priceId } : {}),
      createdAt: at.createdAt,
      source: at.source,
    },
    stripeSubscriptionId: subscription.subscriptionId,
    ...(subscription.customerId && !instance.stripeCustomerId ? { stripeCustomerId: subscription.customerId } : {}),
    pastDueSince: subscription.status === "past_due" ? (instance.pastDueSince ?? now) : undefined,
    deprovisionAt: ended ? (instance.deprovisionAt ?? now + config.DEPROVISION_GRACE_MS) : undefined,
    pendingPlan,
  };
  await ctx.db.patch("instances", instance._id, patch);
  const detail = `${subscription.subscriptionId} ${subscription.status}${switching ? " (resubscribed within the grace)" : ""}`;
  await appendAudit(ctx, { actor: at.actor, correlationId: at.source, action: "instance.subscription_applied", instanceId: instance._id, detail });

  // The clocks: a past-due subscription suspends later, an ended one deprovisions after the grace.
  const after = { ...instance, ...patch } as Instance;
  if (after.pastDueSince !== undefined && instance.pastDueSince === undefined) {
    await scheduleLifecycleReview(ctx, instance._id, Math.max(0, after.pastDueSince + config.SUSPEND_AFTER_PAST_DUE_MS - now));
  }
  if (after.deprovisionAt !== undefined && instance.deprovisionAt === undefined && after.deprovisionAt > now) {
    await scheduleLifecycleReview(ctx, instance._id, after.deprovisionAt - now);
  }
  await reviewInstance(ctx, config, after, at.actor);
  return { outcome: "applied", detail, instanceId: instance._id };
}

export type ReviewResult = { kind: "none" | "busy" } | { kind: "started" | "retried"; jobId: Id<"provisioningJobs"> };

/**
 * Moves the instance toward where its subscription says it should be: starts the lifecycle job
 * it needs, or retries that kind's failed job. Nothing while a job of the instance is in progress
 * (its end reviews the instance again).
 */
export async function reviewInstance(ctx: MutationCtx, config: Config, instance: Instance, actor: string): Promise<ReviewResult> {
  const latest = await latestJob(ctx, instance._id);
  if (inProgress(latest)) return { kind: "busy" };
  const now = Date.now();
  const next = nextLifecycleJob(instance, config, now);
  if (next === null) return { kind: "none" };
  // An operator cancelled this very change: it waits for them (POST /retry-provisioning/:jobId).
  if (latest && latest.status === "failed" && latest.kind === next && latest.error?.class === "cancelled") return { kind: "none" };
  if (latest && latest.status === "failed" && latest.kind === next) {
    const retried = await retryFailedJob(ctx, config, latest._id, actor);
    // The retry puts the instance back in the kind's running status (decide: resumeFromInstance).
    if (retried.kind === "retried") return { kind: "retried", jobId: latest._id };
    log("warn", "lifecycle.retry_refused", { correlationId: instance._id, jobId: latest._id, reason: retried.message });
    return { kind: "busy" };
  }
  const params =
    next === "changePlan" && instance.pendingPlan
      ? { plan: instance.pendingPlan.plan, env: planForPrice(config, instance.pendingPlan.priceId)?.env ?? {} }
      : undefined;
  const jobId = await startLifecycleJob(ctx, config, instance, next, {
    trigger: actor,
    correlationId: `${next}:${instance._id}:${now}`,
    ...(params ? { params } : {}),
  });
  return { kind: "started", jobId };
}

export type DeprovisionResult =
  | { kind: "deprovisioning"; instanceId: Id<"instances"> }
  | { kind: "refused"; code: "NOT_FOUND" | "JOB_ALREADY_RUNNING" | "INSTANCE_DELETED"; message: string };

/** Operator: deprovision now (POST /deprovision/:instanceId). One job of an instance at a time. */
export async function deprovisionNow(ctx: MutationCtx, config: Config, rawInstanceId: string, actor: string): Promise<DeprovisionResult> {
  const id = ctx.db.normalizeId("instances", rawInstanceId);
  const instance = id ? await ctx.db.get("instances", id) : null;
  if (!id || !instance) {
    await appendAudit(ctx, { actor, action: "instance.deprovision_refused", detail: `no instance ${rawInstanceId.slice(0, 64)}` });
    return { kind: "refused", code: "NOT_FOUND", message: `no instance ${rawInstanceId}` };
  }
  if (instance.status === "deleted") {
    await appendAudit(ctx, { actor, action: "instance.deprovision_refused", instanceId: id, detail: "already deleted" });
    return { kind: "refused", code: "INSTANCE_DELETED", message: `instance ${id} is already deleted` };
  }
  const latest = await latestJob(ctx, id);
  if (inProgress(latest)) {
    await appendAudit(ctx, { actor, action: "instance.deprovision_refused", instanceId: id, detail: `${latest!.kind} job ${latest!._id} is ${latest!.status}` });
    return { kind: "refused", code: "JOB_ALREADY_RUNNING", message: `a ${latest!.kind} job of instance ${id} is ${latest!.status}; try again when it ends` };
  }
  const now = Date.now();
  await ctx.db.patch("instances", id, { deprovisionAt: now });
  // The same correlation id as the deprovision job reviewInstance starts now.
  await appendAudit(ctx, { actor, correlationId: `deprovision:${id}:${now}`, action: "instance.deprovision_requested", instanceId: id });
  const review = await reviewInstance(ctx, config, { ...instance, deprovisionAt: now }, actor);
  if (review.kind === "none" || review.kind === "busy") {
    return { kind: "refused", code: "JOB_ALREADY_RUNNING", message: `instance ${id} could not start its deprovisioning now` };
  }
  return { kind: "deprovisioning", instanceId: id };
}

/**
 * A paid checkout of a customer whose earlier subscription ended and whose instance waits out its
 * grace: that instance resumes under the new subscription instead of a new one being provisioned.
 * Returns the instance resumed, or null when there is none.
 */
export async function resumeWithinGrace(
  ctx: MutationCtx,
  config: Config,
  checkout: { sessionId: string; stripeCustomerId?: string; subscriptionId?: string },
  at: { createdAt: number; source: string; actor: string },
): Promise<Id<"instances"> | null> {
  // Only a subscription can take over the ended one's instance.
  if (!checkout.stripeCustomerId || !checkout.subscriptionId) return null;
  // The new subscription may have reached the instance first (its own event): the checkout is then its.
  const adopted = await ctx.db
    .query("instances")
    .withIndex("by_stripeSubscriptionId", (q) => q.eq("stripeSubscriptionId", checkout.subscriptionId))
    .first();
  const waiting = adopted ?? (await instancesOfCustomer(ctx, checkout.stripeCustomerId)).find(inGrace);
  if (!waiting || waiting.status === "deleted") return null;
  if (adopted) {
    await ctx.db.patch("instances", waiting._id, { checkoutSessionId: checkout.sessionId });
    await appendAudit(ctx, { actor: at.actor, correlationId: at.source, action: "instance.checkout_adopted", instanceId: waiting._id, detail: `checkout ${checkout.sessionId}` });
    return waiting._id;
  }
  const patch: Partial<Instance> = {
    checkoutSessionId: checkout.sessionId,
    deprovisionAt: undefined,
    pastDueSince: undefined,
    stripeSubscriptionId: checkout.subscriptionId,
    subscription: { subscriptionId: checkout.subscriptionId, status: "active", createdAt: at.createdAt, source: at.source },
  };
  await ctx.db.patch("instances", waiting._id, patch);
  await appendAudit(ctx, { actor: at.actor, correlationId: at.source, action: "instance.resubscribed", instanceId: waiting._id, detail: `checkout ${checkout.sessionId}` });
  await reviewInstance(ctx, config, { ...waiting, ...patch } as Instance, at.actor);
  return waiting._id;
}
