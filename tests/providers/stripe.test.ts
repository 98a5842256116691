// Contract tests for the live Stripe adapter (convex/providers/stripe.ts) on the real stripe
// SDK against the Stripe fake: subscriptions and Checkout Sessions read one page per call
// (newest first, cursor paging, filters), snapshots mapped with absent fields left out,
// Brain-owned webhook endpoints of earlier versions listed and deleted, and classified errors
// with exactly one request per attempt (SDK retries off). The sandbox adapter, fed through
// sandbox.seedStripe, is held to the same paging contract.
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { internal } from "../../convex/_generated/api";
import { sandboxProviders } from "../../convex/providers/sandbox";
import { liveStripe } from "../../convex/providers/stripe";
import type { StripeAdapter, StripePage } from "../../convex/providers/types";
import { FAKE_CREDENTIALS } from "../fakes";
import type { RecordedRequest } from "../fakes/base";
import { startStripeFake, type StripeFake } from "../fakes/stripe";
import { adapterHarness, type AdapterHarness, providerError } from "./env";

let h: AdapterHarness;

beforeEach(async () => {
  h = await adapterHarness();
});
afterEach(async () => {
  await h.close();
});

function since(mark: number, method?: string, path?: RegExp, fake: StripeFake = h.fakes.stripe): RecordedRequest[] {
  return fake.requests.slice(mark).filter((r) => (!method || r.method === method) && (!path || path.test(r.path)));
}

/** Stripe's form encoding for a create, sent straight to the fake (not through the adapter). */
async function createEndpointDirectly(fake: StripeFake, url: string, metadata: Record<string, string> = {}) {
  const form = new URLSearchParams({ url, "enabled_events[0]": "*" });
  for (const [key, value] of Object.entries(metadata)) form.set(`metadata[${key}]`, value);
  const response = await fetch(`${fake.url}/v1/webhook_endpoints`, {
    method: "POST",
    headers: { authorization: `Bearer ${FAKE_CREDENTIALS.stripeKey}`, "content-type": "application/x-www-form-urlencoded" },
    body: form.toString(),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { id: string; url: string };
}

/** Every item of a paged list, asking for the next page after the last item seen. */
async function walk<T>(
  next: (startingAfter: string | undefined) => Promise<StripePage<T>>,
  idOf: (item: T) => string,
): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let startingAfter: string | undefined;
  for (let pages = 1; ; pages++) {
    const page = await next(startingAfter);
    items.push(...page.data);
    if (!page.hasMore || page.data.length === 0) return { items, pages };
    startingAfter = idOf(page.data[page.data.length - 1]);
  }
}

const ENDPOINTS = /^\/v1\/webhook_endpoints$/;
const SUBSCRIPTIONS = /^\/v1\/subscriptions$/;
const SUBSCRIPTION = /^\/v1\/subscriptions\/[^/]+$/;
const SESSIONS = /^\/v1\/checkout\/sessions$/;
const T0 = 1_760_000_000; // unix seconds

describe("listSubscriptions", () => {
  test("pages through 250 subscriptions 100 at a time, newest first, each seen exactly once", async () => {
    for (let i = 0; i < 250; i++) h.fakes.stripe.addSubscription({ created: T0 + (i % 11) });
    const stripe = liveStripe(h.env);

    const { items, pages } = await walk((startingAfter) => stripe.listSubscriptions({ startingAfter }), (s) => s.subscriptionId);

    expect(items.map((s) => s.subscriptionId)).toEqual(h.fakes.stripe.subscriptions().map((s) => s.id));
    expect(new Set(items.map((s) => s.subscriptionId)).size).toBe(250);
    expect(pages).toBe(3);
    expect(h.fakes.stripe.requestCounts()["GET /v1/subscriptions"]).toBe(3);
  });

  test("lists canceled and ended subscriptions too (status=all)", async () => {
    const active = h.fakes.stripe.addSubscription({ created: T0 + 3 });
    const canceled = h.fakes.stripe.addSubscription({ created: T0 + 2 });
    h.fakes.stripe.setSubscriptionStatus(canceled.id, "canceled");
    const expired = h.fakes.stripe.addSubscription({ created: T0 + 1, status: "incomplete_expired" });

    const page = await liveStripe(h.env).listSubscriptions({});

    expect(page.data.map((s) => [s.subscriptionId, s.status])).toEqual([
      [active.id, "active"],
      [canceled.id, "canceled"],
      [expired.id, "incomplete_expired"],
    ]);
    expect(page.hasMore).toBe(false);
  });

  test("maps a subscription to its customer, status, first item's price, metadata.instanceId and created in ms", async () => {
    const sub = h.fakes.stripe.addSubscription({
      customer: "cus_alice",
      status: "past_due",
      priceId: "price_team",
      metadata: { instanceId: "inst_a", other: "x" },
      created: T0,
    });
    const bare = h.fakes.stripe.addSubscription({ customer: "cus_bob", created: T0 - 1 });

    const { data } = await liveStripe(h.env).listSubscriptions({});

    expect(data[0]).toStrictEqual({
      subscriptionId: sub.id,
      customerId: "cus_alice",
      status: "past_due",
      priceId: "price_team",
      instanceId: "inst_a",
      created: T0 * 1000,
    });
    // No metadata.instanceId: the field is left out, not set to undefined.
    expect(data[1]).toStrictEqual({
      subscriptionId: bare.id,
      customerId: "cus_bob",
      status: "active",
      priceId: "price_fake_pro",
      created: (T0 - 1) * 1000,
    });
    expect(Object.keys(data[1])).not.toContain("instanceId");
  });

  test("a limit is passed through, and one outside 1..100 is clamped to what Stripe accepts", async () => {
    for (let i = 0; i < 5; i++) h.fakes.stripe.addSubscription({ created: T0 + i });
    const stripe = liveStripe(h.env);

    const two = await stripe.listSubscriptions({ limit: 2 });
    expect(two.data).toHaveLength(2);
    expect(two.hasMore).toBe(true);
    const after = await stripe.listSubscriptions({ limit: 2, startingAfter: two.data[1].subscriptionId });
    expect(after.data.map((s) => s.created)).toEqual([(T0 + 2) * 1000, (T0 + 1) * 1000]);

    expect((await stripe.listSubscriptions({ limit: 0 })).data).toHaveLength(1);
    expect((await stripe.listSubscriptions({ limit: 1_000 })).data).toHaveLength(5);
  });

  test("a subscription status Brain does not know is a permanent ProviderError, not a guess", async () => {
    const odd = h.fakes.stripe.addSubscription({ status: "frozen" });
    const error = await providerError(liveStripe(h.env).listSubscriptions({}));
    expect(error).toMatchObject({ provider: "stripe", kind: "permanent", providerCode: "unknown_subscription_status" });
    expect(error.message).toContain(odd.id);
    expect(error.message).toContain('"frozen"');
  });
});

describe("retrieveSubscription", () => {
  test("returns the subscription's current snapshot", async () => {
    const sub = h.fakes.stripe.addSubscription({ customer: "cus_c", metadata: { instanceId: "inst_c" }, created: T0 });
    const stripe = liveStripe(h.env);
    expect(await stripe.retrieveSubscription({ subscriptionId: sub.id })).toStrictEqual({
      subscriptionId: sub.id,
      customerId: "cus_c",
      status: "active",
      priceId: "price_fake_pro",
      instanceId: "inst_c",
      created: T0 * 1000,
    });

    h.fakes.stripe.setSubscriptionStatus(sub.id, "canceled");
    expect(await stripe.retrieveSubscription({ subscriptionId: sub.id })).toMatchObject({ status: "canceled" });
    expect(since(0, "GET", SUBSCRIPTION)).toHaveLength(2);
  });

  test("a subscription Stripe does not have (404) is null", async () => {
    expect(await liveStripe(h.env).retrieveSubscription({ subscriptionId: "sub_missing" })).toBeNull();
    expect(since(0, "GET", SUBSCRIPTION)).toHaveLength(1);
  });

  test("a 5xx is thrown as transient, not answered as a missing subscription", async () => {
    h.fakes.stripe.inject({ method: "GET", path: SUBSCRIPTION, status: 503 });
    const error = await providerError(liveStripe(h.env).retrieveSubscription({ subscriptionId: "sub_any" }));
    expect(error).toMatchObject({ provider: "stripe", kind: "transient", status: 503 });
  });
});

describe("listCheckoutSessions", () => {
  test("lists only complete sessions created at or after createdAfter, paging to the end, each seen once", async () => {
    const expected: string[] = [];
    for (let i = 0; i < 160; i++) {
      const status = i % 5 === 0 ? "open" : i % 5 === 1 ? "expired" : "complete";
      const created = T0 + i * 60;
      const session = h.fakes.stripe.addCheckoutSession({ status, created });
      if (status === "complete" && created >= T0 + 20 * 60) expected.unshift(session.id);
    }
    const stripe = liveStripe(h.env);

    const { items, pages } = await walk(
      (startingAfter) => stripe.listCheckoutSessions({ createdAfter: T0 + 20 * 60, startingAfter, limit: 30 }),
      (s) => s.sessionId,
    );

    expect(items.map((s) => s.sessionId)).toEqual(expected);
    expect(items.every((s) => s.status === "complete" && s.created >= (T0 + 20 * 60) * 1000)).toBe(true);
    expect(pages).toBe(Math.ceil(expected.length / 30));
    expect(since(0, "GET", SESSIONS)).toHaveLength(pages);
  });

  test("maps a session: customer, email and name from customer_details, plan lower-cased and trimmed, subscription, created in ms", async () => {
    const sub = h.fakes.stripe.addSubscription({ customer: "cus_d" });
    const full = h.fakes.stripe.addCheckoutSession({
      customer: "cus_d",
      customer_details: { email: "dana@example.com", name: "Dana", phone: null, tax_exempt: "none" },
      customer_email: "ignored@example.com",
      metadata: { plan: "  Pro  " },
      subscription: sub.id,
      payment_status: "paid",
      created: T0 + 2,
    });
    const sparse = h.fakes.stripe.addCheckoutSession({
      customer: null,
      customer_details: null,
      customer_email: "erin@example.com",
      metadata: { plan: `X${"y".repeat(100)}` },
      mode: "payment",
      payment_status: "no_payment_required",
      created: T0 + 1,
    });
    const bare = h.fakes.stripe.addCheckoutSession({ customer: null, customer_details: null, created: T0 });

    const { data } = await liveStripe(h.env).listCheckoutSessions({ createdAfter: T0 });

    expect(data).toStrictEqual([
      {
        sessionId: full.id,
        paymentStatus: "paid",
        stripeCustomerId: "cus_d",
        email: "dana@example.com",
        name: "Dana",
        plan: "pro",
        subscriptionId: sub.id,
        status: "complete",
        mode: "subscription",
        created: (T0 + 2) * 1000,
      },
      {
        sessionId: sparse.id,
        paymentStatus: "no_payment_required",
        email: "erin@example.com",
        plan: `x${"y".repeat(63)}`,
        status: "complete",
        mode: "payment",
        created: (T0 + 1) * 1000,
      },
      { sessionId: bare.id, paymentStatus: "paid", status: "complete", mode: "subscription", created: T0 * 1000 },
    ]);
  });

  test("sessions created before createdAfter are left out", async () => {
    h.fakes.stripe.addCheckoutSession({ created: T0 - 1 });
    const page = await liveStripe(h.env).listCheckoutSessions({ createdAfter: T0 });
    expect(page).toEqual({ data: [], hasMore: false });
  });
});

describe("listWebhookEndpoints", () => {
  test("pages through more than 100 endpoints and returns only those managed by Brain", async () => {
    // Stripe caps an account at 16 endpoints; a roomier fake makes a second page possible.
    const big = await startStripeFake({ secretKey: FAKE_CREDENTIALS.stripeKey, maxEndpoints: 500 });
    try {
      const managed: { id: string; name: string; instanceId?: string }[] = [];
      for (let i = 0; i < 150; i++) {
        const url = `https://t${i}.tenants.example.com/stripe/webhook`;
        const mine = i % 3 !== 2; // 100 Brain-owned, 50 not, interleaved
        const metadata: Record<string, string> = mine ? { managedBy: "brain", instanceId: `inst_${i}` } : i % 2 === 0 ? { managedBy: "other" } : {};
        const endpoint = await createEndpointDirectly(big, url, metadata);
        if (mine) managed.push({ id: endpoint.id, name: url, instanceId: `inst_${i}` });
      }
      const stripe = liveStripe({ ...h.env, config: { ...h.env.config, STRIPE_API_URL: big.url } });

      const owned = await stripe.listWebhookEndpoints();

      const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : 1);
      expect([...owned].sort(byId)).toEqual([...managed].sort(byId));
      const pages = since(0, "GET", ENDPOINTS, big);
      expect(pages).toHaveLength(2);
    } finally {
      await big.close();
    }
  });

  test("returns nothing when every endpoint belongs to someone else", async () => {
    await createEndpointDirectly(h.fakes.stripe, "https://shop.example.com/hooks", { managedBy: "shop" });
    await createEndpointDirectly(h.fakes.stripe, "https://crm.example.com/hooks");
    expect(await liveStripe(h.env).listWebhookEndpoints()).toEqual([]);
  });
});

describe("deleteWebhookEndpoint", () => {
  test("deletes the endpoint, and deleting it again when already gone is success", async () => {
    const stripe = liveStripe(h.env);
    const { id: endpointId } = await createEndpointDirectly(h.fakes.stripe, "https://t.tenants.example.com/stripe/webhook", {
      managedBy: "brain",
      instanceId: "inst_d",
    });

    await stripe.deleteWebhookEndpoint({ endpointId });
    expect(h.fakes.stripe.endpoints()).toEqual([]);
    await expect(stripe.deleteWebhookEndpoint({ endpointId })).resolves.toBeUndefined();
    expect(since(0, "DELETE")).toHaveLength(2);
  });

  test("a 5xx on delete is thrown as transient", async () => {
    h.fakes.stripe.inject({ method: "DELETE", status: 503 });
    const error = await providerError(liveStripe(h.env).deleteWebhookEndpoint({ endpointId: "we_any" }));
    expect(error).toMatchObject({ kind: "transient", status: 503 });
  });
});

describe("errors", () => {
  test.each([
    [500, "transient"],
    [502, "transient"],
    [503, "transient"],
    [400, "permanent"],
    [401, "permanent"],
    [403, "permanent"],
    [404, "permanent"],
  ] as const)("a %i on a list is a %s ProviderError with the provider's message after exactly one request", async (status, kind) => {
    for (const path of [SUBSCRIPTIONS, SESSIONS]) {
      h.fakes.stripe.inject({
        method: "GET",
        path,
        status,
        body: { error: { type: status >= 500 ? "api_error" : "invalid_request_error", message: `the provider says ${status}` } },
      });
    }
    const stripe = liveStripe(h.env);

    const subscriptions = await providerError(stripe.listSubscriptions({}));
    const sessions = await providerError(stripe.listCheckoutSessions({ createdAfter: T0 }));

    for (const error of [subscriptions, sessions]) {
      expect(error).toMatchObject({ provider: "stripe", kind, status });
      expect(error.message).toContain(`the provider says ${status}`);
    }
    expect(h.fakes.stripe.requestCounts()).toEqual({ "GET /v1/subscriptions": 1, "GET /v1/checkout/sessions": 1 });
  });

  test("a 429 is rate_limited with retryAfterMs taken from Retry-After, after exactly one request", async () => {
    h.fakes.stripe.inject({ method: "GET", path: SUBSCRIPTIONS, status: 429, retryAfterSeconds: 2 });
    const stripe = liveStripe(h.env);
    const error = await providerError(stripe.listSubscriptions({}));
    expect(error).toMatchObject({ provider: "stripe", kind: "rate_limited", status: 429, retryAfterMs: 2000, providerCode: "rate_limit" });
    expect(since(0, "GET", SUBSCRIPTIONS)).toHaveLength(1);

    h.fakes.stripe.inject({ method: "GET", path: SESSIONS, status: 429, retryAfterSeconds: 0 });
    const immediate = await providerError(stripe.listCheckoutSessions({ createdAfter: T0 }));
    expect(immediate).toMatchObject({ kind: "rate_limited", retryAfterMs: 0 });

    h.fakes.stripe.inject({ method: "GET", path: SUBSCRIPTION, status: 429, retryAfterSeconds: 1 });
    const retrieve = await providerError(stripe.retrieveSubscription({ subscriptionId: "sub_any" }));
    expect(retrieve).toMatchObject({ kind: "rate_limited", retryAfterMs: 1000 });
  });

  test("the account's own rate limit answering 429 mid-walk is rate_limited, and the walk resumes from its cursor", async () => {
    for (let i = 0; i < 150; i++) h.fakes.stripe.addSubscription({ created: T0 + i });
    const stripe = liveStripe(h.env);
    const first = await stripe.listSubscriptions({});
    h.fakes.stripe.setRateLimit({ requests: 1, windowMs: 3_000 });

    const error = await providerError(stripe.listSubscriptions({ startingAfter: first.data[99].subscriptionId }));
    expect(error).toMatchObject({ kind: "rate_limited", status: 429 });
    expect(error.retryAfterMs).toBeGreaterThanOrEqual(1_000);
    expect(error.retryAfterMs).toBeLessThanOrEqual(3_000);

    h.fakes.stripe.setRateLimit(null);
    const rest = await stripe.listSubscriptions({ startingAfter: first.data[99].subscriptionId });
    expect([...first.data, ...rest.data].map((s) => s.subscriptionId)).toEqual(h.fakes.stripe.subscriptions().map((s) => s.id));
    expect(rest.hasMore).toBe(false);
  });

  test("paging takes the request budget, so a walk stays inside Stripe's limit", async () => {
    await h.close();
    h = await adapterHarness({ RATE_LIMIT_STRIPE_RPS: "10" });
    for (let i = 0; i < 160; i++) h.fakes.stripe.addSubscription({ created: T0 + i });
    // Unpaced, 16 pages would arrive within a second and the 14th would get a 429.
    h.fakes.stripe.setRateLimit({ requests: 13, windowMs: 1_000 });
    const stripe = liveStripe(h.env);

    const { items, pages } = await walk((startingAfter) => stripe.listSubscriptions({ startingAfter, limit: 10 }), (s) => s.subscriptionId);

    expect(items).toHaveLength(160);
    expect(pages).toBe(16);
    expect(h.fakes.stripe.stats().rateLimited).toBe(0);
  });

  test("a wrong API key is a permanent 401", async () => {
    await h.close();
    h = await adapterHarness({ STRIPE_SECRET_KEY: "sk_test_not_the_key" });
    const error = await providerError(liveStripe(h.env).listSubscriptions({}));
    expect(error).toMatchObject({ provider: "stripe", kind: "permanent", status: 401 });
    expect(error.message).toContain("Invalid API Key provided");
  });

  test("a dropped connection is a transient network error after exactly one request", async () => {
    h.fakes.stripe.inject({ method: "GET", path: SESSIONS, dropResponse: true });
    const error = await providerError(liveStripe(h.env).listCheckoutSessions({ createdAfter: T0 }));
    expect(error).toMatchObject({ provider: "stripe", kind: "transient", status: undefined });
    expect(error.message).toMatch(/^network error/);
    expect(since(0, "GET", SESSIONS)).toHaveLength(1);
  });

  test("an unreachable API is a transient network error", async () => {
    const url = h.fakes.stripe.url;
    await h.fakes.stripe.close();
    const error = await providerError(liveStripe({ ...h.env, config: { ...h.env.config, STRIPE_API_URL: url } }).listSubscriptions({}));
    expect(error).toMatchObject({ provider: "stripe", kind: "transient" });
  });

  test("a request slower than PROVIDER_TIMEOUT_MS is abandoned as transient", async () => {
    await h.close();
    h = await adapterHarness({ PROVIDER_TIMEOUT_MS: "200" });
    h.fakes.stripe.inject({ method: "GET", path: SUBSCRIPTIONS, latencyMs: 1_500 });
    const started = Date.now();
    const error = await providerError(liveStripe(h.env).listSubscriptions({}));
    expect(error).toMatchObject({ provider: "stripe", kind: "transient" });
    expect(Date.now() - started).toBeLessThan(1_400);
    expect(since(0, "GET", SUBSCRIPTIONS)).toHaveLength(1);
  });
});

describe("the sandbox's Stripe adapter", () => {
  const sandbox = (): StripeAdapter => sandboxProviders(h.env).stripe;
  const seed = (kind: "subscription" | "checkoutSession", id: string, attributes: Record<string, string> = {}) =>
    h.t.mutation(internal.sandbox.seedStripe, { kind, id, attributes });

  test("pages through 250 seeded subscriptions newest first, each seen exactly once", async () => {
    for (let i = 0; i < 250; i++) {
      await seed("subscription", `sub_${String(i).padStart(3, "0")}`, { created: String(T0 + (i % 13)), customerId: `cus_${i}` });
    }
    const stripe = sandbox();

    const { items, pages } = await walk((startingAfter) => stripe.listSubscriptions({ startingAfter }), (s) => s.subscriptionId);

    expect(pages).toBe(3);
    expect(new Set(items.map((s) => s.subscriptionId)).size).toBe(250);
    const order = items.map((s) => [s.created, s.subscriptionId] as const);
    expect(order).toEqual([...order].sort((a, b) => b[0] - a[0] || (a[1] < b[1] ? 1 : -1)));
  });

  test("retrieves a seeded subscription as the live adapter maps it, null when there is none", async () => {
    await seed("subscription", "sub_seeded", { customerId: "cus_s", priceId: "price_team", instanceId: "inst_s", created: String(T0) });
    await seed("subscription", "sub_seeded", { status: "past_due" });
    const stripe = sandbox();
    expect(await stripe.retrieveSubscription({ subscriptionId: "sub_seeded" })).toStrictEqual({
      subscriptionId: "sub_seeded",
      customerId: "cus_s",
      status: "past_due",
      priceId: "price_team",
      instanceId: "inst_s",
      created: T0 * 1000,
    });
    expect(await stripe.retrieveSubscription({ subscriptionId: "sub_none" })).toBeNull();
  });

  test("lists complete sessions created at or after createdAfter, paging to the end", async () => {
    const expected: string[] = [];
    for (let i = 0; i < 40; i++) {
      const sessionStatus = i % 4 === 0 ? "expired" : "complete";
      const id = `cs_test_${String(i).padStart(3, "0")}`;
      await seed("checkoutSession", id, { sessionStatus, created: String(T0 + i), email: `u${i}@example.com`, plan: " Pro " });
      if (sessionStatus === "complete" && i >= 10) expected.unshift(id);
    }
    const stripe = sandbox();

    const { items } = await walk(
      (startingAfter) => stripe.listCheckoutSessions({ createdAfter: T0 + 10, startingAfter, limit: 7 }),
      (s) => s.sessionId,
    );

    expect(items.map((s) => s.sessionId)).toEqual(expected);
    expect(items[0]).toStrictEqual({
      sessionId: "cs_test_039",
      paymentStatus: "paid",
      email: "u39@example.com",
      plan: "pro",
      status: "complete",
      mode: "subscription",
      created: (T0 + 39) * 1000,
    });
  });

  test("an injected rate limit on the sandbox's list is rate_limited with its retry-after", async () => {
    await seed("subscription", "sub_1");
    await h.t.mutation(internal.sandbox.injectFault, {
      operation: "stripe.listSubscriptions",
      times: 1,
      kind: "rate_limited",
      retryAfterMs: 4_000,
    });
    const error = await providerError(sandbox().listSubscriptions({}));
    expect(error).toMatchObject({ provider: "stripe", kind: "rate_limited", retryAfterMs: 4_000 });
    expect((await sandbox().listSubscriptions({})).data).toHaveLength(1);
  });
});
