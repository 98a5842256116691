// Secrets at rest: which fields hold them, and the encryption-key rotation's page of work
// (re-seal every secret not under the current key). docs/security.md "Secrets and key rotation".
import { v, type Infer } from "convex/values";
import type { Doc } from "../_generated/dataModel";
import { isUnderCurrentKey, reencryptSecret, type Keyring } from "../lib/crypto";
import type { InstanceResources } from "../lib/validators";

/** The tables holding secrets, in the order a rotation walks them. */
export const SECRET_TABLES = ["instances", "provisioningJobs"] as const;
export const vSecretTable = v.union(v.literal("instances"), v.literal("provisioningJobs"));
export type SecretTable = Infer<typeof vSecretTable>;

export const vSecretRotationStatus = v.union(v.literal("running"), v.literal("done"), v.literal("failed"));

/** The resource fields that hold ciphertext (deploy key, the tenant's signing secret, the retired endpoint secret). */
export const SECRET_RESOURCE_FIELDS = [
  "convexDeployKeyCiphertext",
  "tenantWebhookSecretCiphertext",
  "stripeEndpointSecretCiphertext",
] as const satisfies readonly (keyof InstanceResources)[];

export const vDeployKeyPhase = v.union(v.literal("idle"), v.literal("creating"), v.literal("created"), v.literal("stored"));

/**
 * A tenant's deploy-key rotation, persisted between its steps (deployKeys.ts):
 * - `idle`: nothing under way (failures and the alert are kept until a rotation succeeds);
 * - `creating`: a key is being made under `pendingKeyName`; a run that died here leaves a key
 *   nobody holds, so the next run revokes it by that name before making another;
 * - `created`: a new key was minted and is held here (sealed) until it is verified and stored;
 * - `stored`: the new key is the instance's; the old one is held here until it is revoked.
 */
export const vDeployKeyRotation = v.object({
  phase: vDeployKeyPhase,
  /** The name the key being made carries (unique per rotation: `brain-<instanceId>-<ms>`). */
  pendingKeyName: v.optional(v.string()),
  pendingKeyCiphertext: v.optional(v.string()),
  previousKeyCiphertext: v.optional(v.string()),
  /** The run working on it, until when (a run that died lets the next one take over). */
  lease: v.optional(v.object({ token: v.string(), until: v.number() })),
  /** Consecutive failed attempts; reset by a finished rotation. */
  failures: v.number(),
  lastError: v.optional(v.string()),
  /** When the operators were alerted about these failures (once per streak). */
  alertedAt: v.optional(v.number()),
  startedAt: v.optional(v.number()),
  /** When the current key was put in place by a rotation. */
  rotatedAt: v.optional(v.number()),
});
export type DeployKeyRotation = Infer<typeof vDeployKeyRotation>;

/** Re-seals the secret fields of `resources` not under the current key; `changed` counts them. */
export async function reencryptResources(
  resources: InstanceResources,
  keys: Keyring,
): Promise<{ resources: InstanceResources; changed: number }> {
  const next: InstanceResources = { ...resources };
  let changed = 0;
  for (const field of SECRET_RESOURCE_FIELDS) {
    const sealed = next[field];
    if (sealed === undefined || isUnderCurrentKey(sealed, keys)) continue;
    next[field] = await reencryptSecret(sealed, keys);
    changed++;
  }
  return { resources: next, changed };
}

/** The same for a rotation's held keys. */
export async function reencryptRotation(
  rotation: DeployKeyRotation,
  keys: Keyring,
): Promise<{ rotation: DeployKeyRotation; changed: number }> {
  const next: DeployKeyRotation = { ...rotation };
  let changed = 0;
  for (const field of ["pendingKeyCiphertext", "previousKeyCiphertext"] as const) {
    const sealed = next[field];
    if (sealed === undefined || isUnderCurrentKey(sealed, keys)) continue;
    next[field] = await reencryptSecret(sealed, keys);
    changed++;
  }
  return { rotation: next, changed };
}

export const vSecretRotationView = v.object({
  keyId: v.string(),
  status: vSecretRotationStatus,
  table: vSecretTable,
  scanned: v.number(),
  reencrypted: v.number(),
  error: v.optional(v.string()),
  startedAt: v.number(),
  updatedAt: v.number(),
  finishedAt: v.optional(v.number()),
});
export type SecretRotationView = Infer<typeof vSecretRotationView>;

export function rotationView(row: Doc<"secretRotations">): SecretRotationView {
  const { _id, _creationTime, cursor: _cursor, ...view } = row;
  return view;
}
