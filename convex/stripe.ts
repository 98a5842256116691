// Stripe intake. The webhook route verifies the signature and calls recordStripeEvent,
// which stores each event id once, queues its forward to the tenant it belongs to and
// schedules processing in the same transaction; processStripeEvent then turns a paid checkout
// into customer + instance + job, and a subscription change into the instance's lifecycle.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalMutation, internalQuery } from "./_generated/server";
import { loadConfig, requireLiveCredentials, type Config } from "./lib/config";
import { isBrainError } from "./lib/errors";
import { log, cronBatch } from "./lib/log";
import { vCheckoutSummary, vEventRouting, vStripeEventOutcome, vSubscriptionSummary } from "./lib/validators";
import { appendAudit } from "./model/audit";
import { pagesCapExceeded, provisionCheckout } from "./model/checkout";
import { queueDeliveries } from "./model/forwarding";
import { applySubscription, instancesForRouting } from "./model/lifecycle";

/** Inserts the event if its id is new and schedules its processing. Duplicates change nothing. */
export const recordStripeEvent = internalMutation({
  args: {
    eventId: v.string(),
    type: v.string(),
    livemode: v.boolean(),
    createdAt: v.number(),
    checkout: v.optional(vCheckoutSummary),
    subscription: v.optional(vSubscriptionSummary),
    routing: v.optional(vEventRouting),
    pagesCapExceeded: v.optional(v.string()),
    /** The original body, when the event's type is forwarded to tenants. */
    body: v.optional(v.string()),
  },
  returns: v.object({ duplicate: v.boolean() }),
  handler: async (ctx, { body, ...args }) => {
    const existing = await ctx.db
      .query("stripeEvents")
      .withIndex("by_eventId", (q) => q.eq("eventId", args.eventId))
      .unique();
    if (existing) return { duplicate: true };
    // Forwards are queued here, with the event: a tenant never misses one Brain recorded.
    // Reads: the event id, and the few instances the event names (its tenant's rows only).
    const tenants = body === undefined ? [] : await instancesForRouting(ctx, args.routing);
    const id = await ctx.db.insert("stripeEvents", {
      ...args,
      checkoutSessionId: args.checkout?.sessionId,
      receivedAt: Date.now(),
      outcome: "received",
      // A first checkout's tenant does not exist yet: its forward waits for the instance.
      ...(body !== undefined && tenants.length === 0 ? { forwardBody: body } : {}),
    });
    if (body !== undefined && tenants.length > 0) {
      await queueDeliveries(ctx, loadConfig(), { eventId: args.eventId, type: args.type, createdAt: args.createdAt, body }, tenants);
    }
    await ctx.scheduler.runAfter(0, internal.stripe.processStripeEvent, { id });
    return { duplicate: false };
  },
});

const PAID = new Set(["paid", "no_payment_required"]);

/**
 * Acts on one recorded event, once. Checkout events for paid sessions provision
 * (idempotently by session id, so out-of-order and redelivered events converge);
 * an unpaid session waits for checkout.session.async_payment_succeeded.
 */
export const processStripeEvent = internalMutation({
  args: { id: v.id("stripeEvents") },
  returns: v.null(),
  handler: async (ctx, { id }) => {
    const event = await ctx.db.get("stripeEvents", id);
    if (!event || event.processedAt !== undefined) return null;
    const actor = `stripe:${event.eventId}`;
    let outcome: typeof event.outcome = "ignored";
    let detail: string | undefined;

    const checkout = event.checkout;
    if (checkout && (event.type === "checkout.session.completed" || event.type === "checkout.session.async_payment_succeeded")) {
      const paid = event.type === "checkout.session.async_payment_succeeded" || PAID.has(checkout.paymentStatus);
      if (!paid) {
        outcome = "awaiting_payment";
        detail = `payment_status ${checkout.paymentStatus}`;
      } else {
        let config: Config;
        try {
          config = loadConfig();
          requireLiveCredentials(config);
        } catch (error) {
          // A bad configuration must not lose a paid customer: keep the event visible to operators.
          const message = isBrainError(error) ? error.data.message : String(error);
          await ctx.db.patch("stripeEvents", id, { processedAt: Date.now(), outcome: "needs_attention", detail: message });
          await appendAudit(ctx, { actor, action: "stripe.needs_attention", detail: message });
          return null;
        }
        const result = await provisionCheckout(ctx, config, checkout, {
          correlationId: event.eventId,
          actor,
          createdAt: event.createdAt,
          pagesCapExceeded: event.pagesCapExceeded,
        });
        outcome = result.outcome;
        detail = result.detail;
        if (result.instanceId && event.forwardBody !== undefined) {
          await queueDeliveries(ctx, config, { eventId: event.eventId, type: event.type, createdAt: event.createdAt, body: event.forwardBody }, [result.instanceId]);
        }
      }
    } else if (checkout && event.type === "checkout.session.async_payment_failed") {
      outcome = "payment_failed";
      detail = `session ${checkout.sessionId}`;
    } else if (event.subscription) {
      const config = loadConfig();
      const result = await applySubscription(ctx, config, event.subscription, {
        createdAt: event.createdAt,
        source: event.eventId,
        actor,
        snapshot: false,
      });
      outcome = result.outcome;
      detail = result.detail;
      if (result.tie) {
        await ctx.scheduler.runAfter(0, internal.lifecycle.resolveSubscriptionTie, {
          subscriptionId: event.subscription.subscriptionId,
          correlationId: event.eventId,
        });
      }
    }

    await ctx.db.patch("stripeEvents", id, { processedAt: Date.now(), outcome, detail });
    if (outcome === "needs_attention") {
      await appendAudit(ctx, { actor, action: "stripe.needs_attention", detail });
    }
    log(outcome === "needs_attention" ? "warn" : "info", "webhook.processed", {
      correlationId: event.eventId,
      type: event.type,
      outcome,
    });
    return null;
  },
});

/**
 * Cron: an event recorded but never processed (its processing failed, say) is processed again.
 * Processing is idempotent per event, so this can only finish what was left undone.
 */
export const reprocessStaleEvents = internalMutation({
  args: {},
  returns: v.number(),
  handler: cronBatch("stripe.reprocessStaleEvents", async (ctx) => {
    const stale = await ctx.db
      .query("stripeEvents")
      .withIndex("by_outcome_and_receivedAt", (q) => q.eq("outcome", "received").lt("receivedAt", Date.now() - 5 * 60_000))
      .take(100);
    for (const event of stale) await ctx.scheduler.runAfter(0, internal.stripe.processStripeEvent, { id: event._id });
    return stale.length;
  }),
});

/** Dashboard: one event's record by its Stripe id. */
export const getStripeEvent = internalQuery({
  args: { eventId: v.string() },
  returns: v.union(
    v.null(),
    v.object({ eventId: v.string(), type: v.string(), outcome: vStripeEventOutcome, detail: v.optional(v.string()), receivedAt: v.number(), processedAt: v.optional(v.number()) }),
  ),
  handler: async (ctx, { eventId }) => {
    const event = await ctx.db
      .query("stripeEvents")
      .withIndex("by_eventId", (q) => q.eq("eventId", eventId))
      .unique();
    if (!event) return null;
    const { type, outcome, detail, receivedAt, processedAt } = event;
    return { eventId, type, outcome, detail, receivedAt, processedAt };
  },
});

/** Webhook intake (live Cloudflare): the Pages cap message if the account is full, else null. */
export const checkPagesCap = internalQuery({
  args: {},
  returns: v.union(v.null(), v.string()),
  handler: async (ctx) => pagesCapExceeded(ctx, loadConfig()),
});
