// Contract tests for the live WorkOS adapter (convex/providers/workos.ts) on the real
// @workos-inc/node SDK against the WorkOS fake: organizations keyed by instance id,
// memberships with the user cache, Brain-owned listing across pages, deletes, and every
// failure turned into a classified ProviderError with exactly one request per attempt.
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { ProviderError } from "../../convex/providers/types";
import { liveWorkos } from "../../convex/providers/workos";
import { FAKE_CREDENTIALS } from "../fakes";
import type { RecordedRequest } from "../fakes/base";
import { adapterHarness, type AdapterHarness, providerError } from "./env";

let h: AdapterHarness;

beforeEach(async () => {
  h = await adapterHarness();
});
afterEach(async () => {
  await h.close();
});

/** The ProviderError a call rejects with (fails the test if it resolves or throws anything else). */
/** Requests the fake received since `mark` (an index into `fake.requests`), optionally filtered. */
function since(mark: number, method?: string, path?: RegExp): RecordedRequest[] {
  return h.fakes.workos.requests
    .slice(mark)
    .filter((r) => (!method || r.method === method) && (!path || path.test(r.path)));
}

/** Creates an organization straight through the fake's HTTP API (not through the adapter). */
async function createOrganizationDirectly(body: { name: string; external_id?: string; metadata?: Record<string, string> }) {
  const response = await fetch(`${h.fakes.workos.url}/organizations`, {
    method: "POST",
    headers: { authorization: `Bearer ${FAKE_CREDENTIALS.workosKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string };
}

async function createUserDirectly(email: string) {
  const response = await fetch(`${h.fakes.workos.url}/user_management/users`, {
    method: "POST",
    headers: { authorization: `Bearer ${FAKE_CREDENTIALS.workosKey}`, "content-type": "application/json" },
    body: JSON.stringify({ email }),
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string };
}

const ORGS = /^\/organizations$/;
const BY_EXTERNAL_ID = /^\/organizations\/external_id\//;
const USERS = /^\/user_management\/users$/;
const MEMBERSHIPS = /^\/user_management\/organization_memberships$/;
const EMPTY_LIST = { object: "list", data: [], list_metadata: { before: null, after: null } };

describe("ensureOrganization", () => {
  test("creates an organization whose external id is the instance id, marked managedBy brain, with an idempotency key", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_create", name: "Acme Tenant" });

    expect(h.fakes.workos.organizations()).toEqual([
      expect.objectContaining({
        id: organizationId,
        name: "Acme Tenant",
        external_id: "inst_create",
        metadata: { managedBy: "brain", instanceId: "inst_create" },
      }),
    ]);
    const creates = since(0, "POST", ORGS);
    expect(creates).toHaveLength(1);
    expect(creates[0].headers["idempotency-key"]).toBe("brain-org-inst_create");
  });

  test("adopts the organization already registered under the instance id without creating another", async () => {
    const existing = await createOrganizationDirectly({ name: "Earlier attempt", external_id: "inst_adopt" });
    const mark = h.fakes.workos.requests.length;

    const { organizationId } = await liveWorkos(h.env).ensureOrganization({ instanceId: "inst_adopt", name: "Acme" });

    expect(organizationId).toBe(existing.id);
    expect(h.fakes.workos.organizations()).toHaveLength(1);
    expect(since(mark, "POST")).toHaveLength(0);
  });

  test("adopts the existing organization when the create answers 409 because another attempt won the race", async () => {
    const existing = await createOrganizationDirectly({ name: "Racing attempt", external_id: "inst_race" });
    // The lookup runs before the racing attempt's create lands: it misses once.
    h.fakes.workos.inject({ method: "GET", path: BY_EXTERNAL_ID, status: 404 });
    const mark = h.fakes.workos.requests.length;

    const { organizationId } = await liveWorkos(h.env).ensureOrganization({ instanceId: "inst_race", name: "Acme" });

    expect(organizationId).toBe(existing.id);
    expect(h.fakes.workos.organizations()).toHaveLength(1);
    expect(since(mark).map((r) => r.method)).toEqual(["GET", "POST", "GET"]);
  });

  test("a lost create response fails transiently and the retry adopts the one organization that was created", async () => {
    const workos = liveWorkos(h.env);
    h.fakes.workos.inject({ method: "POST", path: ORGS, dropResponse: true });

    const error = await providerError(workos.ensureOrganization({ instanceId: "inst_drop", name: "Acme" }));
    expect(error).toMatchObject({ provider: "workos", kind: "transient" });
    expect(h.fakes.workos.organizations()).toHaveLength(1);

    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_drop", name: "Acme" });
    expect(h.fakes.workos.organizations()).toEqual([expect.objectContaining({ id: organizationId, external_id: "inst_drop" })]);
    expect(since(0, "POST", ORGS)).toHaveLength(1);
  });

  test("a retried create whose lookup misses is replayed by its idempotency key instead of duplicated", async () => {
    const workos = liveWorkos(h.env);
    h.fakes.workos.inject({ method: "POST", path: ORGS, dropResponse: true });
    await providerError(workos.ensureOrganization({ instanceId: "inst_replay", name: "Acme" }));
    h.fakes.workos.inject({ method: "GET", path: BY_EXTERNAL_ID, status: 404 });

    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_replay", name: "Acme" });

    expect(h.fakes.workos.organizations()).toEqual([expect.objectContaining({ id: organizationId })]);
    const creates = since(0, "POST", ORGS);
    expect(creates).toHaveLength(2);
    expect(creates.map((r) => r.headers["idempotency-key"])).toEqual(["brain-org-inst_replay", "brain-org-inst_replay"]);
  });
});

describe("ensureMembership", () => {
  test("creates the user when no user has the email and makes it a member of the organization", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_m1", name: "Acme" });

    const { userId } = await workos.ensureMembership({ organizationId, email: "  Ada@Example.com ", name: "Ada King Lovelace" });

    expect(h.fakes.workos.users()).toEqual([
      expect.objectContaining({ id: userId, email: "ada@example.com", first_name: "Ada", last_name: "King Lovelace" }),
    ]);
    expect(h.fakes.workos.memberships()).toEqual([
      expect.objectContaining({ user_id: userId, organization_id: organizationId, status: "active" }),
    ]);
  });

  test("finds an existing user by email instead of creating one", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_m2", name: "Acme" });
    const existing = await createUserDirectly("grace@example.com");
    const mark = h.fakes.workos.requests.length;

    const { userId } = await workos.ensureMembership({ organizationId, email: "Grace@Example.com" });

    expect(userId).toBe(existing.id);
    expect(h.fakes.workos.users()).toHaveLength(1);
    expect(since(mark, "POST", USERS)).toHaveLength(0);
    const lookups = since(mark, "GET", USERS);
    expect(lookups).toHaveLength(1);
    expect(h.fakes.workos.memberships()).toEqual([expect.objectContaining({ user_id: existing.id, organization_id: organizationId })]);
  });

  test("calling it twice leaves exactly one membership and creates it only once", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_m3", name: "Acme" });

    const first = await workos.ensureMembership({ organizationId, email: "alan@example.com" });
    const second = await workos.ensureMembership({ organizationId, email: "alan@example.com" });

    expect(second.userId).toBe(first.userId);
    expect(h.fakes.workos.users()).toHaveLength(1);
    expect(h.fakes.workos.memberships()).toHaveLength(1);
    expect(since(0, "POST", MEMBERSHIPS)).toHaveLength(1);
  });

  test("adopts the user an earlier attempt created when the create answers 422 email not available", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_m4", name: "Acme" });
    const existing = await createUserDirectly("katherine@example.com");
    // The first lookup runs before the earlier attempt's user is visible.
    h.fakes.workos.inject({ method: "GET", path: USERS, status: 200, body: EMPTY_LIST });
    const mark = h.fakes.workos.requests.length;

    const { userId } = await workos.ensureMembership({ organizationId, email: "katherine@example.com" });

    expect(userId).toBe(existing.id);
    expect(h.fakes.workos.users()).toHaveLength(1);
    expect(since(mark, "POST", USERS)).toHaveLength(1);
    expect(h.fakes.workos.memberships()).toEqual([expect.objectContaining({ user_id: existing.id })]);
  });

  test("treats a membership another attempt already added (create answers 422) as success", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_m5", name: "Acme" });
    const { userId } = await workos.ensureMembership({ organizationId, email: "barbara@example.com" });
    // The membership check runs before the other attempt's membership is visible.
    h.fakes.workos.inject({ method: "GET", path: MEMBERSHIPS, status: 200, body: EMPTY_LIST });
    const mark = h.fakes.workos.requests.length;

    const again = await workos.ensureMembership({ organizationId, email: "barbara@example.com" });

    expect(again.userId).toBe(userId);
    expect(since(mark, "POST", MEMBERSHIPS)).toHaveLength(1);
    expect(h.fakes.workos.memberships()).toHaveLength(1);
  });

  test("a second lookup of the same email inside the cache TTL does not ask WorkOS for the user again", async () => {
    const workos = liveWorkos(h.env);
    const a = await workos.ensureOrganization({ instanceId: "inst_c1", name: "A" });
    const b = await workos.ensureOrganization({ instanceId: "inst_c2", name: "B" });

    const first = await workos.ensureMembership({ organizationId: a.organizationId, email: "cached@example.com" });
    const second = await workos.ensureMembership({ organizationId: b.organizationId, email: "cached@example.com" });

    expect(second.userId).toBe(first.userId);
    expect(since(0, "GET", USERS)).toHaveLength(1);
    expect(h.fakes.workos.memberships()).toHaveLength(2);
  });

  test("with WORKOS_USER_CACHE_TTL_MS 0 every lookup asks WorkOS for the user", async () => {
    await h.close();
    h = await adapterHarness({ WORKOS_USER_CACHE_TTL_MS: "0" });
    const workos = liveWorkos(h.env);
    const a = await workos.ensureOrganization({ instanceId: "inst_c3", name: "A" });
    const b = await workos.ensureOrganization({ instanceId: "inst_c4", name: "B" });

    const first = await workos.ensureMembership({ organizationId: a.organizationId, email: "uncached@example.com" });
    const second = await workos.ensureMembership({ organizationId: b.organizationId, email: "uncached@example.com" });

    expect(second.userId).toBe(first.userId);
    expect(since(0, "GET", USERS)).toHaveLength(2);
    expect(h.fakes.workos.users()).toHaveLength(1);
  });

  test("a membership in an organization that does not exist fails as a permanent 404", async () => {
    const error = await providerError(
      liveWorkos(h.env).ensureMembership({ organizationId: "org_01MISSING0000000000000000", email: "x@example.com" }),
    );
    expect(error).toMatchObject({ provider: "workos", kind: "permanent", status: 404 });
    expect(error.message).toContain("Organization not found");
  });
});

describe("ensureAccess", () => {
  const INVITATIONS = /^\/user_management\/invitations$/;

  test("invites a new email to the organization once, creating no user, and a retry adopts the same invitation", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_i1", name: "Acme" });
    const mark = h.fakes.workos.requests.length;

    const first = await workos.ensureAccess({ organizationId, email: "  New@Example.com ", name: "New Buyer" });
    const second = await workos.ensureAccess({ organizationId, email: "new@example.com" });

    expect(first).toEqual({ invitationId: expect.stringMatching(/^invitation_/) });
    expect(second).toEqual(first);
    expect(h.fakes.workos.invitations()).toEqual([
      expect.objectContaining({ id: "invitationId" in first && first.invitationId, email: "new@example.com", organization_id: organizationId, state: "pending" }),
    ]);
    const sends = since(mark, "POST", INVITATIONS);
    expect(sends).toHaveLength(1);
    expect(sends[0].body).toEqual({ email: "new@example.com", organization_id: organizationId });
    expect(since(mark, "GET", INVITATIONS)).toHaveLength(2);
    expect(h.fakes.workos.users()).toEqual([]);
    expect(h.fakes.workos.memberships()).toEqual([]);
  });

  test("a lost send response fails transiently and the retry adopts the invitation WorkOS sent instead of sending another", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_i2", name: "Acme" });
    h.fakes.workos.inject({ method: "POST", path: INVITATIONS, dropResponse: true });

    const error = await providerError(workos.ensureAccess({ organizationId, email: "lost@example.com" }));
    expect(error).toMatchObject({ provider: "workos", kind: "transient" });
    expect(h.fakes.workos.invitations()).toHaveLength(1);

    const access = await workos.ensureAccess({ organizationId, email: "lost@example.com" });
    expect(access).toEqual({ invitationId: h.fakes.workos.invitations()[0].id });
    expect(since(0, "POST", INVITATIONS)).toHaveLength(1);
  });

  test("adopts the invitation another attempt sent when the send answers 409", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_i3", name: "Acme" });
    const { invitationId } = (await workos.ensureAccess({ organizationId, email: "race@example.com" })) as { invitationId: string };
    // The list runs before the other attempt's invitation is visible.
    h.fakes.workos.inject({ method: "GET", path: INVITATIONS, status: 200, body: EMPTY_LIST });
    const mark = h.fakes.workos.requests.length;

    expect(await workos.ensureAccess({ organizationId, email: "race@example.com" })).toEqual({ invitationId });
    expect(since(mark, "POST", INVITATIONS)).toHaveLength(1);
    expect(h.fakes.workos.invitations()).toHaveLength(1);
  });

  test("an existing user gets the membership and no invitation", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_i4", name: "Acme" });
    const existing = await createUserDirectly("known@example.com");
    const mark = h.fakes.workos.requests.length;

    expect(await workos.ensureAccess({ organizationId, email: "Known@Example.com" })).toEqual({ userId: existing.id });
    expect(await workos.ensureAccess({ organizationId, email: "known@example.com" })).toEqual({ userId: existing.id });

    expect(h.fakes.workos.memberships()).toEqual([
      expect.objectContaining({ user_id: existing.id, organization_id: organizationId, status: "active" }),
    ]);
    expect(since(mark, "POST", MEMBERSHIPS)).toHaveLength(1);
    expect(since(mark, undefined, INVITATIONS)).toEqual([]);
    expect(h.fakes.workos.invitations()).toEqual([]);
    expect(h.fakes.workos.users()).toHaveLength(1);
  });

  test("an invitation to an organization that does not exist fails as a permanent 404", async () => {
    const error = await providerError(
      liveWorkos(h.env).ensureAccess({ organizationId: "org_01MISSING0000000000000000", email: "x@example.com" }),
    );
    expect(error).toMatchObject({ provider: "workos", kind: "permanent", status: 404 });
    expect(h.fakes.workos.invitations()).toEqual([]);
  });
});

describe("setMembershipsActive", () => {
  const DEACTIVATE = /^\/user_management\/organization_memberships\/[^/]+\/deactivate$/;
  const REACTIVATE = /^\/user_management\/organization_memberships\/[^/]+\/reactivate$/;
  const statusesOf = (organizationId: string) =>
    h.fakes.workos
      .memberships()
      .filter((m) => m.organization_id === organizationId)
      .map((m) => m.status);

  test("deactivates then reactivates every membership across more than one page, and a repeat changes nothing", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_s1", name: "Acme" });
    // The one Brain itself made, plus enough for a second page of 100.
    await workos.ensureMembership({ organizationId, email: "owner@example.com" });
    for (let i = 0; i < 104; i++) h.fakes.workos.addMembershipOutOfBand(organizationId);
    const other = await workos.ensureOrganization({ instanceId: "inst_s2", name: "Other" });
    h.fakes.workos.addMembershipOutOfBand(other.organizationId);
    let mark = h.fakes.workos.requests.length;

    expect(await workos.setMembershipsActive({ organizationId, active: false })).toEqual({ changed: 105 });

    expect(statusesOf(organizationId)).toEqual(Array(105).fill("inactive"));
    expect(statusesOf(other.organizationId)).toEqual(["active"]);
    const pages = since(mark, "GET", MEMBERSHIPS);
    expect(pages).toHaveLength(2);
    expect(since(mark, "PUT", DEACTIVATE)).toHaveLength(105);

    expect(await workos.setMembershipsActive({ organizationId, active: false })).toEqual({ changed: 0 });

    mark = h.fakes.workos.requests.length;
    expect(await workos.setMembershipsActive({ organizationId, active: true })).toEqual({ changed: 105 });
    expect(statusesOf(organizationId)).toEqual(Array(105).fill("active"));
    expect(since(mark, "GET", MEMBERSHIPS)).toHaveLength(2);
    expect(since(mark, "PUT", REACTIVATE)).toHaveLength(105);
    expect(since(mark, "PUT", DEACTIVATE)).toHaveLength(0);

    expect(await workos.setMembershipsActive({ organizationId, active: true })).toEqual({ changed: 0 });
  });

  test("only memberships not already in the wanted state are changed, and pending ones are left alone", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_s3", name: "Acme" });
    const active = h.fakes.workos.addMembershipOutOfBand(organizationId);
    const inactive = h.fakes.workos.addMembershipOutOfBand(organizationId, { status: "inactive" });
    const pending = h.fakes.workos.addMembershipOutOfBand(organizationId, { status: "pending" });
    const mark = h.fakes.workos.requests.length;

    expect(await workos.setMembershipsActive({ organizationId, active: false })).toEqual({ changed: 1 });
    expect(since(mark, "PUT").map((r) => r.path)).toEqual([`/user_management/organization_memberships/${active.id}/deactivate`]);

    expect(await workos.setMembershipsActive({ organizationId, active: true })).toEqual({ changed: 2 });
    const byId = new Map(h.fakes.workos.memberships().map((m) => [m.id, m.status]));
    expect([byId.get(active.id), byId.get(inactive.id), byId.get(pending.id)]).toEqual(["active", "active", "pending"]);
  });

  test("a suspended member is not reactivated by ensureMembership: that is resume's call", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_s4", name: "Acme" });
    await workos.ensureMembership({ organizationId, email: "owner@example.com" });
    await workos.setMembershipsActive({ organizationId, active: false });
    const mark = h.fakes.workos.requests.length;

    await workos.ensureMembership({ organizationId, email: "owner@example.com" });

    expect(statusesOf(organizationId)).toEqual(["inactive"]);
    expect(since(mark, "POST", MEMBERSHIPS)).toHaveLength(0);
  });

  test("an organization that does not exist has nothing to change", async () => {
    const workos = liveWorkos(h.env);
    expect(await workos.setMembershipsActive({ organizationId: "org_01MISSING0000000000000000", active: false })).toEqual({
      changed: 0,
    });
    // WorkOS may answer the list for a missing organization with a 404 instead of an empty list.
    h.fakes.workos.inject({ method: "GET", path: MEMBERSHIPS, status: 404 });
    expect(await workos.setMembershipsActive({ organizationId: "org_01MISSING0000000000000000", active: true })).toEqual({
      changed: 0,
    });
  });

  test("a 5xx on a change is thrown as transient, and the retry finishes the job", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_s5", name: "Acme" });
    for (let i = 0; i < 3; i++) h.fakes.workos.addMembershipOutOfBand(organizationId);
    h.fakes.workos.inject({ method: "PUT", path: DEACTIVATE, status: 503 });

    const error = await providerError(workos.setMembershipsActive({ organizationId, active: false }));

    expect(error).toMatchObject({ provider: "workos", kind: "transient", status: 503 });
    expect(statusesOf(organizationId)).toEqual(["active", "active", "active"]);
    expect(await workos.setMembershipsActive({ organizationId, active: false })).toEqual({ changed: 3 });
    expect(statusesOf(organizationId)).toEqual(["inactive", "inactive", "inactive"]);
  });
});

describe("probeOrganization", () => {
  test("reports an existing organization as ok and a missing one as not ok", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_probe", name: "Acme" });

    expect(await workos.probeOrganization({ organizationId })).toMatchObject({ ok: true });
    h.fakes.workos.deleteOrganizationOutOfBand(organizationId);
    const missing = await workos.probeOrganization({ organizationId });
    expect(missing.ok).toBe(false);
    expect(missing.detail).toContain("not found");
  });

  test("a 5xx while probing is thrown as transient, not reported as a missing organization", async () => {
    h.fakes.workos.inject({ method: "GET", path: /^\/organizations\/org_/, status: 503 });
    const error = await providerError(liveWorkos(h.env).probeOrganization({ organizationId: "org_01ANY00000000000000000000" }));
    expect(error).toMatchObject({ provider: "workos", kind: "transient", status: 503 });
  });

  test("a dropped connection while probing is thrown as a transient network error, not reported as missing", async () => {
    h.fakes.workos.inject({ method: "GET", path: /^\/organizations\/org_/, dropResponse: true });
    const error = await providerError(liveWorkos(h.env).probeOrganization({ organizationId: "org_01ANY00000000000000000000" }));
    expect(error).toMatchObject({ provider: "workos", kind: "transient", status: undefined });
    expect(error.message).toMatch(/^network error/);
  });
});

describe("listOrganizations", () => {
  test("pages through more than 100 organizations and returns only those managed by Brain", async () => {
    const managed: string[] = [];
    for (let i = 0; i < 150; i++) {
      const mine = i % 4 !== 3; // 113 Brain-owned, 37 not, interleaved
      const metadata: Record<string, string> | undefined = mine ? { managedBy: "brain", instanceId: `inst_l${i}` } : i % 8 === 3 ? { managedBy: "someone-else" } : undefined;
      const org = await createOrganizationDirectly({ name: `Org ${i}`, external_id: `ext_${i}`, ...(metadata ? { metadata } : {}) });
      if (mine) managed.push(org.id);
    }
    const mark = h.fakes.workos.requests.length;

    const owned = await liveWorkos(h.env).listOrganizations();

    expect(owned.map((o) => o.id).sort()).toEqual([...managed].sort());
    expect(owned).toContainEqual({ id: managed[0], name: "Org 0", instanceId: "ext_0" });
    const pages = since(mark, "GET", ORGS);
    expect(pages).toHaveLength(2);
  });

  test("reads each organization's instance from its externalId, else from its instanceId metadata", async () => {
    const keyed = await createOrganizationDirectly({ name: "Keyed", external_id: "inst_x", metadata: { managedBy: "brain", instanceId: "inst_x" } });
    const tagged = await createOrganizationDirectly({ name: "Tagged", metadata: { managedBy: "brain", instanceId: "inst_m" } });
    const bare = await createOrganizationDirectly({ name: "Bare", metadata: { managedBy: "brain" } });

    const owned = await liveWorkos(h.env).listOrganizations();

    expect(owned).toHaveLength(3);
    expect(owned).toContainEqual({ id: keyed.id, name: "Keyed", instanceId: "inst_x" });
    expect(owned).toContainEqual({ id: tagged.id, name: "Tagged", instanceId: "inst_m" });
    expect(owned).toContainEqual({ id: bare.id, name: "Bare" });
  });

  test("returns nothing when the account has only organizations Brain does not own", async () => {
    await createOrganizationDirectly({ name: "Someone else's", metadata: { managedBy: "other" } });
    expect(await liveWorkos(h.env).listOrganizations()).toEqual([]);
  });
});

describe("deleteOrganization", () => {
  test("deletes the organization, and deleting it again when already gone is success", async () => {
    const workos = liveWorkos(h.env);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_del", name: "Acme" });

    await workos.deleteOrganization({ organizationId });
    expect(h.fakes.workos.organizations()).toEqual([]);
    await expect(workos.deleteOrganization({ organizationId })).resolves.toBeUndefined();
    expect(since(0, "DELETE")).toHaveLength(2);
  });

  test("a 5xx on delete is thrown as transient", async () => {
    h.fakes.workos.inject({ method: "DELETE", status: 500 });
    const error = await providerError(liveWorkos(h.env).deleteOrganization({ organizationId: "org_01ANY00000000000000000000" }));
    expect(error).toMatchObject({ kind: "transient", status: 500 });
  });
});

describe("errors", () => {
  test.each([
    [500, "transient"],
    [502, "transient"],
    [503, "transient"],
    [400, "permanent"],
    [403, "permanent"],
    [404, "permanent"],
    [422, "permanent"],
  ] as const)("a %i on create is a %s ProviderError with the provider's message after exactly one request", async (status, kind) => {
    h.fakes.workos.inject({ method: "POST", path: ORGS, status, body: { message: `the provider says ${status}` } });

    const error = await providerError(liveWorkos(h.env).ensureOrganization({ instanceId: `inst_e${status}`, name: "Acme" }));

    expect(error).toMatchObject({ provider: "workos", kind, status });
    expect(error.message).toContain(`the provider says ${status}`);
    expect(since(0, "POST", ORGS)).toHaveLength(1);
  });

  test("a 429 is rate_limited with retryAfterMs taken from Retry-After, after exactly one request", async () => {
    h.fakes.workos.inject({ method: "POST", path: ORGS, status: 429, retryAfterSeconds: 1 });
    const error = await providerError(liveWorkos(h.env).ensureOrganization({ instanceId: "inst_429", name: "Acme" }));
    expect(error).toMatchObject({ provider: "workos", kind: "rate_limited", status: 429, retryAfterMs: 1000 });
    expect(since(0, "POST", ORGS)).toHaveLength(1);

    h.fakes.workos.inject({ method: "GET", path: BY_EXTERNAL_ID, status: 429, retryAfterSeconds: 0 });
    const immediate = await providerError(liveWorkos(h.env).ensureOrganization({ instanceId: "inst_429", name: "Acme" }));
    expect(immediate).toMatchObject({ kind: "rate_limited", retryAfterMs: 0 });
  });

  test("a 422 validation failure names the failed requirement and is permanent", async () => {
    const error = await providerError(liveWorkos(h.env).ensureOrganization({ instanceId: "inst_422", name: "" }));
    expect(error).toMatchObject({ kind: "permanent", status: 422 });
    expect(error.message).toContain("name_string_required");
    expect(h.fakes.workos.organizations()).toEqual([]);
  });

  test("a wrong API key is a permanent 401", async () => {
    await h.close();
    h = await adapterHarness({ WORKOS_API_KEY: "sk_test_not_the_key" });
    const error = await providerError(liveWorkos(h.env).probeOrganization({ organizationId: "org_01ANY00000000000000000000" }));
    expect(error).toMatchObject({ provider: "workos", kind: "permanent", status: 401 });
  });

  test("a dropped connection is a transient network error after exactly one request", async () => {
    h.fakes.workos.inject({ method: "GET", path: ORGS, dropResponse: true });
    const error = await providerError(liveWorkos(h.env).listOrganizations());
    expect(error).toMatchObject({ provider: "workos", kind: "transient", status: undefined });
    expect(error.message).toContain("network error");
    expect(since(0, "GET", ORGS)).toHaveLength(1);
  });

  test("an unreachable API is a transient network error", async () => {
    const url = h.fakes.workos.url;
    await h.fakes.workos.close();
    const error = await providerError(
      liveWorkos({ ...h.env, config: { ...h.env.config, WORKOS_API_URL: url } }).listOrganizations(),
    );
    expect(error).toMatchObject({ provider: "workos", kind: "transient" });
  });

  test("a request slower than PROVIDER_TIMEOUT_MS is abandoned as transient", async () => {
    await h.close();
    h = await adapterHarness({ PROVIDER_TIMEOUT_MS: "200" });
    h.fakes.workos.inject({ method: "GET", path: ORGS, latencyMs: 1_500 });
    const started = Date.now();
    const error = await providerError(liveWorkos(h.env).listOrganizations());
    expect(error).toMatchObject({ provider: "workos", kind: "transient" });
    expect(Date.now() - started).toBeLessThan(1_400);
    expect(since(0, "GET", ORGS)).toHaveLength(1);
  });
});
