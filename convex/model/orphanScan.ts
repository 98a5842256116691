// Orphan scans and cleanups through the adapters: list what each provider holds under Brain's
// tags, look up the instances those resources name, and delete what no live instance
// references. Resources not tagged as Brain's are never listed, so never touched.
import { internal } from "../_generated/api";
import type { Config } from "../lib/config";
import { fail } from "../lib/errors";
import { log } from "../lib/log";
import type { InstanceRef, Orphan, OrphanCleanup, OrphanProvider } from "../lib/validators";
import { outcomeForError } from "../providers/classify";
import { providersFor } from "../providers";
import { PROVIDERS } from "../registry";
import type { OwnedResource, ProviderCtx, Providers } from "../providers/types";
import {
  compareOrphans,
  deleteOwned,
  listOwned,
  ORPHAN_PROVIDERS,
  orphanReason,
  publicOrphan,
  type FoundOrphan,
} from "./orphans";

/** Instance ids looked up per query: a bounded read each. */
const LOOKUP_BATCH = 200;

const messageOf = (error: unknown): string => {
  const { outcome } = outcomeForError(error);
  return "message" in outcome ? outcome.message : String(error);
};

/**
 * What each instance id resolves to, by point lookups in batches (absent: no such instance),
 * and which ids are not instance ids at all.
 */
async function lookUpInstances(
  ctx: ProviderCtx,
  instanceIds: string[],
): Promise<{ refs: Map<string, InstanceRef>; notIds: Set<string> }> {
  const refs = new Map<string, InstanceRef>();
  const notIds = new Set<string>();
  for (let start = 0; start < instanceIds.length; start += LOOKUP_BATCH) {
    const batch = instanceIds.slice(start, start + LOOKUP_BATCH);
    const found = await ctx.runQuery(internal.orphans.getInstanceRefs, { instanceIds: batch });
    for (const { instanceId, isInstanceId, ref } of found) {
      if (ref) refs.set(instanceId, ref);
      if (!isInstanceId) notIds.add(instanceId);
    }
  }
  return { refs, notIds };
}

/**
 * Convex and Pages projects are Brain's only by their name. One named `<prefix>-<x>` where x is
 * not an instance id ("brain-landing", another deployment's "brain-test-…") is someone else's.
 */
const NAMED_ONLY: OrphanProvider[] = ORPHAN_PROVIDERS.filter((p) => PROVIDERS[p].owned.namedOnly);

/**
 * Lists every provider and classifies what it holds. A provider that cannot be listed fails the
 * whole scan (PROVIDER_UNAVAILABLE): a partial answer would read as "nothing orphaned there".
 */
export async function findOrphans(ctx: ProviderCtx, config: Config, correlationId: string): Promise<FoundOrphan[]> {
  const started = Date.now();
  const providers = providersFor({ ctx, config, correlationId });
  const listed = await Promise.allSettled(ORPHAN_PROVIDERS.map((provider) => listOwned(providers, provider)));
  const failures = listed.flatMap((result, i) =>
    result.status === "rejected" ? [`${ORPHAN_PROVIDERS[i]}: ${messageOf(result.reason)}`] : [],
  );
  if (failures.length > 0) {
    log("warn", "orphans.scan_failed", { correlationId, providers: failures.length, durationMs: Date.now() - started });
    fail("PROVIDER_UNAVAILABLE", `could not list every provider's resources; nothing was classified (${failures.join("; ")})`);
  }
  const resources = listed.map((result) => (result.status === "fulfilled" ? result.value : []));

  const instanceIds = [...new Set(resources.flat().flatMap((r) => (r.instanceId ? [r.instanceId] : [])))];
  const { refs: instances, notIds } = await lookUpInstances(ctx, instanceIds);

  const seen = new Set<string>();
  const orphans: FoundOrphan[] = [];
  ORPHAN_PROVIDERS.forEach((provider, i) => {
    for (const resource of resources[i]) {
      const key = `${provider}:${resource.id}`;
      if (seen.has(key)) continue; // a list that shifted between pages may repeat an item
      seen.add(key);
      if (NAMED_ONLY.includes(provider) && (!resource.instanceId || notIds.has(resource.instanceId))) continue;
      const reason = orphanReason(provider, resource, resource.instanceId ? (instances.get(resource.instanceId) ?? null) : null);
      if (reason) orphans.push(found(provider, resource, reason));
    }
  });
  orphans.sort(compareOrphans);
  log("info", "orphans.scanned", {
    correlationId,
    listed: seen.size,
    orphans: orphans.length,
    durationMs: Date.now() - started,
  });
  return orphans;
}

function found(provider: OrphanProvider, resource: OwnedResource, reason: FoundOrphan["reason"]): FoundOrphan {
  return {
    provider,
    resourceId: resource.id,
    name: resource.name,
    ...(resource.instanceId ? { instanceId: resource.instanceId } : {}),
    reason,
  };
}

/** Scans now and stores the result for the dashboard (audited unless `audit` is false). */
export async function scanAndRecord(ctx: ProviderCtx, config: Config, actor: string, audit: boolean): Promise<{ orphans: Orphan[] }> {
  const orphans = (await findOrphans(ctx, config, `orphans:${crypto.randomUUID()}`)).map(publicOrphan);
  await ctx.runMutation(internal.orphans.recordOrphanScan, {
    actor,
    orphans,
    ...(audit ? { audit: { action: "orphans.scanned", detail: `${orphans.length} orphans` } } : {}),
  });
  return { orphans };
}

/**
 * Deletes `orphans` one by one through the adapters, each re-checked just before (its instance
 * may have been retried since the scan). "Already gone" is success; a refusal is reported in
 * `failed`, never claimed deleted. Every deletion and failure is audited.
 */
export async function deleteOrphans(
  ctx: ProviderCtx,
  config: Config,
  orphans: FoundOrphan[],
  actor: string,
  correlationId: string,
): Promise<Pick<OrphanCleanup, "deleted" | "failed">> {
  const providers: Providers = providersFor({ ctx, config, correlationId });
  const deleted: Orphan[] = [];
  const failed: OrphanCleanup["failed"] = [];
  for (const orphan of orphans) {
    const still = await stillOrphaned(ctx, orphan);
    let error: string | undefined;
    if (!still) {
      error = "kept: it is no longer an orphan (its instance changed since the scan)";
    } else {
      try {
        await deleteOwned(providers, orphan.provider, orphan.resourceId);
      } catch (e) {
        error = messageOf(e);
      }
    }
    await ctx.runMutation(internal.orphans.recordOrphanDeletion, {
      actor,
      ...publicOrphan(orphan),
      reason: orphan.reason,
      ...(orphan.instanceId ? { instanceId: orphan.instanceId } : {}),
      ...(error !== undefined ? { error } : {}),
    });
    log(error === undefined ? "info" : "warn", error === undefined ? "orphan.deleted" : "orphan.delete_failed", {
      correlationId,
      provider: orphan.provider,
      resourceId: orphan.resourceId,
      reason: orphan.reason,
    });
    if (error === undefined) deleted.push(publicOrphan(orphan));
    else failed.push({ ...publicOrphan(orphan), message: error });
  }
  return { deleted, failed };
}

/** Whether the orphan's instance still makes it one. An instance id that never resolved cannot start to. */
async function stillOrphaned(ctx: ProviderCtx, orphan: FoundOrphan): Promise<boolean> {
  if (orphan.reason === "no_instance" || !orphan.instanceId) return true;
  const { refs } = await lookUpInstances(ctx, [orphan.instanceId]);
  const resource = { id: orphan.resourceId, name: orphan.name, instanceId: orphan.instanceId };
  return orphanReason(orphan.provider, resource, refs.get(orphan.instanceId) ?? null) !== null;
}

/**
 * Scans, then (unless `dryRun`) deletes every orphan found. A dry run fills only `wouldDelete`;
 * a real run fills `deleted` and `failed`. What is left is stored as the latest scan.
 */
export async function cleanupOrphans(
  ctx: ProviderCtx,
  config: Config,
  options: { dryRun: boolean; actor: string },
): Promise<OrphanCleanup> {
  const correlationId = `orphans:${crypto.randomUUID()}`;
  const orphans = await findOrphans(ctx, config, correlationId);
  const result: OrphanCleanup = options.dryRun
    ? { dryRun: true, deleted: [], wouldDelete: orphans.map(publicOrphan), failed: [] }
    : { dryRun: false, wouldDelete: [], ...(await deleteOrphans(ctx, config, orphans, options.actor, correlationId)) };
  const gone = new Set(result.deleted.map((o) => `${o.provider}:${o.resourceId}`));
  await ctx.runMutation(internal.orphans.recordOrphanScan, {
    actor: options.actor,
    orphans: orphans.filter((o) => !gone.has(`${o.provider}:${o.resourceId}`)).map(publicOrphan),
    audit: {
      action: "orphans.cleanup",
      detail: options.dryRun
        ? `dry run: would delete ${result.wouldDelete.length}`
        : `deleted ${result.deleted.length}, failed ${result.failed.length}`,
    },
  });
  return result;
}
