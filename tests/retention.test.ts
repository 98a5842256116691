// Retention: over a simulated year (and then some) of daily traffic, the one retention cron keeps
// every growing table within its documented window, never drops what must stay (unprocessed or
// needs-attention Stripe events, recent event ids Stripe may still redeliver), and works in
// bounded pages that continue until done.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { getFunctionName } from "convex/server";
import { internal } from "../convex/_generated/api";
import type { Id, TableNames } from "../convex/_generated/dataModel";
import crons from "../convex/crons";
import { RETENTION_PAGE, PASSES } from "../convex/retention";
import { KEEP_SCANS } from "../convex/orphans";
import { drain, sendCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

const DAY = 24 * 60 * 60_000;
const START = Date.UTC(2026, 0, 1, 3, 0, 0);
/** Rows of each kind one day of traffic makes. */
const PER_DAY = 1;
/** Days simulated: past the 400-day audit window, so every window is exercised. */
const DAYS = 410;

beforeEach(() => vi.useFakeTimers({ now: START }));
afterEach(() => vi.useRealTimers());

/** The windows in days, as the defaults document them (docs/configuration.md, docs/security.md). */
const WINDOW_DAYS = {
  callbackReceipts: 1 / 24,
  healthChecks: 30,
  incidents: 30,
  alertDeliveries: 30,
  stripeEvents: 90,
  cleanupTasks: 30,
  tenantDeliveries: 30,
  notifications: 30,
  workosUserCache: 10 / (24 * 60),
  auditLogs: 400,
  securityEvents: 90,
} satisfies Partial<Record<TableNames, number>>;

/** A table holding PER_DAY rows a day (of each kind written), run through retention daily, holds at most this many. */
const bound = (table: keyof typeof WINDOW_DAYS, kinds = 1) => PER_DAY * kinds * (Math.ceil(WINDOW_DAYS[table]) + 1);

type Fixture = { instanceId: Id<"instances">; jobId: Id<"provisioningJobs">; eventIds: string[] };

/** One day of traffic, timestamped now: every growing table gets PER_DAY rows (of each kind). */
async function dailyTraffic(t: TestBackend, day: number, fx: Fixture, rows = PER_DAY) {
  await t.run(async (ctx) => {
    const now = Date.now();
    for (let i = 0; i < rows; i++) {
      const key = `${day}-${i}`;
      await ctx.db.insert("callbackReceipts", { signature: `sig-${key}`, receivedAt: now });
      await ctx.db.insert("healthChecks", { instanceId: fx.instanceId, at: now, overall: "healthy", failing: [], trigger: "round" });
      const eventId = `evt_${key}`;
      fx.eventIds.push(eventId);
      await ctx.db.insert("stripeEvents", { eventId, type: "invoice.paid", livemode: false, createdAt: now, receivedAt: now, processedAt: now, outcome: "ignored" });
      await ctx.db.insert("cleanupTasks", { jobId: fx.jobId, instanceId: fx.instanceId, provider: "cloudflare", resourceId: `r-${key}`, order: i, status: "done", attempts: 1, nextAttemptAt: now, doneAt: now });
      await ctx.db.insert("cleanupTasks", { jobId: fx.jobId, instanceId: fx.instanceId, provider: "workos", resourceId: `c-${key}`, order: i, status: "cancelled", attempts: 0, nextAttemptAt: now });
      await ctx.db.insert("orphanScans", { scannedAt: now, actor: "system:orphan-scan", total: 0, orphans: [] });
      const incidentId = await ctx.db.insert("incidents", {
        instanceId: fx.instanceId, plan: "starter", status: "resolved", severity: "down", failing: [], since: now, openedAt: now, resolvedAt: now, resolution: "recovered", notifications: [],
      });
      await ctx.db.insert("alertDeliveries", {
        incidentId, instanceId: fx.instanceId, type: "instance.down", channel: "email", destination: "ops@example.com", body: "{}", status: "delivered", attempts: 1, nextAttemptAt: now, expiresAt: now + DAY, createdAt: now, deliveredAt: now,
      });
      await ctx.db.insert("tenantDeliveries", {
        instanceId: fx.instanceId, eventId, eventType: "invoice.paid", eventCreated: now, body: "{}", status: "delivered", attempts: 1, nextAttemptAt: now, expiresAt: now + DAY, createdAt: now, deliveredAt: now,
      });
      await ctx.db.insert("notifications", {
        jobId: fx.jobId, instanceId: fx.instanceId, kind: "welcome", recipientHash: `h-${key}`, idempotencyKey: `welcome/${key}`, status: "delivered", attempts: 1, nextAttemptAt: now, expiresAt: now + DAY, createdAt: now, updatedAt: now,
      });
      await ctx.db.insert("workosUserCache", { email: `u-${key}@example.com`, userId: `user_${key}`, cachedAt: now });
      await ctx.db.insert("auditLogs", { at: now, actor: "test:traffic", action: "test.daily", correlationId: `day-${day}` });
      await ctx.db.insert("securityEvents", { at: now, kind: "bad_signatures", source: `10.0.${day % 256}.${i}`, detail: "test", route: "/stripe/webhook", strike: 1, blockedUntil: now + 15 * 60_000 });
    }
  });
}

async function counts(t: TestBackend) {
  return t.run(async (ctx) => {
    const n = async (table: TableNames) => (await ctx.db.query(table).collect()).length;
    return {
      callbackReceipts: await n("callbackReceipts"),
      healthChecks: await n("healthChecks"),
      stripeEvents: await n("stripeEvents"),
      cleanupTasks: await n("cleanupTasks"),
      orphanScans: await n("orphanScans"),
      incidents: await n("incidents"),
      alertDeliveries: await n("alertDeliveries"),
      tenantDeliveries: await n("tenantDeliveries"),
      notifications: await n("notifications"),
      workosUserCache: await n("workosUserCache"),
      auditLogs: await n("auditLogs"),
      securityEvents: await n("securityEvents"),
    };
  });
}

/** What the hourly cron does: the first pass, then every continuation it schedules. */
async function runRetention(t: TestBackend) {
  await t.mutation(internal.retention.runRetention, {});
  await t.finishAllScheduledFunctions(vi.runAllTimers);
}

describe("retention", () => {
  test("one cron prunes every growing table; the old per-table prune crons are gone", () => {
    const jobs = Object.values((crons as unknown as { crons: Record<string, { name: string; args: unknown[] }> }).crons);
    expect(jobs.filter((job) => job.name === getFunctionName(internal.retention.runRetention))).toEqual([{ name: "retention:runRetention", args: [{}], schedule: expect.anything() }]);
    expect(jobs.map((job) => job.name).filter((name) => /prune/i.test(name))).toEqual([]);
    expect(PASSES.map((p) => p.table).join(", ")).toContain("auditLogs");
  });

  test(`over ${DAYS} days of daily traffic every table stays within its window, and recent Stripe events still deduplicate`, { timeout: 120_000 }, async () => {
    const t = setupBackend();
    // A real flow first: customer, instance, job and their audit rows (day 0).
    const { event, sessionId } = await sendCheckout(t);
    await drain(t);
    const status = (await statusOf(t, sessionId)).body;
    expect(status.status).toBe("ready");
    const instanceId = (await t.run(async (ctx) => (await ctx.db.query("instances").first())!._id));
    const fx: Fixture = { instanceId, jobId: status.jobId as Id<"provisioningJobs">, eventIds: [] };
    // What must never be pruned: an event not processed yet, and one an operator must look at.
    await t.run(async (ctx) => {
      const now = Date.now();
      await ctx.db.insert("stripeEvents", { eventId: "evt_unprocessed", type: "checkout.session.completed", livemode: false, createdAt: now, receivedAt: now, outcome: "received" });
      await ctx.db.insert("stripeEvents", { eventId: "evt_attention", type: "checkout.session.completed", livemode: false, createdAt: now, receivedAt: now, processedAt: now, outcome: "needs_attention" });
    });
    const day0 = await counts(t);

    for (let day = 1; day <= DAYS; day++) {
      vi.setSystemTime(START + day * DAY);
      await dailyTraffic(t, day, fx);
      await runRetention(t);
      const c = await counts(t);
      const context = `day ${day}: ${JSON.stringify(c)}`;
      expect(c.callbackReceipts, context).toBeLessThanOrEqual(bound("callbackReceipts"));
      expect(c.healthChecks, context).toBeLessThanOrEqual(bound("healthChecks"));
      expect(c.incidents, context).toBeLessThanOrEqual(bound("incidents"));
      expect(c.alertDeliveries, context).toBeLessThanOrEqual(bound("alertDeliveries"));
      expect(c.stripeEvents, context).toBeLessThanOrEqual(bound("stripeEvents") + day0.stripeEvents);
      expect(c.cleanupTasks, context).toBeLessThanOrEqual(bound("cleanupTasks", 2));
      expect(c.orphanScans, context).toBeLessThanOrEqual(KEEP_SCANS);
      expect(c.tenantDeliveries, context).toBeLessThanOrEqual(bound("tenantDeliveries"));
      expect(c.notifications, context).toBeLessThanOrEqual(bound("notifications") + day0.notifications);
      expect(c.workosUserCache, context).toBeLessThanOrEqual(bound("workosUserCache"));
      expect(c.auditLogs, context).toBeLessThanOrEqual(bound("auditLogs") + day0.auditLogs);
      expect(c.securityEvents, context).toBeLessThanOrEqual(bound("securityEvents"));
    }

    const end = await counts(t);
    // Each window is kept, not more and not less: the last window's days are all there.
    expect(end.healthChecks).toBe(PER_DAY * 31);
    expect(end.stripeEvents).toBe(PER_DAY * 91 + 2);
    expect(end.securityEvents).toBe(PER_DAY * 91);
    expect(end.cleanupTasks).toBe(PER_DAY * 2 * 31);
    expect(end.tenantDeliveries).toBe(PER_DAY * 31);
    expect(end.notifications).toBe(PER_DAY * 31);
    expect(end.callbackReceipts).toBe(PER_DAY);
    expect(end.workosUserCache).toBe(PER_DAY);
    expect(end.orphanScans).toBe(KEEP_SCANS);
    // 410 days in: the checkout's own audit rows (day 0) and days 1–9 are past 400 days and gone.
    expect(end.auditLogs).toBe(PER_DAY * 401);
    const trail = await t.query(internal.audit.listForCorrelation, { correlationId: event.id });
    expect(trail).toEqual([]);

    // Never pruned: the unprocessed event and the one needing attention, however old.
    for (const eventId of ["evt_unprocessed", "evt_attention"]) {
      expect(await t.query(internal.stripe.getStripeEvent, { eventId }), eventId).not.toBeNull();
    }
    // A redelivery inside Stripe's 30-day retry window (here: an event from 29 days ago) is still a duplicate.
    const recent = fx.eventIds[(DAYS - 29 - 1) * PER_DAY];
    expect(recent).toBe(`evt_${DAYS - 29}-0`);
    const redelivery = { eventId: recent, type: "invoice.paid", livemode: false, createdAt: Date.now() - 29 * DAY };
    expect(await t.mutation(internal.stripe.recordStripeEvent, redelivery)).toEqual({ duplicate: true });
    // Even at the edge of the window (89 days): every processed event is kept 90 days.
    const edge = fx.eventIds[(DAYS - 89 - 1) * PER_DAY];
    expect(await t.mutation(internal.stripe.recordStripeEvent, { ...redelivery, eventId: edge })).toEqual({ duplicate: true });
  });

  test("a backlog of more than a page in every table, all past its window, is cleared by one run in bounded pages", { timeout: 60_000 }, async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const status = (await statusOf(t, sessionId)).body;
    const instanceId = (await t.run(async (ctx) => (await ctx.db.query("instances").first())!._id));
    const fx: Fixture = { instanceId, jobId: status.jobId as Id<"provisioningJobs">, eventIds: [] };
    const backlog = RETENTION_PAGE + 50;
    await dailyTraffic(t, 0, fx, backlog);
    vi.setSystemTime(Date.now() + 401 * DAY);
    await dailyTraffic(t, 401, fx, 1);
    await runRetention(t);
    // Only today's row of each kind is left (orphan scans: the newest KEEP_SCANS).
    expect(await counts(t)).toEqual({
      callbackReceipts: 1,
      healthChecks: 1,
      stripeEvents: 1,
      cleanupTasks: 2,
      orphanScans: KEEP_SCANS,
      incidents: 1,
      alertDeliveries: 1,
      tenantDeliveries: 1,
      notifications: 1,
      workosUserCache: 1,
      auditLogs: 1,
      securityEvents: 1,
    });
    // No mutation deleted more than a page: every table's pass ran at least twice (the first run of
    // pass 0 was the cron's call itself, the rest were scheduled continuations).
    const scheduled = await t.run(async (ctx) => (await ctx.db.system.query("_scheduled_functions").collect()).filter((f) => f.name === "retention:runRetention"));
    const runsOf = (pass: number) => scheduled.filter((f) => (f.args[0] as { pass?: number }).pass === pass).length + (pass === 0 ? 1 : 0);
    expect(PASSES.map((p, i) => [p.table, runsOf(i) >= 2])).toEqual(PASSES.map((p) => [p.table, true]));
  });

  test("a pass deletes at most one page per mutation and continues until nothing past the window is left", async () => {
    const t = setupBackend();
    const old = Date.now() - 401 * DAY;
    const backlog = Math.floor(RETENTION_PAGE * 2.5);
    await t.run(async (ctx) => {
      for (let i = 0; i < backlog; i++) await ctx.db.insert("auditLogs", { at: old + i, actor: "test", action: "test.old" });
      await ctx.db.insert("auditLogs", { at: Date.now(), actor: "test", action: "test.recent" });
    });
    const auditPass = PASSES.findIndex((p) => p.table === "auditLogs");
    const first = await t.mutation(internal.retention.runRetention, { pass: auditPass });
    expect(first).toEqual({ table: "auditLogs", deleted: RETENTION_PAGE, more: true });
    const left = async () => t.run(async (ctx) => (await ctx.db.query("auditLogs").collect()).map((r) => r.action));
    expect((await left()).length).toBe(backlog - RETENTION_PAGE + 1);
    // Its continuation is scheduled: the rest goes in further pages, the recent row stays.
    await t.finishAllScheduledFunctions(vi.runAllTimers);
    expect(await left()).toEqual(["test.recent"]);
  });

  test("a run visits every table's pass in turn: each pass that is done schedules the next, the last schedules nothing", async () => {
    const t = setupBackend();
    expect(await t.mutation(internal.retention.runRetention, {})).toEqual({ table: PASSES[0].table, deleted: 0, more: false });
    await t.finishAllScheduledFunctions(vi.runAllTimers);
    const runs = await t.run(async (ctx) =>
      (await ctx.db.system.query("_scheduled_functions").collect()).map((f) => ({ name: f.name, args: f.args, state: f.state.kind })),
    );
    // Nothing to delete: one run of each later pass, in order, each succeeded; none after the last.
    expect(runs).toEqual(PASSES.slice(1).map((_, i) => ({ name: "retention:runRetention", args: [{ pass: i + 1 }], state: "success" })));
    expect(await t.mutation(internal.retention.runRetention, { pass: PASSES.length })).toEqual({ table: "none", deleted: 0, more: false });
  });
});
