// Orphaned provider resources: what counts as one, the scan and cleanup over HTTP, and the
// stored scan for the dashboard. The behaviour suite runs twice, on the sandbox providers
// (fake timers) and live through the real SDKs against fresh provider fakes (real timers).
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { getFunctionName } from "convex/server";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import crons from "../convex/crons";
import { loadConfig } from "../convex/lib/config";
import type { InstanceRef, Orphan, OrphanProvider } from "../convex/lib/validators";
import { deleteOrphans, findOrphans } from "../convex/model/orphanScan";
import { orphanReason, recordedIds } from "../convex/model/orphans";
import { instanceIdFromName } from "../convex/providers/owned";
import type { OwnedResource } from "../convex/providers/types";
import { FAKE_CREDENTIALS, startFakes, type Fakes } from "./fakes";
import { actionCtxOf, adminHeaders, drain, pollUntilSettled, sendCheckout, setupBackend, statusOf, type StatusBody, type TestBackend } from "./harness";

type Cleanup = { dryRun: boolean; deleted: Orphan[]; wouldDelete: Orphan[]; failed: (Orphan & { message: string })[] };

const GONE_INSTANCE = "k57gone0000000000000000000000000"; // an instance id no instance has

const byKey = (a: Orphan, b: Orphan) => (`${a.provider}:${a.resourceId}` < `${b.provider}:${b.resourceId}` ? -1 : 1);
const sorted = (list: Orphan[]) => [...list].sort(byKey);

describe("orphan rules", () => {
  const resource = (id: string, instanceId?: string): OwnedResource => ({ id, name: `brain-${id}`, ...(instanceId ? { instanceId } : {}) });
  const instance = (status: InstanceRef["status"], recorded: InstanceRef["recorded"] = {}, cleanedUp = false): InstanceRef => ({
    status,
    recorded,
    cleanedUp,
  });

  test.each([
    ["a resource whose instance id is unreadable", "an orphan (no_instance)", resource("p1"), null],
    ["a resource naming no instance", "an orphan (no_instance)", resource("p1", "k1"), null],
    ["a resource of a deleted instance, even its recorded one", "an orphan (instance_deleted)", resource("p1", "k1"), instance("deleted", { convex: "p1" })],
    ["a second resource of an active instance (a duplicate)", "an orphan (duplicate)", resource("p2", "k1"), instance("active", { convex: "p1" })],
    ["the resource an active instance records", "kept", resource("p1", "k1"), instance("active", { convex: "p1" })],
    ["a resource of a provisioning instance, not recorded yet (mid-step)", "kept", resource("p1", "k1"), instance("provisioning")],
    ["a resource of a provisioning instance that records another (it may be replacing it)", "kept", resource("p2", "k1"), instance("provisioning", { convex: "p1" })],
    ["a resource of a failed instance not yet cleaned up", "kept", resource("p1", "k1"), instance("failed")],
    ["a resource of a failed instance whose cleanup finished", "an orphan (instance_cleaned_up)", resource("p1", "k1"), instance("failed", {}, true)],
    ["a duplicate of a failed instance's recorded resource", "an orphan (duplicate)", resource("p2", "k1"), instance("failed", { convex: "p1" })],
  ] as const)("%s is %s", (_label, verdict, owned, ref) => {
    const reason = orphanReason("convex", owned, ref);
    expect(reason === null ? "kept" : `an orphan (${reason})`).toBe(verdict);
  });

  // No step makes a Stripe webhook endpoint any more (one platform webhook, forwarded to each
  // tenant): every Brain-tagged one, whatever its instance, is an orphan of a retired kind.
  test.each([
    ["naming no instance", resource("we_1", "k1"), null],
    ["whose instance id is unreadable", resource("we_1"), null],
    ["of an active instance", resource("we_1", "k1"), instance("active")],
    ["of an active instance that (in an earlier version) recorded it", resource("we_1", "k1"), instance("active", { stripe: "we_1" })],
    ["of a provisioning instance", resource("we_1", "k1"), instance("provisioning")],
    ["of a failed instance not yet cleaned up", resource("we_1", "k1"), instance("failed")],
  ] as const)("a Brain-tagged Stripe webhook endpoint %s is an orphan (retired)", (_label, owned, ref) => {
    expect(orphanReason("stripe", owned, ref)).toBe("retired");
  });

  test("an instance's recorded Stripe endpoint id (from an earlier version) does not protect it", () => {
    expect(recordedIds({ convexProjectId: "p1", stripeEndpointId: "we_1" })).toEqual({ convex: "p1" });
  });

  test("the instance id is read back from a brain-<instanceId> name, and only from one of that form", () => {
    expect(instanceIdFromName("brain", "brain-k57abc123")).toBe("k57abc123");
    expect(instanceIdFromName("my-brain", "my-brain-k57abc123")).toBe("k57abc123");
    expect(instanceIdFromName("brain", "brain-tenant-3")).toBeUndefined();
    expect(instanceIdFromName("brain", "brain-")).toBeUndefined();
    expect(instanceIdFromName("brain", "acme-k57abc123")).toBeUndefined();
  });

  test("the hourly cron scans for orphans and never cleans up", () => {
    const jobs = Object.values((crons as unknown as { crons: Record<string, { name: string; args: unknown[]; schedule: { type: string } }> }).crons);
    const orphanJobs = jobs.filter((job) => job.name.startsWith("orphans:"));
    expect(orphanJobs).toEqual([
      { name: getFunctionName(internal.orphans.scanOrphans), args: [{ actor: "system:orphan-scan" }], schedule: expect.objectContaining({ type: "hourly" }) },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// The world each mode provisions into, and how a test reaches past Brain to change it.

type World = {
  name: "sandbox" | "live";
  setup: () => TestBackend;
  /** A paid checkout, run until ready. */
  provision: (t: TestBackend) => Promise<StatusBody>;
  /** One resource per provider, tagged as Brain's, made outside any job; returned as orphans. */
  makeOrphans: (t: TestBackend) => Promise<Orphan[]>;
  /** One resource per provider that is not Brain's (wrong prefix or managedBy). */
  makeForeign: (t: TestBackend) => Promise<Orphan[]>;
  /** A second Convex project under an instance's project name. */
  duplicateProject: (t: TestBackend, name: string) => Promise<Orphan>;
  /** A Brain-tagged Stripe webhook endpoint for `instanceId`, as earlier versions made one per tenant. */
  makeEndpoint: (t: TestBackend, instanceId: string) => Promise<Orphan>;
  holds: (t: TestBackend, resource: Orphan) => Promise<boolean>;
  deleteByHand: (t: TestBackend, resource: Orphan) => Promise<void>;
  /** The provider refuses the next deletion of this Pages project. */
  refuseDeletion: (t: TestBackend, projectName: string) => Promise<void>;
};

let fakes: Fakes;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The sandbox simulates providers in the sandboxResources table; these reach it directly. */
const SANDBOX_KIND: Record<OrphanProvider, string> = {
  convex: "project",
  workos: "organization",
  cloudflare: "pagesProject",
  stripe: "webhookEndpoint",
};

async function sandboxEnsure(t: TestBackend, provider: OrphanProvider, name: string, attributes: Record<string, string> = {}) {
  const result = await t.mutation(internal.sandbox.applyOperation, {
    operation: "test.outsideBrain",
    provider,
    kind: SANDBOX_KIND[provider],
    name,
    action: "ensure",
    attributes,
  });
  if (result.result !== "ok" || !result.resource) throw new Error("sandbox create failed");
  return result.resource.externalId;
}

function sandboxRow(t: TestBackend, resource: Orphan) {
  return t.run((ctx) =>
    resource.provider === "cloudflare"
      ? ctx.db
          .query("sandboxResources")
          .withIndex("by_provider_and_kind_and_name", (q) =>
            q.eq("provider", "cloudflare").eq("kind", "pagesProject").eq("name", resource.resourceId),
          )
          .first()
      : ctx.db
          .query("sandboxResources")
          .withIndex("by_externalId", (q) => q.eq("externalId", resource.resourceId))
          .first(),
  );
}

const sandboxWorld: World = {
  name: "sandbox",
  setup: () => setupBackend(),
  async provision(t) {
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    return (await statusOf(t, sessionId)).body;
  },
  async makeOrphans(t) {
    const url = "https://leftover.example.com/stripe/webhook";
    return [
      { provider: "convex", resourceId: await sandboxEnsure(t, "convex", "brain-00000000000000000099990instances"), name: "brain-00000000000000000099990instances" },
      {
        provider: "workos",
        resourceId: await sandboxEnsure(t, "workos", GONE_INSTANCE, { displayName: "Leftover Org", managedBy: "brain" }),
        name: "Leftover Org",
      },
      { provider: "cloudflare", resourceId: (await sandboxEnsure(t, "cloudflare", "brain-00000000000000000099991instances"), "brain-00000000000000000099991instances"), name: "brain-00000000000000000099991instances" },
      { provider: "stripe", resourceId: await sandboxEnsure(t, "stripe", GONE_INSTANCE, { url, managedBy: "brain" }), name: url },
    ];
  },
  async makeForeign(t) {
    const url = "https://acme.example.com/hooks";
    return [
      { provider: "convex", resourceId: await sandboxEnsure(t, "convex", "acme-app"), name: "acme-app" },
      { provider: "workos", resourceId: await sandboxEnsure(t, "workos", "acme-ext", { displayName: "Acme", managedBy: "someone-else" }), name: "Acme" },
      { provider: "cloudflare", resourceId: (await sandboxEnsure(t, "cloudflare", "acme-site"), "acme-site"), name: "acme-site" },
      { provider: "stripe", resourceId: await sandboxEnsure(t, "stripe", "acme", { url }), name: url },
    ];
  },
  async duplicateProject(t, name) {
    // The sandbox adopts by name, as Convex would not: write the duplicate row directly.
    await t.run(async (ctx) => {
      await ctx.db.insert("sandboxResources", {
        provider: "convex",
        kind: "project",
        name,
        externalId: "project_duplicate0",
        attributes: {},
        createdAt: Date.now(),
        updatedAt: Date.now(),
      });
    });
    return { provider: "convex", resourceId: "project_duplicate0", name };
  },
  async makeEndpoint(t, instanceId) {
    const url = "https://tenant-old.example.convex.site/stripe/webhook";
    return { provider: "stripe", resourceId: await sandboxEnsure(t, "stripe", instanceId, { url, managedBy: "brain", instanceId }), name: url };
  },
  holds: async (t, resource) => (await sandboxRow(t, resource)) !== null,
  async deleteByHand(t, resource) {
    const row = await sandboxRow(t, resource);
    if (row) await t.run((ctx) => ctx.db.delete("sandboxResources", row._id));
  },
  async refuseDeletion(t) {
    await t.mutation(internal.sandbox.injectFault, {
      operation: "cloudflare.deletePagesProject",
      kind: "permanent",
      times: 1,
      message: "deletion refused",
    });
  },
};

async function post(url: string, body: unknown, headers: Record<string, string>, status: number) {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  expect(response.status).toBe(status);
  return (await response.json()) as { id: string | number };
}

const live = {
  convexProject: async (name: string) =>
    String(
      (await post(
        `${fakes.convex.managementUrl}/teams/${FAKE_CREDENTIALS.convexTeamId}/create_project`,
        { projectName: name, deploymentType: "prod" },
        { authorization: `Bearer ${FAKE_CREDENTIALS.convexToken}` },
        200,
      )).id,
    ),
  organization: async (body: { name: string; external_id?: string; metadata?: Record<string, string> }) =>
    String((await post(`${fakes.workos.url}/organizations`, body, { authorization: `Bearer ${FAKE_CREDENTIALS.workosKey}` }, 201)).id),
  pagesProject: async (name: string) => {
    await post(
      `${fakes.cloudflare.apiUrl}/accounts/${FAKE_CREDENTIALS.cloudflareAccount}/pages/projects`,
      { name, production_branch: "main" },
      { authorization: `Bearer ${FAKE_CREDENTIALS.cloudflareToken}` },
      200,
    );
    return name;
  },
  endpoint: async (url: string, metadata: Record<string, string>) => {
    const form = new URLSearchParams({ url, "enabled_events[0]": "*" });
    for (const [key, value] of Object.entries(metadata)) form.set(`metadata[${key}]`, value);
    const response = await fetch(`${fakes.stripe.url}/v1/webhook_endpoints`, {
      method: "POST",
      headers: { authorization: `Bearer ${FAKE_CREDENTIALS.stripeKey}`, "content-type": "application/x-www-form-urlencoded" },
      body: form.toString(),
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { id: string }).id;
  },
};

const liveWorld: World = {
  name: "live",
  setup() {
    const t = setupBackend({ env: { ...fakes.env, RETRY_JITTER: "0" } });
    fakes.attach(t);
    return t;
  },
  async provision(t) {
    const { sessionId } = await sendCheckout(t);
    return pollUntilSettled(t, sessionId);
  },
  async makeOrphans() {
    const url = "https://leftover.example.com/stripe/webhook";
    return [
      { provider: "convex", resourceId: await live.convexProject("brain-00000000000000000099990instances"), name: "brain-00000000000000000099990instances" },
      {
        provider: "workos",
        resourceId: await live.organization({
          name: "Leftover Org",
          external_id: GONE_INSTANCE,
          metadata: { managedBy: "brain", instanceId: GONE_INSTANCE },
        }),
        name: "Leftover Org",
      },
      { provider: "cloudflare", resourceId: await live.pagesProject("brain-00000000000000000099991instances"), name: "brain-00000000000000000099991instances" },
      { provider: "stripe", resourceId: await live.endpoint(url, { managedBy: "brain", instanceId: GONE_INSTANCE }), name: url },
    ];
  },
  async makeForeign() {
    const url = "https://acme.example.com/hooks";
    return [
      { provider: "convex", resourceId: await live.convexProject("acme-app"), name: "acme-app" },
      { provider: "workos", resourceId: await live.organization({ name: "Acme", external_id: "acme-ext", metadata: { managedBy: "someone-else" } }), name: "Acme" },
      { provider: "cloudflare", resourceId: await live.pagesProject("acme-site"), name: "acme-site" },
      { provider: "stripe", resourceId: await live.endpoint(url, { instanceId: GONE_INSTANCE }), name: url },
    ];
  },
  async duplicateProject(_t, name) {
    return { provider: "convex", resourceId: await live.convexProject(name), name };
  },
  async makeEndpoint(_t, instanceId) {
    const url = "https://tenant-old.example.convex.site/stripe/webhook";
    return { provider: "stripe", resourceId: await live.endpoint(url, { managedBy: "brain", instanceId }), name: url };
  },
  async holds(_t, { provider, resourceId }) {
    switch (provider) {
      case "convex":
        return fakes.convex.projects().some((p) => String(p.id) === resourceId);
      case "workos":
        return fakes.workos.organizations().some((o) => o.id === resourceId);
      case "cloudflare":
        return fakes.cloudflare.projects().some((p) => p.name === resourceId);
      case "stripe":
        return fakes.stripe.endpoints().some((e) => e.id === resourceId);
    }
  },
  async deleteByHand(_t, { provider, resourceId }) {
    if (provider === "convex") fakes.convex.deleteProjectOutOfBand(Number(resourceId));
    if (provider === "workos") fakes.workos.deleteOrganizationOutOfBand(resourceId);
    if (provider === "cloudflare") fakes.cloudflare.deleteProjectOutOfBand(resourceId);
    if (provider === "stripe") fakes.stripe.deleteEndpointOutOfBand(resourceId);
  },
  async refuseDeletion(_t, projectName) {
    fakes.cloudflare.inject({ method: "DELETE", path: `/pages/projects/${projectName}`, status: 403 });
  },
};

// ---------------------------------------------------------------------------------------------

const getOrphans = async (t: TestBackend) => {
  const response = await t.fetch("/admin/orphans", { headers: adminHeaders() });
  expect(response.status).toBe(200);
  return (await response.json()) as { orphans: Orphan[] };
};

const cleanup = async (t: TestBackend, body?: unknown) => {
  const response = await t.fetch("/admin/orphans/cleanup", {
    method: "POST",
    headers: { ...adminHeaders(), "content-type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Cleanup };
};

const auditActions = async (t: TestBackend, action: string) =>
  t.run((ctx) =>
    ctx.db
      .query("auditLogs")
      .withIndex("by_action", (q) => q.eq("action", action))
      .collect(),
  );

/**
 * The three resources an instance records, as the orphan scan would name them (ids only). No
 * step makes a Stripe resource any more.
 */
async function ownResources(t: TestBackend, instanceId: string): Promise<Pick<Orphan, "provider" | "resourceId">[]> {
  const instance = (await t.run((ctx) => ctx.db.get("instances", instanceId as Id<"instances">)))!;
  const r = instance.resources;
  expect(r.stripeEndpointId).toBeUndefined();
  return [
    { provider: "convex", resourceId: r.convexProjectId! },
    { provider: "workos", resourceId: r.workosOrganizationId! },
    { provider: "cloudflare", resourceId: r.pagesProjectName! },
  ];
}

describe.each([sandboxWorld, liveWorld])("orphaned provider resources ($name providers)", (world) => {
  beforeEach(async () => {
    if (world.name === "sandbox") vi.useFakeTimers();
    // Fresh fakes per test: convex-test hands out the same ids in every backend.
    else fakes = await startFakes();
  });
  afterEach(async () => {
    vi.useRealTimers();
    if (world.name === "live") await fakes.close();
  });

  test("a provisioned instance leaves nothing orphaned", async () => {
    const t = world.setup();
    const status = await world.provision(t);
    expect(status.status).toBe("ready");

    expect(await getOrphans(t)).toEqual({ orphans: [] });
    expect(await t.action(internal.orphans.scanOrphans, {})).toEqual({ orphans: [] });
    for (const resource of await ownResources(t, status.instanceId!)) {
      expect(await world.holds(t, { ...resource, name: "" })).toBe(true);
    }
  });

  test("a Brain-tagged resource made outside any job is reported, one per provider", async () => {
    const t = world.setup();
    await world.provision(t);
    const orphans = await world.makeOrphans(t);

    const { orphans: reported } = await getOrphans(t);

    expect(sorted(reported)).toEqual(sorted(orphans));
    const last = await t.query(internal.orphans.getLastOrphanScan, {});
    expect(last).toMatchObject({ actor: "admin-api", total: 4 });
    expect(sorted(last!.orphans)).toEqual(sorted(orphans));
    expect((await auditActions(t, "orphans.scanned")).map((r) => [r.actor, r.detail])).toEqual([["admin-api", "4 orphans"]]);
  });

  test("resources not tagged as Brain's are never reported nor deleted", async () => {
    const t = world.setup();
    const foreign = await world.makeForeign(t);
    const orphans = await world.makeOrphans(t);

    expect(sorted((await getOrphans(t)).orphans)).toEqual(sorted(orphans));
    const { body } = await cleanup(t, { dryRun: false });

    expect(sorted(body.deleted)).toEqual(sorted(orphans));
    for (const resource of foreign) expect(await world.holds(t, resource)).toBe(true);
  });

  test("a dry-run cleanup deletes nothing and lists what it would delete, also when the body is empty", async () => {
    const t = world.setup();
    await world.provision(t);
    const orphans = await world.makeOrphans(t);

    for (const body of [{ dryRun: true }, {}, undefined]) {
      const response = await cleanup(t, body);
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ dryRun: true, deleted: [], failed: [] });
      expect(sorted(response.body.wouldDelete)).toEqual(sorted(orphans));
    }
    for (const resource of orphans) expect(await world.holds(t, resource)).toBe(true);
    expect(await auditActions(t, "orphan.deleted")).toEqual([]);
  });

  test("cleanup deletes every orphan, audits each deletion, keeps the instance's own, and a second cleanup finds nothing", async () => {
    const t = world.setup();
    const status = await world.provision(t);
    const orphans = await world.makeOrphans(t);

    const first = await cleanup(t, { dryRun: false });

    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ dryRun: false, wouldDelete: [], failed: [] });
    expect(sorted(first.body.deleted)).toEqual(sorted(orphans));
    for (const resource of orphans) expect(await world.holds(t, resource)).toBe(false);
    for (const resource of await ownResources(t, status.instanceId!)) {
      expect(await world.holds(t, { ...resource, name: "" })).toBe(true);
    }
    const audited = await auditActions(t, "orphan.deleted");
    expect(audited).toHaveLength(4);
    expect(audited.every((row) => row.actor === "admin-api")).toBe(true);

    const second = await cleanup(t, { dryRun: false });
    expect(second.body).toEqual({ dryRun: false, deleted: [], wouldDelete: [], failed: [] });
    expect(await getOrphans(t)).toEqual({ orphans: [] });
  });

  test("a duplicate of an active instance's project is an orphan; the project the instance records is not", async () => {
    const t = world.setup();
    const status = await world.provision(t);
    const instance = (await t.run((ctx) => ctx.db.get("instances", status.instanceId as Id<"instances">)))!;
    const duplicate = await world.duplicateProject(t, instance.resources.convexProjectName!);

    expect((await getOrphans(t)).orphans).toEqual([duplicate]);

    const { body } = await cleanup(t, { dryRun: false });
    expect(body.deleted).toEqual([duplicate]);
    expect(await world.holds(t, { provider: "convex", resourceId: instance.resources.convexProjectId!, name: "" })).toBe(true);
    // The deletion is on the instance's audit trail.
    const trail = await t.query(internal.audit.listForInstance, { instanceId: instance._id });
    expect(trail.filter((r) => r.action === "orphan.deleted").map((r) => r.detail)).toEqual([
      expect.stringContaining(`convex ${duplicate.resourceId}`),
    ]);
  });

  test("a Brain-tagged Stripe webhook endpoint of an active instance is found as retired and removed by the cleanup", async () => {
    const t = world.setup();
    const status = await world.provision(t);
    const endpoint = await world.makeEndpoint(t, status.instanceId!);

    const found = await findOrphans(actionCtxOf(t), loadConfig(), "orphans-test");
    expect(found).toEqual([{ ...endpoint, instanceId: status.instanceId, reason: "retired" }]);
    expect((await getOrphans(t)).orphans).toEqual([endpoint]);

    const { body } = await cleanup(t, { dryRun: false });
    expect(body).toMatchObject({ deleted: [endpoint], failed: [] });
    expect(await world.holds(t, endpoint)).toBe(false);
    const audited = await auditActions(t, "orphan.deleted");
    expect(audited.map((r) => r.detail)).toEqual([expect.stringContaining(`stripe ${endpoint.resourceId}`)]);
    expect(audited[0].detail).toContain("retired");
    // The instance keeps everything it records, and stays active.
    for (const resource of await ownResources(t, status.instanceId!)) {
      expect(await world.holds(t, { ...resource, name: "" })).toBe(true);
    }
    expect((await t.run((ctx) => ctx.db.get("instances", status.instanceId as Id<"instances">)))?.status).toBe("active");
    expect(await getOrphans(t)).toEqual({ orphans: [] });
  });

  test("every resource of a deleted instance is an orphan", async () => {
    const t = world.setup();
    const status = await world.provision(t);
    const own = await ownResources(t, status.instanceId!);
    await t.run((ctx) => ctx.db.patch("instances", status.instanceId as Id<"instances">, { status: "deleted" }));

    const { orphans } = await getOrphans(t);

    expect(sorted(orphans).map(({ provider, resourceId }) => ({ provider, resourceId }))).toEqual(
      [...own].sort((a, b) => byKey({ ...a, name: "" }, { ...b, name: "" })),
    );
  });

  test("a resource already deleted by hand between the scan and the delete counts as deleted", async () => {
    const t = world.setup();
    const orphans = await world.makeOrphans(t);
    const { orphans: scanned } = await getOrphans(t);
    for (const resource of orphans) await world.deleteByHand(t, resource);

    const result = await deleteOrphans(
      actionCtxOf(t),
      loadConfig(),
      scanned.map((o) => ({ ...o, reason: "no_instance" as const })),
      "admin-api",
      "orphans-test",
    );

    expect(result.failed).toEqual([]);
    expect(sorted(result.deleted)).toEqual(sorted(orphans));
    expect(await auditActions(t, "orphan.deleted")).toHaveLength(4);
  });

  test("a deletion the provider refuses is reported under failed, not claimed deleted, and stays for the next cleanup", async () => {
    const t = world.setup();
    const orphans = await world.makeOrphans(t);
    const pages = orphans.find((o) => o.provider === "cloudflare")!;
    await world.refuseDeletion(t, pages.resourceId);

    const { status, body } = await cleanup(t, { dryRun: false });

    expect(status).toBe(200);
    expect(body.failed).toEqual([{ ...pages, message: expect.any(String) }]);
    expect(sorted(body.deleted)).toEqual(sorted(orphans.filter((o) => o !== pages)));
    expect(await world.holds(t, pages)).toBe(true);
    expect(await auditActions(t, "orphan.delete_failed")).toHaveLength(1);
    expect(await t.query(internal.orphans.getLastOrphanScan, {})).toMatchObject({ total: 1, orphans: [pages] });

    const again = await cleanup(t, { dryRun: false });
    expect(again.body).toMatchObject({ deleted: [pages], failed: [] });
  });
});

describe("orphans racing a live deletion", () => {
  beforeEach(async () => {
    fakes = await startFakes();
  });
  afterEach(async () => {
    await fakes.close();
  });

  test("a Pages project deleted by hand while its DELETE is in flight is reported deleted", async () => {
    const t = liveWorld.setup();
    const orphans = await liveWorld.makeOrphans(t);
    const pages = orphans.find((o) => o.provider === "cloudflare")!;
    // Hold the DELETE long enough to remove the project underneath it.
    fakes.cloudflare.inject({ method: "DELETE", path: `/pages/projects/${pages.resourceId}`, latencyMs: 400 });

    const pending = cleanup(t, { dryRun: false });
    const isDelete = (r: { method: string; path: string }) => r.method === "DELETE" && r.path.endsWith(`/${pages.resourceId}`);
    for (let i = 0; i < 200 && !fakes.cloudflare.requests.some(isDelete); i++) await sleep(10);
    fakes.cloudflare.deleteProjectOutOfBand(pages.resourceId);
    const { body } = await pending;

    expect(body.failed).toEqual([]);
    expect(sorted(body.deleted)).toEqual(sorted(orphans));
  });
});

describe("orphan scans in the sandbox", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  test("an instance mid-provisioning or failed and not yet cleaned up keeps its unrecorded resources; once cleaned up they are orphans", async () => {
    const t = setupBackend();
    const status = await sandboxWorld.provision(t);
    const instanceId = status.instanceId as Id<"instances">;
    const own = await ownResources(t, instanceId);
    const forget = (to: "provisioning" | "failed") => t.run((ctx) => ctx.db.patch("instances", instanceId, { status: to, resources: {} }));

    await forget("provisioning");
    expect(await getOrphans(t)).toEqual({ orphans: [] });

    await forget("failed");
    expect(await getOrphans(t)).toEqual({ orphans: [] });

    await t.run((ctx) => ctx.db.patch("provisioningJobs", status.jobId as Id<"provisioningJobs">, { compensationStatus: "done" }));
    const { orphans } = await getOrphans(t);
    expect(orphans.map((o) => o.resourceId).sort()).toEqual(own.map((o) => o.resourceId).sort());
  });

  test("an orphan whose instance is retried between the scan and the delete is kept and reported as not deleted", async () => {
    const t = setupBackend();
    const status = await sandboxWorld.provision(t);
    const instanceId = status.instanceId as Id<"instances">;
    await t.run((ctx) => ctx.db.patch("instances", instanceId, { status: "deleted" }));
    const { orphans: scanned } = await getOrphans(t);
    expect(scanned).toHaveLength(3); // Convex, WorkOS, Cloudflare: no step makes a Stripe endpoint
    await t.run((ctx) => ctx.db.patch("instances", instanceId, { status: "provisioning" }));

    const result = await deleteOrphans(
      actionCtxOf(t),
      loadConfig(),
      scanned.map((o) => ({ ...o, instanceId, reason: "instance_deleted" as const })),
      "admin-api",
      "orphans-test",
    );

    expect(result.deleted).toEqual([]);
    expect(sorted(result.failed)).toEqual(sorted(scanned).map((o) => ({ ...o, message: expect.stringContaining("no longer an orphan") })));
    for (const resource of scanned) expect(await sandboxWorld.holds(t, resource)).toBe(true);
  });

  test("the scheduled scan stores its result for the dashboard without auditing, and only the newest scans are kept", async () => {
    const t = setupBackend();
    expect(await t.query(internal.orphans.getLastOrphanScan, {})).toBeNull();
    const orphans = await sandboxWorld.makeOrphans(t);

    for (let i = 0; i < 12; i++) {
      await t.action(internal.orphans.scanOrphans, { actor: "system:orphan-scan" });
      vi.advanceTimersByTime(1000);
    }

    const last = await t.query(internal.orphans.getLastOrphanScan, {});
    expect(last).toMatchObject({ actor: "system:orphan-scan", total: 4, scannedAt: Date.now() - 1000 });
    expect(sorted(last!.orphans)).toEqual(sorted(orphans));
    expect(await t.run((ctx) => ctx.db.query("orphanScans").withIndex("by_scannedAt").collect())).toHaveLength(10);
    expect(await auditActions(t, "orphans.scanned")).toEqual([]);
  });

  test("the dashboard's cleanup is a dry run unless told otherwise", async () => {
    const t = setupBackend();
    const orphans = await sandboxWorld.makeOrphans(t);

    const dry = await t.action(internal.orphans.cleanupOrphans, {});
    expect(dry).toMatchObject({ dryRun: true, deleted: [], failed: [] });
    expect(sorted(dry.wouldDelete)).toEqual(sorted(orphans));

    const real = await t.action(internal.orphans.cleanupOrphans, { dryRun: false, actor: "operator:ada" });
    expect(sorted(real.deleted)).toEqual(sorted(orphans));
    expect((await auditActions(t, "orphan.deleted")).map((r) => r.actor)).toEqual(Array(4).fill("operator:ada"));
  });

  test("a provider that cannot be listed fails the scan with 502 and nothing is deleted", async () => {
    const t = setupBackend();
    const orphans = await sandboxWorld.makeOrphans(t);
    await t.mutation(internal.sandbox.injectFault, { operation: "cloudflare.listPagesProjects", kind: "transient", times: 2 });

    const scan = await t.fetch("/admin/orphans", { headers: adminHeaders() });
    const { status, body } = await cleanup(t, { dryRun: false });

    expect(scan.status).toBe(502);
    expect(await scan.json()).toEqual({ error: { code: "PROVIDER_UNAVAILABLE", message: expect.stringContaining("cloudflare") } });
    expect(status).toBe(502);
    for (const resource of orphans) expect(await sandboxWorld.holds(t, resource)).toBe(true);
  });
});

describe("orphan admin routes", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  test.each([
    ["no Authorization header", {}],
    ["a wrong token", adminHeaders("wrong-token-wrong-token")],
  ])("%s answers 401 JSON and deletes nothing", async (_label, headers) => {
    const t = setupBackend();
    const orphans = await sandboxWorld.makeOrphans(t);
    const scan = await t.fetch("/admin/orphans", { headers });
    const clean = await t.fetch("/admin/orphans/cleanup", { method: "POST", headers, body: JSON.stringify({ dryRun: false }) });
    for (const response of [scan, clean]) {
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: { code: "UNAUTHORIZED", message: expect.any(String) } });
    }
    for (const resource of orphans) expect(await sandboxWorld.holds(t, resource)).toBe(true);
    expect(await t.query(internal.orphans.getLastOrphanScan, {})).toBeNull();
  });

  test.each([
    ["a body that is not JSON", "dryRun=false"],
    ["a string dryRun", { dryRun: "false" }],
    ["a null dryRun", { dryRun: null }],
    ["a numeric dryRun", { dryRun: 0 }],
    ["a misspelt key", { dryrun: false }],
    ["an array", [false]],
    ["JSON null", "null"],
  ])("%s answers 400 BAD_REQUEST, is audited, and deletes nothing", async (_label, body) => {
    const t = setupBackend();
    const orphans = await sandboxWorld.makeOrphans(t);

    const response = await cleanup(t, body);

    expect(response.status).toBe(400);
    expect(response.body).toEqual({ error: { code: "BAD_REQUEST", message: expect.any(String) } });
    for (const resource of orphans) expect(await sandboxWorld.holds(t, resource)).toBe(true);
    expect((await auditActions(t, "orphans.cleanup_refused")).map((r) => r.actor)).toEqual(["admin-api"]);
  });

  test.each([
    ["POST", "/admin/orphans", "GET"],
    ["DELETE", "/admin/orphans", "GET"],
    ["GET", "/admin/orphans/cleanup", "POST"],
    ["PUT", "/admin/orphans/cleanup", "POST"],
  ])("%s %s answers 405 JSON naming the allowed method", async (method, path, allowed) => {
    const t = setupBackend();
    const response = await t.fetch(path, { method, headers: adminHeaders() });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe(allowed);
    expect(await response.json()).toEqual({ error: { code: "METHOD_NOT_ALLOWED", message: expect.any(String) } });
  });

  test("every cleanup call is audited with its outcome", async () => {
    const t = setupBackend();
    await sandboxWorld.makeOrphans(t);
    await cleanup(t, {});
    await cleanup(t, { dryRun: false });
    expect((await auditActions(t, "orphans.cleanup")).map((r) => [r.actor, r.detail])).toEqual([
      ["admin-api", "dry run: would delete 4"],
      ["admin-api", "deleted 4, failed 0"],
    ]);
  });
});
