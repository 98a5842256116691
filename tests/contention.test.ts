// Hot paths must not read what another job's hot path writes: Convex would retry one of
// the pair under load (optimistic concurrency), which convex-test never shows. This runs a
// burst of checkouts with every transaction's read and write sets recorded, and checks
// every pair of hot-path transactions of different jobs that could overlap in time.
// The model it holds the code to is docs/contention.md.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import type { WorkId } from "@convex-dev/workpool";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { drain, sendCheckout, setupBackend, statusOf } from "./harness";
import { COLD_PATHS, HOT_PATHS, baseKind, isHot, isSerialPair, loadOwnership } from "./contention/brain";
import { runBurst } from "./contention/burst";
import { CONCURRENCY_WINDOW_MS, findIntersections, formatIntersections, signature, type Intersection } from "./contention/checker";
import { APP_COMPONENT, installRecorder, type TransactionRecord } from "./contention/recorder";

/**
 * Intersections allowed between hot paths of different jobs: none. (The engine before v2 had
 * four: admission read running and queued jobs that creations and completions write, and the
 * Pages cap read instances that completions write; docs/contention.md.)
 */
const KNOWN_TODAY = new Set<string>([]);

/** The same with live Cloudflare, where the webhook's HTTP action counts the Pages projects in use. */
const KNOWN_TODAY_LIVE_CLOUDFLARE = new Set<string>([]);

/** Fails on intersections not in `known`, and on known ones that no longer occur. */
function expectOnly(found: Intersection[], known: Set<string>, listName: string) {
  const unexpected = found.filter((x) => !known.has(signature(x)));
  const seen = new Set(found.map(signature));
  const fixed = [...known].filter((s) => !seen.has(s));
  if (process.env.CONTENTION_REPORT) console.info(formatIntersections(found));
  expect(unexpected.length, `hot paths of different jobs collide:\n${formatIntersections(unexpected)}`).toBe(0);
  expect(fixed, `these no longer occur: remove them from ${listName} in tests/contention.test.ts`).toEqual([]);
}

describe("contention: the hot paths of different jobs do not read each other's writes", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  test("the checker finds a write inside another transaction's read range or read document, and nothing outside", async () => {
    const t = setupBackend();
    const recorder = await installRecorder(t);
    const seed = await t.run((ctx) => ctx.db.insert("circuits", { provider: "convex", failures: 0, updatedAt: 0 }));
    recorder.clear();
    // tx0 reads the convex circuits (an index range) and tx1 one row by id.
    await t.run((ctx) => ctx.db.query("circuits").withIndex("by_provider", (q) => q.eq("provider", "convex")).collect());
    await t.run((ctx) => ctx.db.get("circuits", seed));
    // tx2 inserts inside tx0's range, tx3 outside it, tx4 patches tx1's row.
    await t.run((ctx) => ctx.db.insert("circuits", { provider: "convex", failures: 1, updatedAt: 1 }));
    await t.run((ctx) => ctx.db.insert("circuits", { provider: "workos", failures: 1, updatedAt: 1 }));
    await t.run((ctx) => ctx.db.patch("circuits", seed, { failures: 2 }));
    // tx5 reads only the first convex row; tx6 inserts a newer one, past where tx5 stopped.
    await t.run((ctx) => ctx.db.query("circuits").withIndex("by_provider", (q) => q.eq("provider", "convex")).first());
    await t.run((ctx) => ctx.db.insert("circuits", { provider: "convex", failures: 3, updatedAt: 3 }));
    // tx7 writes into tx0's range, but two seconds later: outside the window.
    vi.advanceTimersByTime(2 * CONCURRENCY_WINDOW_MS);
    await t.run((ctx) => ctx.db.insert("circuits", { provider: "convex", failures: 4, updatedAt: 4 }));

    const txs = recorder.transactions;
    expect(txs.map((tx) => tx.seq - txs[0].seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(txs[0].ranges[0]).toMatchObject({ table: "circuits", index: "by_provider", range: [{ type: "Eq", fieldPath: "provider" }], stoppedAtKey: null });
    expect(txs[5].ranges[0].stoppedAtKey).not.toBeNull();
    expect(txs[4].writes[0]).toMatchObject({ table: "circuits", id: seed, before: { failures: 0 }, after: { failures: 2 } });

    const label = (tx: TransactionRecord) => `tx${tx.seq - txs[0].seq}`;
    const found = findIntersections(txs, { kindOf: label, ownerOf: () => ({ kind: "none" }), include: () => true });
    const pairs = new Set(found.map((x) => `${x.writer.kind}→${x.reader.kind} ${x.read}`));
    expect(pairs).toContain('tx2→tx0 by_provider [provider = "convex"]');
    expect(pairs).toContain("tx4→tx1 by id");
    expect([...pairs].filter((p) => p.startsWith("tx3→"))).toEqual([]);
    expect([...pairs].filter((p) => p.startsWith("tx6→tx5"))).toEqual([]);
    expect([...pairs].filter((p) => p.startsWith("tx7→") || p.includes("→tx7"))).toEqual([]);
    // Two transactions of the same job are never a conflict.
    const oneJob = findIntersections(txs, { kindOf: label, ownerOf: () => ({ kind: "job", id: "j" }), include: () => true });
    expect(oneJob).toEqual([]);
    expect(formatIntersections(found)).toContain("tx2 writes circuits (insert) ∩ tx0 reads circuits by_provider");
  });

  test("the recorder names the function, its args and component, and leaves component tables out of the app's sets", async () => {
    const t = setupBackend();
    const recorder = await installRecorder(t);
    await t.mutation(internal.stripe.recordStripeEvent, { eventId: "evt_recorded", type: "invoice.paid", livemode: false, createdAt: 1 });
    const [tx] = recorder.transactions;
    expect(tx).toMatchObject({ root: { udfPath: "stripe:recordStripeEvent", component: APP_COMPONENT, udfType: "mutation", args: { eventId: "evt_recorded" } }, committed: true });
    expect(tx.ranges).toMatchObject([{ table: "stripeEvents", index: "by_eventId", range: [{ type: "Eq", fieldPath: "eventId", value: "evt_recorded" }], returned: [] }]);
    // (The scheduler's own row in `_scheduled_functions` is recorded too; no app function reads it.)
    // The event, and its receipt in the audit trail (an insert that reads nothing: docs/contention.md).
    expect(tx.writes.filter((w) => w.component === APP_COMPONENT && !w.table.startsWith("_"))).toMatchObject([
      { table: "stripeEvents", before: null, after: { eventId: "evt_recorded" }, ops: ["insert"] },
      { table: "auditLogs", before: null, after: { action: "stripe.received", correlationId: "evt_recorded" }, ops: ["insert"] },
    ]);
  });

  test("intake of a tenant's event reads only that tenant's rows, and writes its event and that tenant's forward", async () => {
    // recordStripeEvent now routes an event forwarded to tenants (TENANT_EVENT_TYPES) to its
    // instance, by the ids the event names (model/lifecycle instancesForRouting), and queues the
    // forward (tenantDeliveries) in the same transaction. Its read set grew by the tenant's keys;
    // the burst below sends only first checkouts (an empty by_stripeCustomerId range), so this holds
    // the routed case to docs/contention.md: every range pinned by equality to the event's own ids
    // or to its tenant, every write the event's row or that tenant's delivery.
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t, { customerId: "cus_contention_a", subscriptionId: "sub_contention_a" });
    await drain(t);
    const instanceId = (await statusOf(t, sessionId)).body.instanceId!;
    const recorder = await installRecorder(t);
    await t.mutation(internal.stripe.recordStripeEvent, {
      eventId: "evt_tenant_a",
      type: "invoice.paid",
      livemode: false,
      createdAt: 2,
      routing: { customerId: "cus_contention_a", subscriptionId: "sub_contention_a" },
      body: JSON.stringify({ id: "evt_tenant_a", type: "invoice.paid" }),
    });
    recorder.stop();
    const [tx] = recorder.transactions;
    expect(tx.root).toMatchObject({ udfPath: "stripe:recordStripeEvent" });
    const ranges = tx.ranges.filter((r) => r.component === APP_COMPONENT);
    const pinnedTo = new Set(["evt_tenant_a", "cus_contention_a", "sub_contention_a", instanceId]);
    for (const r of ranges) {
      expect(r.index, `${r.table}: no full scans`).not.toBeNull();
      const eq = r.range.filter((c) => c.type === "Eq");
      expect(eq.length, `${r.table}.${r.index}: pinned by equality`).toBeGreaterThan(0);
      expect(eq.some((c) => pinnedTo.has(c.value as string)), `${r.table}.${r.index} ${JSON.stringify(r.range)}`).toBe(true);
    }
    expect(new Set(ranges.map((r) => r.table))).toEqual(new Set(["stripeEvents", "instances", "tenantDeliveries"]));
    for (const read of tx.reads.filter((d) => d.component === APP_COMPONENT && d.table === "instances")) expect(read.id).toBe(instanceId);
    const writes = tx.writes.filter((w) => w.component === APP_COMPONENT && !w.table.startsWith("_"));
    expect(writes.map((w) => [w.table, w.ops])).toEqual([
      ["stripeEvents", ["insert"]],
      ["tenantDeliveries", ["insert"]],
      ["auditLogs", ["insert"]],
    ]);
    expect(writes[1].after).toMatchObject({ instanceId, eventId: "evt_tenant_a", status: "pending" });
  });

  test("a burst of 50 checkouts: no hot path reads what another job's hot path writes", async () => {
    const t = setupBackend();
    const recorder = await installRecorder(t);
    const sessions = await runBurst(t, { checkouts: 50, waves: 10, waveGapMs: 400, pollsPerWave: 2 });
    recorder.stop();
    for (const sessionId of sessions) expect((await statusOf(t, sessionId)).body.status).toBe("ready");

    const ownership = await loadOwnership(t);
    const txs = recorder.transactions;
    // Every function the burst ran is either a hot path or named as cold; component-only
    // transactions (the workpools' own loops) and convex-test's bookkeeping touch no app table.
    const kinds = new Set(txs.map(baseKind));
    const appKinds = [...kinds].filter((k) => !k.includes("/") && !k.startsWith("("));
    const unclassified = appKinds.filter((k) => !isHot(k) && !(k in COLD_PATHS));
    expect(unclassified, "classify these in tests/contention/brain.ts (HOT_PATHS or COLD_PATHS)").toEqual([]);
    const missing = HOT_PATHS.required.filter((k) => !kinds.has(k));
    expect(missing, "hot paths the burst never ran").toEqual([]);
    for (const tx of txs.filter((tx) => !tx.frames.some((f) => f.component === APP_COMPONENT) && tx.root)) {
      expect(tx.writes.filter((w) => w.component === APP_COMPONENT && !w.table.startsWith("_")), baseKind(tx)).toEqual([]);
    }

    const found = findIntersections(txs, {
      kindOf: ownership.kindOf,
      ownerOf: ownership.ownerOf,
      documentOwner: ownership.documentOwner,
      serial: isSerialPair,
      include: (tx) => isHot(baseKind(tx)),
    });
    expectOnly(found, KNOWN_TODAY, "KNOWN_TODAY");
  });

  test("with live Cloudflare, the Pages cap read at job creation is checked the same way", async () => {
    // The burst runs sandbox providers, where the cap is not read. Live Cloudflare needs a
    // reachable API for the steps, so this records just the two transactions that meet: job
    // A's pagesProject completion and checkout B's processing, at the same instant.
    const t = setupBackend({
      env: { PROVIDER_MODE_CLOUDFLARE: "live", CLOUDFLARE_API_TOKEN: "cf-test-token", CLOUDFLARE_ACCOUNT_ID: "0123456789abcdef0123456789abcdef", ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64") },
    });
    const a = await sendCheckout(t);
    const b = await sendCheckout(t);
    expect([a.response.status, b.response.status]).toEqual([200, 200]);
    const eventIds = await t.run(async (ctx) => {
      const ids = [];
      for (const { event } of [a, b]) {
        const row = await ctx.db.query("stripeEvents").withIndex("by_eventId", (q) => q.eq("eventId", event.id)).unique();
        ids.push(row!._id);
      }
      return ids;
    });
    const recorder = await installRecorder(t);
    await t.mutation(internal.stripe.processStripeEvent, { id: eventIds[0] });
    const jobA = (await statusOf(t, a.sessionId)).body.jobId as Id<"provisioningJobs">;
    recorder.clear();
    await t.mutation(internal.provisioning.onStepComplete, {
      workId: "work_a" as WorkId,
      context: { jobId: jobA, step: "pagesProject", attempt: 1 },
      result: { kind: "success", returnValue: { kind: "succeeded", resources: { pagesProjectName: "brain-a", pagesSubdomain: "brain-a.pages.dev" } } },
    });
    await t.mutation(internal.stripe.processStripeEvent, { id: eventIds[1] });
    recorder.stop();

    const ownership = await loadOwnership(t);
    const found = findIntersections(recorder.transactions, {
      kindOf: ownership.kindOf,
      ownerOf: ownership.ownerOf,
      documentOwner: ownership.documentOwner,
      serial: isSerialPair,
      include: (tx) => isHot(baseKind(tx)),
    });
    expectOnly(found, KNOWN_TODAY_LIVE_CLOUDFLARE, "KNOWN_TODAY_LIVE_CLOUDFLARE");
  });
});
