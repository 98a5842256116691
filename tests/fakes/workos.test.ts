// @vitest-environment node
// Drives the WorkOS fake through the real @workos-inc/node 8.13 SDK, so the fake's wire
// shapes, status codes and error bodies are checked against what the SDK actually parses.
import {
  DomainDataState,
  GenericServerException,
  NotFoundException,
  RateLimitExceededException,
  UnauthorizedException,
  UnprocessableEntityException,
  WorkOS,
} from "@workos-inc/node";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { startWorkosFake, type WorkosFake } from "./workos";

const API_KEY = "sk_test_fake_workos";
let fake: WorkosFake;
let workos: WorkOS;

const clientFor = (key: string) => new WorkOS(key, { apiHostname: "127.0.0.1", port: fake.port, https: false });

/** The SDK's rejection, for assertions on its class and fields. */
async function failure(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error("expected the call to fail");
}

beforeEach(async () => {
  fake = await startWorkosFake({ apiKey: API_KEY });
  workos = clientFor(API_KEY);
});
afterEach(async () => {
  await fake.close();
});

describe("organizations", () => {
  test("a created organization reads back by id and by external id with domains always present", async () => {
    const created = await workos.organizations.createOrganization({
      name: "Acme",
      externalId: "inst_1",
      metadata: { managedBy: "brain" },
    });
    expect(created).toMatchObject({
      object: "organization",
      name: "Acme",
      externalId: "inst_1",
      metadata: { managedBy: "brain" },
      domains: [],
      allowProfilesOutsideOrganization: false,
    });
    expect(created.id).toMatch(/^org_[0-9A-Z]{26}$/);
    expect(Date.parse(created.createdAt)).not.toBeNaN();
    expect(await workos.organizations.getOrganization(created.id)).toEqual(created);
    expect(await workos.organizations.getOrganizationByExternalId("inst_1")).toEqual(created);
    expect(fake.requests.at(-1)).toMatchObject({ method: "GET", path: "/organizations/external_id/inst_1" });
  });

  test("domain data becomes organization domains the SDK can deserialize", async () => {
    const created = await workos.organizations.createOrganization({
      name: "Domains Inc",
      domainData: [{ domain: "acme.test", state: DomainDataState.Verified }],
    });
    expect(created.domains).toEqual([
      expect.objectContaining({ object: "organization_domain", domain: "acme.test", state: "verified", organizationId: created.id }),
    ]);
  });

  test("the same idempotency key and body replay the original organization instead of creating another", async () => {
    const payload = { name: "Acme", externalId: "inst_2", metadata: { instanceId: "inst_2" } };
    const first = await workos.organizations.createOrganization(payload, { idempotencyKey: "brain-org-inst_2" });
    const second = await workos.organizations.createOrganization(payload, { idempotencyKey: "brain-org-inst_2" });
    expect(second).toEqual(first);
    expect(fake.organizations()).toHaveLength(1);
    expect(fake.requests.at(-1)?.headers["idempotency-key"]).toBe("brain-org-inst_2");
  });

  test("the same idempotency key with a different body is refused with 400 and nothing is created", async () => {
    await workos.organizations.createOrganization({ name: "Acme" }, { idempotencyKey: "key-1" });
    const error = await failure(workos.organizations.createOrganization({ name: "Other" }, { idempotencyKey: "key-1" }));
    expect(error).toBeInstanceOf(GenericServerException);
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/Another idempotency key \(key-1\) with different request parameters/);
    expect(fake.organizations()).toHaveLength(1);
  });

  test("a duplicate external id is a 409 ConflictException", async () => {
    await workos.organizations.createOrganization({ name: "Acme", externalId: "inst_3" });
    const error = await failure(workos.organizations.createOrganization({ name: "Acme again", externalId: "inst_3" }));
    // 8.13 does not export ConflictException; it is recognised by name and status.
    expect(error).toMatchObject({ name: "ConflictException", status: 409 });
    expect(error.message).toMatch(/inst_3/);
    expect(fake.organizations()).toHaveLength(1);
  });

  test("a missing organization is a 404 NotFoundException with code entity_not_found", async () => {
    const byId = await failure(workos.organizations.getOrganization("org_01MISSING"));
    expect(byId).toBeInstanceOf(NotFoundException);
    expect(byId).toMatchObject({ status: 404, code: "entity_not_found", message: "Organization not found: 'org_01MISSING'." });
    const byExternalId = await failure(workos.organizations.getOrganizationByExternalId("nope"));
    expect(byExternalId).toBeInstanceOf(NotFoundException);
  });

  test("an organization without a name is a 422 with the validation error codes", async () => {
    const error = await failure(workos.organizations.createOrganization({ name: "" }));
    expect(error).toBeInstanceOf(UnprocessableEntityException);
    expect(error).toMatchObject({ status: 422, code: "invalid_request_parameters" });
    expect(error.message).toMatch(/name_string_required/);
  });

  test("listing pages newest first with after cursors and ends with after null", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push((await workos.organizations.createOrganization({ name: `Org ${i}` })).id);
    const seen: string[] = [];
    let after: string | undefined;
    const afters: (string | null | undefined)[] = [];
    for (let page = 0; page < 5; page++) {
      const list = await workos.organizations.listOrganizations({ limit: 10, ...(after ? { after } : {}) });
      seen.push(...list.data.map((o) => o.id));
      afters.push(list.listMetadata.after);
      if (page === 0) expect(list.listMetadata.before).toBeNull();
      after = list.listMetadata.after ?? undefined;
      if (!after) break;
    }
    expect(seen).toEqual([...ids].reverse());
    expect(afters).toHaveLength(3);
    expect(afters[2]).toBeNull();
    expect(fake.requests[25].path).toBe("/organizations");
  });

  test("a before cursor pages back and ascending order lists oldest first", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await workos.organizations.createOrganization({ name: `Org ${i}` })).id);
    const asc = await workos.organizations.listOrganizations({ order: "asc", limit: 2 });
    expect(asc.data.map((o) => o.id)).toEqual(ids.slice(0, 2));
    const second = await workos.organizations.listOrganizations({ order: "asc", limit: 2, after: asc.listMetadata.after! });
    expect(second.data.map((o) => o.id)).toEqual(ids.slice(2, 4));
    expect(second.listMetadata.before).toBe(ids[2]);
    const back = await workos.organizations.listOrganizations({ order: "asc", limit: 2, before: second.listMetadata.before! });
    expect(back.data.map((o) => o.id)).toEqual(ids.slice(0, 2));
    expect(back.listMetadata).toEqual({ before: null, after: ids[1] });
  });

  test("a list without a limit returns 10 and a limit over 100 is refused", async () => {
    for (let i = 0; i < 12; i++) await workos.organizations.createOrganization({ name: `Org ${i}` });
    expect((await workos.organizations.listOrganizations()).data).toHaveLength(10);
    const autoPaged = await (await workos.organizations.listOrganizations()).autoPagination();
    expect(autoPaged).toHaveLength(12);
    const error = await failure(workos.organizations.listOrganizations({ limit: 101 }));
    expect(error).toBeInstanceOf(UnprocessableEntityException);
  });

  test("an update renames the organization and merges metadata", async () => {
    const created = await workos.organizations.createOrganization({ name: "Acme", metadata: { a: "1", b: "2" } });
    const updated = await workos.organizations.updateOrganization({
      organization: created.id,
      name: "Acme 2",
      metadata: { b: "3" },
    });
    expect(updated).toMatchObject({ id: created.id, name: "Acme 2", metadata: { a: "1", b: "3" } });
    expect(fake.organizations()[0].name).toBe("Acme 2");
  });

  test("a deleted organization is gone and deleting it again is a 404", async () => {
    const created = await workos.organizations.createOrganization({ name: "Acme" });
    await workos.organizations.deleteOrganization(created.id);
    expect(fake.requests.at(-1)).toMatchObject({ method: "DELETE", path: `/organizations/${created.id}` });
    expect(fake.organizations()).toEqual([]);
    expect(await failure(workos.organizations.getOrganization(created.id))).toBeInstanceOf(NotFoundException);
    expect(await failure(workos.organizations.deleteOrganization(created.id))).toBeInstanceOf(NotFoundException);
  });

  test("an organization deleted out of band disappears together with its memberships", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme", externalId: "inst_oob" });
    const user = await workos.userManagement.createUser({ email: "a@example.com" });
    await workos.userManagement.createOrganizationMembership({ userId: user.id, organizationId: org.id });
    fake.deleteOrganizationOutOfBand(org.id);
    expect(await failure(workos.organizations.getOrganizationByExternalId("inst_oob"))).toBeInstanceOf(NotFoundException);
    expect(fake.memberships()).toEqual([]);
    expect(fake.users()).toHaveLength(1);
  });
});

describe("user management", () => {
  test("a created user is found by email, case-insensitively, and by id", async () => {
    const user = await workos.userManagement.createUser({ email: "Ada@Example.com", firstName: "Ada", lastName: "Lovelace" });
    expect(user).toMatchObject({
      object: "user",
      email: "ada@example.com",
      emailVerified: false,
      firstName: "Ada",
      lastName: "Lovelace",
      profilePictureUrl: null,
      externalId: null,
      metadata: {},
    });
    expect(user.id).toMatch(/^user_/);
    const found = await workos.userManagement.listUsers({ email: "ADA@example.com", limit: 1 });
    expect(found.data.map((u) => u.id)).toEqual([user.id]);
    expect((await workos.userManagement.listUsers({ email: "nobody@example.com" })).data).toEqual([]);
    expect(await workos.userManagement.getUser(user.id)).toEqual(user);
  });

  test("a second user with the same email is a 422 naming email_not_available", async () => {
    await workos.userManagement.createUser({ email: "a@example.com" });
    const error = await failure(workos.userManagement.createUser({ email: "a@example.com" }));
    expect(error).toBeInstanceOf(UnprocessableEntityException);
    expect(error).toMatchObject({ status: 422, code: "user_creation_error" });
    expect(error.message).toMatch(/email_not_available/);
    expect(fake.users()).toHaveLength(1);
  });

  test("a missing user is a 404 NotFoundException", async () => {
    const error = await failure(workos.userManagement.getUser("user_01MISSING"));
    expect(error).toBeInstanceOf(NotFoundException);
    expect(error).toMatchObject({ code: "entity_not_found", message: "User not found: 'user_01MISSING'." });
  });

  test("a membership is created with the member role and listed by user and organization", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme" });
    const user = await workos.userManagement.createUser({ email: "a@example.com" });
    const membership = await workos.userManagement.createOrganizationMembership({ userId: user.id, organizationId: org.id });
    expect(membership).toMatchObject({
      object: "organization_membership",
      userId: user.id,
      organizationId: org.id,
      organizationName: "Acme",
      status: "active",
      role: { slug: "member" },
      directoryManaged: false,
    });
    const listed = await workos.userManagement.listOrganizationMemberships({ userId: user.id, organizationId: org.id });
    expect(listed.data).toEqual([membership]);
    const members = await workos.userManagement.listUsers({ organizationId: org.id });
    expect(members.data.map((u) => u.id)).toEqual([user.id]);
    const other = await workos.organizations.createOrganization({ name: "Other" });
    expect((await workos.userManagement.listOrganizationMemberships({ organizationId: other.id })).data).toEqual([]);
  });

  test("a duplicate membership is a 422 with code organization_membership_already_exists", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme" });
    const user = await workos.userManagement.createUser({ email: "a@example.com" });
    await workos.userManagement.createOrganizationMembership({ userId: user.id, organizationId: org.id, roleSlug: "admin" });
    const error = await failure(workos.userManagement.createOrganizationMembership({ userId: user.id, organizationId: org.id }));
    expect(error).toBeInstanceOf(UnprocessableEntityException);
    expect(error.code).toBe("organization_membership_already_exists");
    expect(fake.memberships()).toMatchObject([{ role: { slug: "admin" } }]);
  });

  test("a membership for a user that does not exist is a 404", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme" });
    const error = await failure(workos.userManagement.createOrganizationMembership({ userId: "user_01GONE", organizationId: org.id }));
    expect(error).toBeInstanceOf(NotFoundException);
    expect(error.message).toBe("User not found: 'user_01GONE'.");
  });

  test("an invitation is pending for the organization and a second one for the same email is a 409", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme" });
    const invitation = await workos.userManagement.sendInvitation({ email: "b@example.com", organizationId: org.id });
    expect(invitation).toMatchObject({
      object: "invitation",
      email: "b@example.com",
      state: "pending",
      organizationId: org.id,
      acceptedAt: null,
      revokedAt: null,
    });
    expect(invitation.id).toMatch(/^invitation_/);
    expect(Date.parse(invitation.expiresAt)).toBeGreaterThan(Date.now());
    expect(invitation.token).toBeTruthy();
    const error = await failure(workos.userManagement.sendInvitation({ email: "b@example.com", organizationId: org.id }));
    expect(error).toMatchObject({ name: "ConflictException", status: 409 });
    expect(fake.invitations()).toHaveLength(1);
  });

  test("invitations are listed by organization and email, deserialized by the SDK", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme" });
    const other = await workos.organizations.createOrganization({ name: "Other" });
    const sent = await workos.userManagement.sendInvitation({ email: "b@example.com", organizationId: org.id });
    await workos.userManagement.sendInvitation({ email: "c@example.com", organizationId: org.id });
    await workos.userManagement.sendInvitation({ email: "b@example.com", organizationId: other.id });

    const listed = await workos.userManagement.listInvitations({ organizationId: org.id, email: "B@example.com" });
    expect(listed.data).toEqual([sent]);
    expect(listed.listMetadata).toEqual({ before: null, after: null });
    expect(fake.requests.at(-1)).toMatchObject({ method: "GET", path: "/user_management/invitations" });
    expect((await workos.userManagement.listInvitations({ organizationId: org.id })).data).toHaveLength(2);
    expect((await workos.userManagement.listInvitations({ email: "b@example.com" })).data).toHaveLength(2);
  });
});

describe("membership deactivation", () => {
  async function member(orgId: string, email: string) {
    const user = await workos.userManagement.createUser({ email });
    return workos.userManagement.createOrganizationMembership({ userId: user.id, organizationId: orgId });
  }

  test("deactivate and reactivate answer the membership with its new status, and repeating either is a no-op", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme" });
    const membership = await member(org.id, "a@example.com");

    const deactivated = await workos.userManagement.deactivateOrganizationMembership(membership.id);
    expect(deactivated).toMatchObject({ id: membership.id, object: "organization_membership", status: "inactive", role: { slug: "member" } });
    expect(fake.requests.at(-1)).toMatchObject({
      method: "PUT",
      path: `/user_management/organization_memberships/${membership.id}/deactivate`,
    });
    expect((await workos.userManagement.deactivateOrganizationMembership(membership.id)).status).toBe("inactive");
    expect(fake.memberships()).toMatchObject([{ id: membership.id, status: "inactive" }]);

    const reactivated = await workos.userManagement.reactivateOrganizationMembership(membership.id);
    expect(reactivated).toMatchObject({ id: membership.id, status: "active", role: { slug: "member" } });
    expect((await workos.userManagement.reactivateOrganizationMembership(membership.id)).status).toBe("active");
    expect(await workos.userManagement.getOrganizationMembership(membership.id)).toEqual(reactivated);
  });

  test("a list answers active memberships unless statuses asks for others", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme" });
    const kept = await member(org.id, "a@example.com");
    const dropped = await member(org.id, "b@example.com");
    const pending = fake.addMembershipOutOfBand(org.id, { status: "pending" });
    await workos.userManagement.deactivateOrganizationMembership(dropped.id);

    const ids = async (statuses?: ("active" | "inactive" | "pending")[]) =>
      (await workos.userManagement.listOrganizationMemberships({ organizationId: org.id, ...(statuses ? { statuses } : {}) })).data
        .map((m) => m.id)
        .sort();

    expect(await ids()).toEqual([kept.id]);
    expect(await ids(["inactive"])).toEqual([dropped.id]);
    expect(await ids(["active", "inactive", "pending"])).toEqual([kept.id, dropped.id, pending.id].sort());
    expect(fake.requests.at(-1)?.path).toBe("/user_management/organization_memberships");
  });

  test("a list names a user or an organization, or is a 422", async () => {
    const error = await failure(workos.userManagement.listOrganizationMemberships({} as { organizationId: string }));
    expect(error).toBeInstanceOf(UnprocessableEntityException);
  });

  test("memberships page by organization with after cursors, the SDK's deserializer reading every one", async () => {
    const org = await workos.organizations.createOrganization({ name: "Big" });
    const other = await workos.organizations.createOrganization({ name: "Other" });
    const made = Array.from({ length: 7 }, () => fake.addMembershipOutOfBand(org.id).id);
    fake.addMembershipOutOfBand(other.id);

    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const cursor = after;
      const list = await workos.userManagement.listOrganizationMemberships({
        organizationId: org.id,
        limit: 3,
        ...(cursor ? { after: cursor } : {}),
      });
      for (const m of list.data) {
        expect(m).toMatchObject({ organizationId: org.id, organizationName: "Big", status: "active", role: { slug: "member" } });
        seen.push(m.id);
      }
      after = list.listMetadata.after ?? undefined;
      if (!after) break;
    }
    expect(seen.sort()).toEqual(made.sort());
  });

  test("a pending membership can be neither deactivated nor reactivated, and an unknown one is a 404", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme" });
    const pending = fake.addMembershipOutOfBand(org.id, { status: "pending" });

    for (const change of [
      workos.userManagement.deactivateOrganizationMembership(pending.id),
      workos.userManagement.reactivateOrganizationMembership(pending.id),
    ]) {
      const error = await failure(change);
      expect(error).toBeInstanceOf(UnprocessableEntityException);
      expect(error.code).toBe("organization_membership_pending");
    }
    expect(fake.memberships()).toMatchObject([{ status: "pending" }]);
    expect(await failure(workos.userManagement.deactivateOrganizationMembership("om_01GONE"))).toBeInstanceOf(NotFoundException);
  });

  test("creating a membership over an inactive one reactivates it with the role asked for", async () => {
    const org = await workos.organizations.createOrganization({ name: "Acme" });
    const user = await workos.userManagement.createUser({ email: "a@example.com" });
    const first = await workos.userManagement.createOrganizationMembership({ userId: user.id, organizationId: org.id });
    await workos.userManagement.deactivateOrganizationMembership(first.id);

    const again = await workos.userManagement.createOrganizationMembership({ userId: user.id, organizationId: org.id, roleSlug: "admin" });

    expect(again).toMatchObject({ id: first.id, status: "active", role: { slug: "admin" } });
    expect(fake.memberships()).toHaveLength(1);
  });
});

describe("auth and faults", () => {
  test("a wrong API key is an UnauthorizedException and changes nothing", async () => {
    const error = await failure(clientFor("sk_test_wrong").organizations.createOrganization({ name: "Acme" }));
    expect(error).toBeInstanceOf(UnauthorizedException);
    expect(error.status).toBe(401);
    expect(fake.organizations()).toEqual([]);
  });

  test("two injected 503s surface as GenericServerException and the third call succeeds", async () => {
    fake.inject({ status: 503, times: 2, path: "/organizations" });
    for (let i = 0; i < 2; i++) {
      const error = await failure(workos.organizations.createOrganization({ name: "Acme" }));
      expect(error).toBeInstanceOf(GenericServerException);
      expect(error.status).toBe(503);
    }
    expect(fake.organizations()).toEqual([]);
    await workos.organizations.createOrganization({ name: "Acme" });
    expect(fake.organizations()).toHaveLength(1);
  });

  test("an injected 429 with Retry-After is a RateLimitExceededException carrying retryAfter", async () => {
    fake.inject({ status: 429, retryAfterSeconds: 7 });
    const error = await failure(workos.organizations.listOrganizations());
    expect(error).toBeInstanceOf(RateLimitExceededException);
    expect(error).toMatchObject({ status: 429, retryAfter: 7 });
  });

  test("the request budget answers 429 past the limit", async () => {
    fake.setRateLimit({ requests: 2, windowMs: 60_000 });
    await workos.organizations.listOrganizations();
    await workos.organizations.listOrganizations();
    const error = await failure(workos.organizations.listOrganizations());
    expect(error).toBeInstanceOf(RateLimitExceededException);
    expect(Number(error.retryAfter)).toBeGreaterThan(0);
    expect(fake.stats().rateLimited).toBe(1);
  });

  test("a dropped response still creates the organization, and a retry with the same key returns it", async () => {
    fake.inject({ method: "POST", path: "/organizations", dropResponse: true });
    const payload = { name: "Acme", externalId: "inst_drop" };
    const error = await failure(workos.organizations.createOrganization(payload, { idempotencyKey: "brain-org-inst_drop" }));
    expect(String(error.message)).toMatch(/Unexpected error/);
    expect(fake.organizations()).toMatchObject([{ external_id: "inst_drop" }]);
    const retried = await workos.organizations.createOrganization(payload, { idempotencyKey: "brain-org-inst_drop" });
    expect(retried.id).toBe(fake.organizations()[0].id);
    expect(fake.organizations()).toHaveLength(1);
  });
});
