// The health schedule: which instances are monitored (enrollment into batches), which batches
// are due (claims, each run at its own due time through the health work pool), and the
// fleet-wide deep sweep's turn. Called by monitoring.runHealthChecks every minute.
import { Workpool } from "@convex-dev/workpool";
import { components, internal } from "../_generated/api";
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx } from "../_generated/server";
import type { Config } from "../lib/config";
import type { HealthMember } from "../lib/validators";
import { countJoined } from "./healthCounts";
import { slotOf } from "./healthRules";
import { LIVE_STATUSES } from "./lifecycleRules";

/** A cron call looks this far ahead and starts each batch at its own due time (the cron's period). */
export const LOOKAHEAD_MS = 60_000;
/** Batches claimed per call; more are taken by a follow-up call at once. */
export const CLAIMS_PER_CALL = 25;
/** Instances enrolled per call; more by a follow-up call at once. */
export const ENROLLMENTS_PER_CALL = 200;
/** How long a deep sweep may run before another may start. */
const DEEP_SWEEP_LEASE_MS = 30 * 60_000;

export function healthPool(config: Config): Workpool {
  return new Workpool(components.healthPool, {
    maxParallelism: config.HEALTH_CONCURRENCY,
    retryActionsByDefault: false,
    logLevel: "WARN",
  });
}

/** A claim's lease: past it the run is taken for dead and the batch is claimed again. */
export const claimLeaseMs = (config: Config) => 2 * config.HEALTH_PROBE_TIMEOUT_MS + 2 * 60_000;

export const newToken = () => Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);

/**
 * Claims a batch for one run at `runAt`. Only the run holding the token may record results, so
 * a run that outlives its lease changes nothing. A run due now goes to the health pool at once;
 * a later one is handed over at its time by startClaimedBatch, so the pool's queue holds only
 * runs that can start (its loop reads every waiting start on each pass: a minute of future
 * runs waiting there would make each pass cost a share of the fleet).
 */
export async function claimBatch(ctx: MutationCtx, config: Config, batchId: Id<"healthBatches">, runAt: number): Promise<void> {
  const token = newToken();
  await ctx.db.patch("healthBatches", batchId, { claim: { token, runAt }, dueAt: runAt + claimLeaseMs(config) });
  if (runAt <= Date.now()) await enqueueBatchRun(ctx, config, batchId, token);
  else await ctx.scheduler.runAt(runAt, internal.healthRounds.startClaimedBatch, { batchId, token });
}

export async function enqueueBatchRun(ctx: MutationCtx, config: Config, batchId: Id<"healthBatches">, token: string): Promise<void> {
  await healthPool(config).enqueueAction(ctx, internal.healthRounds.checkBatch, { batchId, token });
}

/** Claims every batch due before the next cron call (bounded); true when more remain. */
export async function claimDueBatches(ctx: MutationCtx, config: Config, now: number): Promise<boolean> {
  const due = await ctx.db
    .query("healthBatches")
    .withIndex("by_dueAt", (q) => q.lte("dueAt", now + LOOKAHEAD_MS))
    .take(CLAIMS_PER_CALL);
  for (const batch of due) await claimBatch(ctx, config, batch._id, Math.max(now, batch.dueAt));
  return due.length === CLAIMS_PER_CALL;
}

/** A fresh member: due at once (its first check), then on its batch's round. */
export function newMember(instance: Doc<"instances">, now: number, correlationId?: string): HealthMember {
  return { instanceId: instance._id, ...(correlationId ? { correlationId } : {}), plan: instance.plan, streak: 0, dueAt: now, checks: {}, joinedAt: now };
}

/** The correlation id of the job that provisioned an instance (the Stripe event that paid for it). */
async function provisioningCorrelationOf(ctx: MutationCtx, instanceId: Id<"instances">): Promise<string | undefined> {
  const job = await ctx.db
    .query("provisioningJobs")
    .withIndex("by_instanceId_and_kind", (q) => q.eq("instanceId", instanceId).eq("kind", "provision"))
    .first();
  return job?.correlationId;
}

/**
 * Puts live instances that are not monitored yet into batches with room (the fullest first,
 * so batches stay dense), opening new batches as needed. True when more wait.
 */
export async function enrollNewInstances(ctx: MutationCtx, config: Config, now: number): Promise<boolean> {
  const waiting: Doc<"instances">[] = [];
  for (const status of LIVE_STATUSES) {
    const room = ENROLLMENTS_PER_CALL + 1 - waiting.length;
    if (room <= 0) break;
    waiting.push(
      ...(await ctx.db
        .query("instances")
        .withIndex("by_status_and_healthBatchId", (q) => q.eq("status", status).eq("healthBatchId", undefined))
        .take(room)),
    );
  }
  const more = waiting.length > ENROLLMENTS_PER_CALL;
  const enrolling = waiting.slice(0, ENROLLMENTS_PER_CALL);
  let batch: Doc<"healthBatches"> | null = null;
  const flush = async () => {
    if (!batch) return;
    const dueAt = Math.min(...batch.members.map((m) => m.dueAt));
    const fields = { members: batch.members, size: batch.members.length, dueAt: batch.claim ? batch.dueAt : dueAt, oldestCheckAt: 0, updatedAt: now };
    await ctx.db.patch("healthBatches", batch._id, fields);
  };
  for (const instance of enrolling) {
    if (!batch || batch.members.length >= config.HEALTH_BATCH_SIZE) {
      await flush();
      batch = await batchWithRoom(ctx, config, now);
    }
    batch.members.push(newMember(instance, now, await provisioningCorrelationOf(ctx, instance._id)));
    await ctx.db.patch("instances", instance._id, { healthBatchId: batch._id, healthStatus: undefined, unhealthySince: undefined });
    await countJoined(ctx, instance._id, instance.plan, "unchecked");
  }
  await flush();
  return more;
}

async function batchWithRoom(ctx: MutationCtx, config: Config, now: number): Promise<Doc<"healthBatches">> {
  const fullest = await ctx.db
    .query("healthBatches")
    .withIndex("by_size", (q) => q.lt("size", config.HEALTH_BATCH_SIZE))
    .order("desc")
    .first();
  if (fullest) return { ...fullest, members: [...fullest.members] };
  const newest = await ctx.db.query("healthBatches").order("desc").first();
  const number = (newest?.number ?? -1) + 1;
  const fields = { number, slot: slotOf(number), size: 0, members: [], dueAt: now, oldestCheckAt: 0, updatedAt: now };
  const id = await ctx.db.insert("healthBatches", fields);
  return { _id: id, _creationTime: now, ...fields };
}

/** Starts the fleet-wide deep sweep when its turn has come and none is running. */
export async function startDeepSweepIfDue(ctx: MutationCtx, config: Config, now: number): Promise<void> {
  const schedule = await ctx.db.query("healthSchedule").first();
  if (!schedule) {
    await ctx.db.insert("healthSchedule", { deepDueAt: now });
    return;
  }
  if (schedule.deepDueAt > now || (schedule.deepClaim && schedule.deepClaim.until > now)) return;
  const token = newToken();
  await ctx.db.patch("healthSchedule", schedule._id, { deepClaim: { token, until: now + DEEP_SWEEP_LEASE_MS } });
  await ctx.scheduler.runAfter(0, internal.healthRounds.deepSweep, { token });
}
