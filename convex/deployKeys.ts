// Deploy-key rotation: every active tenant's Convex deploy key is replaced once it is
// DEPLOY_KEY_ROTATION_DAYS old (an hourly cron picks at most DEPLOY_KEY_ROTATION_BATCH due ones
// and runs each on the Convex work pool). The steps, each persisted before the next:
//   1. create a new key: its name is recorded first (phase `creating`), then the key is held sealed
//      in `deployKeyRotation.pendingKeyCiphertext` (phase `created`);
//   2. verify it works (a call to the deployment made with it);
//   3. store it as the instance's key, the old one held for revocation (phase `stored`);
//   4. hand it to the deploy workflow: the workflow holds no key of its own; every dispatch seals
//      the instance's stored key for that run (registry.ts deployApp), so storing it is the handover;
//   5. revoke the old key (phase back to `idle`).
// A failure at any step leaves the old key the instance's (until step 3) or both keys working
// (after it), is retried with a doubling delay, and alerts the operators after
// DEPLOY_KEY_ROTATION_ALERT_AFTER consecutive failures. A run that dies between two steps leaves
// its phase stored; once its lease lapses the next run continues from that phase, so no tenant
// is left without a working stored key and no key minted by a rotation stays unrevoked (one made by
// a run that died before holding it is revoked by its name).
// docs/security.md "Deploy-key rotation".
import { v } from "convex/values";
import { internal } from "./_generated/api";
import type { Doc, Id } from "./_generated/dataModel";
import { internalAction, internalMutation, internalQuery, type QueryCtx } from "./_generated/server";
import { loadConfig, type Config } from "./lib/config";
import { decryptSecret, encryptionKeys, encryptSecret, SecretDecryptionError } from "./lib/crypto";
import { cronBatch, log } from "./lib/log";
import { queueDeployKeyNotice } from "./model/alerts";
import { appendAudit } from "./model/audit";
import { poolFor } from "./model/pools";
import { vDeployKeyPhase, type DeployKeyRotation } from "./model/secrets";
import { providersFor } from "./providers";
import { ProviderError } from "./providers/types";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Instances planned (their first due time set) per cron run. */
const PLAN_BATCH = 200;
/** A rotation step waits this long for a running job of its tenant to finish before revoking the old key. */
const BUSY_DELAY_MS = 5 * MINUTE;
const ACTOR = "system:deploy-key-rotation";

/** How long one run may hold a tenant's rotation: its provider calls, with room to spare. */
export const rotationLeaseMs = (config: Config) => 4 * config.PROVIDER_TIMEOUT_MS + MINUTE;
export const rotationPeriodMs = (config: Config) => config.DEPLOY_KEY_ROTATION_DAYS * DAY;
/** The wait before retry `failures` (1, 2, …): DEPLOY_KEY_ROTATION_RETRY_MS doubling, at most a day. */
export const rotationRetryDelayMs = (config: Config, failures: number) =>
  Math.min(config.DEPLOY_KEY_ROTATION_RETRY_MS * 2 ** Math.max(0, failures - 1), DAY);

const idle = (): DeployKeyRotation => ({ phase: "idle", failures: 0 });

async function hasRunningJob(ctx: { db: QueryCtx["db"] }, instanceId: Id<"instances">): Promise<boolean> {
  const recent = await ctx.db
    .query("provisioningJobs")
    .withIndex("by_instanceId", (q) => q.eq("instanceId", instanceId))
    .order("desc")
    .take(5);
  return recent.some((job) => job.status === "queued" || job.status === "running");
}

const holds = (instance: Doc<"instances"> | null, token: string): instance is Doc<"instances"> =>
  !!instance && instance.deployKeyRotation?.lease?.token === token;

/**
 * The cron: plans instances never planned (due one period after activation), then starts the
 * due ones, at most DEPLOY_KEY_ROTATION_BATCH, each leased to one run on the Convex pool.
 * Instances with a job under way wait an hour; leased ones (a run under way) are left alone.
 */
export const runDeployKeyRotations = internalMutation({
  args: {},
  returns: v.object({ planned: v.number(), started: v.number() }),
  handler: cronBatch("deployKeys.runDeployKeyRotations", async (ctx) => {
    const config = loadConfig();
    const now = Date.now();
    const period = rotationPeriodMs(config);
    const unplanned = await ctx.db
      .query("instances")
      .withIndex("by_status_and_deployKeyDueAt", (q) => q.eq("status", "active").eq("deployKeyDueAt", undefined))
      .take(PLAN_BATCH);
    for (const instance of unplanned) {
      const since = instance.deployKeyRotation?.rotatedAt ?? instance.activatedAt ?? instance.createdAt;
      await ctx.db.patch("instances", instance._id, { deployKeyDueAt: since + period });
    }
    const due = await ctx.db
      .query("instances")
      .withIndex("by_status_and_deployKeyDueAt", (q) => q.eq("status", "active").gte("deployKeyDueAt", 0).lte("deployKeyDueAt", now))
      .take(config.DEPLOY_KEY_ROTATION_BATCH);
    let started = 0;
    for (const instance of due) {
      const rotation = instance.deployKeyRotation ?? idle();
      if (rotation.lease && rotation.lease.until > now) continue;
      if (!instance.resources.convexDeployKeyCiphertext || !instance.resources.convexDeploymentName || !instance.resources.convexDeploymentUrl) {
        await ctx.db.patch("instances", instance._id, { deployKeyDueAt: now + period });
        continue;
      }
      if (rotation.phase === "idle" && (await hasRunningJob(ctx, instance._id))) {
        await ctx.db.patch("instances", instance._id, { deployKeyDueAt: now + HOUR });
        continue;
      }
      const token = crypto.randomUUID();
      const leaseMs = rotationLeaseMs(config);
      await ctx.db.patch("instances", instance._id, {
        deployKeyRotation: { ...rotation, lease: { token, until: now + leaseMs }, startedAt: rotation.startedAt ?? now },
        // Not picked again while leased; a run that died is resumed once the lease lapses.
        deployKeyDueAt: now + leaseMs,
      });
      await poolFor(config, "convex").enqueueAction(ctx, internal.deployKeys.rotateDeployKey, { instanceId: instance._id, token }, { retry: false });
      started++;
    }
    return { planned: unplanned.length, started };
  }),
});

const vTarget = v.union(
  v.object({ kind: v.literal("lost") }),
  v.object({
    kind: v.literal("held"),
    phase: vDeployKeyPhase,
    deploymentName: v.string(),
    pendingKeyName: v.optional(v.string()),
    deploymentUrl: v.string(),
    pendingKeyCiphertext: v.optional(v.string()),
    previousKeyCiphertext: v.optional(v.string()),
    busy: v.boolean(),
  }),
);

/** The rotation as the run holding `token` sees it (`lost`: another run holds it, or the instance left `active`). */
export const rotationTarget = internalQuery({
  args: { instanceId: v.id("instances"), token: v.string() },
  returns: vTarget,
  handler: async (ctx, { instanceId, token }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!holds(instance, token) || instance.status !== "active") return { kind: "lost" as const };
    const { convexDeploymentName, convexDeploymentUrl } = instance.resources;
    if (!convexDeploymentName || !convexDeploymentUrl) return { kind: "lost" as const };
    const rotation = instance.deployKeyRotation!;
    return {
      kind: "held" as const,
      phase: rotation.phase,
      deploymentName: convexDeploymentName,
      deploymentUrl: convexDeploymentUrl,
      ...(rotation.pendingKeyName ? { pendingKeyName: rotation.pendingKeyName } : {}),
      ...(rotation.pendingKeyCiphertext ? { pendingKeyCiphertext: rotation.pendingKeyCiphertext } : {}),
      ...(rotation.previousKeyCiphertext ? { previousKeyCiphertext: rotation.previousKeyCiphertext } : {}),
      busy: await hasRunningJob(ctx, instanceId),
    };
  },
});

/** Step 1 begins: the name the new key will carry is recorded before Convex is asked for it. */
export const recordCreating = internalMutation({
  args: { instanceId: v.id("instances"), token: v.string(), pendingKeyName: v.string() },
  returns: v.boolean(),
  handler: async (ctx, { instanceId, token, pendingKeyName }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!holds(instance, token) || instance.deployKeyRotation!.phase !== "idle") return false;
    await ctx.db.patch("instances", instanceId, { deployKeyRotation: { ...instance.deployKeyRotation!, phase: "creating", pendingKeyName } });
    return true;
  },
});

/** A run died while making a key: that key (if made) is revoked by its name; the next step makes another. */
export const abandonCreating = internalMutation({
  args: { instanceId: v.id("instances"), token: v.string() },
  returns: v.boolean(),
  handler: async (ctx, { instanceId, token }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!holds(instance, token) || instance.deployKeyRotation!.phase !== "creating") return false;
    const { pendingKeyName: _revoked, ...rest } = instance.deployKeyRotation!;
    await ctx.db.patch("instances", instanceId, { deployKeyRotation: { ...rest, phase: "idle" } });
    return true;
  },
});

/** Step 1 done: the new key is held (sealed) before anything else happens with it. */
export const recordCreatedKey = internalMutation({
  args: { instanceId: v.id("instances"), token: v.string(), pendingKeyCiphertext: v.string() },
  returns: v.boolean(),
  handler: async (ctx, { instanceId, token, pendingKeyCiphertext }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!holds(instance, token) || instance.deployKeyRotation!.phase !== "creating") return false;
    await ctx.db.patch("instances", instanceId, { deployKeyRotation: { ...instance.deployKeyRotation!, phase: "created", pendingKeyCiphertext } });
    return true;
  },
});

/** The new key was refused and revoked: it is dropped, and the next try mints another. */
export const dropPendingKey = internalMutation({
  args: { instanceId: v.id("instances"), token: v.string() },
  returns: v.boolean(),
  handler: async (ctx, { instanceId, token }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!holds(instance, token) || instance.deployKeyRotation!.phase !== "created") return false;
    const { pendingKeyCiphertext: _dropped, ...rest } = instance.deployKeyRotation!;
    await ctx.db.patch("instances", instanceId, { deployKeyRotation: { ...rest, phase: "idle" } });
    return true;
  },
});

/**
 * Step 3 (and 4): the verified key becomes the instance's; the old one is held for revocation.
 * Jobs of the instance still queued or running take the new key too, so none carries the old
 * one back onto the instance or uses it after it is revoked.
 */
export const storeRotatedKey = internalMutation({
  args: { instanceId: v.id("instances"), token: v.string() },
  returns: v.boolean(),
  handler: async (ctx, { instanceId, token }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!holds(instance, token)) return false;
    const rotation = instance.deployKeyRotation!;
    if (rotation.phase !== "created" || !rotation.pendingKeyCiphertext) return false;
    const previous = instance.resources.convexDeployKeyCiphertext;
    const fresh = rotation.pendingKeyCiphertext;
    await ctx.db.patch("instances", instanceId, {
      resources: { ...instance.resources, convexDeployKeyCiphertext: fresh },
      deployKeyRotation: {
        ...rotation,
        phase: "stored",
        pendingKeyCiphertext: undefined,
        ...(previous ? { previousKeyCiphertext: previous } : {}),
      },
    });
    const jobs = await ctx.db
      .query("provisioningJobs")
      .withIndex("by_instanceId", (q) => q.eq("instanceId", instanceId))
      .order("desc")
      .take(5);
    for (const job of jobs) {
      if ((job.status === "queued" || job.status === "running") && job.resources?.convexDeployKeyCiphertext) {
        await ctx.db.patch("provisioningJobs", job._id, { resources: { ...job.resources, convexDeployKeyCiphertext: fresh } });
      }
    }
    await appendAudit(ctx, { actor: ACTOR, action: "deployKey.stored", instanceId, detail: "new deploy key verified and stored; the old one is revoked next" });
    return true;
  },
});

/** Step 5 done: the old key is revoked; the next rotation is due a period from now. */
export const finishRotation = internalMutation({
  args: { instanceId: v.id("instances"), token: v.string() },
  returns: v.boolean(),
  handler: async (ctx, { instanceId, token }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!holds(instance, token) || instance.deployKeyRotation!.phase !== "stored") return false;
    const now = Date.now();
    await ctx.db.patch("instances", instanceId, {
      deployKeyRotation: { phase: "idle", failures: 0, rotatedAt: now },
      deployKeyDueAt: now + rotationPeriodMs(loadConfig()),
    });
    await appendAudit(ctx, { actor: ACTOR, action: "deployKey.rotated", instanceId, detail: "old deploy key revoked" });
    log("info", "deploy_key.rotated", { correlationId: `deploy-key:${instanceId}`, instanceId });
    return true;
  },
});

/** Gives the rotation up for now (a job is running): the lease ends and it is due again after `delayMs`. */
export const deferRotation = internalMutation({
  args: { instanceId: v.id("instances"), token: v.string(), delayMs: v.number() },
  returns: v.boolean(),
  handler: async (ctx, { instanceId, token, delayMs }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!holds(instance, token)) return false;
    await ctx.db.patch("instances", instanceId, {
      deployKeyRotation: { ...instance.deployKeyRotation!, lease: undefined },
      deployKeyDueAt: Date.now() + delayMs,
    });
    return true;
  },
});

/**
 * A step failed: the phase stays as it is (the old key still works), the retry waits a doubling
 * delay, and the operators are alerted once the streak reaches DEPLOY_KEY_ROTATION_ALERT_AFTER.
 */
export const recordRotationFailure = internalMutation({
  args: { instanceId: v.id("instances"), token: v.string(), error: v.string() },
  returns: v.boolean(),
  handler: async (ctx, { instanceId, token, error }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!holds(instance, token)) return false;
    const config = loadConfig();
    const now = Date.now();
    const rotation = instance.deployKeyRotation!;
    const failures = rotation.failures + 1;
    const delayMs = rotationRetryDelayMs(config, failures);
    const alert = failures >= config.DEPLOY_KEY_ROTATION_ALERT_AFTER && rotation.alertedAt === undefined;
    await ctx.db.patch("instances", instanceId, {
      deployKeyRotation: { ...rotation, lease: undefined, failures, lastError: error, ...(alert ? { alertedAt: now } : {}) },
      deployKeyDueAt: now + delayMs,
    });
    await appendAudit(ctx, {
      actor: ACTOR,
      action: "deployKey.rotation_failed",
      instanceId,
      detail: `${rotation.phase}: ${error} (failure ${failures}; retry in ${Math.round(delayMs / 1000)} s)`,
    });
    const fields = { correlationId: `deploy-key:${instanceId}`, instanceId, phase: rotation.phase, failures, error, retryInMs: delayMs };
    log("warn", "deploy_key.rotation_failed", fields);
    if (alert) {
      // The operators' alert, once per failure streak: a notice to every alert destination
      // (ALERT_EMAILS, ALERT_WEBHOOK_URL), an error line and an audit entry.
      const deliveries = await queueDeployKeyNotice(ctx, config, instanceId, { failures, phase: rotation.phase, lastError: error, at: now });
      log("error", "deploy_key.rotation_alert", { ...fields, deliveries, message: `deploy-key rotation of instance ${instanceId} failed ${failures} times in a row` });
      await appendAudit(ctx, { actor: ACTOR, action: "deployKey.rotation_alert", instanceId, detail: `${failures} consecutive failures; last: ${error}` });
    }
    return true;
  },
});

/** Why a step failed, fit for the audit and the logs: never a key (provider messages carry none). */
function describe(error: unknown): string {
  if (error instanceof ProviderError) return `${error.provider} ${error.kind}: ${error.message}`.slice(0, 300);
  if (error instanceof SecretDecryptionError) return error.message.slice(0, 300);
  return `unexpected ${error instanceof Error ? error.name : "error"}`;
}

/**
 * One tenant's rotation, from the phase it is in to the end (or `steps` steps at most: the next
 * run continues once this run's lease lapses). Each step is persisted before the next starts.
 */
export const rotateDeployKey = internalAction({
  args: { instanceId: v.id("instances"), token: v.string(), steps: v.optional(v.number()) },
  returns: v.null(),
  handler: async (ctx, { instanceId, token, steps }) => {
    const config = loadConfig();
    const keys = encryptionKeys(config);
    const correlationId = `deploy-key:${instanceId}`;
    const providers = providersFor({ ctx, config, correlationId });
    for (let step = 0; step < (steps ?? 4); step++) {
      const target = await ctx.runQuery(internal.deployKeys.rotationTarget, { instanceId, token });
      if (target.kind !== "held") return null;
      const { deploymentName, deploymentUrl } = target;
      try {
        if (target.phase === "idle") {
          // 1. create: its name first, so a key made by a run that dies before holding it can be found and revoked
          const name = `brain-${instanceId}-${Date.now()}`;
          if (!(await ctx.runMutation(internal.deployKeys.recordCreating, { instanceId, token, pendingKeyName: name }))) return null;
          const { deployKey } = await providers.convex.createDeployKey({ deploymentName, name });
          if (!(await ctx.runMutation(internal.deployKeys.recordCreatedKey, { instanceId, token, pendingKeyCiphertext: await encryptSecret(deployKey, keys) }))) {
            // Another run took over between the two calls: this key is nobody's, so it goes.
            await providers.convex.revokeDeployKey({ deploymentName, deployKey });
            return null;
          }
        } else if (target.phase === "creating") {
          // A run died while making a key: revoke whatever it made under that name, then start over.
          await providers.convex.revokeDeployKeyNamed({ deploymentName, name: target.pendingKeyName! });
          if (!(await ctx.runMutation(internal.deployKeys.abandonCreating, { instanceId, token }))) return null;
        } else if (target.phase === "created") {
          // 2. verify, 3. store (4. the next deploy dispatch seals the stored key)
          const pending = await decryptSecret(target.pendingKeyCiphertext!, keys);
          try {
            await providers.convex.verifyDeployKey({ deploymentName, deploymentUrl, deployKey: pending });
          } catch (error) {
            if (error instanceof ProviderError && error.kind === "permanent") {
              // The deployment refuses the new key: it is revoked and dropped; the old key stays.
              await providers.convex.revokeDeployKey({ deploymentName, deployKey: pending });
              await ctx.runMutation(internal.deployKeys.dropPendingKey, { instanceId, token });
            }
            throw error;
          }
          if (!(await ctx.runMutation(internal.deployKeys.storeRotatedKey, { instanceId, token }))) return null;
        } else {
          // 5. revoke, once no job of the tenant may still hold the old key
          if (target.busy) {
            await ctx.runMutation(internal.deployKeys.deferRotation, { instanceId, token, delayMs: BUSY_DELAY_MS });
            return null;
          }
          if (target.previousKeyCiphertext) {
            await providers.convex.revokeDeployKey({ deploymentName, deployKey: await decryptSecret(target.previousKeyCiphertext, keys) });
          }
          await ctx.runMutation(internal.deployKeys.finishRotation, { instanceId, token });
          return null;
        }
      } catch (error) {
        await ctx.runMutation(internal.deployKeys.recordRotationFailure, { instanceId, token, error: describe(error) });
        return null;
      }
    }
    return null;
  },
});

/** The rotation state of one instance, for operators (no key, sealed or not). */
export const getDeployKeyRotation = internalQuery({
  args: { instanceId: v.id("instances") },
  returns: v.union(
    v.null(),
    v.object({
      phase: vDeployKeyPhase,
      failures: v.number(),
      lastError: v.optional(v.string()),
      alertedAt: v.optional(v.number()),
      rotatedAt: v.optional(v.number()),
      dueAt: v.optional(v.number()),
    }),
  ),
  handler: async (ctx, { instanceId }) => {
    const instance = await ctx.db.get("instances", instanceId);
    if (!instance) return null;
    const r = instance.deployKeyRotation ?? idle();
    return {
      phase: r.phase,
      failures: r.failures,
      ...(r.lastError ? { lastError: r.lastError } : {}),
      ...(r.alertedAt ? { alertedAt: r.alertedAt } : {}),
      ...(r.rotatedAt ? { rotatedAt: r.rotatedAt } : {}),
      ...(instance.deployKeyDueAt !== undefined ? { dueAt: instance.deployKeyDueAt } : {}),
    };
  },
});
