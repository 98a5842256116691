// Retention: one cron (crons.ts "retention") prunes every table that grows with events, jobs or
// rounds to its documented window (docs/security.md#retention). Each pass deletes at most one page
// (RETENTION_PAGE rows) per mutation, read through an index on its time field, and schedules its
// own continuation until nothing past the window is left; then the next table's pass starts.
// Business records (customers, instances, jobs), suppressions and sandbox state are not pruned.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import type { Doc, TableNames } from "./_generated/dataModel";
import { internalMutation, type MutationCtx } from "./_generated/server";
import { loadConfig, type Config } from "./lib/config";
import { cronBatch, log } from "./lib/log";
import { pruneAlertHistory } from "./model/alerts";
import type { StripeEventOutcome } from "./lib/validators";
import { KEEP_SCANS } from "./orphans";

/** Rows one retention mutation deletes at most (per table pass). */
export const RETENTION_PAGE = 200;

type PassResult = { deleted: number; more: boolean };
type Pass = { table: string; run: (ctx: MutationCtx, config: Config, now: number) => Promise<PassResult> };

/**
 * Stripe event outcomes that are final: the event was processed and nothing will look at it again.
 * `received` (not processed yet) and `needs_attention` (an operator must look) are never pruned.
 */
export const PRUNABLE_STRIPE_OUTCOMES: readonly StripeEventOutcome[] = [
  "provisioning_started",
  "already_provisioned",
  "awaiting_payment",
  "payment_failed",
  "ignored",
  "applied",
  "stale",
];

/** Deletes `rows` and reports whether a full page was taken (so more may be left). */
async function deleteAll<T extends TableNames>(ctx: MutationCtx, table: T, rows: Doc<T>[], limit: number): Promise<PassResult> {
  for (const row of rows) await ctx.db.delete(table, row._id);
  return { deleted: rows.length, more: rows.length === limit };
}

/** Each table's pass, in the order one retention run visits them. */
export const PASSES: readonly Pass[] = [
  {
    table: "callbackReceipts",
    run: async (ctx, config, now) =>
      deleteAll(
        ctx,
        "callbackReceipts",
        await ctx.db
          .query("callbackReceipts")
          .withIndex("by_receivedAt", (q) => q.lt("receivedAt", now - config.CALLBACK_RECEIPT_RETENTION_MS))
          .take(RETENTION_PAGE),
        RETENTION_PAGE,
      ),
  },
  {
    table: "healthChecks",
    run: async (ctx, config, now) =>
      deleteAll(
        ctx,
        "healthChecks",
        await ctx.db
          .query("healthChecks")
          .withIndex("by_at", (q) => q.lt("at", now - config.HEALTH_RETENTION_MS))
          .take(RETENTION_PAGE),
        RETENTION_PAGE,
      ),
  },
  {
    // Sent or failed alert deliveries, resolved incidents, ended maintenance windows (HEALTH_RETENTION_MS).
    table: "alertDeliveries, incidents, maintenanceWindows",
    run: async (ctx, config, now) => {
      const result = await pruneAlertHistory(ctx, config, now);
      return { deleted: result.deliveries + result.incidents + result.windows, more: result.more };
    },
  },
  {
    // Processed events only, past STRIPE_EVENT_RETENTION_MS (at least 31 days): a redelivery within
    // Stripe's 30-day retry window still finds its event id and stays a duplicate.
    table: "stripeEvents",
    run: async (ctx, config, now) => {
      const cutoff = now - config.STRIPE_EVENT_RETENTION_MS;
      let deleted = 0;
      for (const outcome of PRUNABLE_STRIPE_OUTCOMES) {
        const rows = await ctx.db
          .query("stripeEvents")
          .withIndex("by_outcome_and_receivedAt", (q) => q.eq("outcome", outcome).lt("receivedAt", cutoff))
          .take(RETENTION_PAGE - deleted);
        for (const row of rows) {
          if (row.processedAt === undefined) continue; // never the case for a final outcome; kept regardless
          await ctx.db.delete("stripeEvents", row._id);
          deleted++;
        }
        if (deleted >= RETENTION_PAGE) return { deleted, more: true };
      }
      return { deleted, more: false };
    },
  },
  {
    // Compensation deletions that finished (done) or were called off (cancelled: the job was retried).
    table: "cleanupTasks",
    run: async (ctx, config, now) => {
      const cutoff = now - config.CLEANUP_TASK_RETENTION_MS;
      const done = await ctx.db
        .query("cleanupTasks")
        .withIndex("by_status_and_doneAt", (q) => q.eq("status", "done").lt("doneAt", cutoff))
        .take(RETENTION_PAGE);
      const cancelled = await ctx.db
        .query("cleanupTasks")
        .withIndex("by_status_and_nextAttemptAt", (q) => q.eq("status", "cancelled").lt("nextAttemptAt", cutoff))
        .take(RETENTION_PAGE - done.length);
      const rows = [...done, ...cancelled];
      return deleteAll(ctx, "cleanupTasks", rows, RETENTION_PAGE);
    },
  },
  {
    // The newest KEEP_SCANS scans (each new scan also trims; this catches up on anything left).
    table: "orphanScans",
    run: async (ctx) => {
      const newest = await ctx.db.query("orphanScans").withIndex("by_scannedAt").order("desc").take(KEEP_SCANS + RETENTION_PAGE);
      const old = newest.slice(KEEP_SCANS);
      return deleteAll(ctx, "orphanScans", old, RETENTION_PAGE);
    },
  },
  {
    // Tenant forwards that ended (delivered, or failed and not redelivered), past DELIVERY_RETENTION_MS.
    table: "tenantDeliveries",
    run: async (ctx, config, now) => {
      const cutoff = now - config.DELIVERY_RETENTION_MS;
      const delivered = await ctx.db
        .query("tenantDeliveries")
        .withIndex("by_status_and_createdAt", (q) => q.eq("status", "delivered").lt("createdAt", cutoff))
        .take(RETENTION_PAGE);
      const failed = await ctx.db
        .query("tenantDeliveries")
        .withIndex("by_status_and_createdAt", (q) => q.eq("status", "failed").lt("createdAt", cutoff))
        .take(RETENTION_PAGE - delivered.length);
      return deleteAll(ctx, "tenantDeliveries", [...delivered, ...failed], RETENTION_PAGE);
    },
  },
  {
    // Customer emails no longer pending, past DELIVERY_RETENTION_MS since their last change.
    // emailSuppressions are kept: a bounced address is never emailed again.
    table: "notifications",
    run: async (ctx, config, now) => {
      const cutoff = now - config.DELIVERY_RETENTION_MS;
      const rows: Doc<"notifications">[] = [];
      for (const status of ["sent", "delivered", "bounced", "complained", "failed", "cancelled"] as const) {
        const page = await ctx.db
          .query("notifications")
          .withIndex("by_status_and_updatedAt", (q) => q.eq("status", status).lt("updatedAt", cutoff))
          .take(RETENTION_PAGE - rows.length);
        rows.push(...page);
        if (rows.length >= RETENTION_PAGE) break;
      }
      return deleteAll(ctx, "notifications", rows, RETENTION_PAGE);
    },
  },
  {
    // WorkOS user cache entries past their TTL (a lookup after it asks WorkOS again anyway).
    table: "workosUserCache",
    run: async (ctx, config, now) =>
      deleteAll(
        ctx,
        "workosUserCache",
        await ctx.db
          .query("workosUserCache")
          .withIndex("by_cachedAt", (q) => q.lt("cachedAt", now - config.WORKOS_USER_CACHE_TTL_MS))
          .take(RETENTION_PAGE),
        RETENTION_PAGE,
      ),
  },
  {
    // Blocks past SECURITY_EVENT_RETENTION_MS (at least 2 days): a source's cool-down only looks at
    // its latest block, and one older than SECURITY_BLOCK_MAX_MS no longer counts.
    table: "securityEvents",
    run: async (ctx, config, now) =>
      deleteAll(
        ctx,
        "securityEvents",
        await ctx.db
          .query("securityEvents")
          .withIndex("by_at", (q) => q.lt("at", now - config.SECURITY_EVENT_RETENTION_MS))
          .take(RETENTION_PAGE),
        RETENTION_PAGE,
      ),
  },
  {
    // The one deletion of audit rows anywhere: rows older than AUDIT_RETENTION_MS (400 days).
    table: "auditLogs",
    run: async (ctx, config, now) =>
      deleteAll(
        ctx,
        "auditLogs",
        await ctx.db
          .query("auditLogs")
          .withIndex("by_at", (q) => q.lt("at", now - config.AUDIT_RETENTION_MS))
          .take(RETENTION_PAGE),
        RETENTION_PAGE,
      ),
  },
];

/**
 * Cron (hourly): one page of one table's pass. A full page schedules the same pass again; a
 * pass that is done schedules the next table's. A run that dies mid-way is picked up by the next
 * hour's run, which starts over from the first table (every pass is idempotent).
 */
export const runRetention = internalMutation({
  args: { pass: v.optional(v.number()) },
  returns: v.object({ table: v.string(), deleted: v.number(), more: v.boolean() }),
  handler: cronBatch("retention.runRetention", async (ctx, args: { pass?: number }) => {
    const index = args.pass ?? 0;
    const pass = PASSES[index];
    if (!Number.isInteger(index) || pass === undefined) return { table: "none", deleted: 0, more: false };
    const now = Date.now();
    const { deleted, more } = await pass.run(ctx, loadConfig(), now);
    if (more) await ctx.scheduler.runAfter(0, internal.retention.runRetention, { pass: index });
    else if (index + 1 < PASSES.length) await ctx.scheduler.runAfter(0, internal.retention.runRetention, { pass: index + 1 });
    if (deleted > 0) log("info", "retention.pruned", { correlationId: `retention:${now}`, table: pass.table, deleted, more });
    return { table: pass.table, deleted, more };
  }),
});
