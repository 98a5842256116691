// The end-to-end provisioning suite, run twice: on the sandbox providers, and live through
// the real SDKs against the local provider fakes. Both modes must reach the same observable
// results. Real timers here (the live SDKs do real I/O); retry delays are set short.
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { startFakes, type Fakes } from "./fakes";
import { adminHeaders, pollUntilSettled, sendCheckout, setupBackend, type StatusBody, type TestBackend } from "./harness";

type Fault = { step: "pagesProject" | "configureBackend" | "workosOrg"; kind: "transient" | "rate_limited" | "permanent"; times: number };

type Mode = {
  name: "sandbox" | "live";
  env: () => Record<string, string>;
  attach: (t: TestBackend) => void;
  inject: (t: TestBackend, fault: Fault) => Promise<void>;
};

let fakes: Fakes;

const LIVE_FAULT_TARGET = {
  pagesProject: () => ({ fake: fakes.cloudflare, method: "POST", path: /\/pages\/projects$/ }),
  configureBackend: () => ({ fake: fakes.convex, method: "POST", path: /\/update_environment_variables$/ }),
  workosOrg: () => ({ fake: fakes.workos, method: "POST", path: /\/organizations$/ }),
};

const FAST = { RETRY_BASE_DELAY_MS: "20", RETRY_MAX_DELAY_MS: "200", RETRY_JITTER: "0" };

const MODES: Mode[] = [
  {
    name: "sandbox",
    env: () => ({ ...FAST, SANDBOX_LATENCY_MS: "5" }),
    attach: () => {},
    inject: async (t, { step, kind, times }) => {
      await t.mutation(internal.sandbox.injectFault, { operation: step, kind, times, retryAfterMs: kind === "rate_limited" ? 300 : undefined });
    },
  },
  {
    name: "live",
    env: () => ({ ...fakes.env, ...FAST }),
    attach: (t) => fakes.attach(t),
    inject: async (_t, { step, kind, times }) => {
      const { fake, method, path } = LIVE_FAULT_TARGET[step]();
      const status = kind === "transient" ? 503 : kind === "rate_limited" ? 429 : 400;
      fake.inject({ method, path, status, times, ...(kind === "rate_limited" ? { retryAfterSeconds: 1 } : {}) });
    },
  },
];

// Fresh fakes for every test: convex-test hands out the same ids in every backend, so
// shared fakes would let one test adopt another's resources.
beforeEach(async () => {
  fakes = await startFakes();
});
afterEach(async () => {
  await fakes.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const settle = pollUntilSettled;

function setup(mode: Mode, env: Record<string, string> = {}) {
  const t = setupBackend({ env: { ...mode.env(), ...env } });
  mode.attach(t);
  return t;
}

const instanceOf = (t: TestBackend, status: StatusBody) =>
  t.run(async (ctx) => (await ctx.db.get("instances", status.instanceId as Id<"instances">))!);

describe.each(MODES)("provisioning end to end ($name providers)", (mode) => {
  test("a paid checkout reaches ready with every step done once and the instance active at its URL", async () => {
    const t = setup(mode);
    const { sessionId, response } = await sendCheckout(t);
    expect(response.status).toBe(200);
    const status = await settle(t, sessionId);
    expect(status.status).toBe("ready");
    expect(status.progress).toEqual({ currentStep: 9, totalSteps: 9, percent: 100 });
    expect(status.steps.map((s) => [s.name, s.status, s.attempts])).toEqual(
      status.steps.map((s) => [s.name, "succeeded", 1]),
    );
    expect(status.instanceUrl).toMatch(/^https:\/\/brain-[a-z0-9]+\.pages\.dev$/);
    const instance = await instanceOf(t, status);
    expect(instance.status).toBe("active");
    expect(instance.resources).toMatchObject({
      convexProjectName: expect.stringMatching(/^brain-/),
      convexDeployKeyCiphertext: expect.stringMatching(/^v2:default:/),
      tenantWebhookSecretCiphertext: expect.stringMatching(/^v2:default:/),
      workosOrganizationId: expect.any(String),
      // A checkout email no WorkOS user has: invited to the organization, not made a user.
      workosInvitationId: expect.stringMatching(/^invitation_/),
      pagesSubdomain: expect.stringMatching(/\.pages\.dev$/),
      deployRunId: expect.any(String),
    });
    const actions = (await t.query(internal.audit.listForJob, { jobId: status.jobId as Id<"provisioningJobs"> })).map(
      (r) => r.action,
    );
    expect(new Set(actions)).toEqual(new Set(["job.created", "job.admitted", "step.started", "step.succeeded", "step.waiting", "job.succeeded"]));
    // Brain keeps one platform webhook and forwards to tenants: no per-tenant Stripe endpoint.
    expect(instance.resources.stripeEndpointId).toBeUndefined();
    expect(instance.resources.workosUserId).toBeUndefined();
    if (mode.name === "live") {
      expect(fakes.workos.invitations()).toEqual([
        expect.objectContaining({
          id: instance.resources.workosInvitationId,
          organization_id: instance.resources.workosOrganizationId,
          state: "pending",
        }),
      ]);
      expect(fakes.workos.users()).toEqual([]);
      expect(fakes.stripe.endpoints()).toEqual([]);
      expect(fakes.stripe.requests.filter((r) => r.path.startsWith("/v1/webhook_endpoints"))).toEqual([]);
    }
  });

  test("a transient provider failure is retried and the job still reaches ready", async () => {
    const t = setup(mode);
    await mode.inject(t, { step: "pagesProject", kind: "transient", times: 2 });
    const { sessionId } = await sendCheckout(t);
    const status = await settle(t, sessionId);
    expect(status.status).toBe("ready");
    expect(status.steps.find((s) => s.name === "pagesProject")).toMatchObject({
      attempts: 3,
      lastError: { class: "transient" },
    });
  });

  test("a rate-limited provider call waits and then succeeds", async () => {
    const t = setup(mode);
    await mode.inject(t, { step: "workosOrg", kind: "rate_limited", times: 1 });
    const { sessionId } = await sendCheckout(t);
    const status = await settle(t, sessionId);
    expect(status.status).toBe("ready");
    expect(status.steps.find((s) => s.name === "workosOrg")).toMatchObject({ attempts: 2, lastError: { class: "rate_limited" } });
  });

  test("a permanent failure fails the job naming the step, and the retry endpoint takes it to ready", async () => {
    const t = setup(mode);
    // (The fault was on stripeEndpoint, a step now gone: configureBackend fails after its inputs succeeded.)
    await mode.inject(t, { step: "configureBackend", kind: "permanent", times: 1 });
    const { sessionId } = await sendCheckout(t);
    const failed = await settle(t, sessionId);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({ step: "configureBackend", class: "permanent" });
    const retry = await t.fetch(`/retry-provisioning/${failed.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(retry.status).toBe(202);
    const ready = await settle(t, sessionId);
    expect(ready.status).toBe("ready");
  });

  test("a burst of checkouts gives each its own instance and each instance exactly one resource per provider", async () => {
    const t = setup(mode);
    const sessions = await Promise.all(Array.from({ length: 8 }, () => sendCheckout(t)));
    const statuses = await Promise.all(sessions.map((s) => settle(t, s.sessionId, 60_000)));
    expect(statuses.map((s) => s.status)).toEqual(statuses.map(() => "ready"));
    const instanceIds = statuses.map((s) => s.instanceId!);
    expect(new Set(instanceIds).size).toBe(8);
    if (mode.name === "live") {
      for (const id of instanceIds) {
        const name = `brain-${id.toLowerCase().replace(/[^a-z0-9]/g, "")}`;
        expect(fakes.convex.projects().filter((p) => p.name === name)).toHaveLength(1);
        expect(fakes.cloudflare.projects().filter((p) => p.name === name)).toHaveLength(1);
        expect(fakes.workos.organizations().filter((o) => o.external_id === id)).toHaveLength(1);
      }
      // Stripe is no provider of a tenant's: not one webhook endpoint for the burst.
      expect(fakes.stripe.endpoints()).toEqual([]);
    }
  });
});

describe("live providers only", () => {
  const live = MODES[1];

  test("validation fails the job, naming the resource, when the site's latest deployment did not succeed", async () => {
    fakes.github.onRun((inputs) => {
      fakes.convex.markDeployed(inputs.deployment_name);
      fakes.cloudflare.addDeployment(inputs.pages_project_name, "failure");
    });
    const t = setup(live);
    const { sessionId } = await sendCheckout(t);
    const status = await settle(t, sessionId);
    expect(status.status).toBe("failed");
    expect(status.error).toMatchObject({ step: "validate", class: "permanent" });
    expect(status.error?.message).toMatch(/Pages project brain-[a-z0-9]+ is not live \(latest deployment: deploy failure\)/);
  });

  test("validation fails the job, naming the resource, when a resource vanished before it ran", async () => {
    fakes.github.onRun((inputs) => {
      fakes.convex.markDeployed(inputs.deployment_name);
      fakes.cloudflare.addDeployment(inputs.pages_project_name, "success");
      for (const org of fakes.workos.organizations()) fakes.workos.deleteOrganizationOutOfBand(org.id);
    });
    const t = setup(live);
    const { sessionId } = await sendCheckout(t);
    const status = await settle(t, sessionId);
    expect(status.status).toBe("failed");
    expect(status.error).toMatchObject({ step: "validate", class: "permanent" });
    expect(status.error?.message).toMatch(/WorkOS organization org_\w+ not found/);
  });

  test("a deployment that answers 503 once while validate probes it is retried, and the job reaches ready", async () => {
    fakes.convex.inject({ method: "GET", path: /^\/d\/[^/]+\/version$/, status: 503 });
    const t = setup(live);
    const { sessionId } = await sendCheckout(t);
    const status = await settle(t, sessionId);
    expect(status.status).toBe("ready");
    expect(status.steps.find((s) => s.name === "validate")).toMatchObject({
      status: "succeeded",
      attempts: 2,
      lastError: { class: "transient", message: expect.stringContaining("503") },
    });
  });

  test("a deploy callback that never arrives fails the step transiently at its deadline and the retry completes", async () => {
    fakes.github.setCallbackMode("silent");
    const t = setup(live, { STEP_DEADLINE_MS_DEPLOYAPP: "400" });
    const { sessionId } = await sendCheckout(t);
    // Once the first (silent) dispatch is out, later runs report normally.
    for (let i = 0; i < 200 && fakes.github.dispatches().length === 0; i++) await sleep(25);
    fakes.github.setCallbackMode("succeed");
    const status = await settle(t, sessionId);
    expect(status.status).toBe("ready");
    const deploy = status.steps.find((s) => s.name === "deployApp")!;
    expect(deploy.attempts).toBe(2);
    expect(deploy.lastError).toMatchObject({ class: "deadline", message: expect.stringContaining("deadline") });
    expect(fakes.github.dispatches()).toHaveLength(2);
  });

  test("a response lost after the provider created the resource is adopted on retry: one resource exists", async () => {
    fakes.cloudflare.inject({ method: "POST", path: /\/pages\/projects$/, dropResponse: true });
    fakes.convex.inject({ method: "POST", path: /\/create_project$/, dropResponse: true });
    fakes.workos.inject({ method: "POST", path: /\/organizations$/, dropResponse: true });
    const t = setup(live);
    const { sessionId } = await sendCheckout(t);
    const status = await settle(t, sessionId);
    expect(status.status).toBe("ready");
    for (const step of ["convexProject", "workosOrg", "pagesProject"]) {
      expect(status.steps.find((s) => s.name === step)?.attempts).toBe(2);
    }
    expect(fakes.convex.projects()).toHaveLength(1);
    expect(fakes.cloudflare.projects()).toHaveLength(1);
    expect(fakes.workos.organizations()).toHaveLength(1);
  });
});

describe("live providers: recovery after cleanup", () => {
  const live = MODES[1];

  /** Waits until the job's cleanup has finished (and its late results too). */
  async function cleanedUp(t: TestBackend, jobId: string) {
    for (let i = 0; i < 400; i++) {
      const job = await t.run(async (ctx) => ctx.db.get("provisioningJobs", jobId as Id<"provisioningJobs">));
      const inFlight = job?.steps.some((s) => ["running", "retrying", "waiting"].includes(s.status));
      if (job?.compensationStatus === "done" && !inFlight) return;
      await sleep(25);
    }
    throw new Error(`job ${jobId} was not cleaned up`);
  }

  test("a job retried after its cleanup provisions again, leaving one of each and no Stripe endpoint", async () => {
    fakes.convex.inject({ method: "POST", path: /update_environment_variables$/, status: 400, times: 1 });
    const t = setup(live, { CLEANUP_DELAY_MS: "0" });
    const { sessionId } = await sendCheckout(t);
    const failed = await settle(t, sessionId);
    expect(failed.error).toMatchObject({ step: "configureBackend", class: "permanent" });
    await cleanedUp(t, failed.jobId!);
    expect([fakes.convex.projects().length, fakes.workos.organizations().length, fakes.cloudflare.projects().length]).toEqual([0, 0, 0]);
    const retry = await t.fetch(`/retry-provisioning/${failed.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(retry.status).toBe(202);
    expect((await settle(t, sessionId)).status).toBe("ready");
    expect(fakes.convex.projects()).toHaveLength(1);
    expect(fakes.workos.organizations()).toHaveLength(1);
    expect(fakes.cloudflare.projects()).toHaveLength(1);
    expect(fakes.stripe.endpoints()).toEqual([]);
  });

  test("a create whose response was lost is cleaned up too when a sibling step fails the job", async () => {
    fakes.cloudflare.inject({ method: "POST", path: /\/pages\/projects$/, dropResponse: true, latencyMs: 300 });
    fakes.workos.inject({ method: "POST", path: /\/organizations$/, status: 422, times: 1 });
    const t = setup(live, { CLEANUP_DELAY_MS: "0" });
    const { sessionId } = await sendCheckout(t);
    const failed = await settle(t, sessionId);
    expect(failed.error).toMatchObject({ step: "workosOrg", class: "permanent" });
    await cleanedUp(t, failed.jobId!);
    expect(fakes.cloudflare.projects()).toHaveLength(0);
    expect(fakes.convex.projects()).toHaveLength(0);
  });

  test("failed instances whose projects were cleaned up do not count against the Pages cap", async () => {
    const t = setup(live, { CLOUDFLARE_PAGES_PROJECT_LIMIT: "2", CLEANUP_DELAY_MS: "0" });
    fakes.workos.inject({ method: "POST", path: /\/organizations$/, status: 422, times: 2 });
    for (let i = 0; i < 2; i++) {
      const { sessionId } = await sendCheckout(t);
      const failed = await settle(t, sessionId);
      expect(failed.status).toBe("failed");
      await cleanedUp(t, failed.jobId!);
    }
    const { sessionId } = await sendCheckout(t);
    expect((await settle(t, sessionId)).status).toBe("ready");
  });

  test("a cached WorkOS user that no longer exists is looked up again instead of failing the job", async () => {
    const t = setup(live);
    await t.mutation(internal.providerCache.putWorkosUser, { email: "stale@example.com", userId: "user_01GONE0000000000000000000" });
    const { sessionId } = await sendCheckout(t, { email: "stale@example.com" });
    const status = await settle(t, sessionId);
    expect(status.status).toBe("ready");
    expect(status.steps.find((s) => s.name === "workosUser")).toMatchObject({ attempts: 2, lastError: { class: "transient" } });
  });
});
