import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import {
  checkoutEvent,
  drain,
  sendCheckout,
  setupBackend,
  signedStripeRequest,
  statusOf,
  type TestBackend,
} from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

const count = async (t: TestBackend) =>
  t.run(async (ctx) => ({
    events: (await ctx.db.query("stripeEvents").collect()).length,
    customers: (await ctx.db.query("customers").collect()).length,
    instances: (await ctx.db.query("instances").collect()).length,
    jobs: (await ctx.db.query("provisioningJobs").collect()).length,
  }));
const NOTHING = { events: 0, customers: 0, instances: 0, jobs: 0 };

async function errorOf(response: Response) {
  expect(response.headers.get("content-type")).toContain("application/json");
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}

describe("Stripe webhook signature checks", () => {
  test("a delivery without a Stripe-Signature header is refused with 400 and stores nothing", async () => {
    const t = setupBackend();
    const response = await t.fetch("/stripe/webhook", { method: "POST", body: JSON.stringify(checkoutEvent()) });
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "MISSING_SIGNATURE" });
    await drain(t);
    expect(await count(t)).toEqual(NOTHING);
  });

  test("a delivery signed with another secret is refused with 400 and stores nothing", async () => {
    const t = setupBackend();
    const response = await t.fetch("/stripe/webhook", signedStripeRequest(checkoutEvent(), { secret: "whsec_wrong" }));
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "INVALID_SIGNATURE" });
    await drain(t);
    expect(await count(t)).toEqual(NOTHING);
  });

  test("a delivery with a stale signature timestamp is refused with 400", async () => {
    const t = setupBackend();
    const stale = Math.floor(Date.now() / 1000) - 3600;
    const response = await t.fetch("/stripe/webhook", signedStripeRequest(checkoutEvent(), { timestamp: stale }));
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "INVALID_SIGNATURE", message: expect.stringMatching(/tolerance/i) });
    expect(await count(t)).toEqual(NOTHING);
  });

  test("a delivery signed with a timestamp more than 5 minutes in the future is refused with 400 (found by npm run fuzz)", async () => {
    const t = setupBackend();
    const ahead = Math.floor(Date.now() / 1000) + 3600;
    const response = await t.fetch("/stripe/webhook", signedStripeRequest(checkoutEvent(), { timestamp: ahead }));
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "INVALID_SIGNATURE", message: expect.stringMatching(/in the future/) });
    expect(await count(t)).toEqual(NOTHING);
    // Within the tolerance (clock skew) it is still accepted.
    const skewed = await t.fetch("/stripe/webhook", signedStripeRequest(checkoutEvent(), { timestamp: Math.floor(Date.now() / 1000) + 60 }));
    expect(skewed.status).toBe(200);
  });

  test("a signed event whose id is longer than 255 characters is refused with 400 INVALID_EVENT (found by npm run fuzz)", async () => {
    const t = setupBackend();
    const response = await t.fetch("/stripe/webhook", signedStripeRequest({ ...checkoutEvent(), id: `evt_${"x".repeat(10_000)}` }));
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "INVALID_EVENT" });
    expect(await count(t)).toEqual(NOTHING);
  });

  test("a signed event whose type is not a Stripe event type (a NUL in it) is refused with 400 INVALID_EVENT (found by npm run fuzz)", async () => {
    const t = setupBackend();
    for (const type of ["checkout.session.completed\u0000", "Checkout.Session", "x".repeat(101)]) {
      const response = await t.fetch("/stripe/webhook", signedStripeRequest({ ...checkoutEvent(), type }));
      expect(response.status).toBe(400);
      expect(await errorOf(response)).toMatchObject({ code: "INVALID_EVENT" });
    }
    expect(await count(t)).toEqual(NOTHING);
  });

  test("a body changed after signing is refused with 400", async () => {
    const t = setupBackend();
    const event = checkoutEvent();
    const init = signedStripeRequest(event);
    const tampered = { ...init, body: JSON.stringify({ ...event, type: "checkout.session.async_payment_succeeded" }) };
    const response = await t.fetch("/stripe/webhook", tampered);
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "INVALID_SIGNATURE" });
    expect(await count(t)).toEqual(NOTHING);
  });

  test("without STRIPE_WEBHOOK_SECRET the route answers 500 so Stripe redelivers later", async () => {
    const t = setupBackend({ env: { STRIPE_WEBHOOK_SECRET: "" } });
    const response = await t.fetch("/stripe/webhook", signedStripeRequest(checkoutEvent()));
    expect(response.status).toBe(500);
    expect(await errorOf(response)).toMatchObject({ code: "CONFIG_INVALID" });
    expect(await count(t)).toEqual(NOTHING);
  });
});

describe("Stripe webhook bodies", () => {
  test("a correctly signed body that is not JSON is refused with 400 INVALID_EVENT", async () => {
    const t = setupBackend();
    const response = await t.fetch("/stripe/webhook", signedStripeRequest(null, { payload: "this is not json" }));
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "INVALID_EVENT" });
    expect(await count(t)).toEqual(NOTHING);
  });

  test("signed JSON that is not a Stripe event is refused with 400 INVALID_EVENT", async () => {
    const t = setupBackend();
    const response = await t.fetch("/stripe/webhook", signedStripeRequest({ hello: "world" }));
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "INVALID_EVENT" });
    expect(await count(t)).toEqual(NOTHING);
  });

  test("a checkout event whose data is not a Checkout Session is refused with 400", async () => {
    const t = setupBackend();
    const event = checkoutEvent();
    const broken = { ...event, data: { object: { id: "pi_123", object: "payment_intent" } } };
    const response = await t.fetch("/stripe/webhook", signedStripeRequest(broken));
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "INVALID_EVENT", message: expect.stringContaining("Checkout Session") });
    expect(await count(t)).toEqual(NOTHING);
  });

  test("an event type Brain does not handle is recorded, acknowledged and provisions nothing", async () => {
    const t = setupBackend();
    const event = { ...checkoutEvent(), type: "invoice.paid", data: { object: { id: "in_1", object: "invoice" } } };
    const response = await t.fetch("/stripe/webhook", signedStripeRequest(event));
    expect(response.status).toBe(200);
    await drain(t);
    expect(await count(t)).toEqual({ ...NOTHING, events: 1 });
    const stored = await t.query(internal.stripe.getStripeEvent, { eventId: event.id });
    expect(stored).toMatchObject({ type: "invoice.paid", outcome: "ignored" });
    expect(stored?.processedAt).toBeTypeOf("number");
  });
});

describe("Stripe webhook delivery semantics", () => {
  test("a redelivered event answers 200 and starts no second job", async () => {
    const t = setupBackend();
    const event = checkoutEvent();
    const first = await t.fetch("/stripe/webhook", signedStripeRequest(event));
    const again = await t.fetch("/stripe/webhook", signedStripeRequest(event));
    expect([first.status, again.status]).toEqual([200, 200]);
    expect(await again.json()).toMatchObject({ duplicate: true });
    await drain(t);
    const late = await t.fetch("/stripe/webhook", signedStripeRequest(event));
    expect(late.status).toBe(200);
    await drain(t);
    expect(await count(t)).toEqual({ events: 1, customers: 1, instances: 1, jobs: 1 });
  });

  test("concurrent duplicate deliveries all answer 200 and store one event, instance and job", async () => {
    const t = setupBackend();
    const event = checkoutEvent();
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => t.fetch("/stripe/webhook", signedStripeRequest(event))),
    );
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    await drain(t);
    expect(await count(t)).toEqual({ events: 1, customers: 1, instances: 1, jobs: 1 });
  });

  test("an unpaid session creates nothing until async_payment_succeeded provisions it", async () => {
    const t = setupBackend();
    const completed = checkoutEvent({ paymentStatus: "unpaid" });
    const sessionId = completed.data.object.id;
    expect((await t.fetch("/stripe/webhook", signedStripeRequest(completed))).status).toBe(200);
    await drain(t);
    expect(await count(t)).toEqual({ ...NOTHING, events: 1 });
    expect(await t.query(internal.stripe.getStripeEvent, { eventId: completed.id })).toMatchObject({
      outcome: "awaiting_payment",
    });
    const waiting = await statusOf(t, sessionId);
    expect(waiting.status).toBe(200);
    expect(waiting.body).toMatchObject({ status: "pending", jobId: null, instanceId: null });

    const paid = checkoutEvent({ sessionId, type: "checkout.session.async_payment_succeeded", paymentStatus: "paid" });
    expect((await t.fetch("/stripe/webhook", signedStripeRequest(paid))).status).toBe(200);
    await drain(t);
    expect(await count(t)).toEqual({ events: 2, customers: 1, instances: 1, jobs: 1 });
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
  });

  test("async_payment_succeeded arriving before checkout.session.completed provisions once", async () => {
    const t = setupBackend();
    const completed = checkoutEvent({ paymentStatus: "unpaid" });
    const sessionId = completed.data.object.id;
    const paid = checkoutEvent({ sessionId, type: "checkout.session.async_payment_succeeded" });
    await t.fetch("/stripe/webhook", signedStripeRequest(paid));
    await drain(t);
    await t.fetch("/stripe/webhook", signedStripeRequest(completed));
    await drain(t);
    expect(await count(t)).toEqual({ events: 2, customers: 1, instances: 1, jobs: 1 });
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
  });

  test("a failed async payment is recorded and the status page says the payment failed", async () => {
    const t = setupBackend();
    const completed = checkoutEvent({ paymentStatus: "unpaid" });
    const sessionId = completed.data.object.id;
    await t.fetch("/stripe/webhook", signedStripeRequest(completed));
    const failed = checkoutEvent({ sessionId, type: "checkout.session.async_payment_failed", paymentStatus: "unpaid" });
    await t.fetch("/stripe/webhook", signedStripeRequest(failed));
    await drain(t);
    expect(await count(t)).toEqual({ ...NOTHING, events: 2 });
    expect((await statusOf(t, sessionId)).body).toMatchObject({ status: "failed", jobId: null });
  });

  test("a session with no payment required provisions like a paid one", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t, { paymentStatus: "no_payment_required" });
    await drain(t);
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
  });

  test("the plan comes from metadata.plan and defaults to DEFAULT_PLAN (starter) when absent", async () => {
    const t = setupBackend();
    const withPlan = await sendCheckout(t, { plan: "Pro" });
    const withoutPlan = await sendCheckout(t);
    await drain(t);
    const plans = await t.run(async (ctx) =>
      Promise.all(
        [withPlan.sessionId, withoutPlan.sessionId].map(async (sessionId) => {
          const instance = await ctx.db
            .query("instances")
            .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
            .unique();
          return instance?.plan;
        }),
      ),
    );
    expect(plans).toEqual(["pro", "starter"]);
  });

  test("a returning customer (same Stripe customer) gets a second instance under one customer record", async () => {
    const t = setupBackend();
    await sendCheckout(t, { customerId: "cus_returning", email: "same@example.com" });
    await sendCheckout(t, { customerId: "cus_returning", email: "same@example.com" });
    await drain(t);
    expect(await count(t)).toMatchObject({ customers: 1, instances: 2, jobs: 2 });
  });

  test("an event left unprocessed is picked up again by the stale-event sweep", async () => {
    const t = setupBackend();
    const { event } = await sendCheckout(t);
    // As if its processing had failed: still "received" ten minutes later.
    vi.advanceTimersByTime(10 * 60_000);
    expect(await t.mutation(internal.stripe.reprocessStaleEvents, {})).toBe(1);
    await drain(t);
    expect(await t.query(internal.stripe.getStripeEvent, { eventId: event.id })).toMatchObject({ outcome: "provisioning_started" });
    expect(await t.mutation(internal.stripe.reprocessStaleEvents, {})).toBe(0);
    expect(await count(t)).toMatchObject({ instances: 1, jobs: 1 });
  });

  test("a configuration broken after the event was recorded leaves it visible as needing attention", async () => {
    const t = setupBackend();
    const { event, sessionId } = await sendCheckout(t);
    vi.stubEnv("RETRY_MAX_ATTEMPTS", "not-a-number");
    await drain(t);
    vi.unstubAllEnvs();
    expect(await t.query(internal.stripe.getStripeEvent, { eventId: event.id })).toMatchObject({
      outcome: "needs_attention",
      detail: expect.stringContaining("RETRY_MAX_ATTEMPTS"),
    });
    expect((await statusOf(t, sessionId)).body).toMatchObject({ status: "failed", jobId: null });
  });

  test("a paid session without any customer email is recorded as needing attention, not dropped", async () => {
    const t = setupBackend();
    const { event, response } = await sendCheckout(t, { email: null });
    expect(response.status).toBe(200);
    await drain(t);
    expect(await t.query(internal.stripe.getStripeEvent, { eventId: event.id })).toMatchObject({
      outcome: "needs_attention",
    });
    const audit = await t.run((ctx) =>
      ctx.db.query("auditLogs").withIndex("by_action", (q) => q.eq("action", "stripe.needs_attention")).collect(),
    );
    expect(audit).toHaveLength(1);
  });
});
