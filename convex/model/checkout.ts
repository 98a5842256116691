// A paid checkout becomes a customer, an instance and its provisioning job, in the
// caller's one mutation. Keyed by checkout session id, so a redelivered or
// out-of-order event finds the instance it already made.
import type { Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import { providerMode, type Config } from "../lib/config";
import type { CheckoutSummary, StripeEventOutcome } from "../lib/validators";
import { appendAudit } from "./audit";
import { startFailedJob, startProvisionJob } from "./jobs";
import { queueDeliveries } from "./forwarding";
import { applySubscription, instancesForRouting, resumeWithinGrace } from "./lifecycle";
import { checkoutQuotaBreach, existingCustomer, type QuotaBreach } from "./quotas";

export async function provisionCheckout(
  ctx: MutationCtx,
  config: Config,
  checkout: CheckoutSummary,
  origin: { correlationId: string; actor: string; createdAt: number; pagesCapExceeded?: string },
): Promise<{ outcome: StripeEventOutcome; detail?: string; instanceId?: Id<"instances">; quota?: QuotaBreach }> {
  const existing = await ctx.db
    .query("instances")
    .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", checkout.sessionId))
    .unique();
  if (existing) return { outcome: "already_provisioned", detail: `instance ${existing._id}`, instanceId: existing._id };
  // A customer who resubscribes within the grace gets the same instance back, not a new one.
  const resumed = await resumeWithinGrace(ctx, config, checkout, { createdAt: origin.createdAt, source: origin.correlationId, actor: origin.actor });
  if (resumed) return { outcome: "applied", detail: `resubscribed within the grace: instance ${resumed} resumes`, instanceId: resumed };
  if (!checkout.email) {
    return { outcome: "needs_attention", detail: `paid session ${checkout.sessionId} has no customer email` };
  }
  // Quotas: checked before anything is created, so a refused checkout leaves no row behind.
  const quota = await checkoutQuotaBreach(ctx, config, checkout, checkout.email, Date.now());
  if (quota) return { outcome: "needs_attention", detail: quota.reason, quota };

  const customerId = await findOrCreateCustomer(ctx, checkout, checkout.email, { actor: origin.actor, correlationId: origin.correlationId });
  const plan = checkout.plan ?? config.DEFAULT_PLAN;
  const instanceId = await ctx.db.insert("instances", {
    customerId,
    checkoutSessionId: checkout.sessionId,
    plan,
    status: "provisioning",
    resources: {},
    createdAt: Date.now(),
    ...(checkout.stripeCustomerId ? { stripeCustomerId: checkout.stripeCustomerId } : {}),
    ...(checkout.subscriptionId ? { stripeSubscriptionId: checkout.subscriptionId } : {}),
  });
  await appendAudit(ctx, { actor: origin.actor, correlationId: origin.correlationId, action: "instance.created", instanceId, detail: `plan ${plan}` });
  const customer = await ctx.db.get("customers", customerId);
  const job = {
    instanceId,
    correlationId: origin.correlationId,
    trigger: origin.actor,
    customer: { email: customer!.email, plan, ...(customer!.name !== undefined ? { customerName: customer!.name } : {}) },
  };
  // Checked at intake (by the webhook's action, off every mutation's read set): see pagesCapExceeded.
  const overCap = origin.pagesCapExceeded;
  if (overCap) {
    const jobId = await startFailedJob(ctx, config, { ...job, step: "pagesProject", message: overCap });
    return { outcome: "needs_attention", detail: `job ${jobId}: ${overCap}`, instanceId };
  }
  const jobId = await startProvisionJob(ctx, config, job);
  await catchUpOnSubscription(ctx, config, checkout.subscriptionId, origin.actor);
  return { outcome: "provisioning_started", detail: `job ${jobId}`, instanceId };
}

/**
 * Stripe does not deliver in order: the subscription's events (its own and its invoices') may
 * have come before its checkout, when no instance was theirs (a `deleted` included). Now that
 * the instance exists, the newest subscription state among them is applied (its review waits
 * for the provision job) and their forwards are queued, in `created` order.
 */
async function catchUpOnSubscription(ctx: MutationCtx, config: Config, subscriptionId: string | undefined, actor: string) {
  if (!subscriptionId) return;
  const early = await ctx.db
    .query("stripeEvents")
    .withIndex("by_subscriptionId_and_createdAt", (q) => q.eq("routing.subscriptionId", subscriptionId))
    .order("desc")
    .take(20);
  const newest = early.find((event) => event.subscription !== undefined);
  if (newest?.subscription) {
    await applySubscription(ctx, config, newest.subscription, { createdAt: newest.createdAt, source: newest.eventId, actor, snapshot: false });
  }
  const tenants = await instancesForRouting(ctx, { subscriptionId });
  for (const event of early.reverse()) {
    if (event.forwardBody !== undefined) {
      await queueDeliveries(ctx, config, { eventId: event.eventId, type: event.type, createdAt: event.createdAt, body: event.forwardBody }, tenants);
    }
  }
}

/** Instance statuses that hold a Pages project (or are about to). Failed ones count only while
 * their project still exists (the cleanup clears `resources.pagesProjectName`). */
const HOLDS_PAGES_PROJECT = ["provisioning", "active", "suspended", "deprovisioning"] as const;

/**
 * Cloudflare caps Pages projects per account. With live Cloudflare, a checkout that would
 * pass the cap fails at once, naming the limit, instead of failing mid-job. Failed
 * instances count until their resources are cleaned up. The checkout at hand counts as one more.
 * It runs as a query from the webhook's HTTP action, so the instances it counts are in no
 * mutation's read set (a count inside event processing would collide with every other
 * checkout). Two checkouts at the very edge may both pass; Cloudflare's own refusal
 * (a permanent error at pagesProject) then fails the second, which is cleaned up.
 */
export async function pagesCapExceeded(ctx: QueryCtx, config: Config): Promise<string | null> {
  if (providerMode(config, "cloudflare") !== "live") return null;
  const limit = config.CLOUDFLARE_PAGES_PROJECT_LIMIT;
  // The checkout being received is not an instance yet: it counts as one more.
  let inUse = 1;
  for (const status of [...HOLDS_PAGES_PROJECT, "failed" as const]) {
    const rows = await ctx.db
      .query("instances")
      .withIndex("by_status_and_pagesProjectName", (q) =>
        status === "failed" ? q.eq("status", status).gte("resources.pagesProjectName", "") : q.eq("status", status),
      )
      .take(limit + 1 - inUse);
    inUse += rows.length;
    if (inUse > limit) {
      return `Cloudflare Pages project limit reached: the account allows ${limit} projects (CLOUDFLARE_PAGES_PROJECT_LIMIT) and all are in use`;
    }
  }
  return null;
}

async function findOrCreateCustomer(ctx: MutationCtx, checkout: CheckoutSummary, email: string, origin: { actor: string; correlationId: string }) {
  const normalizedEmail = email.trim().toLowerCase();
  const found = await existingCustomer(ctx, checkout, normalizedEmail);
  if (found) {
    if (!found.stripeCustomerId && checkout.stripeCustomerId) {
      await ctx.db.patch("customers", found._id, { stripeCustomerId: checkout.stripeCustomerId });
      await appendAudit(ctx, { actor: origin.actor, correlationId: origin.correlationId, action: "customer.updated", detail: `customer ${found._id}: Stripe customer recorded` });
    }
    return found._id;
  }
  const customerId = await ctx.db.insert("customers", {
    email: normalizedEmail,
    name: checkout.name,
    stripeCustomerId: checkout.stripeCustomerId,
    createdAt: Date.now(),
  });
  // Never the address itself: the audit trail names the customer by id.
  await appendAudit(ctx, { actor: origin.actor, correlationId: origin.correlationId, action: "customer.created", detail: `customer ${customerId}` });
  return customerId;
}
