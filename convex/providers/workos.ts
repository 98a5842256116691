// Live WorkOS adapter on @workos-inc/node. Organizations carry the instance id as
// externalId (a retry finds them by it) and managedBy metadata (orphan scans tell
// Brain's from the rest); creates send an idempotency key. SDK 8.x does not retry
// organization or user calls, so one step attempt is a known number of requests.
// Suspension deactivates the organization's memberships, resume reactivates them.
// The customer gets in as an existing user's membership, or by a WorkOS invitation
// (ensureAccess): listed before it is sent, so a retry never sends a second.
import { WorkOS, type Invitation, type List, type OrganizationMembership, type OrganizationMembershipStatus } from "@workos-inc/node";
import { internal } from "../_generated/api";
import { fail } from "../lib/errors";
import { errorForStatus, networkError, sdkCall } from "./http";
import { ownedResource } from "./owned";
import { hasStatus, ProviderError, type OwnedResource, type ProviderEnv, type WorkosAdapter } from "./types";

const ALL_STATUSES: OrganizationMembershipStatus[] = ["active", "inactive", "pending"];

function classify(error: unknown) {
  const e = error as { status?: unknown; message?: string; code?: string; retryAfter?: number | null };
  if (typeof e?.status === "number") {
    return errorForStatus("workos", e.status, e.message ?? "no message", {
      code: e.code,
      retryAfter: e.retryAfter != null ? String(e.retryAfter) : null,
    });
  }
  return networkError("workos", error);
}

export function liveWorkos(env: ProviderEnv): WorkosAdapter {
  const { config, ctx } = env;
  const apiKey = config.WORKOS_API_KEY ?? fail("CONFIG_INVALID", "WORKOS_API_KEY is not set");
  const url = new URL(config.WORKOS_API_URL);
  // A client per call, on that call's traced fetch (constructing one is cheap: no I/O).
  const clientWith = (fetchFn: typeof fetch) =>
    new WorkOS(apiKey, {
      apiHostname: url.hostname,
      https: url.protocol === "https:",
      ...(url.port ? { port: Number(url.port) } : {}),
      timeout: config.PROVIDER_TIMEOUT_MS,
      fetchFn,
    });
  const call = <T>(operation: string, run: (workos: WorkOS) => Promise<T>) =>
    sdkCall(env, "workos", operation, (fetch) => run(clientWith(fetch as typeof globalThis.fetch)), classify);
  const managedBy = config.RESOURCE_PREFIX;

  async function findUser(email: string): Promise<{ userId: string | null; cached: boolean }> {
    const cached = await ctx.runQuery(internal.providerCache.getWorkosUser, {
      email,
      maxAgeMs: config.WORKOS_USER_CACHE_TTL_MS,
      now: Date.now(),
    });
    if (cached) return { userId: cached, cached: true };
    const users = await call("listUsers", (workos) => workos.userManagement.listUsers({ email, limit: 1 }));
    const userId = users.data[0]?.id ?? null;
    if (userId) await ctx.runMutation(internal.providerCache.putWorkosUser, { email, userId });
    return { userId, cached: false };
  }

  /** Makes the user a member of the organization, once; returns the user id. */
  async function addMembership(organizationId: string, email: string, userId: string, cachedUser: boolean): Promise<string> {
    // Every status: a list without `statuses` answers only active memberships, and a create
    // over an inactive (suspended) one would reactivate it, which is resume's call, not this one's.
    const memberships = await call("listOrganizationMemberships", (workos) =>
      workos.userManagement.listOrganizationMemberships({ userId, organizationId, statuses: ALL_STATUSES }),
    );
    if (memberships.data.length === 0) {
      try {
        await call("createOrganizationMembership", (workos) =>
          workos.userManagement.createOrganizationMembership({ userId, organizationId }),
        );
      } catch (error) {
        if (hasStatus(error, 404) && cachedUser) {
          // The cached user no longer exists: forget it, and retry (the retry looks it up again).
          await ctx.runMutation(internal.providerCache.putWorkosUser, { email, userId: null });
          throw new ProviderError("workos", "transient", `cached user ${userId} no longer exists; looking it up again`);
        }
        if (!hasStatus(error, 409) && !hasStatus(error, 422)) throw error;
      }
    }
    return userId;
  }

  /** The id of a pending invitation to the organization for this (normalized) email, if any. */
  async function findPendingInvitation(organizationId: string, email: string): Promise<string | null> {
    let after: string | undefined;
    for (let page = 0; page < 100; page++) {
      const cursor = after;
      const list: List<Invitation> = await call("listInvitations", (workos) =>
        workos.userManagement.listInvitations({ organizationId, email, limit: 100, ...(cursor ? { after: cursor } : {}) }),
      );
      const pending = list.data.find(
        (i) => i.state === "pending" && i.organizationId === organizationId && i.email.toLowerCase() === email,
      );
      if (pending) return pending.id;
      after = list.listMetadata?.after ?? undefined;
      if (!after) break;
    }
    return null;
  }

  async function organizationExists(organizationId: string): Promise<boolean> {
    try {
      await call("getOrganization", (workos) => workos.organizations.getOrganization(organizationId));
      return true;
    } catch (error) {
      if (hasStatus(error, 404)) return false;
      throw error;
    }
  }

  return {
    async ensureOrganization({ instanceId, name }) {
      try {
        const existing = await call("getOrganizationByExternalId", (workos) =>
          workos.organizations.getOrganizationByExternalId(instanceId),
        );
        return { organizationId: existing.id };
      } catch (error) {
        if (!hasStatus(error, 404)) throw error;
      }
      const create = (idempotencyKey: string) =>
        call("createOrganization", (workos) =>
          workos.organizations.createOrganization(
            { name, externalId: instanceId, metadata: { managedBy, instanceId } },
            { idempotencyKey },
          ),
        );
      try {
        let created = await create(`brain-org-${instanceId}`);
        // The lookup above found nothing, so an organization returned here is either new or a
        // replay (same idempotency key) of one deleted since, by compensation or an operator.
        // A replayed one no longer exists: create again, keyed by the deleted one, so a lost
        // response of that create replays too; follow the chain if that one is gone as well.
        for (let hop = 0; !(await organizationExists(created.id)); hop++) {
          if (hop >= 10) throw new ProviderError("workos", "permanent", `too many deleted organizations for ${instanceId}`);
          created = await create(`brain-org-${instanceId}-after-${created.id}`);
        }
        return { organizationId: created.id };
      } catch (error) {
        // Another attempt created it between our lookup and create: adopt it.
        if (!hasStatus(error, 409)) throw error;
        const existing = await call("getOrganizationByExternalId", (workos) =>
          workos.organizations.getOrganizationByExternalId(instanceId),
        );
        return { organizationId: existing.id };
      }
    },

    async ensureMembership({ organizationId, email, name }) {
      const normalized = email.trim().toLowerCase();
      const found = await findUser(normalized);
      if (found.userId) return { userId: await addMembership(organizationId, normalized, found.userId, found.cached) };
      const [firstName, ...rest] = (name ?? "").split(" ").filter(Boolean);
      let userId: string | null;
      try {
        const user = await call("createUser", (workos) =>
          workos.userManagement.createUser({
            email: normalized,
            ...(firstName ? { firstName } : {}),
            ...(rest.length ? { lastName: rest.join(" ") } : {}),
          }),
        );
        userId = user.id;
      } catch (error) {
        if (!hasStatus(error, 409) && !hasStatus(error, 422)) throw error;
        userId = (await findUser(normalized)).userId; // created by an earlier attempt
        if (!userId) throw error;
      }
      await ctx.runMutation(internal.providerCache.putWorkosUser, { email: normalized, userId });
      return { userId: await addMembership(organizationId, normalized, userId, false) };
    },

    async ensureAccess({ organizationId, email }) {
      const normalized = email.trim().toLowerCase();
      const found = await findUser(normalized);
      if (found.userId) return { userId: await addMembership(organizationId, normalized, found.userId, found.cached) };
      // No user yet: invite. Listed first, so a retry (or a crash after WorkOS sent it but
      // before Brain recorded it) adopts the invitation already sent instead of sending another.
      const pending = await findPendingInvitation(organizationId, normalized);
      if (pending) return { invitationId: pending };
      try {
        const invitation = await call("sendInvitation", (workos) =>
          workos.userManagement.sendInvitation({ email: normalized, organizationId }),
        );
        return { invitationId: invitation.id };
      } catch (error) {
        // 409: another attempt's invitation is pending since our list. Adopt it.
        if (!hasStatus(error, 409)) throw error;
        const raced = await findPendingInvitation(organizationId, normalized);
        if (!raced) throw error;
        return { invitationId: raced };
      }
    },

    async probeOrganization({ organizationId }) {
      try {
        const org = await call("getOrganization", (workos) => workos.organizations.getOrganization(organizationId));
        return { ok: true, detail: `WorkOS organization ${org.id} exists` };
      } catch (error) {
        if (hasStatus(error, 404)) return { ok: false, detail: `WorkOS organization ${organizationId} not found` };
        throw error;
      }
    },

    async setMembershipsActive({ organizationId, active }) {
      // Only an inactive membership can be reactivated and only an active one deactivated; a
      // pending one (an invitation not yet accepted) is left alone either way. The list asks
      // for exactly the memberships to change (without `statuses` it answers active ones only).
      const from: OrganizationMembershipStatus = active ? "inactive" : "active";
      const ids: string[] = [];
      try {
        let after: string | undefined;
        for (let page = 0; page < 1000; page++) {
          const cursor = after;
          const list: List<OrganizationMembership> = await call("listOrganizationMemberships", (workos) =>
            workos.userManagement.listOrganizationMemberships({
              organizationId,
              statuses: [from],
              limit: 100,
              ...(cursor ? { after: cursor } : {}),
            }),
          );
          for (const membership of list.data) if (membership.status === from) ids.push(membership.id);
          after = list.listMetadata?.after ?? undefined;
          if (!after) break;
        }
      } catch (error) {
        if (hasStatus(error, 404)) return { changed: 0 }; // no such organization: nothing to change
        throw error;
      }
      // Listed to the end first, then changed: changing memberships while paging a list filtered
      // by status could move the cursor. A retry after a partial run lists only what is left.
      let changed = 0;
      for (const id of ids) {
        try {
          if (active) {
            await call("reactivateOrganizationMembership", (workos) => workos.userManagement.reactivateOrganizationMembership(id));
          } else {
            await call("deactivateOrganizationMembership", (workos) => workos.userManagement.deactivateOrganizationMembership(id));
          }
          changed++;
        } catch (error) {
          if (!hasStatus(error, 404)) throw error; // removed since it was listed: nothing to change
        }
      }
      return { changed };
    },

    async listOrganizations(): Promise<OwnedResource[]> {
      const owned: OwnedResource[] = [];
      let after: string | undefined;
      for (let page = 0; page < 1000; page++) {
        const list = await call("listOrganizations", (workos) =>
          workos.organizations.listOrganizations({ limit: 100, ...(after ? { after } : {}) }),
        );
        for (const org of list.data) {
          if (org.metadata?.managedBy !== managedBy) continue;
          // ensureOrganization keys the organization by externalId = instance id.
          owned.push(ownedResource(org.id, org.name, org.externalId || org.metadata?.instanceId));
        }
        after = list.listMetadata?.after ?? undefined;
        if (!after) break;
      }
      return owned;
    },

    async deleteOrganization({ organizationId }) {
      try {
        await call("deleteOrganization", (workos) => workos.organizations.deleteOrganization(organizationId));
      } catch (error) {
        if (!hasStatus(error, 404)) throw error; // already gone is success
      }
    },
  };
}
