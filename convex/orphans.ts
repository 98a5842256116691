// Orphaned provider resources: the hourly scan (crons.ts), operator scans and cleanups (the
// dashboard, the admin API), and the reads and writes they need. A scan only reports;
// only cleanupOrphans with dryRun false deletes, and only what the scan found orphaned.
import { v } from "convex/values";
import { internalAction, internalMutation, internalQuery } from "./_generated/server";
import { loadConfig } from "./lib/config";
import { fail } from "./lib/errors";
import { vInstanceRef, vOrphan, vOrphanCleanup, vOrphanProvider, vOrphanScan } from "./lib/validators";
import { appendAudit } from "./model/audit";
import { cleanupOrphans as runCleanup, scanAndRecord } from "./model/orphanScan";
import { recordedIds } from "./model/orphans";
import { cronBatch } from "./lib/log";

/** Who the hourly cron acts as; its scans are stored but not audited. */
export const SCAN_CRON_ACTOR = "system:orphan-scan";
const DASHBOARD_ACTOR = "operator:dashboard";
/** Scans kept for the dashboard, and orphans stored per scan (the count is always whole). */
const KEEP_SCANS = 10;
const MAX_STORED_ORPHANS = 500;

/** What each instance id names (null: malformed, unknown). Point lookups only. */
export const getInstanceRefs = internalQuery({
  args: { instanceIds: v.array(v.string()) },
  returns: v.array(
    v.object({ instanceId: v.string(), isInstanceId: v.boolean(), ref: v.union(v.null(), vInstanceRef) }),
  ),
  handler: async (ctx, { instanceIds }) => {
    // An id left unread would look like "no such instance": refuse rather than truncate.
    if (instanceIds.length > 500) fail("BAD_REQUEST", "at most 500 instance ids per lookup");
    const refs = [];
    for (const instanceId of instanceIds) {
      const id = ctx.db.normalizeId("instances", instanceId);
      const instance = id ? await ctx.db.get("instances", id) : null;
      if (!instance) {
        refs.push({ instanceId, isInstanceId: id !== null, ref: null });
        continue;
      }
      let cleanedUp = false;
      if (instance.status === "failed") {
        const job = await ctx.db
          .query("provisioningJobs")
          .withIndex("by_instanceId_and_kind", (q) => q.eq("instanceId", instance._id).eq("kind", "provision"))
          .order("desc")
          .first();
        cleanedUp = job?.compensationStatus === "done";
      }
      refs.push({ instanceId, isInstanceId: true, ref: { status: instance.status, recorded: recordedIds(instance.resources), cleanedUp } });
    }
    return refs;
  },
});

/** Stores a scan's result, keeps only the newest few, and audits it when asked. */
export const recordOrphanScan = internalMutation({
  args: {
    actor: v.string(),
    orphans: v.array(vOrphan),
    audit: v.optional(v.object({ action: v.string(), detail: v.string() })),
  },
  returns: v.null(),
  handler: async (ctx, { actor, orphans, audit }) => {
    await ctx.db.insert("orphanScans", {
      scannedAt: Date.now(),
      actor,
      total: orphans.length,
      orphans: orphans.slice(0, MAX_STORED_ORPHANS),
    });
    // Each insert prunes, so at most KEEP_SCANS + 1 rows exist and this page reaches them all.
    const newest = await ctx.db
      .query("orphanScans")
      .withIndex("by_scannedAt")
      .order("desc")
      .take(KEEP_SCANS + 10);
    for (const old of newest.slice(KEEP_SCANS)) await ctx.db.delete("orphanScans", old._id);
    if (audit) await appendAudit(ctx, { actor, ...audit });
    return null;
  },
});

/** Audits one orphan deletion (or its failure), on the instance it named when that exists. */
export const recordOrphanDeletion = internalMutation({
  args: {
    actor: v.string(),
    provider: vOrphanProvider,
    resourceId: v.string(),
    name: v.string(),
    reason: v.string(),
    instanceId: v.optional(v.string()),
    error: v.optional(v.string()),
  },
  returns: v.null(),
  handler: async (ctx, args) => {
    const instanceId = args.instanceId ? ctx.db.normalizeId("instances", args.instanceId) : null;
    const what = `${args.provider} ${args.resourceId} (${args.name}; ${args.reason})`;
    await appendAudit(ctx, {
      actor: args.actor,
      action: args.error === undefined ? "orphan.deleted" : "orphan.delete_failed",
      ...(instanceId ? { instanceId } : {}),
      detail: (args.error === undefined ? what : `${what}: ${args.error}`).slice(0, 1000),
    });
    return null;
  },
});

/** Dashboard: the newest stored scan, or null before the first. */
export const getLastOrphanScan = internalQuery({
  args: {},
  returns: v.union(v.null(), vOrphanScan),
  handler: async (ctx) => {
    const last = await ctx.db.query("orphanScans").withIndex("by_scannedAt").order("desc").first();
    if (!last) return null;
    const { scannedAt, actor, total, orphans } = last;
    return { scannedAt, actor, total, orphans };
  },
});

/** Cron and dashboard: scan every provider now, store the result, and return it. Never deletes. */
export const scanOrphans = internalAction({
  args: { actor: v.optional(v.string()) },
  returns: v.object({ orphans: v.array(vOrphan) }),
  handler: cronBatch("orphans.scanOrphans", async (ctx, { actor = DASHBOARD_ACTOR }: { actor?: string }) => scanAndRecord(ctx, loadConfig(), actor, actor !== SCAN_CRON_ACTOR)),
});

/**
 * Dashboard: scan, then delete every orphan unless `dryRun` (the default). A dry run lists them
 * under `wouldDelete`; a real run lists them under `deleted`, or `failed` with the reason.
 */
export const cleanupOrphans = internalAction({
  args: { dryRun: v.optional(v.boolean()), actor: v.optional(v.string()) },
  returns: vOrphanCleanup,
  handler: async (ctx, { dryRun = true, actor = DASHBOARD_ACTOR }) => runCleanup(ctx, loadConfig(), { dryRun, actor }),
});
