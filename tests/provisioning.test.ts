import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import type { WorkId } from "@convex-dev/workpool";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { decryptSecret } from "../convex/lib/crypto";
import { ADMISSION_SEGMENT_MS } from "../convex/model/jobs";
import { STEPS as REGISTRY_STEPS } from "../convex/registry";
import { adminHeaders, drain, sendCheckout, settleCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

const STEPS = [
  "convexProject",
  "workosOrg",
  "pagesProject",
  "workosUser",
  "configureBackend",
  "configureSite",
  "deployApp",
  "validate",
  "activate",
];

async function jobFor(t: TestBackend, jobId: string) {
  return t.run(async (ctx) => (await ctx.db.get("provisioningJobs", jobId as Id<"provisioningJobs">))!);
}

async function auditActions(t: TestBackend, jobId: string) {
  const rows = await t.query(internal.audit.listForJob, { jobId: jobId as Id<"provisioningJobs"> });
  return rows.map((row) => row.action);
}

async function injectFault(
  t: TestBackend,
  operation: string,
  kind: "transient" | "rate_limited" | "permanent",
  times: number,
  retryAfterMs?: number,
) {
  await t.mutation(internal.sandbox.injectFault, { operation, kind, times, retryAfterMs });
}

describe("a paid checkout provisions a tenant end to end", () => {
  test("the job runs every step once, ends ready with the instance active at its URL", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { status, body } = await statusOf(t, sessionId);
    expect(status).toBe(200);
    expect(body.status).toBe("ready");
    expect(body.progress).toEqual({ currentStep: 9, totalSteps: 9, percent: 100 });
    expect(body.steps.map((s) => s.name)).toEqual(STEPS);
    expect(body.steps.every((s) => s.status === "succeeded" && s.attempts === 1)).toBe(true);
    expect(body.instanceUrl).toMatch(/^https:\/\/brain-[a-z0-9-]+\.pages\.dev$/);

    const instance = await t.run(async (ctx) => ctx.db.get("instances", body.instanceId as Id<"instances">));
    expect(instance).toMatchObject({ status: "active", url: body.instanceUrl });
    expect(instance?.resources).toMatchObject({
      convexProjectId: expect.any(String),
      convexDeploymentUrl: expect.stringMatching(/\.convex\.cloud$/),
      workosOrganizationId: expect.any(String),
      // A checkout email no WorkOS user has: invited to the organization, not made a user.
      workosInvitationId: expect.stringMatching(/^invitation_/),
      pagesProjectName: expect.stringMatching(/^brain-/),
      tenantWebhookSecretCiphertext: expect.stringMatching(/^v2:default:/),
      deployRunId: expect.any(String),
    });
    // No step makes a Stripe webhook endpoint any more (one platform webhook, forwarded to tenants).
    expect(instance?.resources.workosUserId).toBeUndefined();
    expect(instance?.resources.stripeEndpointId).toBeUndefined();
    expect(instance?.resources.stripeEndpointSecretCiphertext).toBeUndefined();
    expect(await t.query(internal.sandbox.listResources, { provider: "stripe" })).toEqual([]);
  });

  test("secrets produced by steps are stored only as ciphertext", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const instance = await t.run(async (ctx) => ctx.db.get("instances", body.instanceId as Id<"instances">));
    expect(instance?.resources.convexDeployKeyCiphertext).toMatch(/^v2:default:/);
    expect(instance?.resources.tenantWebhookSecretCiphertext).toMatch(/^v2:default:/);
    expect(JSON.stringify(instance)).not.toContain("whsec_");
    expect(JSON.stringify(instance)).not.toContain("prod:");
  });

  test("configureBackend gives the tenant deployment its own Stripe signing secret and its plan", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const instance = (await t.run(async (ctx) => ctx.db.get("instances", body.instanceId as Id<"instances">)))!;
    const deployment = await t.run(async (ctx) =>
      ctx.db
        .query("sandboxResources")
        .withIndex("by_provider_and_kind_and_name", (q) =>
          q.eq("provider", "convex").eq("kind", "deployment").eq("name", instance.resources.convexDeploymentName!),
        )
        .unique(),
    );
    const secret = await decryptSecret(instance.resources.tenantWebhookSecretCiphertext!, process.env.ENCRYPTION_KEY);
    expect(secret).toMatch(/^whsec_/);
    expect(secret).not.toBe(t.TEST_STRIPE_WEBHOOK_SECRET);
    expect(deployment?.attributes).toMatchObject({
      "env.STRIPE_WEBHOOK_SECRET": secret,
      "env.BRAIN_PLAN": instance.plan,
      "env.BRAIN_INSTANCE_ID": instance._id,
    });
  });

  test("independent steps start together and every step starts only after its inputs finished", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const job = await jobFor(t, body.jobId!);
    const byName = Object.fromEntries(job.steps.map((s) => [s.name, s]));
    expect(byName.convexProject.startedAt).toBe(byName.workosOrg.startedAt);
    expect(byName.workosOrg.startedAt).toBe(byName.pagesProject.startedAt);
    for (const step of job.steps) {
      for (const need of REGISTRY_STEPS[step.name as keyof typeof REGISTRY_STEPS].needs as readonly (keyof typeof REGISTRY_STEPS)[]) {
        expect(step.startedAt!).toBeGreaterThanOrEqual(byName[need].finishedAt!);
      }
    }
    // workosUser needs only workosOrg, so it ran alongside the Convex branch (convexProject → configureBackend).
    expect(byName.workosUser.startedAt!).toBeLessThan(byName.configureBackend.startedAt!);
  });

  test("every job transition is in the audit log with who caused it", async () => {
    const t = setupBackend();
    const { sessionId, event } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const rows = await t.query(internal.audit.listForJob, { jobId: body.jobId as Id<"provisioningJobs"> });
    const actions = rows.map((r) => r.action);
    expect(actions[0]).toBe("job.created");
    expect(rows[0].actor).toBe(`stripe:${event.id}`);
    expect(actions.filter((a) => a === "step.started")).toHaveLength(9);
    expect(actions.filter((a) => a === "step.succeeded")).toHaveLength(9);
    expect(actions).toContain("step.waiting");
    expect(actions.at(-1)).toBe("job.succeeded");
    expect(rows.find((r) => r.action === "step.succeeded" && r.detail?.startsWith("deployApp"))?.actor).toBe(
      "sandbox:github",
    );
  });

  test("a burst of distinct checkouts gives each its own ready instance", async () => {
    const t = setupBackend();
    const sessions = await Promise.all(Array.from({ length: 25 }, () => sendCheckout(t)));
    expect(sessions.every((s) => s.response.status === 200)).toBe(true);
    await drain(t);
    const statuses = await Promise.all(sessions.map((s) => statusOf(t, s.sessionId)));
    expect(statuses.every((s) => s.body.status === "ready")).toBe(true);
    expect(new Set(statuses.map((s) => s.body.instanceId)).size).toBe(25);
    expect(new Set(statuses.map((s) => s.body.instanceUrl)).size).toBe(25);
    const projects = await t.query(internal.sandbox.listResources, { provider: "convex", limit: 1000 });
    expect(projects.filter((r) => r.kind === "project")).toHaveLength(25);
  });
});

describe("admission", () => {
  test("past MAX_ACTIVE_JOBS a checkout's job waits queued (status pending) and starts as others finish", async () => {
    const t = setupBackend({ env: { MAX_ACTIVE_JOBS: "2" } });
    const sessions = [];
    for (let i = 0; i < 5; i++) sessions.push(await sendCheckout(t));
    // Every job is created queued; admission starts them a segment later, two at most.
    for (let ms = 0; ms <= ADMISSION_SEGMENT_MS + 10; ms += 10) {
      vi.advanceTimersByTime(10);
      await t.finishInProgressScheduledFunctions();
    }
    const early = await Promise.all(sessions.map((s) => statusOf(t, s.sessionId)));
    expect(early.map((s) => s.body.status)).toEqual(["provisioning", "provisioning", "pending", "pending", "pending"]);
    expect(early[4].body.jobId).toEqual(expect.any(String));
    await drain(t);
    const done = await Promise.all(sessions.map((s) => statusOf(t, s.sessionId)));
    expect(done.map((s) => s.body.status)).toEqual(["ready", "ready", "ready", "ready", "ready"]);
    const actions = await auditActions(t, done[4].body.jobId!);
    expect(actions.slice(0, 2)).toEqual(["job.created", "job.admitted"]);
  });
});

describe("step failures", () => {
  test("transient faults are retried with backoff and the job still ends ready", async () => {
    const t = setupBackend({ env: { RETRY_JITTER: "0" } });
    await injectFault(t, "workosOrg", "transient", 2);
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    expect(body.status).toBe("ready");
    const workosOrg = body.steps.find((s) => s.name === "workosOrg")!;
    expect(workosOrg.attempts).toBe(3);
    expect(workosOrg.lastError).toMatchObject({ class: "transient" });
    const rows = await t.query(internal.audit.listForJob, { jobId: body.jobId as Id<"provisioningJobs"> });
    const retries = rows.filter((r) => r.action === "step.retry_scheduled").map((r) => r.detail);
    // First retry after the base delay (1 s), then doubling.
    expect(retries).toEqual([
      expect.stringMatching(/^workosOrg attempt 2 in 1000 ms after transient/),
      expect.stringMatching(/^workosOrg attempt 3 in 2000 ms after transient/),
    ]);
    // The policy in force and the next attempt's time are on the job.
    const job = await jobFor(t, body.jobId!);
    expect(job.retryPolicy).toEqual({ maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 30000, jitter: 0 });
    expect(job.steps.find((s) => s.name === "workosOrg")?.lastError).toBeDefined();
    const orgs = await t.query(internal.sandbox.listResources, { provider: "workos" });
    expect(orgs.filter((r) => r.kind === "organization")).toHaveLength(1);
  });

  test("a rate-limited step waits at least the provider's retry-after", async () => {
    const t = setupBackend({ env: { RETRY_JITTER: "0" } });
    await injectFault(t, "pagesProject", "rate_limited", 1, 7_000);
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    expect(body.status).toBe("ready");
    const rows = await t.query(internal.audit.listForJob, { jobId: body.jobId as Id<"provisioningJobs"> });
    expect(rows.find((r) => r.action === "step.retry_scheduled")?.detail).toMatch(
      /^pagesProject attempt 2 in 7000 ms after rate_limited/,
    );
  });

  test("a permanent fault fails the job at once with a readable reason and starts nothing after it", async () => {
    const t = setupBackend();
    // (This fault was on stripeEndpoint, a step now gone: configureBackend fails the same way,
    // after its inputs succeeded and with steps still waiting on it.)
    await injectFault(t, "configureBackend", "permanent", 1);
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    expect(body.status).toBe("failed");
    expect(body.error).toEqual({
      step: "configureBackend",
      class: "permanent",
      message: expect.stringContaining("injected permanent fault"),
    });
    const byName = Object.fromEntries(body.steps.map((s) => [s.name, s]));
    expect(byName.configureBackend).toMatchObject({ status: "failed", attempts: 1 });
    for (const later of ["deployApp", "validate", "activate"]) {
      expect(byName[later]).toMatchObject({ status: "pending", attempts: 0 });
    }
    expect(body.progress.currentStep).toBeLessThan(9);
    const instance = await t.run(async (ctx) => ctx.db.get("instances", body.instanceId as Id<"instances">));
    expect(instance?.status).toBe("failed");
    expect(await auditActions(t, body.jobId!)).toContain("job.failed");
  });

  test("a step that keeps failing transiently fails the job after RETRY_MAX_ATTEMPTS attempts", async () => {
    // (With the circuit breaker in play the step would wait out the outage instead: tests/recovery.test.ts.)
    const t = setupBackend({ env: { CIRCUIT_FAILURE_THRESHOLD: "100" } });
    await injectFault(t, "configureSite", "transient", 50);
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    expect(body.status).toBe("failed");
    expect(body.error).toMatchObject({ step: "configureSite", class: "transient", message: expect.stringContaining("gave up after 5 attempts") });
    expect(body.steps.find((s) => s.name === "configureSite")?.attempts).toBe(5);
  });

  test("the retry endpoint resumes a failed job from its failed step and takes it to ready", async () => {
    const t = setupBackend();
    await injectFault(t, "deployApp", "permanent", 1);
    const { sessionId } = await sendCheckout(t);
    const failed = await settleCheckout(t, sessionId);
    expect(failed.status).toBe("failed");
    const before = await jobFor(t, failed.jobId!);
    expect(before.compensationStatus).toBe("scheduled");

    const response = await t.fetch(`/retry-provisioning/${failed.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({ jobId: failed.jobId, retryCount: 1 });
    await drain(t);

    const { body } = await statusOf(t, sessionId);
    expect(body.status).toBe("ready");
    expect(body.error).toBeUndefined();
    const after = await jobFor(t, body.jobId!);
    expect(after.retryCount).toBe(1);
    expect(after.compensationStatus).toBeUndefined();
    // Steps that had succeeded were not run again; only deployApp and what follows it ran.
    for (const name of ["convexProject", "workosOrg", "pagesProject", "configureBackend", "configureSite"]) {
      expect(after.steps.find((s) => s.name === name)?.attempts).toBe(before.steps.find((s) => s.name === name)?.attempts);
    }
    expect(after.steps.find((s) => s.name === "deployApp")?.attempts).toBe(2);
    // The cleanup scheduled at the failure found the job retried and did nothing.
    const instance = await t.run(async (ctx) => ctx.db.get("instances", body.instanceId as Id<"instances">));
    expect(instance?.status).toBe("active");
    expect(instance?.resources.pagesProjectName).toBeDefined();
    const actions = await auditActions(t, body.jobId!);
    expect(actions).toEqual(expect.arrayContaining(["job.failed", "job.retried", "job.succeeded"]));
    expect(actions).not.toContain("job.compensation_started");
    const retried = (await t.query(internal.audit.listForJob, { jobId: body.jobId as Id<"provisioningJobs"> })).find(
      (r) => r.action === "job.retried",
    );
    expect(retried?.actor).toBe("admin-api");
  });

  test("a late result from a superseded attempt changes nothing", async () => {
    const t = setupBackend();
    await injectFault(t, "workosOrg", "transient", 1);
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const before = await jobFor(t, body.jobId!);
    await t.mutation(internal.provisioning.onStepComplete, {
      workId: "late-work" as WorkId,
      context: { jobId: body.jobId as Id<"provisioningJobs">, step: "workosOrg", attempt: 1 },
      result: { kind: "success", returnValue: { kind: "permanent", message: "late and stale" } },
    });
    const after = await jobFor(t, body.jobId!);
    expect(after.steps).toEqual(before.steps);
    expect(after.status).toBe("succeeded");
  });

  test("a deploy report for a run that is not waiting is refused", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const result = await t.mutation(internal.provisioning.recordDeployReport, {
      jobId: body.jobId as Id<"provisioningJobs">,
      step: "deployApp",
      status: "failed",
      runId: "run_unknown",
      reporter: "test",
    });
    expect(result).toBe("not_waiting");
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
  });

  test("with a live credential missing, the status page and admin reads still answer; only the webhook refuses", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await settleCheckout(t, sessionId);
    vi.stubEnv("PROVIDER_MODE_WORKOS", "live");
    try {
      expect((await statusOf(t, sessionId)).status).toBe(200);
      const html = await t.fetch(`/status?session_id=${sessionId}`);
      expect(html.status).toBe(200);
      for (const path of ["/admin/dead-letter", "/admin/circuits"]) {
        expect((await t.fetch(path, { headers: adminHeaders() })).status).toBe(200);
      }
      const { response } = await sendCheckout(t);
      expect(response.status).toBe(500);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("CONFIG_INVALID");
    } finally {
      vi.unstubAllEnvs();
    }
  });

  test("a live provider with missing credentials is reported by name before any job starts", async () => {
    const t = setupBackend({ env: { PROVIDER_MODE_WORKOS: "live" } });
    const { response } = await sendCheckout(t);
    expect(response.status).toBe(500);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toContain("WORKOS_API_KEY");
    expect(error.message).toContain("WORKOS_CLIENT_ID");
    expect(error.message).toContain("ENCRYPTION_KEY");
    await drain(t);
    const jobs = await t.run((ctx) => ctx.db.query("provisioningJobs").collect());
    const events = await t.run((ctx) => ctx.db.query("stripeEvents").collect());
    expect([jobs.length, events.length]).toEqual([0, 0]);
  });
});
