// Verifies and reads a Stripe webhook delivery. Verification uses the stripe SDK's
// async verifier with Web Crypto, so it runs in Convex's default runtime.
import Stripe from "stripe";
import { z } from "zod";
import type { CheckoutSummary, EventRouting, SubscriptionSummary } from "../lib/validators";
import { vSubscriptionStatus } from "../lib/validators";

const cryptoProvider = Stripe.createSubtleCryptoProvider();
/** Stripe's default tolerance for a signature's age, applied both ways. */
const SIGNATURE_TOLERANCE_SECONDS = 300;

const EventShape = z.object({
  // Stripe's ids are a few dozen characters; a bound keeps a (signed) oddity out of every index.
  id: z.string().max(255).regex(/^evt_/, "a Stripe event id starts with evt_"),
  object: z.literal("event"),
  // Stripe's types are dotted lower-case words; anything else (a NUL, say) is not an event type,
  // whereas a well-formed unknown type is still recorded and acknowledged (found by npm run fuzz).
  type: z.string().max(100).regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/, "a Stripe event type is dotted lower-case words"),
  created: z.number().int(),
  livemode: z.boolean(),
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});

const CheckoutSessionShape = z.object({
  id: z.string().max(255).regex(/^cs_/, "a Checkout Session id starts with cs_"),
  object: z.literal("checkout.session"),
  payment_status: z.string().min(1),
  customer: z.union([z.string(), z.object({ id: z.string() }), z.null()]).optional(),
  customer_email: z.string().nullable().optional(),
  customer_details: z
    .object({ email: z.string().nullable().optional(), name: z.string().nullable().optional() })
    .nullable()
    .optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  subscription: z.union([z.string(), z.object({ id: z.string() }), z.null()]).optional(),
});

const SUBSCRIPTION_STATUSES = vSubscriptionStatus.members.map((m) => m.value) as [string, ...string[]];

const SubscriptionShape = z.object({
  id: z.string().regex(/^sub_/, "a Subscription id starts with sub_"),
  object: z.literal("subscription"),
  customer: z.union([z.string(), z.object({ id: z.string() })]),
  status: z.enum(SUBSCRIPTION_STATUSES),
  items: z
    .object({ data: z.array(z.object({ price: z.object({ id: z.string() }).nullable().optional() })) })
    .nullable()
    .optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
});

/** What any event's object says about whose it is (customer, subscription, metadata.instanceId). */
const RoutingShape = z.object({
  object: z.string().optional(),
  id: z.string().optional(),
  customer: z.union([z.string(), z.object({ id: z.string() }), z.null()]).optional(),
  subscription: z.union([z.string(), z.object({ id: z.string() }), z.null()]).optional(),
  // Invoices of newer API versions name their subscription here.
  parent: z
    .object({ subscription_details: z.object({ subscription: z.union([z.string(), z.object({ id: z.string() })]).nullable().optional() }).nullable().optional() })
    .nullable()
    .optional(),
  metadata: z.record(z.string(), z.unknown()).nullable().optional(),
});

export const SUBSCRIPTION_EVENT_TYPES = new Set([
  "customer.subscription.created",
  "customer.subscription.updated",
  "customer.subscription.deleted",
  "customer.subscription.paused",
  "customer.subscription.resumed",
]);

export const CHECKOUT_EVENT_TYPES = new Set([
  "checkout.session.completed",
  "checkout.session.async_payment_succeeded",
  "checkout.session.async_payment_failed",
]);

export type VerifiedEvent = {
  eventId: string;
  type: string;
  livemode: boolean;
  createdAt: number;
  checkout?: CheckoutSummary;
  subscription?: SubscriptionSummary;
  routing?: EventRouting;
};

export type VerifyResult =
  | { ok: true; event: VerifiedEvent }
  | { ok: false; code: "MISSING_SIGNATURE" | "INVALID_SIGNATURE" | "INVALID_EVENT"; message: string };

const clean = (value: string | null | undefined) => {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
};

export async function verifyStripeWebhook(
  body: string,
  signature: string | null,
  secret: string,
): Promise<VerifyResult> {
  if (!signature) return { ok: false, code: "MISSING_SIGNATURE", message: "Stripe-Signature header is required" };
  let raw: unknown;
  try {
    raw = await Stripe.webhooks.constructEventAsync(body, signature, secret, undefined, cryptoProvider);
  } catch (error) {
    // The verifier parses the body only after the signature matched: a SyntaxError
    // means a correctly signed body that is not JSON.
    if (error instanceof SyntaxError) return { ok: false, code: "INVALID_EVENT", message: "body is not JSON" };
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    return { ok: false, code: "INVALID_SIGNATURE", message: `signature check failed: ${reason}` };
  }
  // Stripe's verifier refuses a signature older than its tolerance but not one dated in the future;
  // Stripe never signs ahead of time, so a future timestamp past the same tolerance is refused too
  // (found by npm run fuzz): a captured signature cannot be post-dated to outlive the window.
  const stamp = Number(/(?:^|,)\s*t=(\d+)/.exec(signature)?.[1]);
  if (Number.isFinite(stamp) && stamp - Date.now() / 1000 > SIGNATURE_TOLERANCE_SECONDS) {
    return { ok: false, code: "INVALID_SIGNATURE", message: `signature check failed: timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS} s in the future` };
  }
  const event = EventShape.safeParse(raw);
  if (!event.success) return { ok: false, code: "INVALID_EVENT", message: `body is not a Stripe event: ${describe(event.error)}` };

  const verified: VerifiedEvent = {
    eventId: event.data.id,
    type: event.data.type,
    livemode: event.data.livemode,
    createdAt: event.data.created * 1000,
  };
  if (CHECKOUT_EVENT_TYPES.has(event.data.type)) {
    const session = CheckoutSessionShape.safeParse(event.data.data.object);
    if (!session.success) {
      return { ok: false, code: "INVALID_EVENT", message: `${event.data.type} without a valid Checkout Session: ${describe(session.error)}` };
    }
    const s = session.data;
    const customer = typeof s.customer === "string" ? s.customer : (s.customer?.id ?? undefined);
    const plan = clean(s.metadata?.plan)?.toLowerCase().slice(0, 64);
    const email = clean(s.customer_details?.email) ?? clean(s.customer_email);
    const name = clean(s.customer_details?.name);
    const subscriptionId = idOf(s.subscription);
    verified.checkout = {
      ...(subscriptionId ? { subscriptionId } : {}),
      sessionId: s.id,
      paymentStatus: s.payment_status,
      ...(customer ? { stripeCustomerId: customer } : {}),
      ...(email ? { email } : {}),
      ...(name ? { name } : {}),
      ...(plan ? { plan } : {}),
    };
  }
  if (SUBSCRIPTION_EVENT_TYPES.has(event.data.type)) {
    const parsed = SubscriptionShape.safeParse(event.data.data.object);
    if (!parsed.success) {
      return { ok: false, code: "INVALID_EVENT", message: `${event.data.type} without a valid Subscription: ${describe(parsed.error)}` };
    }
    const sub = parsed.data;
    const priceId = sub.items?.data[0]?.price?.id;
    const instanceId = clean(sub.metadata?.instanceId);
    verified.subscription = {
      subscriptionId: sub.id,
      customerId: idOf(sub.customer)!,
      status: sub.status as SubscriptionSummary["status"],
      ...(priceId ? { priceId } : {}),
      ...(instanceId ? { instanceId } : {}),
    };
  }
  const routing = routingOf(event.data.data.object);
  if (routing) verified.routing = routing;
  return { ok: true, event: verified };
}

const idOf = (value: string | { id: string } | null | undefined) => (typeof value === "string" ? value : (value?.id ?? undefined));

/** Whose the event is, read off its object; undefined when it names nobody. */
function routingOf(object: Record<string, unknown>): EventRouting | undefined {
  const parsed = RoutingShape.safeParse(object);
  if (!parsed.success) return undefined;
  const o = parsed.data;
  const subscriptionId = o.object === "subscription" ? o.id : (idOf(o.subscription) ?? idOf(o.parent?.subscription_details?.subscription));
  const customerId = idOf(o.customer);
  const named = o.metadata?.instanceId;
  const instanceId = typeof named === "string" ? clean(named) : undefined;
  const routing: EventRouting = {
    ...(customerId ? { customerId } : {}),
    ...(subscriptionId ? { subscriptionId } : {}),
    ...(instanceId ? { instanceId } : {}),
  };
  return Object.keys(routing).length > 0 ? routing : undefined;
}

function describe(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`).join("; ");
}
