// The tenant's life after provisioning, with Stripe as the source of truth: suspension, resume,
// plan changes and deprovisioning, driven by subscription events in any order (sandbox
// providers, fake timers). The rules' tables are tested without a backend first.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { loadConfig } from "../convex/lib/config";
import type { SubscriptionStatus } from "../convex/lib/validators";
import { compareWithApplied, nextLifecycleJob } from "../convex/model/lifecycleRules";
import {
  adminHeaders,
  drain,
  drainFor,
  elapse,
  sendCheckout,
  sendEvent,
  setupBackend,
  settleCheckout,
  statusOf,
  subscriptionEvent,
  type SubscriptionOptions,
  type TestBackend,
} from "./harness";

const DAY = 24 * 60 * 60_000;
const config = loadConfig({});
const NOW = 1_800_000_000_000;

let counter = 0;
const unique = (prefix: string) => `${prefix}_lc${Date.now().toString(36)}${(++counter).toString(36)}`;

function instanceRow(fields: Partial<Doc<"instances">>): Doc<"instances"> {
  return {
    _id: "i1" as Id<"instances">,
    _creationTime: 0,
    customerId: "c1" as Id<"customers">,
    checkoutSessionId: "cs_1",
    plan: "starter",
    status: "active",
    resources: {},
    createdAt: 0,
    ...fields,
  };
}

const applied = (status: SubscriptionStatus, createdAt: number, priceId = "price_a") => ({
  subscriptionId: "sub_1",
  status,
  priceId,
  createdAt,
  source: "evt_applied",
});

describe("lifecycle rules", () => {
  test.each([
    ["active + subscription active", { subscription: applied("active", 0) }, null],
    ["active + unpaid", { subscription: applied("unpaid", 0) }, "suspend"],
    ["active + paused", { subscription: applied("paused", 0) }, "suspend"],
    ["active + past_due for a day", { subscription: applied("past_due", 0), pastDueSince: NOW - DAY }, null],
    ["active + past_due for 7 days", { subscription: applied("past_due", 0), pastDueSince: NOW - 7 * DAY }, "suspend"],
    ["active + unpaid", { status: "active" as const, subscription: applied("unpaid", 0) }, "suspend"],
    ["suspended + active again", { status: "suspended" as const, subscription: applied("active", 0) }, "resume"],
    ["suspended + canceled, grace running", { status: "suspended" as const, subscription: applied("canceled", 0), deprovisionAt: NOW + DAY }, null],
    ["active + canceled, grace running", { subscription: applied("canceled", 0), deprovisionAt: NOW + DAY }, "suspend"],
    ["suspended + grace over", { status: "suspended" as const, subscription: applied("canceled", 0), deprovisionAt: NOW }, "deprovision"],
    ["failed + grace over", { status: "failed" as const, deprovisionAt: NOW - 1 }, "deprovision"],
    ["deprovisioning (its job failed)", { status: "deprovisioning" as const, deprovisionAt: NOW - 1 }, "deprovision"],
    ["deleted", { status: "deleted" as const, deprovisionAt: NOW - 1 }, null],
    ["provisioning + unpaid", { status: "provisioning" as const, subscription: applied("unpaid", 0) }, null],
    ["active + a pending plan", { pendingPlan: { plan: "pro", priceId: "price_pro" } }, "changePlan"],
    ["suspended + a pending plan", { status: "suspended" as const, subscription: applied("unpaid", 0), pendingPlan: { plan: "pro", priceId: "price_pro" } }, null],
  ])("%s -> %s", (_name, fields, expected) => {
    expect(nextLifecycleJob(instanceRow(fields), config, NOW)).toBe(expected);
  });

  const sub = (status: SubscriptionStatus, priceId = "price_a") => ({ subscriptionId: "sub_1", status, priceId });
  test.each([
    ["nothing applied yet", undefined, sub("active"), 5_000, false, "apply"],
    ["a newer second", applied("active", 5_000), sub("unpaid"), 6_000, false, "apply"],
    ["an older second (updated after deleted)", applied("canceled", 6_000), sub("active"), 5_000, false, "stale"],
    ["the same second, the same state", applied("active", 5_000), sub("active"), 5_400, false, "same"],
    ["the same second, another state", applied("active", 5_000), sub("canceled"), 5_400, false, "tie"],
    ["the same second, another price", applied("active", 5_000), sub("active", "price_b"), 5_000, false, "tie"],
    ["a snapshot in the same second", applied("active", 5_000), sub("canceled"), 5_900, true, "apply"],
    ["a snapshot older than an event applied", applied("unpaid", 9_000), sub("active"), 5_000, true, "stale"],
    ["another subscription", { ...applied("canceled", 9_000), subscriptionId: "sub_0" }, sub("active"), 5_000, false, "apply"],
  ] as const)("%s: %s", (_name, before, incoming, createdAt, snapshot, expected) => {
    expect(compareWithApplied(before, { subscription: incoming, createdAt, snapshot })).toBe(expected);
  });
});

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

type Tenant = { sessionId: string; subscriptionId: string; customerId: string; instanceId: Id<"instances"> };

async function provisioned(t: TestBackend, options: { customerId?: string } = {}): Promise<Tenant> {
  const customerId = options.customerId ?? unique("cus");
  const subscriptionId = unique("sub");
  const { sessionId } = await sendCheckout(t, { customerId, subscriptionId });
  expect((await settleCheckout(t, sessionId)).status).toBe("ready");
  const instance = await t.run((ctx) =>
    ctx.db
      .query("instances")
      .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
      .unique(),
  );
  return { sessionId, subscriptionId, customerId, instanceId: instance!._id };
}

const instanceOf = (t: TestBackend, id: Id<"instances">) => t.run(async (ctx) => (await ctx.db.get("instances", id))!);

const jobsOf = (t: TestBackend, id: Id<"instances">) =>
  t.run((ctx) =>
    ctx.db
      .query("provisioningJobs")
      .withIndex("by_instanceId", (q) => q.eq("instanceId", id))
      .collect(),
  );

async function deploymentOf(t: TestBackend, name: string) {
  return t.run((ctx) =>
    ctx.db
      .query("sandboxResources")
      .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "convex").eq("kind", "deployment").eq("name", name))
      .unique(),
  );
}

async function membershipsOf(t: TestBackend, organizationId: string) {
  const rows = await t.run((ctx) =>
    ctx.db
      .query("sandboxResources")
      .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "workos").eq("kind", "membership"))
      .collect(),
  );
  return rows.filter((m) => m.attributes.organizationId === organizationId);
}

async function sandboxCount(t: TestBackend, provider: "convex" | "workos" | "cloudflare", kind: string, instanceId: string) {
  const rows = await t.run((ctx) =>
    ctx.db
      .query("sandboxResources")
      .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", provider).eq("kind", kind))
      .collect(),
  );
  return rows.filter((r) => JSON.stringify(r).includes(instanceId.toLowerCase().replace(/[^a-z0-9]/g, "")) || r.name === instanceId).length;
}

/** Sends a subscription event for the tenant and runs what it schedules for `forMs` of simulated time. */
async function subscription(t: TestBackend, tenant: Tenant, fields: Omit<SubscriptionOptions, "subscriptionId" | "customerId">, forMs = 10 * 60_000) {
  const event = subscriptionEvent({ subscriptionId: tenant.subscriptionId, customerId: tenant.customerId, ...fields });
  const response = await sendEvent(t, event);
  expect(response.status).toBe(200);
  await drainFor(t, forMs);
  return (await t.query(internal.stripe.getStripeEvent, { eventId: event.id }))!;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe("suspend and resume", () => {
  test("an unpaid subscription suspends the instance: the backend is told and paused, members deactivated; active again resumes it", async () => {
    const t = setupBackend();
    const tenant = await provisioned(t);
    const before = await instanceOf(t, tenant.instanceId);
    // The buyer was invited to the organization, and has accepted: they are a member now.
    expect(before.resources.workosInvitationId).toBeDefined();
    const organizationId = before.resources.workosOrganizationId!;
    await t.run(async (ctx) => {
      const now = Date.now();
      await ctx.db.insert("sandboxResources", {
        provider: "workos",
        kind: "membership",
        name: `${organizationId}:user_buyer`,
        externalId: "membership_buyer",
        attributes: { organizationId, userId: "user_buyer", status: "active" },
        createdAt: now,
        updatedAt: now,
      });
    });

    const event = subscriptionEvent({ subscriptionId: tenant.subscriptionId, customerId: tenant.customerId, status: "unpaid" });
    await sendEvent(t, event);
    // At once: the event's processing marks the instance suspended and queues the suspend job.
    vi.advanceTimersByTime(1);
    await t.finishInProgressScheduledFunctions();
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("suspended");
    await drainFor(t, 10 * 60_000);

    const suspended = await instanceOf(t, tenant.instanceId);
    expect(suspended.status).toBe("suspended");
    expect(suspended.resources).toEqual(before.resources); // suspension deletes nothing
    const deployment = await deploymentOf(t, before.resources.convexDeploymentName!);
    expect(deployment!.attributes).toMatchObject({ paused: "true", "env.BRAIN_SUSPENDED": "1" });
    const members = await membershipsOf(t, before.resources.workosOrganizationId!);
    expect(members.length).toBeGreaterThan(0);
    expect(members.every((m) => m.attributes.status === "inactive")).toBe(true);
    expect((await statusOf(t, tenant.sessionId)).body.status).toBe("suspended");

    await subscription(t, tenant, { status: "active" });
    const resumed = await instanceOf(t, tenant.instanceId);
    expect(resumed.status).toBe("active");
    const running = await deploymentOf(t, before.resources.convexDeploymentName!);
    expect(running!.attributes.paused).toBe("false");
    expect(running!.attributes["env.BRAIN_SUSPENDED"]).toBeUndefined();
    expect((await membershipsOf(t, before.resources.workosOrganizationId!)).every((m) => m.attributes.status === "active")).toBe(true);
    expect((await statusOf(t, tenant.sessionId)).body.status).toBe("ready");
    const kinds = (await jobsOf(t, tenant.instanceId)).map((j) => `${j.kind}:${j.status}`);
    expect(kinds).toEqual(["provision:succeeded", "suspend:succeeded", "resume:succeeded"]);
  });

  test("past_due keeps access until SUSPEND_AFTER_PAST_DUE_MS has passed, then suspends", async () => {
    const t = setupBackend({ env: { SUSPEND_AFTER_PAST_DUE_MS: String(60 * 60_000) } });
    const tenant = await provisioned(t);
    await subscription(t, tenant, { status: "past_due" }, 30 * 60_000);
    const waiting = await instanceOf(t, tenant.instanceId);
    expect(waiting.status).toBe("active");
    expect(waiting.pastDueSince).toBeDefined();
    await elapse(t, 70 * 60_000);
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("suspended");
  });

  test("past_due that is paid in time never suspends, and its clock is cleared", async () => {
    const t = setupBackend({ env: { SUSPEND_AFTER_PAST_DUE_MS: String(60 * 60_000) } });
    const tenant = await provisioned(t);
    await subscription(t, tenant, { status: "past_due" }, 10 * 60_000);
    await subscription(t, tenant, { status: "active" }, 2 * 60 * 60_000);
    const instance = await instanceOf(t, tenant.instanceId);
    expect(instance.status).toBe("active");
    expect(instance.pastDueSince).toBeUndefined();
    expect((await jobsOf(t, tenant.instanceId)).map((j) => j.kind)).toEqual(["provision"]);
  });

  test("a health check skips a suspended instance instead of reporting it down", async () => {
    const t = setupBackend();
    const tenant = await provisioned(t);
    await subscription(t, tenant, { status: "unpaid" });
    const response = await t.fetch(`/instance-health/${tenant.instanceId}`, { headers: adminHeaders() });
    expect(response.status).toBe(200);
    const report = await response.json();
    expect(report).toMatchObject({ resources: [], skipped: "instance is suspended" });
    const checks = await t.run((ctx) => ctx.db.query("healthChecks").collect());
    expect(checks).toHaveLength(0);
  });
});

describe("deprovisioning", () => {
  test("a deleted subscription suspends at once and deprovisions after the grace: every resource deleted, the history kept", async () => {
    const t = setupBackend({ env: { DEPROVISION_GRACE_MS: String(2 * 60 * 60_000) } });
    const tenant = await provisioned(t);
    const before = await instanceOf(t, tenant.instanceId);

    const processed = await subscription(t, tenant, { type: "customer.subscription.deleted" }, 30 * 60_000);
    expect(processed.outcome).toBe("applied");
    const waiting = await instanceOf(t, tenant.instanceId);
    expect(waiting.status).toBe("suspended");
    expect(waiting.deprovisionAt).toBeGreaterThan(Date.now());
    expect(await sandboxCount(t, "cloudflare", "pagesProject", tenant.instanceId)).toBe(1);

    await elapse(t, 2 * 60 * 60_000 + 10 * 60_000);
    const deleted = await instanceOf(t, tenant.instanceId);
    expect(deleted.status).toBe("deleted");
    expect(deleted.deletedAt).toBeDefined();
    expect(deleted.resources.convexProjectId).toBeUndefined();
    expect(deleted.resources.workosOrganizationId).toBeUndefined();
    expect(deleted.resources.pagesProjectName).toBeUndefined();
    expect(await sandboxCount(t, "cloudflare", "pagesProject", tenant.instanceId)).toBe(0);
    expect(await sandboxCount(t, "convex", "project", tenant.instanceId)).toBe(0);
    const org = await t.run((ctx) =>
      ctx.db
        .query("sandboxResources")
        .withIndex("by_externalId", (q) => q.eq("externalId", before.resources.workosOrganizationId!))
        .unique(),
    );
    expect(org).toBeNull();
    // The history stays: jobs, the deletions in the audit trail, and the status page.
    const kinds = (await jobsOf(t, tenant.instanceId)).map((j) => `${j.kind}:${j.status}`);
    expect(kinds).toEqual(["provision:succeeded", "suspend:succeeded", "deprovision:succeeded"]);
    const audit = await t.query(internal.audit.listForInstance, { instanceId: tenant.instanceId });
    const deletions = audit.filter((a) => a.action === "resource.deleted").map((a) => a.detail);
    expect(deletions).toEqual(
      expect.arrayContaining([
        `convex ${before.resources.convexProjectId}`,
        `workos ${before.resources.workosOrganizationId}`,
        `cloudflare ${before.resources.pagesProjectName}`,
      ]),
    );
    expect((await statusOf(t, tenant.sessionId)).body.status).toBe("deleted");
  });

  test("the deprovision job deletes in reverse order of creation: site, organization, backend", async () => {
    const t = setupBackend({ env: { DEPROVISION_GRACE_MS: "0" } });
    const tenant = await provisioned(t);
    await subscription(t, tenant, { type: "customer.subscription.deleted" });
    const job = (await jobsOf(t, tenant.instanceId)).find((j) => j.kind === "deprovision")!;
    expect(job.status).toBe("succeeded");
    const finished = job.steps.map((s) => [s.name, s.finishedAt!] as const).sort((a, b) => a[1] - b[1]);
    expect(finished.map(([name]) => name)).toEqual(["deletePagesProject", "deleteWorkosOrg", "deleteConvexProject", "markDeleted"]);
  });

  test("DEPROVISION_GRACE_MS=0 deprovisions at once, without a suspension first", async () => {
    const t = setupBackend({ env: { DEPROVISION_GRACE_MS: "0" } });
    const tenant = await provisioned(t);
    await subscription(t, tenant, { type: "customer.subscription.deleted" });
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("deleted");
    expect((await jobsOf(t, tenant.instanceId)).map((j) => j.kind)).toEqual(["provision", "deprovision"]);
  });

  test("a deprovision whose provider answers 5xx is retried with backoff and ends deleted", async () => {
    const t = setupBackend({ env: { DEPROVISION_GRACE_MS: "0" } });
    const tenant = await provisioned(t);
    await t.mutation(internal.sandbox.injectFault, { operation: "deletePagesProject", kind: "transient", times: 3 });
    await subscription(t, tenant, { type: "customer.subscription.deleted" }, 30 * 60_000);
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("deleted");
    const job = (await jobsOf(t, tenant.instanceId)).find((j) => j.kind === "deprovision")!;
    expect(job.steps.find((s) => s.name === "deletePagesProject")!.attempts).toBe(4);
    expect(await sandboxCount(t, "cloudflare", "pagesProject", tenant.instanceId)).toBe(0);
  });

  test("a deprovision that fails for good compensates nothing and is retried later by the lifecycle", async () => {
    const t = setupBackend({ env: { DEPROVISION_GRACE_MS: "0" } });
    const tenant = await provisioned(t);
    await t.mutation(internal.sandbox.injectFault, { operation: "deleteWorkosOrg", kind: "permanent", times: 1 });
    await subscription(t, tenant, { type: "customer.subscription.deleted" }, 30_000);
    const failed = (await jobsOf(t, tenant.instanceId)).find((j) => j.kind === "deprovision")!;
    expect(failed).toMatchObject({ status: "failed", error: { step: "deleteWorkosOrg", class: "permanent" } });
    expect(failed.compensationStatus).toBeUndefined();
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("deprovisioning");
    // Until then it is a dead letter, so operators see it.
    const deadLetter = await (await t.fetch("/admin/dead-letter", { headers: adminHeaders() })).json();
    expect(deadLetter.jobs).toEqual([expect.objectContaining({ jobId: failed._id, kind: "deprovision", step: "deleteWorkosOrg", class: "permanent" })]);
    // The lifecycle retries the failed job (a minute later for a first failure).
    await elapse(t, 5 * 60_000);
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("deleted");
    const jobs = await jobsOf(t, tenant.instanceId);
    expect(jobs.filter((j) => j.kind === "deprovision")).toHaveLength(1);
    expect(jobs.find((j) => j.kind === "deprovision")).toMatchObject({ status: "succeeded", retryCount: 1 });
  });

  test("a lifecycle job an operator cancelled is not retried by the lifecycle; a manual retry finishes it", async () => {
    const t = setupBackend({ env: { DEPROVISION_GRACE_MS: "0" } });
    const tenant = await provisioned(t);
    await sendEvent(t, subscriptionEvent({ subscriptionId: tenant.subscriptionId, customerId: tenant.customerId, type: "customer.subscription.deleted" }));
    vi.advanceTimersByTime(1);
    await t.finishInProgressScheduledFunctions();
    const job = (await jobsOf(t, tenant.instanceId)).find((j) => j.kind === "deprovision")!;
    const cancelled = await t.fetch(`/cancel-provisioning/${job._id}`, { method: "POST", headers: adminHeaders() });
    expect(cancelled.status).toBe(202);
    await elapse(t, 3 * 60 * 60_000, 10 * 60_000);
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("deprovisioning");
    expect(await t.run(async (ctx) => (await ctx.db.get("provisioningJobs", job._id))!.status)).toBe("failed");
    expect(await sandboxCount(t, "cloudflare", "pagesProject", tenant.instanceId)).toBe(1);

    const retried = await t.fetch(`/retry-provisioning/${job._id}`, { method: "POST", headers: adminHeaders() });
    expect(retried.status).toBe(202);
    await drainFor(t, 10 * 60_000);
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("deleted");
  });

  test("a subscription deleted mid-provisioning lets the job finish, then deprovisions: nothing is left", async () => {
    const t = setupBackend({ env: { DEPROVISION_GRACE_MS: "0" } });
    const customerId = unique("cus");
    const subscriptionId = unique("sub");
    const { sessionId } = await sendCheckout(t, { customerId, subscriptionId });
    await drainFor(t, 3_000); // the job is running: its first steps are out
    const mid = await t.run((ctx) =>
      ctx.db
        .query("instances")
        .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
        .unique(),
    );
    expect(mid!.status).toBe("provisioning");
    await sendEvent(t, subscriptionEvent({ subscriptionId, customerId, type: "customer.subscription.deleted" }));
    await drainFor(t, 60 * 60_000);
    const instance = await instanceOf(t, mid!._id);
    expect(instance.status).toBe("deleted");
    expect((await jobsOf(t, mid!._id)).map((j) => `${j.kind}:${j.status}`)).toEqual(["provision:succeeded", "deprovision:succeeded"]);
    expect(await sandboxCount(t, "cloudflare", "pagesProject", mid!._id)).toBe(0);
    expect(await sandboxCount(t, "convex", "project", mid!._id)).toBe(0);
  });

  test("a new subscription within the grace resumes the same instance instead of provisioning a new one", async () => {
    const t = setupBackend({ env: { DEPROVISION_GRACE_MS: String(DAY) } });
    const tenant = await provisioned(t);
    await subscription(t, tenant, { type: "customer.subscription.deleted" });
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("suspended");

    const newSubscription = unique("sub");
    const { sessionId } = await sendCheckout(t, { customerId: tenant.customerId, subscriptionId: newSubscription });
    await sendEvent(t, subscriptionEvent({ subscriptionId: newSubscription, customerId: tenant.customerId, type: "customer.subscription.created" }));
    await drainFor(t, 30 * 60_000);

    const instances = await t.run((ctx) => ctx.db.query("instances").collect());
    expect(instances).toHaveLength(1);
    const resumed = instances[0];
    expect(resumed).toMatchObject({ _id: tenant.instanceId, status: "active", stripeSubscriptionId: newSubscription, checkoutSessionId: sessionId });
    expect(resumed.deprovisionAt).toBeUndefined();
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
    // Past the old grace nothing is deleted.
    await elapse(t, DAY + 60 * 60_000, 30 * 60_000);
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("active");
  });
});

describe("order and staleness", () => {
  // Each pair is delivered newest first; the older event must change nothing.
  const pairs: [string, SubscriptionStatus, SubscriptionStatus, string][] = [
    ["updated (active) after deleted does not resurrect", "active", "canceled", "suspended"],
    ["active after unpaid does not resume", "active", "unpaid", "suspended"],
    ["unpaid after active does not suspend", "unpaid", "active", "active"],
    ["past_due after active does not start the past-due clock", "past_due", "active", "active"],
  ];
  test.each(pairs)("%s", async (_name, older, newer, expected) => {
    const t = setupBackend();
    const tenant = await provisioned(t);
    const now = nowSeconds();
    const newerType = newer === "canceled" ? "customer.subscription.deleted" : "customer.subscription.updated";
    await subscription(t, tenant, { status: newer, type: newerType, created: now + 10 });
    const stale = await subscription(t, tenant, { status: older, created: now + 5 });
    expect(stale.outcome).toBe("stale");
    const instance = await instanceOf(t, tenant.instanceId);
    expect(instance.status).toBe(expected);
    expect(instance.subscription?.status).toBe(newer);
    expect(instance.pastDueSince).toBeUndefined();
  });

  test("a subscription deleted before its checkout arrived: the instance is provisioned, then suspended for the grace", async () => {
    const t = setupBackend({ env: { DEPROVISION_GRACE_MS: String(DAY) } });
    const customerId = unique("cus");
    const subscriptionId = unique("sub");
    const deleted = subscriptionEvent({ subscriptionId, customerId, type: "customer.subscription.deleted" });
    await sendEvent(t, deleted);
    await drain(t);
    expect(await t.query(internal.stripe.getStripeEvent, { eventId: deleted.id })).toMatchObject({ outcome: "ignored" });

    const { sessionId } = await sendCheckout(t, { customerId, subscriptionId, created: nowSeconds() - 60 });
    await drainFor(t, 30 * 60_000);
    const instance = await t.run((ctx) =>
      ctx.db
        .query("instances")
        .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
        .unique(),
    );
    expect(instance).toMatchObject({ status: "suspended", subscription: { status: "canceled", source: deleted.id } });
    expect(instance!.deprovisionAt).toBeGreaterThan(Date.now());
    expect((await jobsOf(t, instance!._id)).map((j) => `${j.kind}:${j.status}`)).toEqual(["provision:succeeded", "suspend:succeeded"]);
  });

  test("a subscription's events from before its instance existed are forwarded to it once it is active, in order", async () => {
    const t = setupBackend();
    const customerId = unique("cus");
    const subscriptionId = unique("sub");
    const created = subscriptionEvent({ subscriptionId, customerId, type: "customer.subscription.created", created: nowSeconds() - 30 });
    await sendEvent(t, created);
    const invoice = {
      ...subscriptionEvent({ subscriptionId, customerId, created: nowSeconds() - 25 }),
      type: "invoice.paid",
      data: { object: { id: "in_test_early", object: "invoice", customer: customerId, subscription: subscriptionId, status: "paid" } },
    };
    await sendEvent(t, invoice);
    const { event: checkout, sessionId } = await sendCheckout(t, { customerId, subscriptionId, created: nowSeconds() - 20 });
    expect((await settleCheckout(t, sessionId)).status).toBe("ready");
    await drainFor(t, 60_000);
    const instance = await t.run((ctx) =>
      ctx.db
        .query("instances")
        .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
        .unique(),
    );
    const received = await t.query(internal.sandbox.listTenantEvents, { deploymentName: instance!.resources.convexDeploymentName! });
    expect(received).toEqual([created.id, invoice.id, checkout.id]);
  });

  test("a redelivered event changes nothing the second time", async () => {
    const t = setupBackend();
    const tenant = await provisioned(t);
    const event = subscriptionEvent({ subscriptionId: tenant.subscriptionId, customerId: tenant.customerId, status: "unpaid" });
    await sendEvent(t, event);
    const again = await sendEvent(t, event);
    expect(await again.json()).toEqual({ received: true, duplicate: true });
    await drainFor(t, 10 * 60_000);
    expect((await jobsOf(t, tenant.instanceId)).map((j) => j.kind)).toEqual(["provision", "suspend"]);
  });

  test("two events in the same second are settled by Stripe's current subscription", async () => {
    const t = setupBackend();
    const tenant = await provisioned(t);
    // Stripe (the sandbox) says the subscription is unpaid now.
    await t.mutation(internal.sandbox.seedStripe, {
      kind: "subscription",
      id: tenant.subscriptionId,
      attributes: { status: "unpaid", customerId: tenant.customerId, priceId: "price_test_starter", created: String(Date.now()) },
    });
    const second = nowSeconds() + 3;
    await subscription(t, tenant, { status: "unpaid", created: second }, 1_000);
    const tie = await subscription(t, tenant, { status: "active", created: second });
    expect(tie.detail).toContain("snapshot");
    const instance = await instanceOf(t, tenant.instanceId);
    expect(instance.subscription).toMatchObject({ status: "unpaid" });
    expect(instance.subscription!.source).toMatch(/^snapshot:/);
    expect(instance.status).toBe("suspended");
  });

  test("a subscription event for no known instance is recorded and ignored", async () => {
    const t = setupBackend();
    const event = subscriptionEvent({ subscriptionId: unique("sub"), customerId: unique("cus"), status: "unpaid" });
    await sendEvent(t, event);
    await drain(t);
    const stored = await t.query(internal.stripe.getStripeEvent, { eventId: event.id });
    expect(stored).toMatchObject({ outcome: "ignored" });
    expect(await t.run((ctx) => ctx.db.query("provisioningJobs").collect())).toHaveLength(0);
  });
});

describe("plan changes", () => {
  const PLANS = JSON.stringify({
    price_test_starter: { plan: "starter", env: { MAX_SEATS: "5" } },
    price_test_pro: { plan: "pro", env: { MAX_SEATS: "50", FEATURE_SSO: "1" } },
  });

  test("a new price applies its plan: variables set on the tenant deployment, plan changed, audited", async () => {
    const t = setupBackend({ env: { PLANS } });
    const tenant = await provisioned(t);
    const before = await instanceOf(t, tenant.instanceId);
    const deployment = await deploymentOf(t, before.resources.convexDeploymentName!);
    expect(deployment!.attributes).toMatchObject({ "env.BRAIN_PLAN": "starter", "env.MAX_SEATS": "5" });

    await subscription(t, tenant, { priceId: "price_test_starter", created: nowSeconds() });
    await subscription(t, tenant, { priceId: "price_test_pro", created: nowSeconds() + 5 });
    const after = await instanceOf(t, tenant.instanceId);
    expect(after.plan).toBe("pro");
    expect(after.pendingPlan).toBeUndefined();
    const changed = await deploymentOf(t, before.resources.convexDeploymentName!);
    expect(changed!.attributes).toMatchObject({ "env.BRAIN_PLAN": "pro", "env.MAX_SEATS": "50", "env.FEATURE_SSO": "1" });
    const audit = await t.query(internal.audit.listForInstance, { instanceId: tenant.instanceId });
    expect(audit.find((a) => a.action === "instance.plan_changed")?.detail).toBe("starter -> pro");
  });

  test("an unknown price is recorded as needs_attention and changes nothing", async () => {
    const t = setupBackend({ env: { PLANS } });
    const tenant = await provisioned(t);
    await subscription(t, tenant, { priceId: "price_test_starter", created: nowSeconds() });
    const unknown = await subscription(t, tenant, { priceId: "price_mystery", status: "unpaid", created: nowSeconds() + 5 });
    expect(unknown.outcome).toBe("needs_attention");
    const instance = await instanceOf(t, tenant.instanceId);
    expect(instance).toMatchObject({ plan: "starter", status: "active" });
    expect(instance.subscription?.priceId).toBe("price_test_starter");
    expect((await jobsOf(t, tenant.instanceId)).map((j) => j.kind)).toEqual(["provision"]);
  });
});

describe("POST /deprovision/:instanceId", () => {
  test("deprovisions now: 202, then 409 while its job runs, 409 once deleted, 404 for an unknown id, 401 without the token", async () => {
    const t = setupBackend();
    const tenant = await provisioned(t);
    const post = (id: string, headers: Record<string, string> = adminHeaders()) => t.fetch(`/deprovision/${id}`, { method: "POST", headers });

    expect((await post(tenant.instanceId, {})).status).toBe(401);
    const accepted = await post(tenant.instanceId);
    expect(accepted.status).toBe(202);
    expect(await accepted.json()).toEqual({ instanceId: tenant.instanceId, status: "deprovisioning" });
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("deprovisioning");

    const busy = await post(tenant.instanceId);
    expect(busy.status).toBe(409);
    expect(await busy.json()).toMatchObject({ error: { code: "JOB_ALREADY_RUNNING" } });

    await drainFor(t, 10 * 60_000);
    expect((await instanceOf(t, tenant.instanceId)).status).toBe("deleted");
    const gone = await post(tenant.instanceId);
    expect(gone.status).toBe(409);
    expect(await gone.json()).toMatchObject({ error: { code: "INSTANCE_DELETED" } });

    const unknown = await post("nosuchinstance");
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
    expect((await t.fetch(`/deprovision/${tenant.instanceId}`, { method: "GET", headers: adminHeaders() })).status).toBe(405);
  });

  test("is refused with 409 while the instance's provision job is still running", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t, { subscriptionId: unique("sub") });
    await drainFor(t, 2_000);
    const instance = await t.run((ctx) =>
      ctx.db
        .query("instances")
        .withIndex("by_checkoutSessionId", (q) => q.eq("checkoutSessionId", sessionId))
        .unique(),
    );
    const response = await t.fetch(`/deprovision/${instance!._id}`, { method: "POST", headers: adminHeaders() });
    expect(response.status).toBe(409);
  });
});
