// Which instance a Brain-owned provider resource was made for, read from the resource
// itself. The list functions decide ownership (prefix, managedBy); this never widens it.
import type { OwnedResource } from "./types";

/**
 * The instance id in a project named `<prefix>-<instanceId>` (see resourceName in
 * model/steps.ts: Convex ids are lower-case alphanumerics, so the name keeps them whole),
 * or undefined when the rest of the name is not of that form.
 */
export function instanceIdFromName(prefix: string, name: string): string | undefined {
  const head = `${prefix}-`;
  if (!name.startsWith(head)) return undefined;
  const rest = name.slice(head.length);
  return /^[a-z0-9]+$/.test(rest) ? rest : undefined;
}

/** An owned resource, with `instanceId` left out (not undefined) when it is unknown. */
export function ownedResource(id: string, name: string, instanceId: string | null | undefined): OwnedResource {
  return instanceId ? { id, name, instanceId } : { id, name };
}
