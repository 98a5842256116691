// The lifecycle's function surface: reviews of an instance (scheduled when a job ends, when a
// clock runs out, and by a cron backstop), the same-second tie-break through Stripe, snapshots
// applied by reconciliation, and the operator's deprovision. The rules are in model/lifecycle*.ts.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalAction, internalMutation } from "./_generated/server";
import { retryDelayMs } from "./lib/backoff";
import { loadConfig, retryPolicy } from "./lib/config";
import { log, cronBatch } from "./lib/log";
import { vStripeEventOutcome, vSubscriptionSummary } from "./lib/validators";
import { applySubscription, deprovisionNow, reviewInstance as review } from "./model/lifecycle";
import { providersFor } from "./providers";
import { outcomeForError } from "./providers/classify";

const ACTOR = "system:lifecycle";

/** Moves one instance toward where its subscription says it should be (one job at a time). */
export const reviewInstance = internalMutation({
  args: { instanceId: v.id("instances") },
  returns: v.null(),
  handler: async (ctx, { instanceId }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (instance) await review(ctx, loadConfig(), instance, ACTOR);
    return null;
  },
});

/** Cron backstop: instances whose grace ran out are reviewed (their own timers normally do it). */
export const reviewDueDeprovisions = internalMutation({
  args: {},
  returns: v.number(),
  handler: cronBatch("lifecycle.reviewDueDeprovisions", async (ctx) => {
    const due = await ctx.db
      .query("instances")
      .withIndex("by_deprovisionAt", (q) => q.gte("deprovisionAt", 0).lte("deprovisionAt", Date.now()))
      .take(100);
    for (const instance of due) await ctx.scheduler.runAfter(0, internal.lifecycle.reviewInstance, { instanceId: instance._id });
    return due.length;
  }),
});

/** Applies a subscription as Stripe returned it (a snapshot: the truth when it was taken). */
export const applySubscriptionSnapshot = internalMutation({
  args: { subscription: vSubscriptionSummary, observedAt: v.number(), actor: v.string() },
  returns: v.object({ outcome: vStripeEventOutcome, detail: v.string(), instanceId: v.optional(v.id("instances")) }),
  handler: async (ctx, { subscription, observedAt, actor }) => {
    const { tie: _tie, ...result } = await applySubscription(ctx, loadConfig(), subscription, {
      createdAt: observedAt,
      source: `snapshot:${actor}`,
      actor,
      snapshot: true,
    });
    return result;
  },
});

/**
 * Two events of one subscription in the same second cannot be ordered by `created`: Stripe's
 * current subscription decides (subscriptions.retrieve), applied as a snapshot.
 */
export const resolveSubscriptionTie = internalAction({
  args: { subscriptionId: v.string(), correlationId: v.string(), attempt: v.optional(v.number()) },
  returns: v.null(),
  handler: async (ctx, { subscriptionId, correlationId, attempt = 1 }) => {
    const config = loadConfig();
    const providers = providersFor({ ctx, config, correlationId });
    const observedAt = Date.now();
    let snapshot;
    try {
      snapshot = await providers.stripe.retrieveSubscription({ subscriptionId });
    } catch (error) {
      // Stripe did not answer: ask again with the engine's backoff (the daily reconciliation backs this up).
      const { outcome } = outcomeForError(error);
      const retry = attempt < config.RETRY_MAX_ATTEMPTS && outcome.kind !== "permanent";
      log("warn", "lifecycle.tie_fetch_failed", { correlationId, subscriptionId, attempt, outcome: outcome.kind, retry });
      if (retry) {
        const delayMs = retryDelayMs(retryPolicy(config), attempt, outcome.kind === "rate_limited" ? outcome.retryAfterMs : undefined);
        await ctx.scheduler.runAfter(delayMs, internal.lifecycle.resolveSubscriptionTie, { subscriptionId, correlationId, attempt: attempt + 1 });
      }
      return null;
    }
    if (!snapshot) {
      log("warn", "lifecycle.tie_unresolved", { correlationId, subscriptionId });
      return null;
    }
    const { created: _created, ...subscription } = snapshot;
    await ctx.runMutation(internal.lifecycle.applySubscriptionSnapshot, { subscription, observedAt, actor: `stripe:snapshot:${correlationId}` });
    return null;
  },
});

/** POST /deprovision/:instanceId: deprovision now, refused while a job of the instance runs. */
export const deprovisionInstance = internalMutation({
  args: { instanceId: v.string(), actor: v.string() },
  returns: v.union(
    v.object({ kind: v.literal("deprovisioning"), instanceId: v.id("instances") }),
    v.object({
      kind: v.literal("refused"),
      code: v.union(v.literal("NOT_FOUND"), v.literal("JOB_ALREADY_RUNNING"), v.literal("INSTANCE_DELETED")),
      message: v.string(),
    }),
  ),
  handler: async (ctx, { instanceId, actor }) => deprovisionNow(ctx, loadConfig(), instanceId, actor),
});
