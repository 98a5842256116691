// @vitest-environment node
// Drives the Stripe fake through the real stripe 23.1 SDK (fetch client, no retries), so
// the form encoding, list shapes and filters, error bodies and idempotent replays are
// checked against what the SDK actually sends and parses.
import Stripe from "stripe";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { parseStripeParams, startStripeFake, type StripeFake } from "./stripe";

const SECRET_KEY = "sk_test_fake_stripe_key_1234";
const EVENTS = ["checkout.session.completed", "customer.subscription.deleted"];
let fake: StripeFake;
let stripe: Stripe;

const clientFor = (key: string) =>
  new Stripe(key, {
    httpClient: Stripe.createFetchHttpClient(),
    host: "127.0.0.1",
    port: fake.port,
    protocol: "http",
    maxNetworkRetries: 0,
  });

async function failure(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error("expected the call to fail");
}

const createParams = (n = 1): Stripe.WebhookEndpointCreateParams => ({
  url: `https://brain.example.com/stripe/webhook/${n}`,
  enabled_events: EVENTS as Stripe.WebhookEndpointCreateParams.EnabledEvent[],
  metadata: { instanceId: `inst_${n}`, managedBy: "brain" },
});

beforeEach(async () => {
  fake = await startStripeFake({ secretKey: SECRET_KEY });
  stripe = clientFor(SECRET_KEY);
});
afterEach(async () => {
  await fake.close();
});

describe("webhook endpoints", () => {
  test("a created endpoint carries its signing secret once; retrieve and list never show it", async () => {
    const created = await stripe.webhookEndpoints.create(createParams());
    expect(created).toMatchObject({
      object: "webhook_endpoint",
      api_version: null,
      application: null,
      description: null,
      enabled_events: EVENTS,
      livemode: false,
      metadata: { instanceId: "inst_1", managedBy: "brain" },
      status: "enabled",
      url: "https://brain.example.com/stripe/webhook/1",
    });
    expect(created.id).toMatch(/^we_[0-9A-Za-z]{24}$/);
    expect(created.secret).toMatch(/^whsec_[0-9A-Za-z]{32}$/);
    expect(Math.abs(created.created - Date.now() / 1000)).toBeLessThan(5);
    expect(fake.requests.at(-1)?.headers["content-type"]).toContain("application/x-www-form-urlencoded");

    const retrieved = await stripe.webhookEndpoints.retrieve(created.id);
    const { secret: _secret, ...withoutSecret } = created;
    void _secret;
    expect(retrieved).toEqual(withoutSecret);
    expect("secret" in retrieved).toBe(false);
    const listed = await stripe.webhookEndpoints.list();
    expect(listed.data).toEqual([withoutSecret]);
    expect(fake.endpoints()[0].secret).toBe(created.secret);
  });

  test("a list is newest first, 10 by default, and auto-pagination walks every page once", async () => {
    fake = await restartWith(20);
    const ids: string[] = [];
    for (let i = 0; i < 14; i++) ids.push((await stripe.webhookEndpoints.create(createParams(i))).id);
    const first = await stripe.webhookEndpoints.list();
    expect(first).toMatchObject({ object: "list", has_more: true, url: "/v1/webhook_endpoints" });
    expect(first.data.map((e) => e.id)).toEqual([...ids].reverse().slice(0, 10));
    const walked: string[] = [];
    for await (const endpoint of stripe.webhookEndpoints.list({ limit: 5 })) walked.push(endpoint.id);
    expect(walked).toEqual([...ids].reverse());
    expect(fake.requests.filter((r) => r.method === "GET")).toHaveLength(1 + 3);
  });

  test("starting_after and ending_before move forwards and backwards through the list", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await stripe.webhookEndpoints.create(createParams(i))).id);
    const newest = [...ids].reverse();
    const page = await stripe.webhookEndpoints.list({ limit: 2, starting_after: newest[1] });
    expect(page.data.map((e) => e.id)).toEqual(newest.slice(2, 4));
    expect(page.has_more).toBe(true);
    const back = await stripe.webhookEndpoints.list({ limit: 2, ending_before: newest[4] });
    expect(back.data.map((e) => e.id)).toEqual(newest.slice(2, 4));
    expect(back.has_more).toBe(true);
    const top = await stripe.webhookEndpoints.list({ limit: 2, ending_before: newest[2] });
    expect(top.data.map((e) => e.id)).toEqual(newest.slice(0, 2));
    expect(top.has_more).toBe(false);
  });

  test("a cursor naming an endpoint deleted meanwhile still pages on", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await stripe.webhookEndpoints.create(createParams(i))).id);
    const firstPage = await stripe.webhookEndpoints.list({ limit: 2 });
    await stripe.webhookEndpoints.del(firstPage.data[1].id);
    const next = await stripe.webhookEndpoints.list({ limit: 2, starting_after: firstPage.data[1].id });
    expect(next.data.map((e) => e.id)).toEqual([ids[1], ids[0]]);
  });

  test("an update changes url, events and disabled state and merges metadata, without the secret", async () => {
    const created = await stripe.webhookEndpoints.create(createParams());
    const updated = await stripe.webhookEndpoints.update(created.id, {
      url: "https://brain.example.com/new",
      enabled_events: ["*"],
      disabled: true,
      metadata: { managedBy: "", extra: "1" },
    });
    expect(updated).toMatchObject({
      id: created.id,
      url: "https://brain.example.com/new",
      enabled_events: ["*"],
      status: "disabled",
      metadata: { instanceId: "inst_1", extra: "1" },
    });
    expect(updated.secret).toBeUndefined();
    const enabled = await stripe.webhookEndpoints.update(created.id, { disabled: false });
    expect(enabled.status).toBe("enabled");
  });

  test("a delete answers the deleted stub and the endpoint is gone", async () => {
    const created = await stripe.webhookEndpoints.create(createParams());
    const deleted = await stripe.webhookEndpoints.del(created.id);
    expect(deleted).toEqual({ id: created.id, object: "webhook_endpoint", deleted: true });
    expect(fake.endpoints()).toEqual([]);
    expect((await stripe.webhookEndpoints.list()).data).toEqual([]);
  });

  test("an endpoint deleted out of band is a resource_missing 404 on retrieve", async () => {
    const created = await stripe.webhookEndpoints.create(createParams());
    fake.deleteEndpointOutOfBand(created.id);
    const error = await failure(stripe.webhookEndpoints.retrieve(created.id));
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error).toMatchObject({
      statusCode: 404,
      type: "StripeInvalidRequestError",
      rawType: "invalid_request_error",
      code: "resource_missing",
      message: `No such webhook endpoint: '${created.id}'`,
    });
    expect(await failure(stripe.webhookEndpoints.del(created.id))).toMatchObject({ statusCode: 404, code: "resource_missing" });
  });

  test("a create without url or enabled_events is a 400 parameter_missing naming the param", async () => {
    const noUrl = await failure(stripe.webhookEndpoints.create({ enabled_events: ["*"] } as Stripe.WebhookEndpointCreateParams));
    expect(noUrl).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(noUrl).toMatchObject({ statusCode: 400, code: "parameter_missing", param: "url", message: "Missing required param: url." });
    const noEvents = await failure(stripe.webhookEndpoints.create({ url: "https://x.example", enabled_events: [] }));
    expect(noEvents).toMatchObject({ statusCode: 400, code: "parameter_missing", param: "enabled_events" });
    expect(fake.endpoints()).toEqual([]);
  });

  test("unknown parameters and malformed urls are refused like Stripe does", async () => {
    const unknown = await failure(stripe.webhookEndpoints.create({ ...createParams(), colour: "red" } as Stripe.WebhookEndpointCreateParams));
    expect(unknown).toMatchObject({ statusCode: 400, code: "parameter_unknown", param: "colour" });
    const badUrl = await failure(stripe.webhookEndpoints.create({ ...createParams(), url: "not a url" }));
    expect(badUrl).toMatchObject({ statusCode: 400, code: "url_invalid", param: "url" });
  });

  test("the account's endpoint limit is enforced", async () => {
    fake = await restartWith(2);
    await stripe.webhookEndpoints.create(createParams(1));
    await stripe.webhookEndpoints.create(createParams(2));
    const error = await failure(stripe.webhookEndpoints.create(createParams(3)));
    expect(error).toMatchObject({ statusCode: 400, message: "You have reached the maximum of 2 test webhook endpoints." });
  });
});

describe("subscriptions", () => {
  test("an added subscription comes back from retrieve in Stripe's wire shape", async () => {
    const added = fake.addSubscription({ customer: "cus_alice", priceId: "price_team", metadata: { instanceId: "inst_1" } });
    expect(added.id).toMatch(/^sub_[0-9A-Za-z]{24}$/);
    const retrieved = await stripe.subscriptions.retrieve(added.id);
    expect(retrieved).toEqual(added);
    expect(retrieved).toMatchObject({
      object: "subscription",
      customer: "cus_alice",
      status: "active",
      livemode: false,
      metadata: { instanceId: "inst_1" },
      items: { object: "list", data: [{ object: "subscription_item", price: { id: "price_team", object: "price" } }] },
    });
    expect(Math.abs(retrieved.created - Date.now() / 1000)).toBeLessThan(5);
  });

  test("an unknown subscription is a resource_missing 404", async () => {
    const error = await failure(stripe.subscriptions.retrieve("sub_missing"));
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error).toMatchObject({ statusCode: 404, code: "resource_missing", param: "id", message: "No such subscription: 'sub_missing'" });
  });

  test("a list is newest first by created, and the later added first within one second", async () => {
    const old = fake.addSubscription({ created: 1_700_000_000 });
    const a = fake.addSubscription({ created: 1_700_000_500 });
    const b = fake.addSubscription({ created: 1_700_000_500 });
    const middle = fake.addSubscription({ created: 1_700_000_100 });
    const list = await stripe.subscriptions.list({ status: "all" });
    expect(list).toMatchObject({ object: "list", has_more: false, url: "/v1/subscriptions" });
    expect(list.data.map((s) => s.id)).toEqual([b.id, a.id, middle.id, old.id]);
    expect(fake.subscriptions().map((s) => s.id)).toEqual([b.id, a.id, middle.id, old.id]);
  });

  test("status all lists every subscription, no status leaves out canceled ones, ended means canceled or incomplete_expired", async () => {
    const active = fake.addSubscription({ created: 1_700_000_004 });
    const pastDue = fake.addSubscription({ status: "past_due", created: 1_700_000_003 });
    const canceled = fake.addSubscription({ created: 1_700_000_002 });
    fake.setSubscriptionStatus(canceled.id, "canceled");
    const expired = fake.addSubscription({ status: "incomplete_expired", created: 1_700_000_001 });
    const ids = async (params: Stripe.SubscriptionListParams) => (await stripe.subscriptions.list(params)).data.map((s) => s.id);
    expect(await ids({ status: "all" })).toEqual([active.id, pastDue.id, canceled.id, expired.id]);
    expect(await ids({})).toEqual([active.id, pastDue.id, expired.id]);
    expect(await ids({ status: "ended" })).toEqual([canceled.id, expired.id]);
    expect(await ids({ status: "past_due" })).toEqual([pastDue.id]);
    expect(await failure(stripe.subscriptions.list({ status: "lapsed" }))).toMatchObject({ statusCode: 400, param: "status" });
  });

  test("setSubscriptionStatus to canceled records when it was canceled and ended", async () => {
    const { id } = fake.addSubscription();
    const canceled = fake.setSubscriptionStatus(id, "canceled");
    expect(canceled.status).toBe("canceled");
    expect(canceled.canceled_at).toEqual(expect.any(Number));
    expect(canceled.ended_at).toBe(canceled.canceled_at);
    expect((await stripe.subscriptions.retrieve(id)).status).toBe("canceled");
    expect(() => fake.setSubscriptionStatus("sub_nope", "active")).toThrow(/no subscription/);
  });

  test("paging with starting_after walks 250 subscriptions in pages of 100, each seen once", async () => {
    for (let i = 0; i < 250; i++) fake.addSubscription({ created: 1_700_000_000 + (i % 7) });
    const seen: string[] = [];
    let startingAfter: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await stripe.subscriptions.list({ status: "all", limit: 100, ...(startingAfter ? { starting_after: startingAfter } : {}) });
      pages++;
      seen.push(...page.data.map((s) => s.id));
      if (!page.has_more) break;
      startingAfter = page.data.at(-1)!.id;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(fake.subscriptions().map((s) => s.id));
    expect(new Set(seen).size).toBe(250);
    expect(fake.requestCounts()["GET /v1/subscriptions"]).toBe(3);
  });

  test("a limit outside 1..100 and an unknown cursor are refused like Stripe does", async () => {
    expect(await failure(stripe.subscriptions.list({ limit: 101 }))).toMatchObject({ statusCode: 400, code: "parameter_invalid_integer", param: "limit" });
    expect(await failure(stripe.subscriptions.list({ limit: 0 }))).toMatchObject({ statusCode: 400, param: "limit" });
    expect(await failure(stripe.subscriptions.list({ starting_after: "sub_unknown" }))).toMatchObject({
      statusCode: 400,
      code: "resource_missing",
      param: "starting_after",
    });
  });
});

describe("checkout sessions", () => {
  test("an added session comes back from retrieve and list in Stripe's wire shape", async () => {
    const sub = fake.addSubscription({ customer: "cus_bob" });
    const added = fake.addCheckoutSession({
      customer: "cus_bob",
      customer_details: { email: "bob@example.com", name: "Bob", phone: null, tax_exempt: "none" },
      subscription: sub.id,
      metadata: { plan: "Pro" },
    });
    expect(added.id).toMatch(/^cs_test_/);
    expect(await stripe.checkout.sessions.retrieve(added.id)).toEqual(added);
    const list = await stripe.checkout.sessions.list();
    expect(list).toMatchObject({ object: "list", has_more: false, url: "/v1/checkout/sessions" });
    expect(list.data).toEqual([added]);
    expect(added).toMatchObject({
      object: "checkout.session",
      mode: "subscription",
      status: "complete",
      payment_status: "paid",
      customer_email: null,
      subscription: sub.id,
    });
    const error = await failure(stripe.checkout.sessions.retrieve("cs_test_missing"));
    expect(error).toMatchObject({ statusCode: 404, code: "resource_missing", message: "No such checkout.session: 'cs_test_missing'" });
  });

  test("status and created filters (exact or gt/gte/lt/lte) pick the matching sessions, newest first", async () => {
    const at = (created: number, status: "open" | "complete" | "expired" = "complete") => fake.addCheckoutSession({ created, status }).id;
    const s100 = at(100);
    const s200 = at(200);
    const open = at(250, "open");
    const s300 = at(300);
    const expired = at(310, "expired");
    const ids = async (params: Stripe.Checkout.SessionListParams) => (await stripe.checkout.sessions.list(params)).data.map((s) => s.id);
    expect(await ids({})).toEqual([expired, s300, open, s200, s100]);
    expect(await ids({ status: "complete" })).toEqual([s300, s200, s100]);
    expect(await ids({ status: "complete", created: { gte: 200 } })).toEqual([s300, s200]);
    expect(await ids({ created: { gt: 200, lte: 300 } })).toEqual([s300, open]);
    expect(await ids({ created: { lt: 200 } })).toEqual([s100]);
    expect(await ids({ created: 250 })).toEqual([open]);
    expect(fake.requests.at(-1)?.path).toBe("/v1/checkout/sessions");
    expect(await failure(stripe.checkout.sessions.list({ status: "paid" as "open" }))).toMatchObject({ statusCode: 400, param: "status" });
    expect(await failure(stripe.checkout.sessions.list({ created: { gte: "soon" as unknown as number } }))).toMatchObject({
      statusCode: 400,
      param: "created[gte]",
    });
  });

  test("paging a filtered list with starting_after sees every match once", async () => {
    const complete: string[] = [];
    for (let i = 0; i < 130; i++) {
      const session = fake.addCheckoutSession({ created: 1_000 + i, status: i % 4 === 0 ? "expired" : "complete" });
      if (i % 4 !== 0) complete.unshift(session.id);
    }
    const seen: string[] = [];
    let startingAfter: string | undefined;
    for (;;) {
      const page = await stripe.checkout.sessions.list({
        status: "complete",
        created: { gte: 1_000 },
        limit: 40,
        ...(startingAfter ? { starting_after: startingAfter } : {}),
      });
      seen.push(...page.data.map((s) => s.id));
      if (!page.has_more) break;
      startingAfter = page.data.at(-1)!.id;
    }
    expect(seen).toEqual(complete);
    expect(fake.requestCounts()["GET /v1/checkout/sessions"]).toBe(Math.ceil(complete.length / 40));
  });

  test("adding a session or subscription under an id already taken throws", () => {
    fake.addCheckoutSession({ id: "cs_test_same" });
    expect(() => fake.addCheckoutSession({ id: "cs_test_same" })).toThrow(/exists already/);
    fake.addSubscription({ id: "sub_same" });
    expect(() => fake.addSubscription({ id: "sub_same" })).toThrow(/exists already/);
  });
});

describe("idempotency", () => {
  test("the same key and params replay the original answer byte for byte, secret included", async () => {
    const first = await stripe.webhookEndpoints.create(createParams(), { idempotencyKey: "brain-we-inst_1" });
    const again = await stripe.webhookEndpoints.create(createParams(), { idempotencyKey: "brain-we-inst_1" });
    expect(again).toEqual(first);
    expect(again.secret).toBe(first.secret);
    expect(fake.endpoints()).toHaveLength(1);

    const raw = (key: string) =>
      fetch(`${fake.url}/v1/webhook_endpoints`, {
        method: "POST",
        headers: { authorization: `Bearer ${SECRET_KEY}`, "content-type": "application/x-www-form-urlencoded", "idempotency-key": key },
        body: "url=https%3A%2F%2Fa.example%2Fhook&enabled_events[0]=*&metadata[instanceId]=x",
      });
    const original = await raw("raw-key");
    const replayed = await raw("raw-key");
    expect(original.headers.get("idempotent-replayed")).toBeNull();
    expect(replayed.headers.get("idempotent-replayed")).toBe("true");
    expect(replayed.headers.get("original-request")).toBe(original.headers.get("request-id"));
    expect(await replayed.text()).toBe(await original.text());
    expect(fake.endpoints()).toHaveLength(2);
  });

  test("the same key with different params is a StripeIdempotencyError", async () => {
    await stripe.webhookEndpoints.create(createParams(1), { idempotencyKey: "key-1" });
    const error = await failure(stripe.webhookEndpoints.create(createParams(2), { idempotencyKey: "key-1" }));
    expect(error).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect(error).toMatchObject({ statusCode: 400, rawType: "idempotency_error" });
    expect(String(error.message)).toMatch(/same parameters/);
    expect(fake.endpoints()).toHaveLength(1);
  });

  test("every SDK POST carries an idempotency key even with retries off", async () => {
    await stripe.webhookEndpoints.create(createParams());
    expect(fake.requests.at(-1)?.headers["idempotency-key"]).toMatch(/^stripe-node-retry-/);
  });
});

describe("auth and faults", () => {
  test("a wrong secret key is a StripeAuthenticationError with the key masked", async () => {
    const error = await failure(clientFor("sk_test_wrong_key_9999").webhookEndpoints.list());
    expect(error).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(error.statusCode).toBe(401);
    expect(error.message).toBe("Invalid API Key provided: sk_test_**********9999");
  });

  test("two injected 503s surface as StripeAPIError and the third call succeeds", async () => {
    fake.inject({ status: 503, times: 2, method: "POST" });
    for (let i = 0; i < 2; i++) {
      const error = await failure(stripe.webhookEndpoints.create(createParams()));
      expect(error).toBeInstanceOf(Stripe.errors.StripeAPIError);
      expect(error.statusCode).toBe(503);
    }
    expect(fake.endpoints()).toEqual([]);
    await stripe.webhookEndpoints.create(createParams());
    expect(fake.endpoints()).toHaveLength(1);
  });

  test("an injected 429 is a StripeRateLimitError with the Retry-After header", async () => {
    fake.inject({ status: 429, retryAfterSeconds: 3 });
    const error = await failure(stripe.webhookEndpoints.list());
    expect(error).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
    expect(error).toMatchObject({ statusCode: 429, code: "rate_limit" });
    expect((error.headers as Record<string, string>)["retry-after"]).toBe("3");
  });

  test("an injected 429 on the subscriptions list carries Retry-After and the next page request succeeds", async () => {
    fake.addSubscription();
    fake.inject({ method: "GET", path: "/v1/subscriptions", status: 429, retryAfterSeconds: 2 });
    const error = await failure(stripe.subscriptions.list({ status: "all" }));
    expect(error).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
    expect((error.headers as Record<string, string>)["retry-after"]).toBe("2");
    expect((await stripe.subscriptions.list({ status: "all" })).data).toHaveLength(1);
    expect(fake.requestCounts()).toEqual({ "GET /v1/subscriptions": 2 });
  });

  test("a dropped response still creates the endpoint; the client sees a connection error and a keyed retry replays it", async () => {
    fake.inject({ method: "POST", path: "/v1/webhook_endpoints", dropResponse: true });
    const error = await failure(stripe.webhookEndpoints.create(createParams(), { idempotencyKey: "brain-we-drop" }));
    expect(error).toBeInstanceOf(Stripe.errors.StripeConnectionError);
    expect(fake.endpoints()).toHaveLength(1);
    const retried = await stripe.webhookEndpoints.create(createParams(), { idempotencyKey: "brain-we-drop" });
    expect(retried.id).toBe(fake.endpoints()[0].id);
    expect(retried.secret).toBe(fake.endpoints()[0].secret);
    expect(fake.endpoints()).toHaveLength(1);
  });
});

describe("form parsing", () => {
  test("bracket notation becomes nested hashes and arrays", () => {
    const params = parseStripeParams(
      new URLSearchParams("url=u&enabled_events[0]=a&enabled_events[1]=b&metadata[x]=1&list[]=p&list[]=q&nested[a][0][b]=c"),
    );
    expect(params).toEqual({
      url: "u",
      enabled_events: ["a", "b"],
      metadata: { x: "1" },
      list: ["p", "q"],
      nested: { a: [{ b: "c" }] },
    });
  });
});

async function restartWith(maxEndpoints: number): Promise<StripeFake> {
  await fake.close();
  fake = await startStripeFake({ secretKey: SECRET_KEY, maxEndpoints });
  stripe = clientFor(SECRET_KEY);
  return fake;
}
