// The daily reconciliation of Stripe with the instances (convex/reconciliation.ts, POST
// /admin/reconcile): the live Stripe adapter lists the Stripe fake's subscriptions and checkout
// sessions over real HTTP; every other provider is the sandbox. Real timers (the SDK does real
// I/O), sandbox latency and retry delays near zero. Instances are put in their state with t.run,
// or provisioned for real by the reconciliation itself.
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { loadConfig } from "../convex/lib/config";
import type { SubscriptionStatus } from "../convex/lib/validators";
import { brake, classify, type InstanceFacts } from "../convex/model/reconcile";
import type { CheckoutSnapshot, SubscriptionSnapshot } from "../convex/providers/types";
import { FAKE_CREDENTIALS } from "./fakes";
import { startStripeFake, type StripeFake } from "./fakes/stripe";
import { adminHeaders, pollUntilSettled, setupBackend, type TestBackend } from "./harness";

const DAY = 24 * 60 * 60_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let counter = 0;
const unique = (prefix: string) => `${prefix}_rc${Date.now().toString(36)}${(++counter).toString(36).padStart(3, "0")}`;

describe("reconciliation rules", () => {
  const config = loadConfig({});
  const NOW = 1_800_000_000_000;
  const sub = (status: SubscriptionStatus, id = "sub_1"): SubscriptionSnapshot => ({ subscriptionId: id, customerId: "cus_1", status, created: NOW - DAY });
  const instance = (fields: Partial<InstanceFacts> = {}): InstanceFacts => ({
    instanceId: "inst_1",
    status: "active",
    stripeSubscriptionId: "sub_1",
    busy: false,
    ...fields,
  });
  const session = (fields: Partial<CheckoutSnapshot> = {}): CheckoutSnapshot => ({
    sessionId: "cs_1",
    paymentStatus: "paid",
    subscriptionId: "sub_1",
    status: "complete",
    mode: "subscription",
    created: NOW - DAY,
    ...fields,
  });
  const types = (subscription: SubscriptionSnapshot, facts: InstanceFacts | null) =>
    classify({ subscriptions: [{ subscription, instance: facts }], sessions: [], config, now: NOW }).map((f) => f.difference.action);

  test.each([
    ["active + active instance", sub("active"), instance(), []],
    ["unpaid + active instance", sub("unpaid"), instance(), ["suspend"]],
    ["paused + active instance", sub("paused"), instance({ status: "active" }), ["suspend"]],
    ["past_due never applied + active instance (its clock has not started)", sub("past_due"), instance(), []],
    [
      "past_due applied 8 days ago + active instance",
      sub("past_due"),
      instance({ applied: { subscriptionId: "sub_1", status: "past_due" }, pastDueSince: NOW - 8 * DAY }),
      ["suspend"],
    ],
    ["active + suspended instance", sub("active"), instance({ status: "suspended" }), ["resume"]],
    ["active + suspended instance in its grace", sub("active"), instance({ status: "suspended", deprovisionAt: NOW + DAY }), []],
    [
      "active + suspended instance resuming (its job runs)",
      sub("active"),
      instance({ status: "suspended", busy: true, applied: { subscriptionId: "sub_1", status: "active" } }),
      [],
    ],
    ["canceled + active instance", sub("canceled"), instance(), ["deprovision"]],
    ["incomplete_expired + provisioning instance", sub("incomplete_expired"), instance({ status: "provisioning" }), ["deprovision"]],
    ["canceled + instance in its grace", sub("canceled"), instance({ status: "suspended", deprovisionAt: NOW + DAY }), []],
    ["canceled + deleted instance", sub("canceled"), instance({ status: "deleted" }), []],
    ["unpaid + provisioning instance", sub("unpaid"), instance({ status: "provisioning" }), []],
    ["active + no instance", sub("active"), null, ["report"]],
    ["canceled + no instance", sub("canceled"), null, []],
    ["active + an instance paid by another subscription", sub("active"), instance({ stripeSubscriptionId: "sub_0" }), ["report"]],
    ["canceled + an instance paid by no subscription yet", sub("canceled"), instance({ stripeSubscriptionId: undefined }), ["deprovision"]],
  ] as const)("%s -> %j", (_name, subscription, facts, expected) => {
    expect(types(subscription, facts)).toEqual(expected);
  });

  test.each([
    ["a paid session with no instance", session(), null, [], ["provision"]],
    ["no_payment_required", session({ paymentStatus: "no_payment_required" }), null, [], ["provision"]],
    ["unpaid (async payment pending)", session({ paymentStatus: "unpaid" }), null, [], []],
    ["a setup session", session({ mode: "setup" }), null, [], []],
    ["a session with its instance", session(), "inst_1", [], []],
    ["a session whose subscription Stripe lists as ended", session(), null, [sub("canceled")], []],
    ["a one-time payment", session({ subscriptionId: undefined, mode: "payment" }), null, [], ["provision"]],
  ] as const)("%s -> %j", (_name, listed, instanceId, subscriptions, expected) => {
    const found = classify({
      subscriptions: subscriptions.map((subscription) => ({ subscription, instance: null })),
      sessions: [{ session: listed, instanceId }],
      config,
      now: NOW,
    });
    expect(found.map((f) => f.difference.action)).toEqual(expected);
  });

  test("a subscription a session of the window explains is not unknown; actionable differences come before reports", () => {
    const found = classify({
      subscriptions: [
        { subscription: sub("active", "sub_new"), instance: null },
        { subscription: sub("active", "sub_stray"), instance: null },
        { subscription: sub("unpaid", "sub_1"), instance: instance() },
      ],
      sessions: [{ session: session({ subscriptionId: "sub_new" }), instanceId: null }],
      config,
      now: NOW,
    });
    expect(found.map((f) => [f.difference.type, f.difference.subscriptionId])).toEqual([
      ["paid_not_provisioned", "sub_new"],
      ["status_mismatch", "sub_1"],
      ["unknown_subscription", "sub_stray"],
    ]);
  });

  test.each([
    ["10 changes, 10 allowed", 10, 0, 10, false],
    ["11 changes, 10 allowed", 11, 0, 10, true],
    ["11 changes, 5% of 220 instances is 11", 11, 220, 10, false],
    ["12 changes, 5% of 220 instances is 11", 12, 220, 10, true],
    ["3 changes, RECONCILE_MAX_CHANGES 2, a fleet of 40", 3, 40, 2, true],
  ] as const)("brake: %s -> braked %s", (_name, changes, fleet, max, braked) => {
    const differences = Array.from({ length: changes }, (_, i) => ({
      type: "cancelled_still_running" as const,
      subscriptionId: `sub_${i}`,
      action: i % 2 ? ("deprovision" as const) : ("suspend" as const),
    }));
    const reports = Array.from({ length: 50 }, () => ({ type: "unknown_subscription" as const, action: "report" as const }));
    expect(brake([...differences, ...reports], fleet, max).braked).toBe(braked);
  });
});

// ---------------------------------------------------------------------------------------------

let stripe: StripeFake;
beforeEach(async () => {
  stripe = await startStripeFake({ secretKey: FAKE_CREDENTIALS.stripeKey });
});
afterEach(async () => {
  await stripe.close();
});

/** Live Stripe against the fake; everything else the sandbox. */
function setup(env: Record<string, string> = {}): TestBackend {
  return setupBackend({
    env: {
      PROVIDER_MODE_STRIPE: "live",
      STRIPE_SECRET_KEY: FAKE_CREDENTIALS.stripeKey,
      STRIPE_API_URL: stripe.url,
      ENCRYPTION_KEY: Buffer.alloc(32, 11).toString("base64"),
      PROVIDER_TIMEOUT_MS: "2000",
      RATE_LIMIT_STRIPE_RPS: "50",
      SANDBOX_LATENCY_MS: "5",
      RETRY_BASE_DELAY_MS: "20",
      RETRY_MAX_DELAY_MS: "200",
      RETRY_JITTER: "0",
      ...env,
    },
  });
}

type RunBody = {
  dryRun: boolean;
  braked: boolean;
  differences: { type: string; subscriptionId?: string; checkoutSessionId?: string; instanceId?: string; action: string }[];
  applied: { type: string; subscriptionId?: string; checkoutSessionId?: string; instanceId?: string; action: string; result: string }[];
};

async function reconcileVia(t: TestBackend, body?: string, headers: Record<string, string> = adminHeaders()) {
  const response = await t.fetch("/admin/reconcile", {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    ...(body === undefined ? {} : { body }),
  });
  return { status: response.status, body: (await response.json()) as RunBody & { error?: { code: string; message: string } } };
}
const apply = (t: TestBackend) => reconcileVia(t, JSON.stringify({ dryRun: false }));

type TenantOptions = {
  /** The instance's status (default active). */
  status?: Doc<"instances">["status"];
  /** The subscription's status in Stripe (default active); null: Stripe does not list it. */
  stripeStatus?: SubscriptionStatus | null;
  /** The subscription state the instance applied last (a minute ago), if any. */
  applied?: SubscriptionStatus;
  deprovisionAt?: number;
  customerId?: string;
};
type Tenant = { subscriptionId: string; customerId: string; sessionId: string; instanceId: Id<"instances"> };

/** An instance paid by a subscription, put straight into its state (no resources: lifecycle steps have nothing to call). */
async function tenant(t: TestBackend, options: TenantOptions = {}): Promise<Tenant> {
  const subscriptionId = unique("sub");
  const customerId = options.customerId ?? unique("cus");
  const sessionId = unique("cs_test");
  if (options.stripeStatus !== null) stripe.addSubscription({ id: subscriptionId, customer: customerId, status: options.stripeStatus ?? "active" });
  const instanceId = await t.run(async (ctx) => {
    const customer = await ctx.db.insert("customers", { email: `${customerId}@example.com`, stripeCustomerId: customerId, createdAt: Date.now() });
    return ctx.db.insert("instances", {
      customerId: customer,
      checkoutSessionId: sessionId,
      plan: "starter",
      status: options.status ?? "active",
      resources: {},
      createdAt: Date.now() - DAY,
      stripeCustomerId: customerId,
      stripeSubscriptionId: subscriptionId,
      ...(options.applied
        ? { subscription: { subscriptionId, status: options.applied, createdAt: Date.now() - 60_000, source: "evt_earlier" } }
        : {}),
      ...(options.deprovisionAt !== undefined ? { deprovisionAt: options.deprovisionAt } : {}),
    });
  });
  return { subscriptionId, customerId, sessionId, instanceId };
}

/** A paid checkout Stripe has and Brain never heard of (its webhook was missed). */
function missedCheckout(options: { customerId?: string; subscriptionStatus?: SubscriptionStatus; createdAgoMs?: number } = {}) {
  const customerId = options.customerId ?? unique("cus");
  const created = Math.floor((Date.now() - (options.createdAgoMs ?? 60_000)) / 1000);
  const subscription = stripe.addSubscription({ customer: customerId, status: options.subscriptionStatus ?? "active", created });
  const session = stripe.addCheckoutSession({
    customer: customerId,
    subscription: subscription.id,
    created,
    customer_details: { email: `${customerId}@example.com`, name: "Ada Lovelace", phone: null, tax_exempt: "none" },
  });
  return { sessionId: session.id, subscriptionId: subscription.id, customerId };
}

const instanceOf = (t: TestBackend, id: Id<"instances">) => t.run(async (ctx) => (await ctx.db.get("instances", id))!);
const allInstances = (t: TestBackend) => t.run((ctx) => ctx.db.query("instances").collect());
const allJobs = (t: TestBackend) => t.run((ctx) => ctx.db.query("provisioningJobs").collect());
const auditActions = (t: TestBackend, action: string) =>
  t.run((ctx) =>
    ctx.db
      .query("auditLogs")
      .withIndex("by_action", (q) => q.eq("action", action))
      .collect(),
  );

/** Real timers: waits until no job is queued or running (lifecycle jobs run on the sandbox). */
async function jobsSettled(t: TestBackend, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const jobs = await allJobs(t);
    if (jobs.every((job) => job.status === "succeeded" || job.status === "failed")) return jobs;
    if (Date.now() > deadline) throw new Error(`jobs still in progress after ${timeoutMs} ms: ${jobs.map((j) => `${j.kind} ${j.status}`).join(", ")}`);
    await sleep(25);
  }
}

describe("reconciliation of Stripe with the instances", () => {
  test("a missed checkout.session.completed is provisioned: the paid customer gets their stack", async () => {
    const t = setup();
    const missed = missedCheckout();
    // Older than the 30-day window: not listed, not provisioned (Stripe's own redeliveries are long over).
    const ancient = missedCheckout({ createdAgoMs: 31 * DAY });

    const { status, body } = await apply(t);

    expect(status).toBe(200);
    expect(body.dryRun).toBe(false);
    expect(body.braked).toBe(false);
    expect(body.differences).toEqual([
      { type: "paid_not_provisioned", subscriptionId: missed.subscriptionId, checkoutSessionId: missed.sessionId, action: "provision" },
      { type: "unknown_subscription", subscriptionId: ancient.subscriptionId, action: "report" },
    ]);
    expect(body.applied).toEqual([
      {
        type: "paid_not_provisioned",
        subscriptionId: missed.subscriptionId,
        checkoutSessionId: missed.sessionId,
        instanceId: expect.any(String),
        action: "provision",
        result: expect.stringMatching(/^provisioning_started: job /),
      },
    ]);
    const ready = await pollUntilSettled(t, missed.sessionId);
    expect(ready.status).toBe("ready");
    const instance = await instanceOf(t, ready.instanceId as Id<"instances">);
    expect(instance).toMatchObject({
      status: "active",
      checkoutSessionId: missed.sessionId,
      stripeSubscriptionId: missed.subscriptionId,
      stripeCustomerId: missed.customerId,
    });
    expect(body.applied[0].instanceId).toBe(instance._id);
    expect(await allInstances(t)).toHaveLength(1);
  });

  test("a cancelled subscription's running instance is suspended at once and deprovisioned after the grace", async () => {
    const t = setup();
    const cancelled = await tenant(t, { stripeStatus: "canceled", applied: "active" });
    const before = Date.now();

    const { body } = await apply(t);

    expect(body.differences).toEqual([
      { type: "cancelled_still_running", subscriptionId: cancelled.subscriptionId, instanceId: cancelled.instanceId, action: "deprovision" },
    ]);
    expect(body.applied).toEqual([{ ...body.differences[0], result: `applied: ${cancelled.subscriptionId} canceled` }]);
    const jobs = await jobsSettled(t);
    expect(jobs.map((job) => [job.kind, job.status])).toEqual([["suspend", "succeeded"]]);
    const instance = await instanceOf(t, cancelled.instanceId);
    expect(instance.status).toBe("suspended");
    expect(instance.subscription).toMatchObject({ subscriptionId: cancelled.subscriptionId, status: "canceled", source: "snapshot:admin-api" });
    // The grace path: deprovisioned DEPROVISION_GRACE_MS (7 days) later, unless resubscribed.
    expect(instance.deprovisionAt).toBeGreaterThanOrEqual(before + 7 * DAY);
    expect(instance.deprovisionAt).toBeLessThanOrEqual(Date.now() + 7 * DAY);
  });

  test("an unpaid subscription's active instance is suspended and an active subscription's suspended instance is resumed", async () => {
    const t = setup();
    const unpaid = await tenant(t, { stripeStatus: "unpaid", applied: "active" });
    const paidAgain = await tenant(t, { status: "suspended", stripeStatus: "active", applied: "unpaid" });
    const fine = await tenant(t, { stripeStatus: "active", applied: "active" });

    const { body } = await apply(t);

    expect(body.differences).toEqual(
      expect.arrayContaining([
        { type: "status_mismatch", subscriptionId: unpaid.subscriptionId, instanceId: unpaid.instanceId, action: "suspend" },
        { type: "status_mismatch", subscriptionId: paidAgain.subscriptionId, instanceId: paidAgain.instanceId, action: "resume" },
      ]),
    );
    expect(body.differences).toHaveLength(2);
    expect(body.applied.map((a) => [a.action, a.result])).toEqual(
      expect.arrayContaining([
        ["suspend", `applied: ${unpaid.subscriptionId} unpaid`],
        ["resume", `applied: ${paidAgain.subscriptionId} active`],
      ]),
    );
    const jobs = await jobsSettled(t);
    expect(jobs.map((job) => [job.instanceId, job.kind, job.status])).toEqual(
      expect.arrayContaining([
        [unpaid.instanceId, "suspend", "succeeded"],
        [paidAgain.instanceId, "resume", "succeeded"],
      ]),
    );
    expect(jobs).toHaveLength(2);
    expect((await instanceOf(t, unpaid.instanceId)).status).toBe("suspended");
    expect((await instanceOf(t, paidAgain.instanceId)).status).toBe("active");
    expect((await instanceOf(t, fine.instanceId)).status).toBe("active");
  });

  test("an unknown subscription is only reported; an ended one nobody holds is not even that", async () => {
    const t = setup();
    const stray = stripe.addSubscription({ status: "active" });
    stripe.addSubscription({ status: "canceled" });

    const { body } = await apply(t);

    expect(body.differences).toEqual([{ type: "unknown_subscription", subscriptionId: stray.id, action: "report" }]);
    expect(body.applied).toEqual([]);
    expect(await allInstances(t)).toEqual([]);
    expect(await allJobs(t)).toEqual([]);
  });

  test("a paid session whose subscription Stripe lists as ended is not provisioned", async () => {
    const t = setup();
    missedCheckout({ subscriptionStatus: "canceled" });

    const { body } = await apply(t);

    expect(body.differences).toEqual([]);
    expect(await allInstances(t)).toEqual([]);
  });

  test("a customer who resubscribed within the grace, the webhook missed, gets the same instance back", async () => {
    const t = setup();
    const old = await tenant(t, { status: "suspended", stripeStatus: "canceled", applied: "canceled", deprovisionAt: Date.now() + 3 * DAY });
    const again = missedCheckout({ customerId: old.customerId });

    const { body } = await apply(t);

    expect(body.differences).toEqual([
      { type: "paid_not_provisioned", subscriptionId: again.subscriptionId, checkoutSessionId: again.sessionId, action: "provision" },
    ]);
    expect(body.applied[0].result).toBe(`applied: resubscribed within the grace: instance ${old.instanceId} resumes`);
    expect((await jobsSettled(t)).map((job) => [job.kind, job.status])).toEqual([["resume", "succeeded"]]);
    const instance = await instanceOf(t, old.instanceId);
    expect(instance).toMatchObject({ status: "active", stripeSubscriptionId: again.subscriptionId, checkoutSessionId: again.sessionId });
    expect(instance.deprovisionAt).toBeUndefined();
    expect(await allInstances(t)).toHaveLength(1);
  });

  test("an instance whose subscription Stripe does not list is never acted on (a wrong account lists none of ours)", async () => {
    const t = setup();
    const absent = await tenant(t, { stripeStatus: null, applied: "active" });
    const absentSuspended = await tenant(t, { status: "suspended", stripeStatus: null, applied: "unpaid" });

    const { body } = await apply(t);

    expect(body.differences).toEqual([]);
    expect((await instanceOf(t, absent.instanceId)).status).toBe("active");
    expect((await instanceOf(t, absentSuspended.instanceId)).status).toBe("suspended");
    expect(await allJobs(t)).toEqual([]);
  });

  test("a wrong API key applies nothing: the run is stored with its note and the route answers 502", async () => {
    const t = setup({ STRIPE_SECRET_KEY: "sk_test_someone_elses_key" });
    const cancelled = await tenant(t, { stripeStatus: "canceled", applied: "active" });
    missedCheckout();

    const { status, body } = await apply(t);

    expect(status).toBe(502);
    expect(body.error).toMatchObject({ code: "PROVIDER_UNAVAILABLE", message: expect.stringContaining("listing Stripe failed") });
    const untouched = await instanceOf(t, cancelled.instanceId);
    expect(untouched.status).toBe("active");
    expect(untouched.deprovisionAt).toBeUndefined();
    expect(await allInstances(t)).toHaveLength(1);
    expect(await allJobs(t)).toEqual([]);
    const run = await t.query(internal.reconciliation.getLastRun, {});
    expect(run).toMatchObject({ dryRun: false, braked: false, total: 0, differences: [], applied: [], note: expect.stringContaining("listing Stripe failed") });
    expect(await auditActions(t, "reconcile.listing_failed")).toHaveLength(1);
  });

  test("a dry run reports every difference and changes nothing: no jobs, no instances", async () => {
    const t = setup();
    const missed = missedCheckout();
    const cancelled = await tenant(t, { stripeStatus: "canceled", applied: "active" });
    const unpaid = await tenant(t, { stripeStatus: "unpaid", applied: "active" });
    const instancesBefore = await allInstances(t);

    const { status, body } = await reconcileVia(t); // an empty body is a dry run

    expect(status).toBe(200);
    expect(body).toEqual({
      dryRun: true,
      braked: false,
      differences: expect.arrayContaining([
        { type: "paid_not_provisioned", subscriptionId: missed.subscriptionId, checkoutSessionId: missed.sessionId, action: "provision" },
        { type: "cancelled_still_running", subscriptionId: cancelled.subscriptionId, instanceId: cancelled.instanceId, action: "deprovision" },
        { type: "status_mismatch", subscriptionId: unpaid.subscriptionId, instanceId: unpaid.instanceId, action: "suspend" },
      ]),
      applied: [],
    });
    expect(body.differences).toHaveLength(3);
    await sleep(50);
    expect(await allInstances(t)).toEqual(instancesBefore);
    expect(await allJobs(t)).toEqual([]);
    expect(await t.run((ctx) => ctx.db.query("customers").collect())).toHaveLength(2);
    expect(await t.query(internal.reconciliation.getLastRun, {})).toMatchObject({ dryRun: true, total: 3, applied: [] });
  });

  test("the brake: more suspensions or deprovisions than RECONCILE_MAX_CHANGES apply nothing at all, provisions included", async () => {
    const t = setup({ RECONCILE_MAX_CHANGES: "2" });
    const cancelled = [
      await tenant(t, { stripeStatus: "canceled", applied: "active" }),
      await tenant(t, { stripeStatus: "canceled", applied: "active" }),
      await tenant(t, { stripeStatus: "canceled", applied: "active" }),
    ];
    const missed = missedCheckout();
    const instancesBefore = await allInstances(t);

    const dry = await reconcileVia(t, JSON.stringify({ dryRun: true }));
    expect(dry.body).toMatchObject({ dryRun: true, braked: true, applied: [] });
    expect(await auditActions(t, "reconcile.braked")).toEqual([]);

    const { status, body } = await apply(t);

    expect(status).toBe(200);
    expect(body.dryRun).toBe(false);
    expect(body.braked).toBe(true);
    expect(body.applied).toEqual([]);
    expect(body.differences).toHaveLength(4);
    expect(body.differences.filter((d) => d.action === "deprovision").map((d) => d.instanceId).sort()).toEqual(
      cancelled.map((c) => c.instanceId).sort(),
    );
    expect(body.differences).toContainEqual(expect.objectContaining({ checkoutSessionId: missed.sessionId, action: "provision" }));
    await sleep(50);
    expect(await allInstances(t)).toEqual(instancesBefore);
    expect(await allJobs(t)).toEqual([]);
    const run = await t.query(internal.reconciliation.getLastRun, {});
    expect(run).toMatchObject({ dryRun: false, braked: true, total: 4, applied: [], note: expect.stringContaining("braked: 3 suspensions or deprovisions") });
    const [audit, ...more] = await auditActions(t, "reconcile.braked");
    expect(more).toEqual([]);
    expect(audit).toMatchObject({ actor: "admin-api", detail: expect.stringContaining("limit of 2") });
  });

  test("the brake allows 5% of the fleet when that is more than RECONCILE_MAX_CHANGES", async () => {
    const t = setup({ RECONCILE_MAX_CHANGES: "2" });
    const cancelled = [
      await tenant(t, { stripeStatus: "canceled", applied: "active" }),
      await tenant(t, { stripeStatus: "canceled", applied: "active" }),
      await tenant(t, { stripeStatus: "canceled", applied: "active" }),
    ];
    // 57 more instances (no subscription; a deleted one does not count): 60 in all, 5% is 3.
    await t.run(async (ctx) => {
      const customerId = await ctx.db.insert("customers", { email: "fleet@example.com", createdAt: Date.now() });
      for (let i = 0; i < 58; i++) {
        await ctx.db.insert("instances", {
          customerId,
          checkoutSessionId: `cs_fleet_${i}`,
          plan: "starter",
          status: i === 0 ? "deleted" : i % 3 ? "active" : "suspended",
          resources: {},
          createdAt: Date.now(),
        });
      }
    });

    const { body } = await apply(t);

    expect(body.braked).toBe(false);
    expect(body.applied.map((a) => a.instanceId).sort()).toEqual(cancelled.map((c) => c.instanceId).sort());
    await jobsSettled(t);
    for (const { instanceId } of cancelled) expect((await instanceOf(t, instanceId)).deprovisionAt).toBeDefined();
  });

  test("the same run twice applies nothing the second time", async () => {
    const t = setup();
    const missed = missedCheckout();
    await tenant(t, { stripeStatus: "canceled", applied: "active" });
    await tenant(t, { stripeStatus: "unpaid", applied: "active" });
    await tenant(t, { status: "suspended", stripeStatus: "active", applied: "unpaid" });

    const first = await apply(t);
    expect(first.body.applied).toHaveLength(4);
    expect((await pollUntilSettled(t, missed.sessionId)).status).toBe("ready");
    const jobsAfterFirst = await jobsSettled(t);
    const instancesAfterFirst = await allInstances(t);

    const second = await apply(t);

    expect(second.body).toEqual({ dryRun: false, braked: false, differences: [], applied: [] });
    await sleep(50);
    expect(await allJobs(t)).toEqual(jobsAfterFirst);
    expect(await allInstances(t)).toEqual(instancesAfterFirst);
  });

  test("each run is stored and reconciliation:getLastRun returns the newest, the cron's included", async () => {
    const t = setup();
    expect(await t.query(internal.reconciliation.getLastRun, {})).toBeNull();
    const stray = stripe.addSubscription({ status: "active" });
    const unpaid = await tenant(t, { stripeStatus: "unpaid", applied: "active" });

    await reconcileVia(t, JSON.stringify({ dryRun: true }));
    const result = await t.action(internal.reconciliation.runReconciliation, { dryRun: false, actor: "system:reconcile-cron" });

    const run = await t.query(internal.reconciliation.getLastRun, {});
    expect(run).toEqual({
      startedAt: expect.any(Number),
      finishedAt: expect.any(Number),
      actor: "system:reconcile-cron",
      dryRun: false,
      braked: false,
      subscriptionsSeen: 2,
      sessionsSeen: 0,
      total: 2,
      differences: result.differences,
      applied: result.applied,
    });
    expect(run!.differences).toEqual([
      { type: "status_mismatch", subscriptionId: unpaid.subscriptionId, instanceId: unpaid.instanceId, action: "suspend" },
      { type: "unknown_subscription", subscriptionId: stray.id, action: "report" },
    ]);
    expect(run!.applied).toEqual([{ ...run!.differences[0], result: `applied: ${unpaid.subscriptionId} unpaid` }]);
    expect(run!.finishedAt).toBeGreaterThanOrEqual(run!.startedAt);
    await jobsSettled(t);
  });

  test("only the newest 30 runs are kept, each with at most 500 differences while total counts all", async () => {
    const t = setup();
    const differences = Array.from({ length: 600 }, (_, i) => ({ type: "unknown_subscription" as const, subscriptionId: `sub_${i}`, action: "report" }));
    for (let i = 0; i < 35; i++) {
      await t.mutation(internal.reconciliation.recordRun, {
        startedAt: 1_000 + i,
        finishedAt: 2_000 + i,
        actor: "test",
        dryRun: true,
        braked: false,
        subscriptionsSeen: 600,
        sessionsSeen: 0,
        total: i === 34 ? differences.length : 0,
        differences: i === 34 ? differences : [],
        applied: [],
      });
    }
    const runs = await t.run((ctx) => ctx.db.query("reconciliationRuns").collect());
    expect(runs).toHaveLength(30);
    expect(Math.min(...runs.map((r) => r.startedAt))).toBe(1_005);
    const last = await t.query(internal.reconciliation.getLastRun, {});
    expect(last).toMatchObject({ startedAt: 1_034, total: 600 });
    expect(last!.differences).toHaveLength(500);
  });

  test("listings page past 100 items, paced by the Stripe request budget", async () => {
    const t = setup({ RATE_LIMIT_STRIPE_RPS: "10" });
    const now = Math.floor(Date.now() / 1000);
    // The oldest objects come last, on the second page of each list.
    const stray = stripe.addSubscription({ status: "active", created: now - 600 });
    const lone = stripe.addCheckoutSession({ subscription: null, mode: "payment", created: now - 600 });
    for (let i = 0; i < 150; i++) {
      const subscription = stripe.addSubscription({ status: "incomplete", created: now - 60 });
      // Awaiting an async payment: it explains its subscription and provisions nothing yet.
      stripe.addCheckoutSession({ subscription: subscription.id, customer: subscription.customer, payment_status: "unpaid", created: now - 60 });
    }
    const mark = stripe.requests.length;

    const { body } = await reconcileVia(t);

    expect(body.differences).toEqual([
      { type: "paid_not_provisioned", checkoutSessionId: lone.id, action: "provision" },
      { type: "unknown_subscription", subscriptionId: stray.id, action: "report" },
    ]);
    const requests = stripe.requests.slice(mark);
    expect(stripe.requestCounts()).toMatchObject({ "GET /v1/subscriptions": 2, "GET /v1/checkout/sessions": 2 });
    // Paced: 10 requests a second, so the four requests span at least ~300 ms (less the first
    // request's own set-up time, which the budget's clock does not see).
    expect(requests).toHaveLength(4);
    expect(requests[3].at - requests[0].at).toBeGreaterThanOrEqual(250);
    expect(await t.query(internal.reconciliation.getLastRun, {})).toMatchObject({ subscriptionsSeen: 151, sessionsSeen: 151 });
  });
});

describe("POST /admin/reconcile", () => {
  test("answers 401 without the admin token and runs nothing", async () => {
    const t = setup();
    const { status, body } = await reconcileVia(t, JSON.stringify({ dryRun: false }), {});
    expect(status).toBe(401);
    expect(body.error).toMatchObject({ code: "UNAUTHORIZED" });
    expect(stripe.requests).toEqual([]);
    expect(await t.query(internal.reconciliation.getLastRun, {})).toBeNull();
  });

  test.each([
    ["a misspelt key", JSON.stringify({ dryrun: false })],
    ["an unknown key beside dryRun", JSON.stringify({ dryRun: false, force: true })],
    ["a string dryRun", JSON.stringify({ dryRun: "false" })],
    ["a body that is not JSON", "dryRun=false"],
    ["a JSON array", "[]"],
  ])("answers 400 BAD_REQUEST for %s, audited, and runs nothing", async (_name, payload) => {
    const t = setup();
    const { status, body } = await reconcileVia(t, payload);
    expect(status).toBe(400);
    expect(body.error).toMatchObject({ code: "BAD_REQUEST" });
    expect(stripe.requests).toEqual([]);
    expect(await auditActions(t, "reconcile.refused")).toHaveLength(1);
  });

  test("answers 200 with { dryRun, braked, differences, applied }: an empty body or {} is a dry run", async () => {
    const t = setup();
    for (const payload of [undefined, "{}", JSON.stringify({ dryRun: true })]) {
      const { status, body } = await reconcileVia(t, payload);
      expect(status).toBe(200);
      expect(body).toEqual({ dryRun: true, braked: false, differences: [], applied: [] });
    }
    expect(await auditActions(t, "reconcile.requested")).toHaveLength(3);
  });

  test("answers 405 to another method", async () => {
    const t = setup();
    const response = await t.fetch("/admin/reconcile", { method: "GET", headers: adminHeaders() });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
  });
});
