// The workflow app's one route: the same Stripe webhook intake as Brain's (signature check
// with Brain's own verifier, then one mutation that records the event once).
import { httpRouter } from "convex/server";
import { internal } from "./_generated/api";
import { httpAction } from "./_generated/server";
import { loadConfig } from "../../../convex/lib/config";
import { verifyStripeWebhook } from "../../../convex/model/stripeWebhook";

const http = httpRouter();

http.route({
  path: "/stripe/webhook",
  method: "POST",
  handler: httpAction(async (ctx, request) => {
    const config = loadConfig();
    const verified = await verifyStripeWebhook(await request.text(), request.headers.get("stripe-signature"), config.STRIPE_WEBHOOK_SECRET ?? "");
    if (!verified.ok) return new Response(JSON.stringify({ error: { code: verified.code, message: verified.message } }), { status: 400 });
    // Only what a checkout needs: Brain's verifier also reads subscription and routing fields
    // (for the lifecycle and forwarding), which this app has no counterpart for.
    const { eventId, type, livemode, createdAt, checkout } = verified.event;
    const { duplicate } = await ctx.runMutation(internal.checkout.recordStripeEvent, {
      eventId,
      type,
      livemode,
      createdAt,
      ...(checkout ? { checkout } : {}),
    });
    return new Response(JSON.stringify({ received: true, duplicate }), { status: 200, headers: { "content-type": "application/json" } });
  }),
});

export default http;
