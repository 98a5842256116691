// Fake WorkOS API for tests: organizations plus the user-management subset Brain uses
// (users, organization memberships with deactivate/reactivate, invitations), with the real paths, status codes,
// snake_case wire objects and error bodies that @workos-inc/node 8.13 reads, kept in
// memory on top of startFakeServer (fault injection, latency, rate limits, request log).
// It must never call the real WorkOS, and never send an organization without `domains`
// (the SDK calls `domains.map()` on every organization it deserializes).
import { randomBytes, randomUUID } from "node:crypto";
import { startFakeServer, type FakeRequest, type FakeResponse, type FakeServer, type Route } from "./base";
import { createIdempotencyStore } from "./idempotency";

export type OrganizationDomainRecord = {
  object: "organization_domain";
  id: string;
  organization_id: string;
  domain: string;
  state: "pending" | "verified";
  verification_strategy: "manual";
  created_at: string;
  updated_at: string;
};

export type OrganizationRecord = {
  object: "organization";
  id: string;
  name: string;
  allow_profiles_outside_organization: boolean;
  domains: OrganizationDomainRecord[];
  stripe_customer_id?: string;
  external_id: string | null;
  metadata: Record<string, string>;
  created_at: string;
  updated_at: string;
};

export type UserRecord = {
  object: "user";
  id: string;
  email: string;
  email_verified: boolean;
  first_name: string | null;
  last_name: string | null;
  profile_picture_url: string | null;
  last_sign_in_at: string | null;
  locale: string | null;
  external_id: string | null;
  metadata: Record<string, string>;
  created_at: string;
  updated_at: string;
};

export type MembershipRecord = {
  object: "organization_membership";
  id: string;
  user_id: string;
  organization_id: string;
  organization_name: string;
  status: "active" | "inactive" | "pending";
  role: { slug: string };
  roles?: { slug: string }[];
  directory_managed: boolean;
  custom_attributes: Record<string, unknown>;
  created_at: string;
  updated_at: string;
};

export type InvitationRecord = {
  object: "invitation";
  id: string;
  email: string;
  state: "pending" | "accepted" | "expired" | "revoked";
  accepted_at: string | null;
  revoked_at: string | null;
  expires_at: string;
  organization_id: string | null;
  inviter_user_id: string | null;
  accepted_user_id: string | null;
  token: string;
  accept_invitation_url: string;
  created_at: string;
  updated_at: string;
};

export type WorkosFake = FakeServer & {
  organizations(): OrganizationRecord[];
  users(): UserRecord[];
  memberships(): MembershipRecord[];
  invitations(): InvitationRecord[];
  /** Delete an organization (and its memberships and invitations) as if someone used the dashboard. */
  deleteOrganizationOutOfBand(id: string): void;
  /**
   * Adds a new user to an organization as if someone used the dashboard (a `pending` status
   * stands for an invitation not yet accepted). Returns the membership.
   */
  addMembershipOutOfBand(organizationId: string, options?: { email?: string; status?: MembershipRecord["status"] }): MembershipRecord;
};

type Body = Record<string, unknown>;
type FieldError = { code: string; message: string };

// WorkOS ids are a prefix plus a ULID; ours are monotonic so sorting by id is sorting by creation.
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
let lastMs = 0;
let sameMsCounter = 0;
function workosId(prefix: string): string {
  const now = Math.max(Date.now(), lastMs);
  sameMsCounter = now === lastMs ? sameMsCounter + 1 : 0;
  lastMs = now;
  const digits = (value: number, count: number) => {
    let out = "";
    for (let i = 0; i < count; i++, value = Math.floor(value / 32)) out = CROCKFORD[value % 32] + out;
    return out;
  };
  const random = [...randomBytes(12)].map((b) => CROCKFORD[b % 32]).join("");
  return `${prefix}${digits(now, 10)}${digits(sameMsCounter, 4)}${random}`;
}

const isObject = (value: unknown): value is Body => typeof value === "object" && value !== null && !Array.isArray(value);
const bodyOf = (request: FakeRequest): Body => (isObject(request.body) ? request.body : {});
const isEmail = (value: string) => /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/.test(value);

const validationFailed = (errors: FieldError[]): FakeResponse => ({
  status: 422,
  body: { code: "invalid_request_parameters", message: "Validation failed", errors },
});
const notFound = (entity: string, id: string): FakeResponse => ({
  status: 404,
  body: { message: `${entity} not found: '${id}'.`, code: "entity_not_found", entity_id: id },
});

function metadataErrors(value: unknown, allowNull: boolean): FieldError[] {
  if (value === undefined) return [];
  if (!isObject(value)) return [{ code: "metadata_invalid", message: "Metadata should be an object." }];
  const entries = Object.entries(value);
  const errors: FieldError[] = [];
  if (entries.length > 10) errors.push({ code: "metadata_too_many_keys", message: "Metadata can have at most 10 keys." });
  for (const [key, item] of entries) {
    if (key.length > 40) errors.push({ code: "metadata_key_too_long", message: `Metadata key '${key}' exceeds 40 characters.` });
    if (item === null && allowNull) continue;
    if (typeof item !== "string") errors.push({ code: "metadata_value_invalid", message: `Metadata value for '${key}' should be a string.` });
    else if (item.length > 600) errors.push({ code: "metadata_value_too_long", message: `Metadata value for '${key}' exceeds 600 characters.` });
  }
  return errors;
}

function organizationErrors(body: Body, creating: boolean): FieldError[] {
  const errors: FieldError[] = [];
  if ((creating || body.name !== undefined) && (typeof body.name !== "string" || body.name.trim() === "")) {
    errors.push({ code: "name_string_required", message: "Name should be a non-empty string." });
  }
  const externalId = body.external_id;
  if (externalId !== undefined && externalId !== null && (typeof externalId !== "string" || externalId.length < 1 || externalId.length > 64)) {
    errors.push({ code: "external_id_invalid", message: "External ID should be a string of 1 to 64 characters." });
  }
  errors.push(...metadataErrors(body.metadata, !creating));
  if (body.domain_data !== undefined) {
    const valid =
      Array.isArray(body.domain_data) &&
      body.domain_data.every((d) => isObject(d) && typeof d.domain === "string" && (d.state === "pending" || d.state === "verified"));
    if (!valid) errors.push({ code: "domain_data_invalid", message: "Domain data should be a list of {domain, state} objects." });
  }
  return errors;
}

/** WorkOS cursor pagination over items whose ids sort by creation time. */
function listPage<T extends { id: string }>(items: T[], query: URLSearchParams): FakeResponse {
  const limit = query.has("limit") ? Number(query.get("limit")) : 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    return validationFailed([{ code: "limit_invalid", message: "Limit should be an integer between 1 and 100." }]);
  }
  const order = query.get("order") ?? "desc";
  if (order !== "asc" && order !== "desc") {
    return validationFailed([{ code: "order_invalid", message: "Order should be 'asc' or 'desc'." }]);
  }
  const ordered = [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (order === "desc") ordered.reverse();
  // `a` is listed before `b` in this order.
  const precedes = (a: string, b: string) => (order === "desc" ? a > b : a < b);
  const after = query.get("after");
  const before = query.get("before");
  let data: T[];
  if (after) data = ordered.filter((item) => precedes(after, item.id)).slice(0, limit);
  else if (before) data = ordered.filter((item) => precedes(item.id, before)).slice(-limit);
  else data = ordered.slice(0, limit);
  const first = data[0];
  const last = data[data.length - 1];
  return {
    status: 200,
    body: {
      object: "list",
      data,
      list_metadata: {
        before: first && ordered.some((item) => precedes(item.id, first.id)) ? first.id : null,
        after: last && ordered.some((item) => precedes(last.id, item.id)) ? last.id : null,
      },
    },
  };
}

export async function startWorkosFake(options: { apiKey: string }): Promise<WorkosFake> {
  const organizations = new Map<string, OrganizationRecord>();
  const users = new Map<string, UserRecord>();
  const memberships = new Map<string, MembershipRecord>();
  const invitations = new Map<string, InvitationRecord>();
  const idempotency = createIdempotencyStore();
  const now = () => new Date().toISOString();

  const findByExternalId = (externalId: string) => [...organizations.values()].find((o) => o.external_id === externalId);

  function removeOrganization(id: string) {
    organizations.delete(id);
    for (const m of memberships.values()) if (m.organization_id === id) memberships.delete(m.id);
    for (const i of invitations.values()) if (i.organization_id === id) invitations.delete(i.id);
  }

  function domainsFor(organizationId: string, domainData: unknown, at: string): OrganizationDomainRecord[] {
    if (!Array.isArray(domainData)) return [];
    return (domainData as { domain: string; state: "pending" | "verified" }[]).map((d) => ({
      object: "organization_domain",
      id: workosId("org_domain_"),
      organization_id: organizationId,
      domain: d.domain,
      state: d.state,
      verification_strategy: "manual",
      created_at: at,
      updated_at: at,
    }));
  }

  function createOrganization(request: FakeRequest): FakeResponse {
    const body = bodyOf(request);
    const key = request.headers["idempotency-key"];
    const scope = "POST /organizations";
    if (key) {
      const seen = idempotency.lookup(key, scope, body);
      if (seen.kind === "replay") return seen.response;
      if (seen.kind === "mismatch") {
        // Recorded from the real API (workos-ruby VCR cassette): 400 with a message and no code.
        return {
          status: 400,
          body: {
            message: `Another idempotency key (${key}) with different request parameters was found. Please use a different idempotency key.`,
          },
        };
      }
    }
    const errors = organizationErrors(body, true);
    if (errors.length) return validationFailed(errors);
    const externalId = typeof body.external_id === "string" ? body.external_id : null;
    if (externalId !== null && findByExternalId(externalId)) {
      return {
        status: 409,
        body: { code: "external_id_conflict", message: `An organization with external_id '${externalId}' already exists.` },
      };
    }
    const at = now();
    const id = workosId("org_");
    const organization: OrganizationRecord = {
      object: "organization",
      id,
      name: body.name as string,
      allow_profiles_outside_organization: false,
      domains: domainsFor(id, body.domain_data, at),
      external_id: externalId,
      metadata: { ...((body.metadata as Record<string, string> | undefined) ?? {}) },
      created_at: at,
      updated_at: at,
    };
    organizations.set(id, organization);
    const response: FakeResponse = { status: 201, body: organization };
    if (key) idempotency.remember(key, scope, body, response);
    return response;
  }

  function updateOrganization(request: FakeRequest): FakeResponse {
    const organization = organizations.get(request.params.id);
    if (!organization) return notFound("Organization", request.params.id);
    const body = bodyOf(request);
    const errors = organizationErrors(body, false);
    if (errors.length) return validationFailed(errors);
    if (typeof body.external_id === "string") {
      const other = findByExternalId(body.external_id);
      if (other && other.id !== organization.id) {
        return {
          status: 409,
          body: { code: "external_id_conflict", message: `An organization with external_id '${body.external_id}' already exists.` },
        };
      }
    }
    const at = now();
    if (typeof body.name === "string") organization.name = body.name;
    if (body.external_id !== undefined) organization.external_id = (body.external_id as string | null) ?? null;
    if (typeof body.stripe_customer_id === "string") organization.stripe_customer_id = body.stripe_customer_id;
    if (body.domain_data !== undefined) organization.domains = domainsFor(organization.id, body.domain_data, at);
    if (isObject(body.metadata)) {
      for (const [k, v] of Object.entries(body.metadata)) {
        if (v === null) delete organization.metadata[k];
        else organization.metadata[k] = v as string;
      }
    }
    organization.updated_at = at;
    for (const m of memberships.values()) if (m.organization_id === organization.id) m.organization_name = organization.name;
    return { status: 200, body: organization };
  }

  function createUser(request: FakeRequest): FakeResponse {
    const body = bodyOf(request);
    if (typeof body.email !== "string" || body.email.trim() === "") {
      return validationFailed([{ code: "email_string_required", message: "Email should be a non-empty string." }]);
    }
    const email = body.email.trim().toLowerCase();
    if (!isEmail(email)) return validationFailed([{ code: "email_invalid", message: "Email is not a valid email address." }]);
    const errors = metadataErrors(body.metadata, false);
    if (errors.length) return validationFailed(errors);
    if ([...users.values()].some((u) => u.email === email)) {
      return {
        status: 422,
        body: {
          code: "user_creation_error",
          message: "Could not create user.",
          errors: [{ code: "email_not_available", message: "This email is not available." }],
        },
      };
    }
    const at = now();
    const user: UserRecord = {
      object: "user",
      id: workosId("user_"),
      email,
      email_verified: body.email_verified === true,
      first_name: typeof body.first_name === "string" ? body.first_name : null,
      last_name: typeof body.last_name === "string" ? body.last_name : null,
      profile_picture_url: null,
      last_sign_in_at: null,
      locale: null,
      external_id: typeof body.external_id === "string" ? body.external_id : null,
      metadata: { ...((body.metadata as Record<string, string> | undefined) ?? {}) },
      created_at: at,
      updated_at: at,
    };
    users.set(user.id, user);
    return { status: 201, body: user };
  }

  function listUsers(request: FakeRequest): FakeResponse {
    const email = request.query.get("email")?.trim().toLowerCase();
    const organizationId = request.query.get("organization_id");
    const matching = [...users.values()].filter(
      (u) =>
        (!email || u.email === email) &&
        (!organizationId ||
          [...memberships.values()].some((m) => m.user_id === u.id && m.organization_id === organizationId)),
    );
    return listPage(matching, request.query);
  }

  function createMembership(request: FakeRequest): FakeResponse {
    const body = bodyOf(request);
    const errors: FieldError[] = [];
    if (typeof body.user_id !== "string" || !body.user_id) errors.push({ code: "user_id_string_required", message: "User ID should be a non-empty string." });
    if (typeof body.organization_id !== "string" || !body.organization_id) {
      errors.push({ code: "organization_id_string_required", message: "Organization ID should be a non-empty string." });
    }
    if (errors.length) return validationFailed(errors);
    const user = users.get(body.user_id as string);
    if (!user) return notFound("User", body.user_id as string);
    const organization = organizations.get(body.organization_id as string);
    if (!organization) return notFound("Organization", body.organization_id as string);
    const slugs = Array.isArray(body.role_slugs) ? (body.role_slugs as string[]) : [];
    const roleSlug = typeof body.role_slug === "string" ? body.role_slug : (slugs[0] ?? "member");
    const existing = [...memberships.values()].find((m) => m.user_id === user.id && m.organization_id === organization.id);
    if (existing?.status === "inactive") {
      // A create over an inactive membership reactivates it with the roles asked for.
      existing.status = "active";
      existing.role = { slug: roleSlug };
      if (slugs.length) existing.roles = slugs.map((slug) => ({ slug }));
      else delete existing.roles;
      existing.updated_at = now();
      return { status: 201, body: existing };
    }
    if (existing) {
      return {
        status: 422,
        body: {
          code: "organization_membership_already_exists",
          message: `User '${user.id}' is already a member of organization '${organization.id}'.`,
        },
      };
    }
    const at = now();
    const membership: MembershipRecord = {
      object: "organization_membership",
      id: workosId("om_"),
      user_id: user.id,
      organization_id: organization.id,
      organization_name: organization.name,
      status: "active",
      role: { slug: roleSlug },
      ...(slugs.length ? { roles: slugs.map((slug) => ({ slug })) } : {}),
      directory_managed: false,
      custom_attributes: {},
      created_at: at,
      updated_at: at,
    };
    memberships.set(membership.id, membership);
    return { status: 201, body: membership };
  }

  function listMemberships(request: FakeRequest): FakeResponse {
    const userId = request.query.get("user_id");
    const organizationId = request.query.get("organization_id");
    if (!userId && !organizationId) {
      return validationFailed([
        { code: "user_id_or_organization_id_required", message: "At least one of user_id or organization_id must be provided." },
      ]);
    }
    // Without `statuses` the API answers active memberships only.
    const given = request.query.get("statuses")?.split(",").filter(Boolean);
    const statuses = given?.length ? given : ["active"];
    const matching = [...memberships.values()].filter(
      (m) =>
        (!userId || m.user_id === userId) &&
        (!organizationId || m.organization_id === organizationId) &&
        statuses.includes(m.status),
    );
    return listPage(matching, request.query);
  }

  /**
   * `PUT /user_management/organization_memberships/:id/deactivate|reactivate`. Changing a
   * membership already in the wanted state is a no-op answered with the membership; a pending
   * one (an invitation not yet accepted) can be neither (the error code is unconfirmed).
   */
  const setMembershipStatus =
    (wanted: "active" | "inactive") =>
    (request: FakeRequest): FakeResponse => {
      const membership = memberships.get(request.params.id);
      if (!membership) return notFound("Organization membership", request.params.id);
      if (membership.status === "pending") {
        return {
          status: 422,
          body: {
            code: "organization_membership_pending",
            message: `Organization membership '${membership.id}' is pending and cannot be ${wanted === "active" ? "reactivated" : "deactivated"}.`,
          },
        };
      }
      if (membership.status !== wanted) {
        membership.status = wanted;
        membership.updated_at = now();
      }
      return { status: 200, body: membership };
    };

  function sendInvitation(request: FakeRequest): FakeResponse {
    const body = bodyOf(request);
    if (typeof body.email !== "string" || !isEmail(body.email.trim())) {
      return validationFailed([{ code: "email_string_required", message: "Email should be a non-empty string." }]);
    }
    const email = body.email.trim().toLowerCase();
    const organizationId = typeof body.organization_id === "string" ? body.organization_id : null;
    if (organizationId && !organizations.has(organizationId)) return notFound("Organization", organizationId);
    const days = body.expires_in_days === undefined ? 7 : body.expires_in_days;
    if (typeof days !== "number" || !Number.isInteger(days) || days < 1 || days > 30) {
      return validationFailed([{ code: "expires_in_days_invalid", message: "Expires in days should be an integer between 1 and 30." }]);
    }
    const pending = [...invitations.values()].some(
      (i) =>
        i.email === email && i.organization_id === organizationId && i.state === "pending" && Date.parse(i.expires_at) > Date.now(),
    );
    // Recorded from the real API (workos-ruby VCR cassette): 409 with a message and no code.
    if (pending) return { status: 409, body: { message: `An Invitation with the email ${email} already exists.` } };
    const at = new Date();
    const token = randomBytes(18).toString("base64url").slice(0, 25);
    const invitation: InvitationRecord = {
      object: "invitation",
      id: workosId("invitation_"),
      email,
      state: "pending",
      accepted_at: null,
      revoked_at: null,
      expires_at: new Date(at.getTime() + days * 86_400_000).toISOString(),
      organization_id: organizationId,
      inviter_user_id: typeof body.inviter_user_id === "string" ? body.inviter_user_id : null,
      accepted_user_id: null,
      token,
      accept_invitation_url: `https://fake-authkit.workos.test/invite?invitation_token=${token}`,
      created_at: at.toISOString(),
      updated_at: at.toISOString(),
    };
    invitations.set(invitation.id, invitation);
    return { status: 201, body: invitation };
  }

  /**
   * `GET /user_management/invitations?organization_id=&email=`: the invitations matching both
   * filters (either may be left out), paged like every WorkOS list. A pending invitation past
   * its `expires_at` is answered as `expired`, as WorkOS does.
   */
  function listInvitations(request: FakeRequest): FakeResponse {
    const email = request.query.get("email")?.trim().toLowerCase();
    const organizationId = request.query.get("organization_id");
    const at = Date.now();
    const matching = [...invitations.values()]
      .filter((i) => (!email || i.email === email) && (!organizationId || i.organization_id === organizationId))
      .map((i) => (i.state === "pending" && Date.parse(i.expires_at) <= at ? { ...i, state: "expired" as const } : i));
    return listPage(matching, request.query);
  }

  const routes: Route[] = [
    { method: "POST", path: "/organizations", handler: createOrganization },
    { method: "GET", path: "/organizations", handler: (r) => listPage(filterByDomains([...organizations.values()], r.query), r.query) },
    {
      method: "GET",
      path: "/organizations/external_id/:external_id",
      handler: (r) => {
        const organization = findByExternalId(r.params.external_id);
        return organization ? { status: 200, body: organization } : notFound("Organization", r.params.external_id);
      },
    },
    {
      method: "GET",
      path: "/organizations/:id",
      handler: (r) => {
        const organization = organizations.get(r.params.id);
        return organization ? { status: 200, body: organization } : notFound("Organization", r.params.id);
      },
    },
    { method: "PUT", path: "/organizations/:id", handler: updateOrganization },
    {
      method: "DELETE",
      path: "/organizations/:id",
      handler: (r) => {
        if (!organizations.has(r.params.id)) return notFound("Organization", r.params.id);
        removeOrganization(r.params.id);
        return { status: 202 };
      },
    },
    { method: "GET", path: "/user_management/users", handler: listUsers },
    { method: "POST", path: "/user_management/users", handler: createUser },
    {
      method: "GET",
      path: "/user_management/users/:id",
      handler: (r) => {
        const user = users.get(r.params.id);
        return user ? { status: 200, body: user } : notFound("User", r.params.id);
      },
    },
    { method: "GET", path: "/user_management/organization_memberships", handler: listMemberships },
    { method: "POST", path: "/user_management/organization_memberships", handler: createMembership },
    {
      method: "GET",
      path: "/user_management/organization_memberships/:id",
      handler: (r) => {
        const membership = memberships.get(r.params.id);
        return membership ? { status: 200, body: membership } : notFound("Organization membership", r.params.id);
      },
    },
    { method: "PUT", path: "/user_management/organization_memberships/:id/deactivate", handler: setMembershipStatus("inactive") },
    { method: "PUT", path: "/user_management/organization_memberships/:id/reactivate", handler: setMembershipStatus("active") },
    { method: "GET", path: "/user_management/invitations", handler: listInvitations },
    { method: "POST", path: "/user_management/invitations", handler: sendInvitation },
  ];

  const authorized = (route: Route): Route => ({
    ...route,
    handler: async (request) => {
      const answer: FakeResponse =
        request.headers.authorization === `Bearer ${options.apiKey}`
          ? await route.handler(request)
          : { status: 401, body: { message: "Unauthorized" } };
      // Answers are serialized by base.ts; hand it a copy so later state changes cannot leak in.
      return { ...answer, body: structuredClone(answer.body), headers: { "x-request-id": randomUUID(), ...answer.headers } };
    },
  });

  const server = await startFakeServer({
    name: "workos",
    routes: routes.map(authorized),
    errorBody: (_status, message) => ({ message }),
  });

  const copies = <T>(map: Map<string, T>) => [...map.values()].map((v) => structuredClone(v));
  return Object.assign(server, {
    organizations: () => copies(organizations),
    users: () => copies(users),
    memberships: () => copies(memberships),
    invitations: () => copies(invitations),
    deleteOrganizationOutOfBand(id: string) {
      if (!organizations.has(id)) throw new Error(`workos fake: no organization ${id}`);
      removeOrganization(id);
    },
    addMembershipOutOfBand(organizationId: string, options: { email?: string; status?: MembershipRecord["status"] } = {}) {
      const organization = organizations.get(organizationId);
      if (!organization) throw new Error(`workos fake: no organization ${organizationId}`);
      const at = now();
      const userId = workosId("user_");
      users.set(userId, {
        object: "user",
        id: userId,
        email: (options.email ?? `${userId.toLowerCase()}@example.com`).toLowerCase(),
        email_verified: false,
        first_name: null,
        last_name: null,
        profile_picture_url: null,
        last_sign_in_at: null,
        locale: null,
        external_id: null,
        metadata: {},
        created_at: at,
        updated_at: at,
      });
      const membership: MembershipRecord = {
        object: "organization_membership",
        id: workosId("om_"),
        user_id: userId,
        organization_id: organizationId,
        organization_name: organization.name,
        status: options.status ?? "active",
        role: { slug: "member" },
        directory_managed: false,
        custom_attributes: {},
        created_at: at,
        updated_at: at,
      };
      memberships.set(membership.id, membership);
      return structuredClone(membership);
    },
  });
}

/** `GET /organizations?domains=a.com,b.com` keeps organizations with any of those domains. */
function filterByDomains(items: OrganizationRecord[], query: URLSearchParams): OrganizationRecord[] {
  const wanted = query.getAll("domains").flatMap((d) => d.split(",")).filter(Boolean);
  if (!wanted.length) return items;
  return items.filter((o) => o.domains.some((d) => wanted.includes(d.domain)));
}
