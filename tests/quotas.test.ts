// Per-customer quotas (issue 11, docs/security.md#per-customer-quotas): MAX_INSTANCES_PER_CUSTOMER
// caps a customer's instances that are not deleted, MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY their
// checkouts in any rolling 24 hours. A paid checkout over either is recorded needs_attention with
// the reason, alerts the operators once and provisions nothing; other customers go on as before.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import { checkoutEvent, sendEvent, setupBackend, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

const DAY = 24 * 60 * 60_000;
const OPERATOR = "oncall@example.com";

/**
 * One paid checkout of customer `who` (same Stripe customer id and email each time), received by
 * the webhook and processed at once (the processing it scheduled is run directly, so no timer
 * fires and no job step runs: the clock moves only by vi.setSystemTime).
 */
async function buy(t: TestBackend, who: string) {
  const event = checkoutEvent({ customerId: `cus_${who}`, email: `${who}@example.com` });
  const response = await sendEvent(t, event);
  expect(response.status).toBe(200);
  await processEvent(t, event.id);
  const record = await t.query(internal.stripe.getStripeEvent, { eventId: event.id });
  return { event, record: record! };
}

async function processEvent(t: TestBackend, eventId: string) {
  const row = await t.run((ctx) => ctx.db.query("stripeEvents").withIndex("by_eventId", (q) => q.eq("eventId", eventId)).unique());
  await t.mutation(internal.stripe.processStripeEvent, { id: row!._id });
}

/** Every customer, instance and job document: what "provisions nothing" is checked against. */
const provisioned = (t: TestBackend) =>
  t.run(async (ctx) => ({
    customers: await ctx.db.query("customers").collect(),
    instances: await ctx.db.query("instances").collect(),
    jobs: await ctx.db.query("provisioningJobs").collect(),
  }));

const quotaAlerts = (t: TestBackend) =>
  t.run(async (ctx) => (await ctx.db.query("alertDeliveries").collect()).filter((row) => row.type === "checkout.over_quota"));

function backend(env: Record<string, string>) {
  return setupBackend({ env: { ALERT_EMAILS: OPERATOR, SANDBOX_LATENCY_MS: "0", ...env } });
}

describe("per-customer quotas", () => {
  test("a customer at MAX_INSTANCES_PER_CUSTOMER is provisioned; one more is needs_attention, alerts once and provisions nothing", async () => {
    const t = backend({ MAX_INSTANCES_PER_CUSTOMER: "2", MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY: "50" });
    const first = await buy(t, "ada");
    const second = await buy(t, "ada");
    expect([first.record.outcome, second.record.outcome]).toEqual(["provisioning_started", "provisioning_started"]);

    const before = await provisioned(t);
    expect(before.instances).toHaveLength(2);
    const over = await buy(t, "ada");
    expect(over.record.outcome).toBe("needs_attention");
    expect(over.record.detail).toContain("MAX_INSTANCES_PER_CUSTOMER=2");
    expect(over.record.detail).toContain("already holds 2 instances");
    expect(over.record.processedAt).toBeDefined();
    // Nothing provisioned: no customer, instance or job row created or changed.
    expect(await provisioned(t)).toEqual(before);

    // The operators are alerted once, naming the event and the quota (never an address).
    const alerts = await quotaAlerts(t);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ channel: "email", destination: OPERATOR, correlationId: over.event.id, status: "pending" });
    expect(alerts[0].incidentId).toBeUndefined();
    const body = JSON.parse(alerts[0].body);
    expect(body).toMatchObject({
      type: "checkout.over_quota",
      eventId: over.event.id,
      checkoutSessionId: over.event.data.object.id,
      customerId: before.customers[0]._id,
      quota: "instances",
      limit: 2,
    });
    expect(alerts[0].body).not.toContain("ada@example.com");

    // The alert is delivered like any other (sandbox Resend here).
    await t.action(internal.alerts.sendAlertDelivery, { deliveryId: alerts[0]._id });
    expect((await quotaAlerts(t)).map((row) => row.status)).toEqual(["delivered"]);

    // Audited, and the status page says it needs attention.
    const audit = await t.run((ctx) => ctx.db.query("auditLogs").withIndex("by_action", (q) => q.eq("action", "stripe.needs_attention")).collect());
    expect(audit.map((row) => row.detail)).toEqual([`checkout.session.completed: ${over.record.detail}`]);
    const status = await t.fetch(`/status?session_id=${over.event.data.object.id}`, { headers: { Accept: "application/json" } });
    expect(await status.json()).toMatchObject({ status: "failed", instanceId: null, jobId: null });
  });

  test("a redelivery of the over-quota event stays a duplicate: no second alert, nothing provisioned", async () => {
    const t = backend({ MAX_INSTANCES_PER_CUSTOMER: "1" });
    await buy(t, "bob");
    const over = await buy(t, "bob");
    expect(over.record.outcome).toBe("needs_attention");
    const before = await provisioned(t);

    const again = await sendEvent(t, over.event);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ received: true, duplicate: true });
    await processEvent(t, over.event.id);
    expect(await quotaAlerts(t)).toHaveLength(1);
    expect(await provisioned(t)).toEqual(before);
    const record = await t.query(internal.stripe.getStripeEvent, { eventId: over.event.id });
    expect(record).toEqual(over.record);
  });

  test("deleted instances do not count, and other customers are unaffected by one customer's quota", async () => {
    const t = backend({ MAX_INSTANCES_PER_CUSTOMER: "1" });
    const mine = await buy(t, "cleo");
    expect((await buy(t, "cleo")).record.outcome).toBe("needs_attention");

    // Another customer at the same moment: provisioned as usual.
    const other = await buy(t, "dan");
    expect(other.record.outcome).toBe("provisioning_started");

    // Once Cleo's instance is deleted it no longer counts.
    const instanceId = await instanceOf(t, mine.event.data.object.id);
    await t.run((ctx) => ctx.db.patch("instances", instanceId, { status: "deleted", deletedAt: Date.now() }));
    expect((await buy(t, "cleo")).record.outcome).toBe("provisioning_started");
    expect(await quotaAlerts(t)).toHaveLength(1);
  });

  test("MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY counts the rolling 24 hours, and the window rolls over", async () => {
    const t = backend({ MAX_INSTANCES_PER_CUSTOMER: "50", MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY: "2" });
    const first = await buy(t, "eve");
    vi.setSystemTime(Date.now() + DAY / 2);
    const second = await buy(t, "eve");
    expect([first.record.outcome, second.record.outcome]).toEqual(["provisioning_started", "provisioning_started"]);

    const before = await provisioned(t);
    const third = await buy(t, "eve");
    expect(third.record.outcome).toBe("needs_attention");
    expect(third.record.detail).toContain("made 2 checkouts in the last 24 hours (MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY=2)");
    expect(await provisioned(t)).toEqual(before);
    expect(JSON.parse((await quotaAlerts(t))[0].body)).toMatchObject({ quota: "checkouts", limit: 2, eventId: third.event.id });

    // Another customer the same day is unaffected.
    expect((await buy(t, "fay")).record.outcome).toBe("provisioning_started");

    // A day after the first checkout it has left the window: one more fits, and then the window is full again.
    vi.setSystemTime(Date.now() + DAY / 2 + 1_000);
    expect((await buy(t, "eve")).record.outcome).toBe("provisioning_started");
    expect((await buy(t, "eve")).record.outcome).toBe("needs_attention");
    expect(await quotaAlerts(t)).toHaveLength(2);
  });

  test("the defaults are 5 instances and 10 checkouts a day", async () => {
    const t = backend({});
    const outcomes: string[] = [];
    for (let i = 0; i < 6; i++) outcomes.push((await buy(t, "gus")).record.outcome);
    expect(outcomes).toEqual([...Array(5).fill("provisioning_started"), "needs_attention"]);
    const { loadConfig } = await import("../convex/lib/config");
    expect(loadConfig({})).toMatchObject({ MAX_INSTANCES_PER_CUSTOMER: 5, MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY: 10 });
  });

  test("a limit of 0 refuses even a new customer, and creates no customer row", async () => {
    const t = backend({ MAX_INSTANCES_PER_CUSTOMER: "0" });
    const over = await buy(t, "hal");
    expect(over.record.outcome).toBe("needs_attention");
    expect(await provisioned(t)).toEqual({ customers: [], instances: [], jobs: [] });
    expect(JSON.parse((await quotaAlerts(t))[0].body).customerId).toBeUndefined();
  });
});

async function instanceOf(t: TestBackend, sessionId: string) {
  return t.run(async (ctx) => {
    const row = await ctx.db
      .query("instances")
      .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
      .unique();
    return row!._id;
  });
}
