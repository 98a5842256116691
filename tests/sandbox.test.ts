// The sandbox providers' state (convex/sandbox.ts) and the sandbox adapters: a list is read
// page by page to the end, so an orphan scan sees every simulated resource; a sandbox tenant
// deployment verifies, records and answers forwarded events like the real app; suspension
// pauses deployments and deactivates memberships.
import Stripe from "stripe";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import { loadConfig } from "../convex/lib/config";
import { resolveOperation } from "../convex/providers/operations";
import { sandboxProviders } from "../convex/providers/sandbox";
import { ProviderError, type Providers } from "../convex/providers/types";
import { deleteSandboxOrganization, setSandboxPagesDeployment } from "./fakes/sandbox";
import { actionCtxOf, setupBackend, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

/** A name `brain-<id>` whose id is shaped like an instance id no instance has (convex-test's id form). */
const goneInstanceName = (i: number) => `brain-${String(90_000 + i).padStart(23, "0")}instances`;

/** Inserts `count` Brain-named Pages projects straight into the sandbox, as leftovers of gone instances. */
async function seedPagesProjects(t: TestBackend, count: number): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => goneInstanceName(i));
  await t.run(async (ctx) => {
    for (const [i, name] of names.entries()) {
      await ctx.db.insert("sandboxResources", {
        provider: "cloudflare",
        kind: "pagesProject",
        name,
        externalId: `pagesProject_seed${i}`,
        attributes: { subdomain: `${name}.pages.dev` },
        createdAt: 0,
        updatedAt: 0,
      });
    }
  });
  return names;
}

describe("sandbox listing", () => {
  test("an orphan scan finds every one of more than a thousand leftover Pages projects", async () => {
    const t = setupBackend();
    const names = await seedPagesProjects(t, 1_100);

    const { orphans } = await t.action(internal.orphans.scanOrphans, {});

    const pages = orphans.filter((o) => o.provider === "cloudflare");
    expect(pages).toHaveLength(1_100);
    expect(new Set(pages.map((o) => o.resourceId))).toEqual(new Set(names));
  });

  test("list answers one page at a time with a cursor to the next, and the pages cover every resource once", async () => {
    const t = setupBackend();
    const names = await seedPagesProjects(t, 1_100);
    const list = (cursor: string | null) =>
      t.mutation(internal.sandbox.applyOperation, {
        operation: "cloudflare.listPagesProjects",
        provider: "cloudflare",
        kind: "pagesProject",
        name: "",
        action: "list",
        cursor,
      });

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    for (;;) {
      const page = await list(cursor);
      if (page.result !== "list") throw new Error(`expected a list page, got ${page.result}`);
      pages++;
      expect(page.resources.length).toBeLessThanOrEqual(1_000);
      seen.push(...page.resources.map((r) => r.name));
      if (page.isDone) break;
      cursor = page.continueCursor;
    }

    expect(pages).toBeGreaterThan(1);
    expect(seen).toHaveLength(1_100);
    expect(new Set(seen)).toEqual(new Set(names));
  });

  test("an injected fault on a list still fails the listing, and the orphan scan with it", async () => {
    const t = setupBackend();
    await seedPagesProjects(t, 3);
    await t.mutation(internal.sandbox.injectFault, { operation: "cloudflare.listPagesProjects", kind: "transient", times: 1 });

    await expect(t.action(internal.orphans.scanOrphans, {})).rejects.toMatchObject({ data: { code: "PROVIDER_UNAVAILABLE" } });
    expect((await t.action(internal.orphans.scanOrphans, {})).orphans.filter((o) => o.provider === "cloudflare")).toHaveLength(3);
  });
});

/** The sandbox adapters, called the way a step action calls them, on a convex-test backend. */
function sandboxFor(t: TestBackend): Providers {
  const ctx = actionCtxOf(t);
  return sandboxProviders({ ctx, config: loadConfig(), correlationId: "sandbox-test" });
}

const TENANT_SECRET = "whsec_tenant_sandbox_secret";
const signer = new Stripe("sk_test_x");

/** A Stripe event body and its signature under `secret`. */
function signedEvent(id: string, secret = TENANT_SECRET) {
  const body = JSON.stringify({ id, object: "event", type: "customer.subscription.updated", data: { object: {} } });
  return { body, signature: signer.webhooks.generateTestHeaderString({ payload: body, secret }) };
}

/** A sandbox Convex project whose deployment has the tenant's webhook secret set. */
async function tenantDeployment(providers: Providers) {
  const project = await providers.convex.ensureProject({ instanceId: "inst_t", projectName: "brain-inst_t" });
  await providers.convex.setEnvironment({ ...project, variables: { STRIPE_WEBHOOK_SECRET: TENANT_SECRET } });
  return project;
}

describe("sandbox Convex: tenant environment, pause and event delivery", () => {
  test("a correctly signed event is recorded once and answered 200; the tenant lists events in the order received", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const { deploymentName } = await tenantDeployment(providers);
    const url = `https://${deploymentName}.convex.site/stripe/events`;

    for (const id of ["evt_b", "evt_a", "evt_b"]) {
      expect(await providers.convex.deliverEvent({ deploymentName, url, ...signedEvent(id) })).toEqual({ status: 200 });
    }

    expect(await t.query(internal.sandbox.listTenantEvents, { deploymentName })).toEqual(["evt_b", "evt_a"]);
    expect(await t.query(internal.sandbox.listTenantEvents, { deploymentName: "sandbox-other" })).toEqual([]);
  });

  test("a signature made with another secret is answered 400 and nothing is recorded", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const { deploymentName } = await tenantDeployment(providers);

    const forged = signedEvent("evt_forged", "whsec_someone_else");
    expect(await providers.convex.deliverEvent({ deploymentName, url: "https://x", ...forged })).toEqual({ status: 400 });
    const tampered = { ...signedEvent("evt_tampered"), body: signedEvent("evt_other").body };
    expect(await providers.convex.deliverEvent({ deploymentName, url: "https://x", ...tampered })).toEqual({ status: 400 });

    expect(await t.query(internal.sandbox.listTenantEvents, { deploymentName })).toEqual([]);
  });

  test("a paused deployment answers 503 until it is unpaused; pausing twice is fine", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const project = await tenantDeployment(providers);
    const { deploymentName } = project;

    await providers.convex.pauseDeployment(project);
    await providers.convex.pauseDeployment(project);
    expect(await providers.convex.deliverEvent({ deploymentName, url: "https://x", ...signedEvent("evt_1") })).toEqual({ status: 503 });
    expect(await t.query(internal.sandbox.listTenantEvents, { deploymentName })).toEqual([]);

    await providers.convex.unpauseDeployment(project);
    await providers.convex.unpauseDeployment(project);
    expect(await providers.convex.deliverEvent({ deploymentName, url: "https://x", ...signedEvent("evt_1") })).toEqual({ status: 200 });
    expect(await t.query(internal.sandbox.listTenantEvents, { deploymentName })).toEqual(["evt_1"]);
  });

  test("an unknown deployment answers 404, and one whose secret is not set yet answers 500", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    expect(
      await providers.convex.deliverEvent({ deploymentName: "sandbox-missing", url: "https://x", ...signedEvent("evt_1") }),
    ).toEqual({ status: 404 });

    const project = await providers.convex.ensureProject({ instanceId: "inst_u", projectName: "brain-inst_u" });
    expect(
      await providers.convex.deliverEvent({ deploymentName: project.deploymentName, url: "https://x", ...signedEvent("evt_1") }),
    ).toEqual({ status: 500 });
  });

  test("a null variable removes it from the deployment's environment, and pausing a missing deployment is permanent", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const project = await tenantDeployment(providers);
    await providers.convex.setEnvironment({ ...project, variables: { KEEP: "1" } });

    await providers.convex.setEnvironment({ ...project, variables: { STRIPE_WEBHOOK_SECRET: null, KEEP: "2" } });

    expect(await providers.convex.getEnvironment(project)).toEqual({ KEEP: "2" });
    await expect(
      providers.convex.pauseDeployment({ ...project, deploymentName: "sandbox-missing" }),
    ).rejects.toMatchObject({ provider: "convex", kind: "permanent" });
  });

  test("an injected fault on convex.deliverEvent is thrown classified, and the next delivery goes through", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const { deploymentName } = await tenantDeployment(providers);
    await t.mutation(internal.sandbox.injectFault, { operation: "convex.deliverEvent", kind: "transient", times: 1 });

    await expect(
      providers.convex.deliverEvent({ deploymentName, url: "https://x", ...signedEvent("evt_1") }),
    ).rejects.toBeInstanceOf(ProviderError);
    expect(await providers.convex.deliverEvent({ deploymentName, url: "https://x", ...signedEvent("evt_1") })).toEqual({ status: 200 });
  });
});

describe("sandbox WorkOS: access", () => {
  const rowsOf = (t: TestBackend, kind: string) =>
    t.run((ctx) =>
      ctx.db
        .query("sandboxResources")
        .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "workos").eq("kind", kind))
        .collect(),
    );

  test("a new email gets one invitation to the organization, adopted by a retry, and no user", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const { workos } = sandboxFor(t);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_inv", name: "Inv" });

    const first = await workos.ensureAccess({ organizationId, email: "New@Example.com" });
    const second = await workos.ensureAccess({ organizationId, email: "new@example.com" });

    expect(first).toEqual({ invitationId: expect.stringMatching(/^invitation_/) });
    expect(second).toEqual(first);
    expect(await rowsOf(t, "invitation")).toEqual([
      expect.objectContaining({
        externalId: "invitationId" in first ? first.invitationId : "",
        attributes: { organizationId, state: "pending" },
      }),
    ]);
    expect(await rowsOf(t, "user")).toEqual([]);
    expect(await rowsOf(t, "membership")).toEqual([]);
  });

  test("an existing user gets the membership and no invitation", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const { workos } = sandboxFor(t);
    const a = await workos.ensureOrganization({ instanceId: "inst_a", name: "A" });
    const b = await workos.ensureOrganization({ instanceId: "inst_b", name: "B" });
    const { userId } = await workos.ensureMembership({ organizationId: a.organizationId, email: "known@example.com" });

    expect(await workos.ensureAccess({ organizationId: b.organizationId, email: "Known@Example.com" })).toEqual({ userId });
    expect((await rowsOf(t, "membership")).map((row) => row.attributes.organizationId).sort()).toEqual(
      [a.organizationId, b.organizationId].sort(),
    );
    expect(await rowsOf(t, "invitation")).toEqual([]);
  });

  test("an invitation to an organization that does not exist fails permanently", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const { workos } = sandboxFor(t);
    await expect(workos.ensureAccess({ organizationId: "organization_missing", email: "x@example.com" })).rejects.toMatchObject({
      provider: "workos",
      kind: "permanent",
    });
    expect(await rowsOf(t, "invitation")).toEqual([]);
  });
});

describe("sandbox WorkOS: membership suspension", () => {
  /** Membership statuses of one organization, straight from the sandbox's state. */
  const statusesOf = (t: TestBackend, organizationId: string) =>
    t.run(async (ctx) =>
      (
        await ctx.db
          .query("sandboxResources")
          .withIndex("by_provider_and_kind_and_name", (q) => q.eq("provider", "workos").eq("kind", "membership"))
          .collect()
      )
        .filter((row) => row.attributes.organizationId === organizationId)
        .map((row) => row.attributes.status ?? "active"),
    );

  test("deactivates then reactivates the organization's memberships only, and a repeat changes nothing", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const { workos } = sandboxFor(t);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_a", name: "A" });
    const other = await workos.ensureOrganization({ instanceId: "inst_b", name: "B" });
    await workos.ensureMembership({ organizationId, email: "one@example.com" });
    await workos.ensureMembership({ organizationId, email: "two@example.com" });
    await workos.ensureMembership({ organizationId: other.organizationId, email: "one@example.com" });

    expect(await workos.setMembershipsActive({ organizationId, active: false })).toEqual({ changed: 2 });
    expect(await statusesOf(t, organizationId)).toEqual(["inactive", "inactive"]);
    expect(await statusesOf(t, other.organizationId)).toEqual(["active"]);
    expect(await workos.setMembershipsActive({ organizationId, active: false })).toEqual({ changed: 0 });

    // Ensuring a suspended member again leaves it suspended: reactivation is resume's call.
    await workos.ensureMembership({ organizationId, email: "one@example.com" });
    expect(await statusesOf(t, organizationId)).toEqual(["inactive", "inactive"]);

    expect(await workos.setMembershipsActive({ organizationId, active: true })).toEqual({ changed: 2 });
    expect(await statusesOf(t, organizationId)).toEqual(["active", "active"]);
    expect(await workos.setMembershipsActive({ organizationId: "organization_missing", active: false })).toEqual({ changed: 0 });
  });

  test("pages through more memberships than one list page holds, and memberships made before statuses count as active", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const { workos } = sandboxFor(t);
    const { organizationId } = await workos.ensureOrganization({ instanceId: "inst_big", name: "Big" });
    const other = await workos.ensureOrganization({ instanceId: "inst_small", name: "Small" });
    await t.run(async (ctx) => {
      for (const [org, count] of [
        [organizationId, 510],
        [other.organizationId, 3],
      ] as const) {
        for (let i = 0; i < count; i++) {
          await ctx.db.insert("sandboxResources", {
            provider: "workos",
            kind: "membership",
            name: `${org}:user_seed${i}`,
            externalId: `membership_seed_${org}_${i}`,
            attributes: { organizationId: org, userId: `user_seed${i}` },
            createdAt: 0,
            updatedAt: 0,
          });
        }
      }
    });

    expect(await workos.setMembershipsActive({ organizationId, active: false })).toEqual({ changed: 510 });
    expect(new Set(await statusesOf(t, organizationId))).toEqual(new Set(["inactive"]));
    expect(await statusesOf(t, other.organizationId)).toEqual(["active", "active", "active"]);
  });
});

describe("sandbox health probes", () => {
  /** The sandbox adapters over a backend whose mutation calls are counted. */
  function countingProviders(t: TestBackend) {
    const ctx = actionCtxOf(t);
    const counted = { mutations: 0 };
    const runMutation = ctx.runMutation;
    ctx.runMutation = ((ref, args) => {
      counted.mutations++;
      return runMutation(ref, args);
    }) as typeof ctx.runMutation;
    return { providers: sandboxProviders({ ctx, config: loadConfig(), correlationId: "probe-test" }), counted };
  }

  /** A tenant with a Pages project and a Convex deployment, named after its instance. */
  async function tenant(providers: Providers, instanceId: string) {
    const { projectName } = await providers.cloudflare.ensurePagesProject({ instanceId, projectName: `brain-${instanceId}` });
    const project = await providers.convex.ensureProject({ instanceId, projectName: `brain-${instanceId}` });
    return {
      instanceId,
      project,
      site: { instanceId, name: projectName, url: `https://${projectName}.pages.dev` },
      backend: { instanceId, name: project.deploymentName, url: project.deploymentUrl },
    };
  }

  const okOf = (outcomes: { ok: boolean }[]) => outcomes.map((o) => o.ok);

  test("a batch of probes is one mutation call, and each existing site and backend answers 200", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const { providers, counted } = countingProviders(t);
    const tenants = await Promise.all(["a1", "a2", "a3", "a4"].map((id) => tenant(providers, id)));

    counted.mutations = 0;
    const sites = await providers.cloudflare.probeSites(tenants.map((x) => x.site));
    expect(counted.mutations).toBe(1);
    const backends = await providers.convex.probeBackends(tenants.map((x) => x.backend));
    expect(counted.mutations).toBe(2);

    for (const outcome of [...sites, ...backends]) {
      expect(outcome).toMatchObject({ ok: true, status: 200 });
      expect(outcome.detail).toMatch(/^200 in \d+ ms$/);
      expect(outcome.ms).toBeGreaterThanOrEqual(0);
    }
  });

  test("a site whose Pages project is gone and a backend whose deployment is paused or gone fail, in target order", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const [up, paused, gone] = await Promise.all(["b1", "b2", "b3"].map((id) => tenant(providers, id)));
    await providers.convex.pauseDeployment(paused.project);
    await providers.cloudflare.deletePagesProject({ projectName: gone.site.name });
    await providers.convex.deleteProject({ projectId: gone.project.projectId });

    const sites = await providers.cloudflare.probeSites([gone.site, up.site, paused.site]);
    const backends = await providers.convex.probeBackends([up.backend, paused.backend, gone.backend]);

    expect(okOf(sites)).toEqual([false, true, true]);
    expect(sites[0]).toMatchObject({ status: 404, detail: expect.stringContaining(gone.site.name) });
    expect(okOf(backends)).toEqual([true, false, false]);
    expect(backends[1]).toMatchObject({ status: 503, detail: expect.stringContaining("paused") });
    expect(backends[2]).toMatchObject({ status: 404 });

    await providers.convex.unpauseDeployment(paused.project);
    expect(okOf(await providers.convex.probeBackends([paused.backend]))).toEqual([true]);
  });

  test("a fault injected for one instance fails only that instance's probes, as many times as asked", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const tenants = await Promise.all(["c1", "c2", "c3"].map((id) => tenant(providers, id)));
    await t.mutation(internal.sandbox.injectFault, { operation: "probeSite", kind: "transient", times: 2, instanceId: "c2" });

    const round = () => providers.cloudflare.probeSites(tenants.map((x) => x.site));
    const first = await round();
    expect(okOf(first)).toEqual([true, false, true]);
    expect(first[1]).toMatchObject({ status: 503 });
    expect(okOf(await round())).toEqual([true, false, true]);
    expect(okOf(await round())).toEqual([true, true, true]);
    // The site fault never touched the backend probe of the same instance.
    expect(okOf(await providers.convex.probeBackends(tenants.map((x) => x.backend)))).toEqual([true, true, true]);
  });

  test("a fault scoped to an instance is refused for an operation that is not a health probe, and nothing is stored", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    await expect(
      t.mutation(internal.sandbox.injectFault, { operation: "workosOrg", kind: "transient", times: 1, instanceId: "c1" }),
    ).rejects.toThrow(/instanceId applies only to the health probes/);
    expect(await t.run((ctx) => ctx.db.query("sandboxFaults").collect())).toEqual([]);
  });

  test("a fault without an instance fails one target per remaining time, in target order, with its kind's status", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const tenants = await Promise.all(["d1", "d2", "d3"].map((id) => tenant(providers, id)));
    await t.mutation(internal.sandbox.injectFault, { operation: "convex.probeBackend", kind: "rate_limited", times: 2 });

    const first = await providers.convex.probeBackends(tenants.map((x) => x.backend));
    expect(first.map((o) => o.status)).toEqual([429, 429, 200]);
    expect(okOf(await providers.convex.probeBackends(tenants.map((x) => x.backend)))).toEqual([true, true, true]);

    await t.mutation(internal.sandbox.injectFault, { operation: "probeBackend", kind: "permanent", times: 1, message: "gone dark" });
    const [outcome] = await providers.convex.probeBackends([tenants[0].backend]);
    expect(outcome).toMatchObject({ ok: false, status: 404, detail: expect.stringContaining("gone dark") });
  });

  test("an instance's own fault is used before the operation's, and neither touches other probe operations", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const e1 = await tenant(providers, "e1");
    await t.mutation(internal.sandbox.injectFault, { operation: "probeSite", kind: "permanent", times: 1 });
    await t.mutation(internal.sandbox.injectFault, { operation: "probeSite", kind: "transient", times: 1, instanceId: "e1" });

    expect((await providers.cloudflare.probeSites([e1.site]))[0].status).toBe(503);
    expect((await providers.cloudflare.probeSites([e1.site]))[0].status).toBe(404);
    expect((await providers.cloudflare.probeSites([e1.site]))[0].ok).toBe(true);
  });

  test("an organization deleted out of band is gone from the organization probe and listing", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    const { organizationId } = await providers.workos.ensureOrganization({ instanceId: "h1", name: "H" });

    await deleteSandboxOrganization(t, organizationId);

    expect(await providers.workos.probeOrganization({ organizationId })).toMatchObject({ ok: false });
    expect(await providers.workos.listOrganizations()).toEqual([]);
    await expect(deleteSandboxOrganization(t, organizationId)).rejects.toThrow(/no organization/);
  });

  test("an empty batch answers nothing without calling the backend", async () => {
    const t = setupBackend();
    const { providers, counted } = countingProviders(t);

    expect(await providers.cloudflare.probeSites([])).toEqual([]);
    expect(await providers.convex.probeBackends([])).toEqual([]);
    expect(counted.mutations).toBe(0);
  });

  test("listPagesDeployments reports each Brain Pages project live unless its latest deployment failed or was cancelled", async () => {
    const t = setupBackend({ env: { SANDBOX_LATENCY_MS: "0" } });
    const providers = sandboxFor(t);
    for (const id of ["f1", "f2", "f3", "f4"]) await providers.cloudflare.ensurePagesProject({ instanceId: id, projectName: `brain-${id}` });
    await providers.cloudflare.ensurePagesProject({ instanceId: "x", projectName: "someone-elses" });
    await setSandboxPagesDeployment(t, "brain-f2", "failure");
    await setSandboxPagesDeployment(t, "brain-f3", "canceled");
    await setSandboxPagesDeployment(t, "brain-f4", "active");

    const states = await providers.cloudflare.listPagesDeployments();

    expect(states.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: "brain-f1", instanceId: "f1", live: true, detail: "latest deployment is live" },
      { name: "brain-f2", instanceId: "f2", live: false, detail: "latest deployment failure" },
      { name: "brain-f3", instanceId: "f3", live: false, detail: "latest deployment canceled" },
      { name: "brain-f4", instanceId: "f4", live: true, detail: "deploying" },
    ]);
  });

  test("listPagesDeployments sees every project past one list page, and an injected fault fails it classified", async () => {
    const t = setupBackend();
    await seedPagesProjects(t, 600);
    await t.mutation(internal.sandbox.injectFault, { operation: "cloudflare.listPagesDeployments", kind: "transient", times: 1 });
    const providers = sandboxFor(t);

    await expect(providers.cloudflare.listPagesDeployments()).rejects.toMatchObject({ provider: "cloudflare", kind: "transient" });
    const states = await providers.cloudflare.listPagesDeployments();
    expect(states).toHaveLength(600);
    expect(states.every((s) => s.live)).toBe(true);
  });
});

describe("sandbox injectFault with an instance", () => {
  const faults = (t: TestBackend) =>
    t.run((ctx) => ctx.db.query("sandboxFaults").collect().then((rows) => rows.map(({ operation, instanceId, remaining, kind }) => ({ operation, instanceId, remaining, kind }))));

  test("bare probe names resolve to their provider's operation; a fault per instance replaces only that instance's", async () => {
    const t = setupBackend();
    expect(resolveOperation("probeSite")).toBe("cloudflare.probeSite");
    expect(resolveOperation("probeBackend")).toBe("convex.probeBackend");

    await t.mutation(internal.sandbox.injectFault, { operation: "probeSite", kind: "transient", times: 1 });
    await t.mutation(internal.sandbox.injectFault, { operation: "probeSite", kind: "transient", times: 2, instanceId: "i1" });
    await t.mutation(internal.sandbox.injectFault, { operation: "probeSite", kind: "permanent", times: 3, instanceId: "i2" });
    expect(
      await t.mutation(internal.sandbox.injectFault, { operation: "probeSite", kind: "rate_limited", times: 4, instanceId: "i1" }),
    ).toEqual({ operation: "cloudflare.probeSite", remaining: 4 });

    expect(await faults(t)).toEqual(
      expect.arrayContaining([
        { operation: "cloudflare.probeSite", instanceId: undefined, remaining: 1, kind: "transient" },
        { operation: "cloudflare.probeSite", instanceId: "i1", remaining: 4, kind: "rate_limited" },
        { operation: "cloudflare.probeSite", instanceId: "i2", remaining: 3, kind: "permanent" },
      ]),
    );
    expect(await faults(t)).toHaveLength(3);
  });

  test("an empty instanceId is refused", async () => {
    const t = setupBackend();
    await expect(
      t.mutation(internal.sandbox.injectFault, { operation: "probeSite", kind: "transient", times: 1, instanceId: " " }),
    ).rejects.toThrow(/instanceId/);
  });
});
