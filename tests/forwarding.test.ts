// Stripe events forwarded to each tenant (convex/forwarding.ts): queued in the transaction that
// records the event, sent by a per-tenant pump in `created` order, signed in Stripe's scheme with
// the tenant's own secret, retried with backoff until TENANT_FORWARD_MAX_AGE_MS. Real HTTP: the
// live Convex adapter's deliverEvent posts to a fake tenant fleet (tests/fakes/tenant.ts) that
// verifies with stripe-node's constructEvent. Tests about time drive the fake clock exactly
// (the scheduled work due at each instant runs to completion before the clock moves on).
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import Stripe from "stripe";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { loadConfig } from "../convex/lib/config";
import { encryptSecret } from "../convex/lib/crypto";
import { newTenantWebhookSecret, stripeSignatureHeader, tenantEventsUrl } from "../convex/lib/stripeSignature";
import { kickForwarding, queueDeliveries, stopForwarding, type ForwardableEvent } from "../convex/model/forwarding";
import type { InstanceStatus } from "../convex/lib/validators";
import { startTenantFake, type TenantFake } from "./fakes/tenant";
import { adminHeaders, setupBackend, type TestBackend } from "./harness";

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const ENCRYPTION_KEY = Buffer.alloc(32, 7).toString("base64");
const PROVIDER_TIMEOUT_MS = 2_000;
/** What a claim's lease lasts (model/forwarding.ts leaseMs) with PROVIDER_TIMEOUT_MS above. */
const LEASE_MS = PROVIDER_TIMEOUT_MS + MINUTE;

const stripe = new Stripe("sk_test_x");

let tenant: TenantFake;
const secrets = new Map<string, string>();

beforeEach(async () => {
  secrets.clear();
  tenant = await startTenantFake({ secretFor: (deployment) => secrets.get(deployment) });
});
afterEach(async () => {
  vi.useRealTimers();
  await tenant.close();
});

/** Brain with the live Convex adapter (real HTTP to the fake tenants) and the default retry policy without jitter. */
function backend(env: Record<string, string> = {}) {
  return setupBackend({
    env: {
      PROVIDER_MODE_CONVEX: "live",
      CONVEX_TEAM_ID: "4242",
      CONVEX_TEAM_TOKEN: "convex-team-token-fake",
      ENCRYPTION_KEY,
      TENANT_EVENTS_URL_TEMPLATE: `${tenant.url}/{deployment}/stripe/events`,
      RETRY_JITTER: "0",
      PROVIDER_TIMEOUT_MS: String(PROVIDER_TIMEOUT_MS),
      ...env,
    },
  });
}

type Tenant = { instanceId: Id<"instances">; deployment: string; secret: string };

/** An instance with its deployment and its own sealed signing secret, inserted directly. */
async function tenantInstance(t: TestBackend, deployment: string, status: InstanceStatus = "active"): Promise<Tenant> {
  const secret = newTenantWebhookSecret();
  secrets.set(deployment, secret);
  const sealed = await encryptSecret(secret, ENCRYPTION_KEY);
  const instanceId = await t.run(async (ctx) => {
    const customerId = await ctx.db.insert("customers", { email: `${deployment}@example.com`, createdAt: Date.now() });
    return ctx.db.insert("instances", {
      customerId,
      checkoutSessionId: `cs_test_${deployment}`,
      plan: "starter",
      status,
      resources: { convexDeploymentName: deployment, tenantWebhookSecretCiphertext: sealed },
      createdAt: Date.now(),
    });
  });
  return { instanceId, deployment, secret };
}

let sequence = 0;

/** A Stripe event as Stripe sends it: pretty-printed, non-ASCII text, a trailing newline. The bytes must arrive as they are. */
function stripeEvent(createdSeconds: number, type = "invoice.paid"): ForwardableEvent {
  const n = ++sequence;
  const eventId = `evt_fwd_${n.toString().padStart(4, "0")}`;
  const event = {
    id: eventId,
    object: "event",
    api_version: "2025-10-29.clover",
    created: createdSeconds,
    livemode: false,
    type,
    data: { object: { id: `in_test_${n}`, object: "invoice", customer: "cus_test_1", amount_paid: 1900, description: "Café crème – naïve ✓ 🚀" } },
  };
  return { eventId, type, createdAt: createdSeconds * 1000, body: `${JSON.stringify(event, null, 2)}\n` };
}

const queue = (t: TestBackend, event: ForwardableEvent, instanceIds: Id<"instances">[]) =>
  t.run((ctx) => queueDeliveries(ctx, loadConfig(), event, instanceIds));

const deliveries = (t: TestBackend, instanceId?: Id<"instances">) =>
  t.run(async (ctx) => {
    const rows = await ctx.db.query("tenantDeliveries").collect();
    return rows.filter((row) => instanceId === undefined || row.instanceId === instanceId);
  });

const deliveryOf = async (t: TestBackend, eventId: string): Promise<Doc<"tenantDeliveries">> =>
  (await deliveries(t)).find((row) => row.eventId === eventId)!;

const pendingScheduled = (t: TestBackend) =>
  t.run(async (ctx) => (await ctx.db.system.query("_scheduled_functions").collect()).filter((f) => f.state.kind === "pending"));

/** Fake timers: runs everything due now (and what it schedules for now) to completion, without moving the clock. */
async function settle(t: TestBackend) {
  for (let round = 0; round < 500; round++) {
    vi.advanceTimersByTime(0);
    await t.finishInProgressScheduledFunctions();
    const due = (await pendingScheduled(t)).filter((f) => f.scheduledTime <= Date.now());
    if (due.length === 0) return;
  }
  throw new Error("scheduled work kept coming");
}

/** Fake timers: moves the clock to `until`, stopping at each scheduled time on the way to run what is due. */
async function advanceTo(t: TestBackend, until: number) {
  await settle(t);
  for (;;) {
    const next = Math.min(...(await pendingScheduled(t)).map((f) => f.scheduledTime));
    const stop = Math.min(next, until);
    if (stop > Date.now()) vi.advanceTimersByTime(Math.ceil(stop - Date.now()));
    await settle(t);
    if (next > until) return;
  }
}

/** Real timers: waits until `check` holds. */
async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("tenant signatures", () => {
  test("the header is Stripe's own: stripe-node verifies it with the secret and only that secret", async () => {
    const secret = newTenantWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(newTenantWebhookSecret()).not.toBe(secret);
    const { body } = stripeEvent(1_700_000_000);
    const now = Math.floor(Date.now() / 1000);
    const header = await stripeSignatureHeader(body, secret, now);
    expect(header).toMatch(new RegExp(`^t=${now},v1=[0-9a-f]{64}$`));
    expect(header).toBe(stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp: now }));
    expect(stripe.webhooks.constructEvent(body, header, secret).id).toBe(JSON.parse(body).id);
    expect(() => stripe.webhooks.constructEvent(body, header, newTenantWebhookSecret())).toThrow(/No signatures found/);
    expect(() => stripe.webhooks.constructEvent(`${body} `, header, secret)).toThrow(/No signatures found/);
  });

  test("the tenant's URL fills in its deployment and instance id", () => {
    const config = loadConfig({});
    expect(tenantEventsUrl(config, { deploymentName: "happy-otter-123", instanceId: "k1" })).toBe(
      "https://happy-otter-123.convex.site/stripe/events",
    );
    expect(
      tenantEventsUrl({ TENANT_EVENTS_URL_TEMPLATE: "http://127.0.0.1:9/{instanceId}/{deployment}" }, { deploymentName: "d", instanceId: "k 1" }),
    ).toBe("http://127.0.0.1:9/k%201/d");
  });
});

describe("forwarding Stripe events to tenants over HTTP (real timers)", () => {
  test("the tenant receives the original body byte for byte, signed with its own secret; another tenant gets nothing", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a");
    const b = await tenantInstance(t, "tenant-b");
    const event = stripeEvent(Math.floor(Date.now() / 1000));
    expect(await queue(t, event, [a.instanceId])).toBe(1);
    await eventually(async () => (await deliveryOf(t, event.eventId)).status === "delivered");

    expect(tenant.requests).toHaveLength(1);
    const [received] = tenant.accepted("tenant-a");
    expect(received.body).toBe(event.body);
    expect(Buffer.from(received.body, "utf8").equals(Buffer.from(event.body, "utf8"))).toBe(true);
    expect(stripe.webhooks.constructEvent(received.body, received.signature!, a.secret).id).toBe(event.eventId);
    expect(() => stripe.webhooks.constructEvent(received.body, received.signature!, b.secret)).toThrow(/No signatures found/);
    expect(tenant.accepted("tenant-b")).toEqual([]);

    const row = await deliveryOf(t, event.eventId);
    expect(row).toMatchObject({ instanceId: a.instanceId, status: "delivered", attempts: 1, lastStatus: 200 });
    expect(row.inFlight).toBeUndefined();
    expect(row.lastError).toBeUndefined();
  });

  test("each tenant gets only its own events, each verified by the tenant with its own secret", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a");
    const b = await tenantInstance(t, "tenant-b");
    const now = Math.floor(Date.now() / 1000);
    const forA = stripeEvent(now);
    const forB = stripeEvent(now);
    const forBoth = stripeEvent(now + 1, "customer.subscription.updated");
    await queue(t, forA, [a.instanceId]);
    await queue(t, forB, [b.instanceId]);
    await queue(t, forBoth, [a.instanceId, b.instanceId, a.instanceId]);
    await eventually(async () => (await deliveries(t)).every((row) => row.status === "delivered"));

    expect(await deliveries(t)).toHaveLength(4);
    expect(tenant.accepted("tenant-a").map((r) => r.eventId)).toEqual([forA.eventId, forBoth.eventId]);
    expect(tenant.accepted("tenant-b").map((r) => r.eventId)).toEqual([forB.eventId, forBoth.eventId]);
    // The fake verified every one with that deployment's secret: nothing was rejected.
    expect(tenant.requests.every((r) => r.answer === "accepted")).toBe(true);
  });

  test("a dropped connection counts as no answer: recorded, retried, then delivered", async () => {
    const t = backend({ RETRY_BASE_DELAY_MS: "50", RETRY_MAX_DELAY_MS: "100" });
    const a = await tenantInstance(t, "tenant-a");
    tenant.setMode("drop", "tenant-a");
    const event = stripeEvent(Math.floor(Date.now() / 1000));
    await queue(t, event, [a.instanceId]);
    await eventually(async () => (await deliveryOf(t, event.eventId)).attempts >= 1);
    const failed = await deliveryOf(t, event.eventId);
    expect(failed.status).toBe("pending");
    expect(failed.lastStatus).toBeUndefined();
    expect(failed.lastError).toMatch(/^transient: /);
    expect(failed.lastAttemptAt).toBeTypeOf("number");
    tenant.setMode("up", "tenant-a");
    await eventually(async () => (await deliveryOf(t, event.eventId)).status === "delivered");
    expect(tenant.accepted().map((r) => r.eventId)).toEqual([event.eventId]);
  });
});

describe("queueing (fake timers)", () => {
  beforeEach(() => vi.useFakeTimers());

  test("a delivery row exists as soon as the queueing transaction commits, before any scheduled work runs", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a");
    const event = stripeEvent(1_700_000_000);
    const queuedAt = Date.now();
    expect(await queue(t, event, [a.instanceId])).toBe(1);

    expect(await deliveries(t)).toEqual([
      expect.objectContaining({
        instanceId: a.instanceId,
        eventId: event.eventId,
        eventType: "invoice.paid",
        eventCreated: 1_700_000_000_000,
        body: event.body,
        status: "pending",
        attempts: 0,
        nextAttemptAt: queuedAt,
        expiresAt: queuedAt + loadConfig().TENANT_FORWARD_MAX_AGE_MS,
        createdAt: queuedAt,
      }),
    ]);
    // The pump is scheduled in the same transaction, and has not run.
    expect((await pendingScheduled(t)).map((f) => f.name)).toEqual(["forwarding:forwardTenantEvents"]);
    expect(tenant.requests).toEqual([]);
  });

  test("a transaction that fails after queueing leaves no row and no pump", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a");
    await expect(
      t.run(async (ctx) => {
        await queueDeliveries(ctx, loadConfig(), stripeEvent(1_700_000_000), [a.instanceId]);
        throw new Error("the intake failed after queueing");
      }),
    ).rejects.toThrow("the intake failed after queueing");
    expect(await deliveries(t)).toEqual([]);
    expect(await pendingScheduled(t)).toEqual([]);
  });

  test("one row per (instance, event): queueing again inserts nothing; other types and deleted instances get nothing", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a");
    const gone = await tenantInstance(t, "tenant-gone", "deleted");
    const event = stripeEvent(1_700_000_000);
    expect(await queue(t, event, [a.instanceId, a.instanceId])).toBe(1);
    expect(await queue(t, event, [a.instanceId])).toBe(0);
    expect(await queue(t, stripeEvent(1_700_000_000, "charge.succeeded"), [a.instanceId])).toBe(0);
    expect(await queue(t, stripeEvent(1_700_000_000), [gone.instanceId])).toBe(0);
    expect(await deliveries(t)).toHaveLength(1);
  });
});

describe("order, retries and expiry (fake timers, real HTTP)", () => {
  beforeEach(() => vi.useFakeTimers());

  test("a tenant down (503) for an hour then up receives every queued event once, in created order", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a");
    tenant.setMode("down", "tenant-a");
    const start = Date.now();
    // Queued out of order (Stripe does not promise order), spread over the outage.
    const created = [40, 10, 50, 20, 30].map((s) => Math.floor(start / 1000) + s);
    const events = created.map((c) => stripeEvent(c));
    for (const [i, event] of events.entries()) {
      await advanceTo(t, start + i * 10 * MINUTE);
      await queue(t, event, [a.instanceId]);
    }
    await advanceTo(t, start + HOUR);

    const duringOutage = tenant.requests.filter((r) => r.deployment === "tenant-a");
    expect(duringOutage.length).toBeGreaterThan(100); // about one try every 30 s once the backoff is capped
    expect(duringOutage.every((r) => r.answer === "down")).toBe(true);
    // Only the oldest pending event was ever tried: the first queued until an older one arrived.
    const oldestQueuedSoFar = (at: number) =>
      events.filter((_, i) => start + i * 10 * MINUTE <= at).sort((x, y) => x.createdAt - y.createdAt)[0].eventId;
    for (const request of duringOutage) expect(request.eventId).toBe(oldestQueuedSoFar(request.at));
    expect((await deliveries(t)).every((row) => row.status === "pending")).toBe(true);

    tenant.setMode("up", "tenant-a");
    await advanceTo(t, start + HOUR + MINUTE);
    const inOrder = [...events].sort((x, y) => x.createdAt - y.createdAt).map((e) => e.eventId);
    expect(tenant.accepted("tenant-a").map((r) => r.eventId)).toEqual(inOrder);
    expect((await deliveries(t)).map((row) => row.status)).toEqual(["delivered", "delivered", "delivered", "delivered", "delivered"]);
  });

  test("a failing head is retried on the backoff (1 s doubling, capped at 30 s) until its expiry, then fails; redeliver sends it again", async () => {
    const t = backend({ TENANT_FORWARD_MAX_AGE_MS: String(2 * MINUTE) });
    const a = await tenantInstance(t, "tenant-a");
    tenant.setMode("down", "tenant-a");
    const start = Date.now();
    const first = stripeEvent(Math.floor(start / 1000));
    const second = stripeEvent(Math.floor(start / 1000) + 60);
    await queue(t, first, [a.instanceId]);
    await advanceTo(t, start + MINUTE);
    await queue(t, second, [a.instanceId]); // waits behind the first
    await advanceTo(t, start + 2 * MINUTE - 1);

    // Delays 1, 2, 4, 8, 16, 30, 30 s; the next would be past the expiry, so the last try is at it.
    const tries = (eventId: string) => tenant.requests.filter((r) => r.eventId === eventId).map((r) => (r.at - start) / SECOND);
    expect(tries(first.eventId)).toEqual([0, 1, 3, 7, 15, 31, 61, 91]);
    expect(await deliveryOf(t, first.eventId)).toMatchObject({ status: "pending", attempts: 8, lastStatus: 503, lastError: "HTTP 503", nextAttemptAt: start + 2 * MINUTE });

    await advanceTo(t, start + 2 * MINUTE);
    expect(tries(first.eventId)).toEqual([0, 1, 3, 7, 15, 31, 61, 91, 120]);
    const failed = await deliveryOf(t, first.eventId);
    expect(failed).toMatchObject({ status: "failed", attempts: 9, lastStatus: 503, lastAttemptAt: start + 2 * MINUTE });
    expect(failed.inFlight).toBeUndefined();
    const audit = await t.query(internal.audit.listForInstance, { instanceId: a.instanceId });
    expect(audit.filter((e) => e.action === "delivery.failed")).toEqual([
      expect.objectContaining({ actor: "system:forwarding", attempt: 9, detail: expect.stringContaining(first.eventId) }),
    ]);
    // The next one goes at once.
    expect(tries(second.eventId)).toEqual([120]);

    tenant.setMode("up", "tenant-a");
    const response = await t.fetch(`/admin/deliveries/${failed._id}/redeliver`, { method: "POST", headers: adminHeaders() });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ deliveryId: failed._id, status: "pending" });
    expect(await deliveryOf(t, first.eventId)).toMatchObject({ status: "pending", attempts: 0, nextAttemptAt: Date.now(), expiresAt: Date.now() + 2 * MINUTE });
    await advanceTo(t, Date.now() + MINUTE);
    expect(tenant.accepted("tenant-a").map((r) => r.eventId)).toEqual([first.eventId, second.eventId]);
    expect(await deliveryOf(t, first.eventId)).toMatchObject({ status: "delivered", attempts: 1, lastStatus: 200 });
  });

  test("a held tenant (suspended, or still provisioning) gets nothing and its windows do not burn until it is kicked", async () => {
    const t = backend({ TENANT_FORWARD_MAX_AGE_MS: String(2 * MINUTE) });
    const suspended = await tenantInstance(t, "tenant-suspended", "suspended");
    const provisioning = await tenantInstance(t, "tenant-provisioning", "provisioning");
    const start = Date.now();
    const events = [stripeEvent(Math.floor(start / 1000) + 2), stripeEvent(Math.floor(start / 1000) + 1)];
    for (const event of events) await queue(t, event, [suspended.instanceId, provisioning.instanceId]);
    expect(await pendingScheduled(t)).toEqual([]); // nobody to send to: no pump
    const before = await deliveries(t);

    await advanceTo(t, start + HOUR);
    expect(await t.mutation(internal.forwarding.retryDueDeliveries, {})).toEqual({ kicked: 0 });
    await t.action(internal.forwarding.forwardTenantEvents, { instanceId: suspended.instanceId }); // a stray pump changes nothing
    await settle(t);
    expect(tenant.requests).toEqual([]);
    expect(await deliveries(t)).toEqual(before); // pending and untouched, an hour past their expiry

    // The hold ends: the engine patches the instance and kicks in one transaction.
    await t.run(async (ctx) => {
      await ctx.db.patch("instances", suspended.instanceId, { status: "active" });
      await kickForwarding(ctx, suspended.instanceId);
    });
    const renewed = await deliveries(t, suspended.instanceId);
    expect(renewed.map((row) => row.expiresAt)).toEqual([Date.now() + 2 * MINUTE, Date.now() + 2 * MINUTE]);
    await settle(t);
    expect(tenant.accepted("tenant-suspended").map((r) => r.eventId)).toEqual([events[1].eventId, events[0].eventId]);
    expect(tenant.accepted("tenant-provisioning")).toEqual([]);
    expect((await deliveries(t, provisioning.instanceId)).map((row) => row.status)).toEqual(["pending", "pending"]);
  });

  test("the end of a hold renews every pending window, past the first batch too, and the tenant gets them all in order", async () => {
    const t = backend({ TENANT_FORWARD_MAX_AGE_MS: String(2 * MINUTE) });
    const a = await tenantInstance(t, "tenant-a", "suspended");
    // 130 events, 60 to a second (Stripe's `created` has seconds only): the first batch ends inside a tie.
    const events = Array.from({ length: 130 }, (_, i) => stripeEvent(1_700_000_000 + Math.floor(i / 60)));
    for (const event of events) await queue(t, event, [a.instanceId]);
    await advanceTo(t, Date.now() + HOUR);

    await t.run(async (ctx) => {
      await ctx.db.patch("instances", a.instanceId, { status: "active" });
      await kickForwarding(ctx, a.instanceId);
    });
    const kickedAt = Date.now();
    expect((await deliveries(t)).filter((row) => row.expiresAt === kickedAt + 2 * MINUTE)).toHaveLength(100);
    await settle(t);
    expect(tenant.accepted("tenant-a").map((r) => r.eventId)).toEqual(events.map((e) => e.eventId));
    expect((await deliveries(t)).every((row) => row.status === "delivered" && row.attempts === 1)).toBe(true);
  });

  test("a secret that cannot be decrypted sends nothing: the attempt is recorded and retried like a failure", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a");
    const otherKey = Buffer.alloc(32, 9).toString("base64");
    const sealedElsewhere = await encryptSecret(a.secret, otherKey);
    await t.run((ctx) => ctx.db.patch("instances", a.instanceId, { resources: { convexDeploymentName: "tenant-a", tenantWebhookSecretCiphertext: sealedElsewhere } }));
    const event = stripeEvent(1_700_000_000);
    await queue(t, event, [a.instanceId]);
    await settle(t);
    expect(tenant.requests).toEqual([]);
    const row = await deliveryOf(t, event.eventId);
    expect(row).toMatchObject({ status: "pending", attempts: 1, nextAttemptAt: Date.now() + SECOND });
    expect(row.lastError).toMatch(/signing secret could not be decrypted/);
    expect(row.lastError).not.toContain(a.secret);
  });

  test("a pump that died holding the lease: its head waits out the lease, then the cron resumes delivery", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a");
    const event = stripeEvent(Math.floor(Date.now() / 1000));
    await queue(t, event, [a.instanceId]);
    // A pump claims the head and dies before sending.
    const dead = await t.mutation(internal.forwarding.claimNextDelivery, { instanceId: a.instanceId });
    expect(dead.kind).toBe("claimed");
    const claimedAt = Date.now();

    await settle(t); // the pump the queueing scheduled finds the head in flight and exits
    expect(await t.mutation(internal.forwarding.claimNextDelivery, { instanceId: a.instanceId })).toEqual({ kind: "none", reason: "busy" });
    await advanceTo(t, claimedAt + LEASE_MS - 1);
    expect(await t.mutation(internal.forwarding.retryDueDeliveries, {})).toEqual({ kicked: 0 });
    expect(tenant.requests).toEqual([]);

    await advanceTo(t, claimedAt + LEASE_MS + 1);
    expect(await t.mutation(internal.forwarding.retryDueDeliveries, {})).toEqual({ kicked: 1 });
    await settle(t);
    expect(tenant.accepted("tenant-a").map((r) => r.eventId)).toEqual([event.eventId]);
    expect(await deliveryOf(t, event.eventId)).toMatchObject({ status: "delivered", attempts: 1 });

    // The dead pump's result arrives after all: stale, nothing changes.
    if (dead.kind !== "claimed") throw new Error("unreachable");
    const late = await t.mutation(internal.forwarding.recordDeliveryResult, {
      deliveryId: dead.deliveryId,
      token: dead.token,
      outcome: { kind: "answered", status: 503 },
    });
    expect(late).toEqual({ kind: "stale" });
    expect(await deliveryOf(t, event.eventId)).toMatchObject({ status: "delivered", attempts: 1, lastStatus: 200 });
  });

  test("stopping a tenant fails every pending delivery with the reason, in batches, and its in-flight result is stale", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a", "suspended");
    for (let i = 0; i < 130; i++) await queue(t, stripeEvent(1_700_000_000 + i), [a.instanceId]);
    await t.run(async (ctx) => {
      await ctx.db.patch("instances", a.instanceId, { status: "active" });
    });
    const claim = await t.mutation(internal.forwarding.claimNextDelivery, { instanceId: a.instanceId });
    if (claim.kind !== "claimed") throw new Error(`expected a claim, got ${claim.kind}`);

    await t.run((ctx) => stopForwarding(ctx, a.instanceId, "the instance was deprovisioned"));
    expect((await deliveries(t)).filter((row) => row.status === "failed")).toHaveLength(100);
    await settle(t);
    const rows = await deliveries(t);
    expect(rows.every((row) => row.status === "failed" && row.lastError === "the instance was deprovisioned")).toBe(true);
    const stale = await t.mutation(internal.forwarding.recordDeliveryResult, {
      deliveryId: claim.deliveryId,
      token: claim.token,
      outcome: { kind: "answered", status: 200 },
    });
    expect(stale).toEqual({ kind: "stale" });
    const audit = await t.query(internal.audit.listForInstance, { instanceId: a.instanceId });
    expect(audit.filter((e) => e.action === "deliveries.stopped").map((e) => e.detail)).toEqual([
      "100 pending deliveries failed: the instance was deprovisioned",
      "30 pending deliveries failed: the instance was deprovisioned",
    ]);
  });
});

describe("admin routes for deliveries", () => {
  beforeEach(() => vi.useFakeTimers());

  test("GET /admin/deliveries lists an instance's deliveries; 401 without the token, 400 without instanceId, 404 for unknown ids", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a", "suspended");
    const b = await tenantInstance(t, "tenant-b", "suspended");
    const older = stripeEvent(1_700_000_000);
    const newer = stripeEvent(1_700_000_100, "customer.subscription.updated");
    await queue(t, newer, [a.instanceId]);
    await queue(t, older, [a.instanceId, b.instanceId]);

    expect((await t.fetch(`/admin/deliveries?instanceId=${a.instanceId}`)).status).toBe(401);
    const missing = await t.fetch("/admin/deliveries", { headers: adminHeaders() });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ error: { code: "BAD_REQUEST", message: expect.any(String) } });
    for (const unknown of ["nope", String(await t.run((ctx) => ctx.db.insert("customers", { email: "x@example.com", createdAt: 0 })))]) {
      const response = await t.fetch(`/admin/deliveries?instanceId=${encodeURIComponent(unknown)}`, { headers: adminHeaders() });
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({ error: { code: "NOT_FOUND", message: expect.any(String) } });
    }
    expect((await t.fetch(`/admin/deliveries?instanceId=${a.instanceId}&limit=0`, { headers: adminHeaders() })).status).toBe(400);

    const response = await t.fetch(`/admin/deliveries?instanceId=${a.instanceId}`, { headers: adminHeaders() });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { deliveries: Record<string, unknown>[] };
    expect(body.deliveries.map((d) => d.eventId)).toEqual([newer.eventId, older.eventId]);
    expect(body.deliveries[0]).toEqual({
      deliveryId: expect.any(String),
      eventId: newer.eventId,
      instanceId: a.instanceId,
      eventType: "customer.subscription.updated",
      status: "pending",
      attempts: 0,
      nextAttemptAt: expect.any(Number),
      expiresAt: expect.any(Number),
      eventCreated: 1_700_000_100_000,
      createdAt: expect.any(Number),
      inFlight: false,
    });
    expect(JSON.stringify(body)).not.toContain("Café"); // never the body
    const limited = await t.fetch(`/admin/deliveries?instanceId=${a.instanceId}&limit=1`, { headers: adminHeaders() });
    expect(((await limited.json()) as { deliveries: unknown[] }).deliveries).toHaveLength(1);
  });

  test("POST /admin/deliveries/:id/redeliver answers 202 and is audited; 404 for an unknown id; 401 without the token; 405 for GET", async () => {
    const t = backend();
    const a = await tenantInstance(t, "tenant-a", "suspended");
    const event = stripeEvent(1_700_000_000);
    await queue(t, event, [a.instanceId]);
    await t.run((ctx) => stopForwarding(ctx, a.instanceId, "operator test"));
    const row = await deliveryOf(t, event.eventId);

    expect((await t.fetch(`/admin/deliveries/${row._id}/redeliver`, { method: "POST" })).status).toBe(401);
    expect((await t.fetch(`/admin/deliveries/${row._id}/redeliver`, { headers: adminHeaders() })).status).toBe(405);
    for (const path of ["/admin/deliveries/nope/redeliver", `/admin/deliveries/${a.instanceId}/redeliver`, `/admin/deliveries/${row._id}`]) {
      const response = await t.fetch(path, { method: "POST", headers: adminHeaders() });
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({ error: { code: "NOT_FOUND", message: expect.any(String) } });
    }

    const response = await t.fetch(`/admin/deliveries/${row._id}/redeliver`, { method: "POST", headers: adminHeaders() });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ deliveryId: row._id, status: "pending" });
    expect(await deliveryOf(t, event.eventId)).toMatchObject({ status: "pending", attempts: 0 });

    await t.fetch(`/admin/deliveries?instanceId=${a.instanceId}`, { headers: adminHeaders() });
    const audit = await t.run(async (ctx) => (await ctx.db.query("auditLogs").collect()).map((e) => e.action));
    expect(audit).toEqual(
      expect.arrayContaining(["delivery.redeliver_refused", "delivery.redelivered", "deliveries.listed", "deliveries.stopped"]),
    );
    expect(audit.filter((action) => action === "delivery.redeliver_refused")).toHaveLength(3);
  });
});
