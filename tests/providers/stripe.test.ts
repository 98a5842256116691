// Contract tests for the live Stripe adapter (convex/providers/stripe.ts) on the real stripe
// SDK against the Stripe fake: one webhook endpoint per tenant, tagged with managedBy and
// instanceId metadata, whose signing secret survives a lost create response through the
// idempotency key; Brain-owned listing across pages; deletes; classified errors with
// exactly one request per attempt (SDK retries off).
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { TENANT_WEBHOOK_EVENTS, liveStripe } from "../../convex/providers/stripe";
import { ProviderError } from "../../convex/providers/types";
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

const ENDPOINTS = /^\/v1\/webhook_endpoints$/;
const ENDPOINT = /^\/v1\/webhook_endpoints\/we_/;
const urlFor = (instanceId: string) => `https://${instanceId}.tenants.example.com/stripe/webhook`;

describe("ensureWebhookEndpoint", () => {
  test("creates an enabled endpoint tagged managedBy brain and the instance id, and returns its signing secret", async () => {
    const stripe = liveStripe(h.env);
    const result = await stripe.ensureWebhookEndpoint({ instanceId: "inst_s1", url: urlFor("inst_s1") });

    const [endpoint, ...others] = h.fakes.stripe.endpoints();
    expect(others).toEqual([]);
    expect(endpoint).toMatchObject({
      id: result.endpointId,
      url: urlFor("inst_s1"),
      status: "enabled",
      enabled_events: TENANT_WEBHOOK_EVENTS,
      metadata: { managedBy: "brain", instanceId: "inst_s1" },
    });
    expect(result.secret).toMatch(/^whsec_/);
    expect(result.secret).toBe(endpoint.secret);
    const creates = since(0, "POST", ENDPOINTS);
    expect(creates).toHaveLength(1);
    // Keyed by the instance and the URL: a retry after cleanup (a new deployment URL) is a new request.
    expect(creates[0].headers["idempotency-key"]).toMatch(/^brain-webhook-endpoint-inst_s1-[0-9a-f]{16}$/);
  });

  test("a lost create response fails transiently and the retry returns the same endpoint and signing secret", async () => {
    const stripe = liveStripe(h.env);
    h.fakes.stripe.inject({ method: "POST", path: ENDPOINTS, dropResponse: true });

    const error = await providerError(stripe.ensureWebhookEndpoint({ instanceId: "inst_s2", url: urlFor("inst_s2") }));
    expect(error).toMatchObject({ provider: "stripe", kind: "transient" });
    const [created] = h.fakes.stripe.endpoints();

    const retried = await stripe.ensureWebhookEndpoint({ instanceId: "inst_s2", url: urlFor("inst_s2") });

    expect(retried).toEqual({ endpointId: created.id, secret: created.secret });
    expect(h.fakes.stripe.endpoints()).toHaveLength(1);
  });

  test("ensuring the same instance twice returns the one endpoint with its secret", async () => {
    const stripe = liveStripe(h.env);
    const first = await stripe.ensureWebhookEndpoint({ instanceId: "inst_s3", url: urlFor("inst_s3") });
    const second = await stripe.ensureWebhookEndpoint({ instanceId: "inst_s3", url: urlFor("inst_s3") });

    expect(second).toEqual(first);
    expect(h.fakes.stripe.endpoints()).toHaveLength(1);
  });

  test("a replayed create whose endpoint was since deleted out of band makes a fresh endpoint with a new secret", async () => {
    const stripe = liveStripe(h.env);
    const first = await stripe.ensureWebhookEndpoint({ instanceId: "inst_s4", url: urlFor("inst_s4") });
    h.fakes.stripe.deleteEndpointOutOfBand(first.endpointId);

    const second = await stripe.ensureWebhookEndpoint({ instanceId: "inst_s4", url: urlFor("inst_s4") });

    expect(second.endpointId).not.toBe(first.endpointId);
    expect(second.secret).not.toBe(first.secret);
    expect(h.fakes.stripe.endpoints()).toEqual([
      expect.objectContaining({
        id: second.endpointId,
        secret: second.secret,
        metadata: { managedBy: "brain", instanceId: "inst_s4" },
      }),
    ]);
  });
});

describe("ensureWebhookEndpoint after the idempotency window", () => {
  test("an older endpoint tagged with the instance (its secret never recorded) is removed, leaving exactly one", async () => {
    const stale = await createEndpointDirectly(h.fakes.stripe, urlFor("inst_old"), { managedBy: "brain", instanceId: "inst_old" });
    const foreign = await createEndpointDirectly(h.fakes.stripe, urlFor("inst_old"), { instanceId: "inst_old" });
    const result = await liveStripe(h.env).ensureWebhookEndpoint({ instanceId: "inst_old", url: urlFor("inst_old") });
    const ids = h.fakes.stripe.endpoints().map((e) => e.id);
    expect(ids).toContain(result.endpointId);
    expect(ids).not.toContain(stale.id);
    // Not Brain's (no managedBy): never touched.
    expect(ids).toContain(foreign.id);
    expect(ids).toHaveLength(2);
  });
});

describe("probeWebhookEndpoint", () => {
  test("reports an enabled endpoint as ok, a disabled one and a missing one as not ok", async () => {
    const stripe = liveStripe(h.env);
    const { endpointId } = await stripe.ensureWebhookEndpoint({ instanceId: "inst_p", url: urlFor("inst_p") });
    expect(await stripe.probeWebhookEndpoint({ endpointId })).toMatchObject({ ok: true });

    const disable = await fetch(`${h.fakes.stripe.url}/v1/webhook_endpoints/${endpointId}`, {
      method: "POST",
      headers: { authorization: `Bearer ${FAKE_CREDENTIALS.stripeKey}`, "content-type": "application/x-www-form-urlencoded" },
      body: "disabled=true",
    });
    expect(disable.status).toBe(200);
    expect(await stripe.probeWebhookEndpoint({ endpointId })).toEqual({
      ok: false,
      detail: `Stripe webhook endpoint ${endpointId} is disabled`,
    });

    h.fakes.stripe.deleteEndpointOutOfBand(endpointId);
    const missing = await stripe.probeWebhookEndpoint({ endpointId });
    expect(missing.ok).toBe(false);
    expect(missing.detail).toContain("not found");
  });

  test("a 5xx while probing is thrown as transient, not reported as a missing endpoint", async () => {
    h.fakes.stripe.inject({ method: "GET", path: ENDPOINT, status: 500 });
    const error = await providerError(liveStripe(h.env).probeWebhookEndpoint({ endpointId: "we_any" }));
    expect(error).toMatchObject({ provider: "stripe", kind: "transient", status: 500 });
  });

  test("a dropped connection while probing is thrown as a transient network error, not reported as missing", async () => {
    h.fakes.stripe.inject({ method: "GET", path: ENDPOINT, dropResponse: true });
    const error = await providerError(liveStripe(h.env).probeWebhookEndpoint({ endpointId: "we_any" }));
    expect(error).toMatchObject({ provider: "stripe", kind: "transient", status: undefined });
    expect(error.message).toMatch(/^network error/);
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
    const { endpointId } = await stripe.ensureWebhookEndpoint({ instanceId: "inst_d", url: urlFor("inst_d") });

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
    [422, "permanent"],
  ] as const)("a %i on create is a %s ProviderError with the provider's message after exactly one request", async (status, kind) => {
    h.fakes.stripe.inject({
      method: "POST",
      path: ENDPOINTS,
      status,
      body: { error: { type: status >= 500 ? "api_error" : "invalid_request_error", message: `the provider says ${status}` } },
    });

    const error = await providerError(liveStripe(h.env).ensureWebhookEndpoint({ instanceId: "inst_e", url: urlFor("inst_e") }));

    expect(error).toMatchObject({ provider: "stripe", kind, status });
    expect(error.message).toContain(`the provider says ${status}`);
    expect(since(0, "POST", ENDPOINTS)).toHaveLength(1);
    expect(h.fakes.stripe.endpoints()).toEqual([]);
  });

  test("a 429 is rate_limited with retryAfterMs taken from Retry-After, after exactly one request", async () => {
    h.fakes.stripe.inject({ method: "POST", path: ENDPOINTS, status: 429, retryAfterSeconds: 1 });
    const error = await providerError(liveStripe(h.env).ensureWebhookEndpoint({ instanceId: "inst_r", url: urlFor("inst_r") }));
    expect(error).toMatchObject({ provider: "stripe", kind: "rate_limited", status: 429, retryAfterMs: 1000, providerCode: "rate_limit" });
    expect(since(0, "POST", ENDPOINTS)).toHaveLength(1);

    h.fakes.stripe.inject({ method: "GET", path: ENDPOINTS, status: 429, retryAfterSeconds: 0 });
    const immediate = await providerError(liveStripe(h.env).listWebhookEndpoints());
    expect(immediate).toMatchObject({ kind: "rate_limited", retryAfterMs: 0 });
  });

  test("an invalid URL is a permanent 400 carrying Stripe's message and code", async () => {
    const error = await providerError(liveStripe(h.env).ensureWebhookEndpoint({ instanceId: "inst_bad", url: "not a url" }));
    expect(error).toMatchObject({ provider: "stripe", kind: "permanent", status: 400, providerCode: "url_invalid" });
    expect(error.message).toContain("Invalid URL");
  });

  test("a wrong API key is a permanent 401", async () => {
    await h.close();
    h = await adapterHarness({ STRIPE_SECRET_KEY: "sk_test_not_the_key" });
    const error = await providerError(liveStripe(h.env).listWebhookEndpoints());
    expect(error).toMatchObject({ provider: "stripe", kind: "permanent", status: 401 });
    expect(error.message).toContain("Invalid API Key provided");
  });

  test("a dropped connection is a transient network error after exactly one request", async () => {
    h.fakes.stripe.inject({ method: "GET", path: ENDPOINTS, dropResponse: true });
    const error = await providerError(liveStripe(h.env).listWebhookEndpoints());
    expect(error).toMatchObject({ provider: "stripe", kind: "transient", status: undefined });
    expect(error.message).toContain("network error");
    expect(since(0, "GET", ENDPOINTS)).toHaveLength(1);
  });

  test("an unreachable API is a transient network error", async () => {
    const url = h.fakes.stripe.url;
    await h.fakes.stripe.close();
    const error = await providerError(liveStripe({ ...h.env, config: { ...h.env.config, STRIPE_API_URL: url } }).listWebhookEndpoints());
    expect(error).toMatchObject({ provider: "stripe", kind: "transient" });
  });

  test("a request slower than PROVIDER_TIMEOUT_MS is abandoned as transient", async () => {
    await h.close();
    h = await adapterHarness({ PROVIDER_TIMEOUT_MS: "200" });
    h.fakes.stripe.inject({ method: "GET", path: ENDPOINTS, latencyMs: 1_500 });
    const started = Date.now();
    const error = await providerError(liveStripe(h.env).listWebhookEndpoints());
    expect(error).toMatchObject({ provider: "stripe", kind: "transient" });
    expect(Date.now() - started).toBeLessThan(1_400);
    expect(since(0, "GET", ENDPOINTS)).toHaveLength(1);
  });
});
