// The workflow app's intake and its one domain write at the end, mirroring what Brain keeps
// outside its engine: the event recorded once and processed in a scheduled mutation that makes
// the customer and the instance and starts provisioning (here: the workflow), and the instance
// marked active with its resources when the job is done. Brain's engine-only extras (the job
// document, audit rows, circuits, per-step resource merges) have no counterpart here: they are
// what the benchmark weighs.
import { v } from "convex/values";
import { start } from "@convex-dev/workflow";
import { internal } from "./_generated/api";
import { internalMutation } from "./_generated/server";
import { loadConfig } from "../../../convex/lib/config";
import { vCheckoutSummary, vInstanceResources } from "../../../convex/lib/validators";

export const recordStripeEvent = internalMutation({
  args: { eventId: v.string(), type: v.string(), livemode: v.boolean(), createdAt: v.number(), checkout: v.optional(vCheckoutSummary) },
  returns: v.object({ duplicate: v.boolean() }),
  handler: async (ctx, args) => {
    const existing = await ctx.db
      .query("stripeEvents")
      .withIndex("by_eventId", (q) => q.eq("eventId", args.eventId))
      .unique();
    if (existing) return { duplicate: true };
    const id = await ctx.db.insert("stripeEvents", { ...args, checkoutSessionId: args.checkout?.sessionId, receivedAt: Date.now(), outcome: "received" });
    await ctx.scheduler.runAfter(0, internal.checkout.processStripeEvent, { id });
    return { duplicate: false };
  },
});

export const processStripeEvent = internalMutation({
  args: { id: v.id("stripeEvents") },
  returns: v.null(),
  handler: async (ctx, { id }) => {
    const event = await ctx.db.get("stripeEvents", id);
    const checkout = event?.checkout;
    if (!event || event.processedAt !== undefined || !checkout?.email) return null;
    const existing = await ctx.db
      .query("instances")
      .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", checkout.sessionId))
      .unique();
    if (existing) return null;
    const email = checkout.email.trim().toLowerCase();
    const customerId = await ctx.db.insert("customers", { email, name: checkout.name, stripeCustomerId: checkout.stripeCustomerId, createdAt: Date.now() });
    const plan = checkout.plan ?? loadConfig().DEFAULT_PLAN;
    const instanceId = await ctx.db.insert("instances", {
      customerId,
      checkoutSessionId: checkout.sessionId,
      plan,
      status: "provisioning",
      resources: {},
      createdAt: Date.now(),
    });
    // start() runs the workflow's first pass in this transaction: the first wave is enqueued here.
    await start(ctx, internal.provision.provisionWorkflow, {
      input: { instanceId, correlationId: event.eventId, plan, email, ...(checkout.name ? { customerName: checkout.name } : {}) },
    });
    await ctx.db.patch("stripeEvents", id, { processedAt: Date.now(), outcome: "provisioning_started" });
    return null;
  },
});

/** The workflow's last step, run inline in its final pass: the instance is active, with its resources. */
export const markActive = internalMutation({
  args: { instanceId: v.id("instances"), resources: vInstanceResources },
  returns: v.null(),
  handler: async (ctx, { instanceId, resources }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!instance) return null;
    await ctx.db.patch("instances", instanceId, {
      status: "active",
      activatedAt: Date.now(),
      resources: { ...instance.resources, ...resources },
      ...(resources.pagesSubdomain ? { url: `https://${resources.pagesSubdomain}` } : {}),
    });
    if (resources.workosUserId) await ctx.db.patch("customers", instance.customerId, { workosUserId: resources.workosUserId });
    return null;
  },
});
