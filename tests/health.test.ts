// Fleet health end to end on the sandbox providers: enrollment, rounds at each batch's slot,
// confirmation re-checks, hysteresis, incidents, the deep sweep, the dashboard and the routes.
// The cron is simulated: runHealthChecks once a minute, scheduled work run on fake timers.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { startAlertReceiver } from "./fakes/alertReceiver";
import { adminHeaders, sendCheckout, settleCheckout, setupBackend, type TestBackend } from "./harness";

// A fixed start 30 s into a health interval, so each batch's slot falls at the same point of every run.
const START = Date.UTC(2026, 0, 5, 12, 0, 30);
beforeEach(() => vi.useFakeTimers({ now: START }));
afterEach(() => vi.useRealTimers());

const MINUTE = 60_000;

/** Sandbox calls answer at once, so no action sleeps on the fake clock (see passTime). */
const backend = (env: Record<string, string> = {}) => setupBackend({ env: { SANDBOX_LATENCY_MS: "0", ...env } });

/**
 * Lets `ms` of simulated time pass a second at a time, running whatever comes due and waiting
 * for it to finish before the clock moves on (the work pool's loop hands work from one
 * scheduled function to the next within the same instant; a synchronous timer jump can leave
 * that chain behind). Actions must not sleep on the fake clock here: set SANDBOX_LATENCY_MS=0.
 */
async function passTime(t: TestBackend, ms: number) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await vi.advanceTimersByTimeAsync(Math.min(1000, end - Date.now()));
    await t.finishInProgressScheduledFunctions();
  }
}

/** The health cron for `minutes` minutes: runHealthChecks at the start of each, then the minute passes. */
async function cron(t: TestBackend, minutes: number) {
  for (let i = 0; i < minutes; i++) {
    await t.mutation(internal.monitoring.runHealthChecks, {});
    await passTime(t, MINUTE);
  }
}

async function provision(t: TestBackend, count: number): Promise<Id<"instances">[]> {
  const ids: Id<"instances">[] = [];
  for (let i = 0; i < count; i++) {
    const { sessionId } = await sendCheckout(t);
    const status = await settleCheckout(t, sessionId);
    expect(status.status).toBe("ready");
    ids.push(status.instanceId as Id<"instances">);
  }
  return ids;
}

const instanceOf = (t: TestBackend, id: Id<"instances">) => t.run((ctx) => ctx.db.get("instances", id)) as Promise<Doc<"instances">>;
const incidentsOf = (t: TestBackend, id: Id<"instances">) =>
  t.run((ctx) => ctx.db.query("incidents").withIndex("by_instanceId_and_status", (q) => q.eq("instanceId", id)).collect());
const historyOf = (t: TestBackend, id: Id<"instances">) =>
  t.run((ctx) => ctx.db.query("healthChecks").withIndex("by_instanceId_and_at", (q) => q.eq("instanceId", id)).collect());
const goDark = (t: TestBackend, instanceId: Id<"instances">, operation: "probeSite" | "probeBackend", times = 1000) =>
  t.mutation(internal.sandbox.injectFault, { operation, times, kind: "transient", instanceId });
const comeBack = (t: TestBackend, instanceId: Id<"instances">, operation: "probeSite" | "probeBackend") =>
  t.run(async (ctx) => {
    const fault = await ctx.db
      .query("sandboxFaults")
      .withIndex("by_operation_and_instanceId", (q) => q.eq("operation", `${operation === "probeSite" ? "cloudflare" : "convex"}.${operation}`).eq("instanceId", instanceId))
      .first();
    if (fault) await ctx.db.delete("sandboxFaults", fault._id);
  });

describe("health rounds", () => {
  test("a newly live instance is enrolled, checked at once and counted active", async () => {
    const t = backend();
    const [id] = await provision(t, 1);
    await cron(t, 2);
    const instance = await instanceOf(t, id);
    expect(instance.healthStatus).toBe("active");
    expect(instance.healthBatchId).toBeDefined();
    const view = await t.query(internal.monitoring.getInstancesHealthStatus, { paginationOpts: { cursor: null, numItems: 10 } });
    expect(view.counts).toEqual({ active: 1, degraded: 0, down: 0, unchecked: 0 });
    expect(view.byPlan[instance.plan]).toEqual({ active: 1, degraded: 0, down: 0, unchecked: 0 });
    expect(view.coverage).toBe(1);
    expect(view.instances).toEqual([expect.objectContaining({ instanceId: id, healthStatus: "active", plan: instance.plan })]);
  });

  test("every instance is checked once per interval, and an unchanged result writes no history", async () => {
    const t = backend({ HEALTH_CHECK_INTERVAL_MS: String(5 * MINUTE) });
    const ids = await provision(t, 3);
    await cron(t, 2);
    const batches = await t.run((ctx) => ctx.db.query("healthBatches").collect());
    const before = batches.flatMap((b) => b.members.map((m) => m.checkedAt!));
    await cron(t, 5);
    const after = (await t.run((ctx) => ctx.db.query("healthBatches").collect())).flatMap((b) => b.members.map((m) => m.checkedAt!));
    after.forEach((checkedAt, i) => {
      expect(checkedAt).toBeGreaterThan(before[i]);
      expect(checkedAt - before[i]).toBeLessThanOrEqual(5 * MINUTE + 1000);
    });
    for (const id of ids) expect(await historyOf(t, id)).toHaveLength(1); // the first check only
  });

  test("calling the cron more often checks nobody early", async () => {
    const t = backend();
    await provision(t, 2);
    await cron(t, 2);
    const checked = async () => (await t.run((ctx) => ctx.db.query("healthBatches").collect())).flatMap((b) => b.members.map((m) => m.checkedAt));
    const before = await checked();
    for (let i = 0; i < 5; i++) {
      await t.mutation(internal.monitoring.runHealthChecks, {});
      await passTime(t, 1000);
    }
    expect(await checked()).toEqual(before);
  });
});

describe("status with hysteresis", () => {
  test("one blip is re-checked after the confirmation interval and changes nothing", async () => {
    const t = backend();
    const [id] = await provision(t, 1);
    await cron(t, 2);
    await goDark(t, id, "probeSite", 1);
    await cron(t, 6);
    const instance = await instanceOf(t, id);
    expect(instance.healthStatus).toBe("active");
    expect(await incidentsOf(t, id)).toHaveLength(0);
    const history = await historyOf(t, id);
    expect(history.map((h) => h.failing)).toEqual([[], ["site"], []]);
    // The re-check came HEALTH_CONFIRM_INTERVAL_MS after the failure, not a round later.
    expect(history[2].at - history[1].at).toBeGreaterThanOrEqual(30_000);
    expect(history[2].at - history[1].at).toBeLessThan(40_000); // the pool picks it up within seconds
  });

  test("a site that stays dark is down after the failure threshold, with one incident since its first failure", async () => {
    const t = backend();
    const [id, other] = await provision(t, 2);
    await cron(t, 2);
    await goDark(t, id, "probeSite");
    await cron(t, 7);
    const instance = await instanceOf(t, id);
    expect(instance.healthStatus).toBe("down");
    const history = await historyOf(t, id);
    const firstFailure = history.find((h) => h.failing.includes("site"))!;
    expect(instance.unhealthySince).toBe(firstFailure.at);
    const incidents = await incidentsOf(t, id);
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({ status: "open", severity: "down", failing: ["site"], since: firstFailure.at });
    // Only that tenant went dark.
    expect((await instanceOf(t, other)).healthStatus).toBe("active");
    const view = await t.query(internal.monitoring.getInstancesHealthStatus, { status: "down", paginationOpts: { cursor: null, numItems: 10 } });
    expect(view.counts).toMatchObject({ active: 1, down: 1 });
    expect(view.instances.map((i) => i.instanceId)).toEqual([id]);
  });

  test("a backend that times out is down too, and coming back takes the success threshold and resolves the incident", async () => {
    const t = backend();
    const [id] = await provision(t, 1);
    await cron(t, 2);
    await goDark(t, id, "probeBackend");
    await cron(t, 7);
    expect((await instanceOf(t, id)).healthStatus).toBe("down");
    await comeBack(t, id, "probeBackend");
    await cron(t, 7);
    const instance = await instanceOf(t, id);
    expect(instance.healthStatus).toBe("active");
    expect(instance.unhealthySince).toBeUndefined();
    const incidents = await incidentsOf(t, id);
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({ status: "resolved", resolution: "recovered" });
  });

  test("a flapping site opens no incident", async () => {
    const t = backend();
    const [id] = await provision(t, 1);
    await cron(t, 2);
    for (let i = 0; i < 6; i++) {
      // Fails the next check; its confirmation (30 s later) passes, before the next fault.
      await goDark(t, id, "probeSite", 1);
      await cron(t, 6);
    }
    expect((await instanceOf(t, id)).healthStatus).toBe("active");
    expect(await incidentsOf(t, id)).toHaveLength(0);
  });

  test("an organization deleted by hand is found by the deep sweep and makes the instance degraded", async () => {
    const t = backend({ HEALTH_DEEP_CHECK_INTERVAL_MS: String(60 * MINUTE) });
    const [id] = await provision(t, 1);
    await cron(t, 2);
    const instance = await instanceOf(t, id);
    await t.run(async (ctx) => {
      const org = await ctx.db
        .query("sandboxResources")
        .withIndex("by_externalId", (q) => q.eq("externalId", instance.resources.workosOrganizationId!))
        .first();
      await ctx.db.delete("sandboxResources", org!._id);
    });
    await cron(t, 62);
    const after = await instanceOf(t, id);
    expect(after.healthStatus).toBe("degraded");
    const incidents = await incidentsOf(t, id);
    expect(incidents).toMatchObject([{ status: "open", severity: "degraded", failing: ["organization"] }]);
    const schedule = await t.run((ctx) => ctx.db.query("healthSchedule").first());
    expect(schedule?.lastDeepSweep?.suspects).toBeGreaterThanOrEqual(1);
  });

  test("a suspended instance leaves monitoring, and its open incident closes without a recovery", async () => {
    const t = backend();
    const [id] = await provision(t, 1);
    await cron(t, 2);
    await goDark(t, id, "probeSite");
    await cron(t, 7);
    expect((await instanceOf(t, id)).healthStatus).toBe("down");
    await t.run((ctx) => ctx.db.patch("instances", id, { status: "suspended" }));
    await cron(t, 6);
    const instance = await instanceOf(t, id);
    expect(instance.healthBatchId).toBeUndefined();
    expect(instance.healthStatus).toBeUndefined();
    expect(await incidentsOf(t, id)).toMatchObject([{ status: "resolved", resolution: "instance suspended" }]);
    const view = await t.query(internal.monitoring.getInstancesHealthStatus, { paginationOpts: { cursor: null, numItems: 10 } });
    expect(view.counts).toEqual({ active: 0, degraded: 0, down: 0, unchecked: 0 });
  });
});

describe("alerts from the rounds", () => {
  test("a site dark for 20 minutes: no alert before ALERT_AFTER_MS from its first failure, then one (email and signed webhook); one recovery notice", async () => {
    const secret = "alert-webhook-secret-0123456789";
    const receiver = await startAlertReceiver({ secret });
    try {
      const t = backend({ ALERT_EMAILS: "oncall@example.com", ALERT_WEBHOOK_URL: receiver.url, ALERT_WEBHOOK_SECRET: secret });
      const [id] = await provision(t, 1);
      await cron(t, 2);
      await goDark(t, id, "probeSite");
      await cron(t, 7);
      const { unhealthySince, healthStatus } = await instanceOf(t, id);
      expect(healthStatus).toBe("down");
      const alertDueAt = unhealthySince! + 10 * MINUTE;
      while (Date.now() < alertDueAt - 2 * MINUTE) await cron(t, 1);
      expect(receiver.requests).toEqual([]);
      await cron(t, 11);
      expect(receiver.accepted().map((r) => r.notice?.type)).toEqual(["instance.down"]);
      const alert = receiver.accepted()[0];
      expect(alert.at).toBeGreaterThanOrEqual(alertDueAt);
      expect(alert.notice).toMatchObject({ instanceId: id, status: "down", failing: ["site"], since: unhealthySince });
      await comeBack(t, id, "probeSite");
      await cron(t, 12);
      expect((await instanceOf(t, id)).healthStatus).toBe("active");
      expect(receiver.accepted().map((r) => r.notice?.type)).toEqual(["instance.down", "instance.recovered"]);
      expect(receiver.requests.filter((r) => r.answer !== "accepted")).toEqual([]);
      const emails = await t.run((ctx) =>
        ctx.db.query("sandboxResources").withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "resend").eq("kind", "email")).collect(),
      );
      // The alert emails (the customer's own emails about provisioning go out through Resend too).
      const alertSubjects = emails.map((e) => e.attributes.subject).filter((subject) => subject.startsWith("[Brain]"));
      expect(alertSubjects.sort()).toEqual([`[Brain] instance ${id} is down`, `[Brain] instance ${id} recovered: active`]);
      expect(await incidentsOf(t, id)).toMatchObject([{ status: "resolved", notifications: [{ type: "instance.down" }, { type: "instance.recovered" }] }]);
    } finally {
      await receiver.close();
    }
  });
});

describe("a round that dies halfway", () => {
  test("runs whose claim lapsed record nothing; their batches are claimed again and everyone is checked exactly once", async () => {
    const t = backend({ HEALTH_BATCH_SIZE: "2" });
    const ids = await provision(t, 6);
    // Enroll and claim the first round, then kill half of the runs: their claims are taken over.
    await t.mutation(internal.monitoring.runHealthChecks, {});
    const batches = await t.run((ctx) => ctx.db.query("healthBatches").collect());
    expect(batches).toHaveLength(3);
    const killed = batches.slice(0, 2);
    await t.run(async (ctx) => {
      for (const batch of killed) await ctx.db.patch("healthBatches", batch._id, { claim: { token: "dead-run", runAt: batch.claim!.runAt } });
    });
    await passTime(t, MINUTE);
    const first = await t.run((ctx) => ctx.db.query("healthBatches").collect());
    expect(first.filter((b) => b.members.every((m) => m.checkedAt === undefined))).toHaveLength(2);
    // The killed runs' leases run out; the cron claims those batches again.
    await cron(t, 5);
    for (const id of ids) {
      const history = await historyOf(t, id);
      expect(history).toHaveLength(1);
      expect((await instanceOf(t, id)).healthStatus).toBe("active");
    }
  });

  test("a late result from a lapsed claim changes nothing", async () => {
    const t = backend();
    const [id] = await provision(t, 1);
    await cron(t, 2);
    const [batch] = await t.run((ctx) => ctx.db.query("healthBatches").collect());
    await t.mutation(internal.healthRounds.recordBatchResults, {
      batchId: batch._id,
      token: "not-the-claim",
      at: Date.now(),
      results: [{ instanceId: id, plan: "starter", checks: [{ name: "site", result: { ok: false, at: Date.now(), detail: "503" } }] }],
      leaving: [],
    });
    const [after] = await t.run((ctx) => ctx.db.query("healthBatches").collect());
    expect(after.members).toEqual(batch.members);
  });
});

describe("GET /admin/health and /instance-health", () => {
  test("the dashboard route serves counts, coverage and a filtered page", async () => {
    const t = backend();
    const [id] = await provision(t, 2);
    await cron(t, 2);
    await goDark(t, id, "probeSite");
    await cron(t, 7); // the next round (within an interval) and its confirmation
    const response = await t.fetch("/admin/health?status=down", { headers: adminHeaders() });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.counts).toEqual({ active: 1, degraded: 0, down: 1, unchecked: 0 });
    expect(body.coverage).toBe(1);
    expect(body.instances).toHaveLength(1);
    expect(body.instances[0]).toMatchObject({ instanceId: id, healthStatus: "down" });
    expect(body.instances[0].lastHealthCheckAt).toBeGreaterThan(0);
    expect(body.continueCursor).toBeUndefined();
  });

  test.each([
    ["status=broken", "status must be one of"],
    ["plan=Not%20A%20Plan", "plan must be"],
    ["createdFrom=yesterday", "createdFrom must be"],
    ["createdFrom=20&createdTo=10", "createdFrom must not be after createdTo"],
    ["limit=0", "limit must be"],
    // Found by npm run fuzz: a made-up cursor was a 500 offline.
    ["cursor=%7B%7D", "cursor is not valid"],
  ])("?%s is a 400 with a clear message", async (query, message) => {
    const t = backend();
    const response = await t.fetch(`/admin/health?${query}`, { headers: adminHeaders() });
    expect(response.status).toBe(400);
    const body = await response.json();
    expect(body.error.code).toBe("BAD_REQUEST");
    expect(body.error.message).toContain(message);
  });

  test("the dashboard route needs the admin token", async () => {
    const t = backend();
    expect((await t.fetch("/admin/health")).status).toBe(401);
  });

  test("/instance-health adds the confirmed status, the open incident and the last checks", async () => {
    const t = backend();
    const [id] = await provision(t, 1);
    await cron(t, 2);
    await goDark(t, id, "probeSite");
    await cron(t, 7);
    const body = await (await t.fetch(`/instance-health/${id}`, { headers: adminHeaders() })).json();
    expect(body.healthStatus).toBe("down");
    expect(body.incident).toMatchObject({ status: "open", severity: "down", failing: ["site"] });
    expect(body.history.length).toBeGreaterThanOrEqual(2);
    expect(body.history.length).toBeLessThanOrEqual(20);
    expect(["healthy", "degraded", "down"]).toContain(body.overall);
  });
});
