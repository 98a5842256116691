// The orphan rules, as plain functions: when a Brain-tagged provider resource is no longer
// referenced by a live instance. They only decide; listing and deleting happen in
// orphanScan.ts. When in doubt a resource is kept: a wrong "orphan" deletes a tenant's stack.
import type { Doc } from "../_generated/dataModel";
import type { InstanceRef, InstanceStatus, Orphan, OrphanProvider } from "../lib/validators";
import type { OwnedResource, Providers } from "../providers/types";
import { OWNER_PROVIDERS, PROVIDERS, recordedField } from "../registry";

/** Providers where Brain creates a resource per instance (the registry's owners). */
export const ORPHAN_PROVIDERS: readonly OrphanProvider[] = OWNER_PROVIDERS;

/**
 * Instances whose job is in flight (provisioning, a retry, a teardown). The engine owns their
 * resources: one may exist before its id is recorded, or be about to replace a recorded one.
 */
const IN_FLIGHT: readonly InstanceStatus[] = ["provisioning", "deprovisioning"];

export type OrphanReason = "no_instance" | "instance_deleted" | "duplicate" | "instance_cleaned_up" | "retired";

/** An orphan with what the scan learned about it (kept out of the HTTP answer). */
export type FoundOrphan = Orphan & { instanceId?: string; reason: OrphanReason };

/**
 * Why `resource` (listed from `provider`) is an orphan, or null when a live instance may still
 * own it. `instance` is what its instanceId resolves to (null: no such instance, or no id).
 */
export function orphanReason(provider: OrphanProvider, resource: OwnedResource, instance: InstanceRef | null): OrphanReason | null {
  // Brain makes none of these any more (Stripe webhook endpoints of earlier versions).
  if ("retired" in PROVIDERS[provider].owned) return "retired";
  if (!resource.instanceId || !instance) return "no_instance";
  if (instance.status === "deleted") return "instance_deleted";
  if (IN_FLIGHT.includes(instance.status)) return null;
  const recorded = instance.recorded[provider];
  if (recorded !== undefined) return recorded === resource.id ? null : "duplicate";
  // Not recorded: a failed job not yet compensated may still be retried and adopt it by name.
  return instance.status === "failed" && instance.cleanedUp ? "instance_cleaned_up" : null;
}

/** The instance's recorded resource ids, keyed by provider. */
export function recordedIds(resources: Doc<"instances">["resources"]): InstanceRef["recorded"] {
  const recorded: InstanceRef["recorded"] = {};
  for (const provider of ORPHAN_PROVIDERS) {
    if ("retired" in PROVIDERS[provider].owned) continue;
    const value = resources[recordedField(provider)];
    if (typeof value === "string") recorded[provider] = value;
  }
  return recorded;
}

/** Every Brain-owned resource a provider holds, through its adapter. */
export function listOwned(providers: Providers, provider: OrphanProvider): Promise<OwnedResource[]> {
  return PROVIDERS[provider].owned.list(providers);
}

/** Deletes one resource through its adapter; every delete treats "already gone" as success. */
export function deleteOwned(providers: Providers, provider: OrphanProvider, resourceId: string): Promise<void> {
  return PROVIDERS[provider].owned.remove(providers, resourceId);
}

/** Provider order, then name, then id: the same world always answers in the same order. */
export function compareOrphans(a: Orphan, b: Orphan): number {
  const byProvider = ORPHAN_PROVIDERS.indexOf(a.provider) - ORPHAN_PROVIDERS.indexOf(b.provider);
  if (byProvider !== 0) return byProvider;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.resourceId < b.resourceId ? -1 : a.resourceId > b.resourceId ? 1 : 0;
}

/** The public shape of an orphan (provider, resourceId, name). */
export const publicOrphan = ({ provider, resourceId, name }: Orphan): Orphan => ({ provider, resourceId, name });
