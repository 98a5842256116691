// Encryption-key rotation: re-seals every stored secret under the current key of
// ENCRYPTION_KEYS, online (reads keep working throughout: every ciphertext names its key, and
// both keys are configured), resumable (one bounded page per mutation; progress and cursor are
// stored; a run that stopped continues from its cursor) and idempotent (a secret already under
// the current key is left as it is, so a second run re-encrypts nothing).
// POST /admin/encryption/rotate starts or continues one; GET reports it (scripts/rotate-encryption-key.ts).
import type { HttpRouter } from "convex/server";
import { v } from "convex/values";
import { internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { internalMutation, internalQuery, type MutationCtx } from "./_generated/server";
import { loadConfig } from "./lib/config";
import { encryptionKeys, SecretDecryptionError } from "./lib/crypto";
import { json, jsonError, refuseBody } from "./lib/http";
import { log } from "./lib/log";
import { appendAudit } from "./model/audit";
import { reencryptResources, reencryptRotation, rotationView, vSecretRotationView, type SecretTable } from "./model/secrets";
import { adminRoute } from "./security";

/** Rows re-sealed per mutation: each is two AES-GCM operations per secret, well within a mutation's budget. */
export const ROTATION_PAGE_SIZE = 50;
/** A running rotation not advanced for this long is taken to have stopped; a new request continues it. */
export const ROTATION_STALE_MS = 2 * 60_000;

const ADMIN_ACTOR = "admin-api";

async function schedulePage(ctx: MutationCtx, rotationId: Id<"secretRotations">) {
  await ctx.scheduler.runAfter(0, internal.secrets.rotateEncryptionPage, { rotationId });
}

/**
 * Starts a rotation to the current key, or continues the one under way (a failed or stalled one
 * resumes from its cursor). A rotation that finished is followed by a fresh pass, which finds
 * nothing to re-encrypt unless a secret was written under an older key since.
 */
export const startEncryptionRotation = internalMutation({
  args: { actor: v.string() },
  returns: vSecretRotationView,
  handler: async (ctx, { actor }) => {
    const keyId = encryptionKeys(loadConfig())[0].id;
    const now = Date.now();
    const latest = await ctx.db
      .query("secretRotations")
      .withIndex("by_keyId", (q) => q.eq("keyId", keyId))
      .order("desc")
      .first();
    if (latest && latest.status === "running" && now - latest.updatedAt < ROTATION_STALE_MS) return rotationView(latest);
    if (latest && latest.status !== "done") {
      // Failed (a key was missing, say) or stalled: continue from where it stopped.
      await ctx.db.patch("secretRotations", latest._id, { status: "running", error: undefined, updatedAt: now });
      await appendAudit(ctx, { actor, action: "encryption.rotation_resumed", detail: `to key id ${keyId}` });
      await schedulePage(ctx, latest._id);
      return rotationView({ ...latest, status: "running", error: undefined, updatedAt: now });
    }
    const rotationId = await ctx.db.insert("secretRotations", {
      keyId,
      status: "running",
      table: "instances",
      cursor: null,
      scanned: 0,
      reencrypted: 0,
      startedAt: now,
      updatedAt: now,
    });
    await appendAudit(ctx, { actor, action: "encryption.rotation_started", detail: `to key id ${keyId}` });
    await schedulePage(ctx, rotationId);
    return rotationView((await ctx.db.get("secretRotations", rotationId))!);
  },
});

/** One page of one table: re-seals what is not under the current key, then schedules the next page. */
export const rotateEncryptionPage = internalMutation({
  args: { rotationId: v.id("secretRotations") },
  returns: v.null(),
  handler: async (ctx, { rotationId }) => {
    const rotation = await ctx.db.get("secretRotations", rotationId);
    if (!rotation || rotation.status !== "running") return null;
    const keys = encryptionKeys(loadConfig());
    const now = Date.now();
    const stop = async (error: string) => {
      await ctx.db.patch("secretRotations", rotationId, { status: "failed", error, updatedAt: now });
      log("error", "encryption.rotation_failed", { correlationId: rotationId, keyId: rotation.keyId, error });
    };
    if (keys[0].id !== rotation.keyId) {
      await stop(`the current key is now "${keys[0].id}", not "${rotation.keyId}": start a rotation again`);
      return null;
    }
    const table: SecretTable = rotation.table;
    const page = await ctx.db.query(table).paginate({ numItems: ROTATION_PAGE_SIZE, cursor: rotation.cursor });
    let reencrypted = 0;
    for (const doc of page.page) {
      try {
        if (table === "instances") {
          const row = (await ctx.db.get("instances", doc._id as Id<"instances">))!;
          const resources = await reencryptResources(row.resources, keys);
          const held = row.deployKeyRotation ? await reencryptRotation(row.deployKeyRotation, keys) : null;
          const changed = resources.changed + (held?.changed ?? 0);
          if (changed > 0) {
            await ctx.db.patch("instances", row._id, { resources: resources.resources, ...(held ? { deployKeyRotation: held.rotation } : {}) });
          }
          reencrypted += changed;
        } else {
          const row = (await ctx.db.get("provisioningJobs", doc._id as Id<"provisioningJobs">))!;
          if (!row.resources) continue;
          const resources = await reencryptResources(row.resources, keys);
          if (resources.changed > 0) await ctx.db.patch("provisioningJobs", row._id, { resources: resources.resources });
          reencrypted += resources.changed;
        }
      } catch (error) {
        if (!(error instanceof SecretDecryptionError)) throw error;
        // Names the row and the key id, never a key or a secret. The rows already re-sealed on
        // this page stay so (the cursor does not move: a resumed run finds them done and skips them).
        await ctx.db.patch("secretRotations", rotationId, { reencrypted: rotation.reencrypted + reencrypted });
        await stop(`${table} ${doc._id}: ${error.message}`);
        return null;
      }
    }
    const next = page.isDone
      ? table === "instances"
        ? { table: "provisioningJobs" as const, cursor: null }
        : null
      : { table, cursor: page.continueCursor };
    await ctx.db.patch("secretRotations", rotationId, {
      scanned: rotation.scanned + page.page.length,
      reencrypted: rotation.reencrypted + reencrypted,
      updatedAt: now,
      ...(next ? next : { status: "done" as const, finishedAt: now }),
    });
    if (next) await schedulePage(ctx, rotationId);
    else {
      await appendAudit(ctx, {
        actor: "system:encryption-rotation",
        action: "encryption.rotation_done",
        detail: `key id ${rotation.keyId}: ${rotation.reencrypted + reencrypted} secrets re-encrypted, ${rotation.scanned + page.page.length} rows scanned`,
      });
      log("info", "encryption.rotation_done", {
        correlationId: rotationId,
        keyId: rotation.keyId,
        reencrypted: rotation.reencrypted + reencrypted,
        scanned: rotation.scanned + page.page.length,
      });
    }
    return null;
  },
});

export const getEncryptionStatus = internalQuery({
  args: {},
  returns: v.object({ currentKeyId: v.string(), keyIds: v.array(v.string()), rotation: v.union(vSecretRotationView, v.null()) }),
  handler: async (ctx) => {
    const keys = encryptionKeys(loadConfig());
    const latest = await ctx.db
      .query("secretRotations")
      .withIndex("by_keyId", (q) => q.eq("keyId", keys[0].id))
      .order("desc")
      .first();
    return { currentKeyId: keys[0].id, keyIds: keys.map((k) => k.id), rotation: latest ? rotationView(latest) : null };
  },
});

export function registerSecretRoutes(http: HttpRouter): void {
  http.route({
    path: "/admin/encryption/rotate",
    method: "POST",
    handler: adminRoute("/admin/encryption/rotate", async (ctx, request) => {
      const refused = await refuseBody(request);
      if (refused) return jsonError("BAD_REQUEST", refused);
      const rotation = await ctx.runMutation(internal.secrets.startEncryptionRotation, { actor: ADMIN_ACTOR });
      return json(202, { rotation });
    }),
  });
  http.route({
    path: "/admin/encryption/rotate",
    method: "GET",
    handler: adminRoute("/admin/encryption/rotate", async (ctx) => {
      return json(200, await ctx.runQuery(internal.secrets.getEncryptionStatus, {}));
    }),
  });
}
