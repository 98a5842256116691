// Durable execution and recovery: compensation of failed jobs, cancellation, the watchdog,
// and the dead-letter list. Sandbox providers, fake timers.
import type { WorkId } from "@convex-dev/workpool";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { adminHeaders, admitNow, drain, drainFor, sendCheckout, settleCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

const jobOf = (t: TestBackend, jobId: string) =>
  t.run(async (ctx) => (await ctx.db.get("provisioningJobs", jobId as Id<"provisioningJobs">))!);

async function sandboxResources(t: TestBackend) {
  return t.run(async (ctx) =>
    (await ctx.db.query("sandboxResources").collect())
      .filter((r) => ["project", "deployment", "organization", "pagesProject", "webhookEndpoint"].includes(r.kind))
      .map((r) => `${r.provider}:${r.kind}`)
      .sort(),
  );
}

async function auditRows(t: TestBackend, jobId: string) {
  return t.query(internal.audit.listForJob, { jobId: jobId as Id<"provisioningJobs"> });
}

const inject = (t: TestBackend, operation: string, kind: "transient" | "permanent", times = 1) =>
  t.mutation(internal.sandbox.injectFault, { operation, kind, times });

describe("compensation", () => {
  test("a job that fails for good has its partial resources removed newest first and the instance ends failed", async () => {
    const t = setupBackend({ env: { CLEANUP_DELAY_MS: "0" } });
    // convexProject fails once and is retried, so it finishes after workosOrg and pagesProject.
    await inject(t, "convexProject", "transient");
    await inject(t, "configureBackend", "permanent");
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const status = (await statusOf(t, sessionId)).body;
    expect(status.status).toBe("failed");
    expect(status.error).toMatchObject({ step: "configureBackend", class: "permanent" });
    const job = await jobOf(t, status.jobId!);
    expect(job.compensationStatus).toBe("done");
    expect(await sandboxResources(t)).toEqual([]);
    const instance = await t.run(async (ctx) => ctx.db.get("instances", status.instanceId as Id<"instances">));
    expect(instance?.status).toBe("failed");
    expect(instance?.resources).toEqual({});
    const deleted = (await auditRows(t, status.jobId!)).filter((r) => r.action === "resource.deleted").map((r) => r.detail!.split(" ")[0]);
    expect([...deleted].sort()).toEqual(["cloudflare", "convex", "workos"]);
    // (This used to be Stripe's endpoint, made after convexProject; no step makes one now.)
    // convexProject finished last, so its project goes first.
    expect(deleted[0]).toBe("convex");
  });

  test("nothing is removed before CLEANUP_DELAY_MS, and a retry before then cancels the cleanup", async () => {
    const t = setupBackend({ env: { CLEANUP_DELAY_MS: String(60 * 60_000) } });
    await inject(t, "deployApp", "permanent");
    const { sessionId } = await sendCheckout(t);
    const failed = await settleCheckout(t, sessionId);
    expect(failed.status).toBe("failed");
    expect((await jobOf(t, failed.jobId!)).compensationStatus).toBe("scheduled");
    expect((await sandboxResources(t)).length).toBeGreaterThan(0);
    await t.fetch(`/retry-provisioning/${failed.jobId}`, { method: "POST", headers: adminHeaders() });
    await drain(t); // runs the cleanup scheduled for an hour later too: it must do nothing
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
    expect((await auditRows(t, failed.jobId!)).map((r) => r.action)).not.toContain("job.compensation_started");
  });

  test("a compensated job can be retried and provisions again under the same names", async () => {
    const t = setupBackend({ env: { CLEANUP_DELAY_MS: "0" } });
    await inject(t, "convex.getEnvironment", "permanent");
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const failed = (await statusOf(t, sessionId)).body;
    expect((await jobOf(t, failed.jobId!)).compensationStatus).toBe("done");
    const response = await t.fetch(`/retry-provisioning/${failed.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(response.status).toBe(202);
    await drain(t);
    const ready = (await statusOf(t, sessionId)).body;
    expect(ready.status).toBe("ready");
    expect(ready.steps.every((s) => s.status === "succeeded")).toBe(true);
    expect(await sandboxResources(t)).toEqual([
      "cloudflare:pagesProject",
      "convex:deployment",
      "convex:project",
      "workos:organization",
    ]);
  });

  test("a resource already deleted by hand counts as deleted", async () => {
    const t = setupBackend({ env: { CLEANUP_DELAY_MS: String(60_000) } });
    await inject(t, "deployApp", "permanent");
    const { sessionId } = await sendCheckout(t);
    const failed = await settleCheckout(t, sessionId);
    await t.run(async (ctx) => {
      for (const row of await ctx.db.query("sandboxResources").collect()) {
        if (row.kind === "pagesProject") await ctx.db.delete("sandboxResources", row._id);
      }
    });
    await drain(t);
    expect((await jobOf(t, failed.jobId!)).compensationStatus).toBe("done");
    expect(await sandboxResources(t)).toEqual([]);
  });

  test("a deletion that fails stays pending and the cleanup cron retries it until it succeeds", async () => {
    const t = setupBackend({ env: { CLEANUP_DELAY_MS: "0" } });
    // (The permanent fault was on stripeEndpoint, a step now gone; configureBackend fails after
    // the same three resources were made.)
    await inject(t, "configureBackend", "permanent");
    await inject(t, "cloudflare.deletePagesProject", "transient", 1);
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const failed = (await statusOf(t, sessionId)).body;
    const job = await jobOf(t, failed.jobId!);
    expect(job.compensationStatus).toBe("running");
    expect(await sandboxResources(t)).toEqual(["cloudflare:pagesProject"]);
    expect((await auditRows(t, failed.jobId!)).map((r) => r.action)).toContain("resource.delete_failed");

    vi.advanceTimersByTime(2 * 60 * 60_000);
    expect(await t.mutation(internal.cleanup.retryPendingCleanups, {})).toBe(1);
    await drain(t);
    expect((await jobOf(t, failed.jobId!)).compensationStatus).toBe("done");
    expect(await sandboxResources(t)).toEqual([]);
  });
});

describe("cancellation", () => {
  test("cancelling a job mid-step stops it, fails it as cancelled and removes everything, late results included", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    vi.advanceTimersByTime(1);
    await t.finishInProgressScheduledFunctions(); // job created, first steps dispatched
    const { body } = await statusOf(t, sessionId);
    const response = await t.fetch(`/cancel-provisioning/${body.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(response.status).toBe(202);
    await drain(t);
    const status = (await statusOf(t, sessionId)).body;
    expect(status.status).toBe("failed");
    expect(status.error).toMatchObject({ class: "cancelled", message: "cancelled by admin-api" });
    expect(status.steps.filter((s) => s.name === "activate" || s.name === "deployApp").every((s) => s.attempts === 0)).toBe(true);
    // The three steps running at cancel time still made their resources; cleanup removed them.
    expect(await sandboxResources(t)).toEqual([]);
    expect((await jobOf(t, body.jobId!)).compensationStatus).toBe("done");
    const actions = (await auditRows(t, body.jobId!)).map((r) => r.action);
    expect(actions).toContain("job.failed");
    expect(actions).toContain("job.compensated");
  });

  test("cancelling a finished or unknown job is refused", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const finished = await t.fetch(`/cancel-provisioning/${body.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(finished.status).toBe(409);
    expect(await finished.json()).toMatchObject({ error: { code: "JOB_NOT_IN_PROGRESS" } });
    const unknown = await t.fetch("/cancel-provisioning/nope", { method: "POST", headers: adminHeaders() });
    expect(unknown.status).toBe(404);
    const unauthorized = await t.fetch(`/cancel-provisioning/${body.jobId}`, { method: "POST" });
    expect(unauthorized.status).toBe(401);
  });
});

describe("cancelling queued jobs", () => {
  test("cancelling a queued job frees no slot: MAX_ACTIVE_JOBS still holds and the others finish", async () => {
    const t = setupBackend({ env: { MAX_ACTIVE_JOBS: "1", CLEANUP_DELAY_MS: "0" } });
    const sessions = [];
    for (let i = 0; i < 3; i++) sessions.push(await sendCheckout(t));
    await admitNow(t);
    const third = (await statusOf(t, sessions[2].sessionId)).body;
    expect(third.status).toBe("pending");
    expect((await t.fetch(`/cancel-provisioning/${third.jobId}`, { method: "POST", headers: adminHeaders() })).status).toBe(202);
    const running = await t.run(async (ctx) =>
      (await ctx.db.query("provisioningJobs").withIndex("by_status", (q) => q.eq("status", "running")).collect()).length,
    );
    expect(running).toBe(1);
    await drain(t);
    const statuses = await Promise.all(sessions.map((s) => statusOf(t, s.sessionId)));
    expect(statuses.map((s) => s.body.status)).toEqual(["ready", "ready", "failed"]);
    expect(statuses[2].body.steps.every((s) => s.attempts === 0)).toBe(true);
  });
});

describe("watchdog", () => {
  test("a step whose action died is re-dispatched after its deadline and a late result from it changes nothing", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const jobId = body.jobId as Id<"provisioningJobs">;
    // As if validate's attempt 1 had been dispatched and its action died without reporting.
    await t.run(async (ctx) => {
      const job = (await ctx.db.get("provisioningJobs", jobId))!;
      const steps = job.steps.map((s) =>
        s.name === "validate"
          ? { name: s.name, status: "running" as const, attempts: 1, startedAt: Date.now(), deadlineAt: Date.now() + 1000 }
          : s.name === "activate"
            ? { name: s.name, status: "pending" as const, attempts: 0 }
            : s,
      );
      await ctx.db.patch("provisioningJobs", jobId, { status: "running", steps, currentStep: 8 });
    });
    expect(await t.mutation(internal.provisioning.runWatchdog, {})).toEqual({ expired: 0 });
    vi.advanceTimersByTime(1001);
    expect(await t.mutation(internal.provisioning.runWatchdog, {})).toEqual({ expired: 1 });
    const retried = (await jobOf(t, jobId)).steps.find((s) => s.name === "validate")!;
    expect(retried).toMatchObject({ status: "retrying", attempts: 2, lastError: { class: "deadline" } });
    // The dead attempt reports after all: stale.
    await t.mutation(internal.provisioning.onStepComplete, {
      workId: "dead-attempt" as WorkId,
      context: { jobId, step: "validate", attempt: 1 },
      result: { kind: "success", returnValue: { kind: "permanent", message: "late" } },
    });
    expect((await jobOf(t, jobId)).steps.find((s) => s.name === "validate")).toMatchObject({ status: "retrying", attempts: 2 });
    await drain(t);
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
  });
});

describe("dead letter", () => {
  test("lists jobs failed for good until they are retried or cleaned up", async () => {
    const t = setupBackend();
    await inject(t, "workosOrg", "permanent");
    const { sessionId } = await sendCheckout(t);
    const failed = await settleCheckout(t, sessionId);
    vi.advanceTimersByTime(5_000);
    const response = await t.fetch("/admin/dead-letter", { headers: adminHeaders() });
    expect(response.status).toBe(200);
    const { jobs } = (await response.json()) as { jobs: { jobId: string; waitingMs: number }[] };
    expect(jobs).toEqual([
      {
        jobId: failed.jobId,
        instanceId: failed.instanceId,
        kind: "provision",
        step: "workosOrg",
        class: "permanent",
        message: expect.stringContaining("injected permanent fault"),
        failedAt: expect.any(Number),
        waitingMs: expect.any(Number),
      },
    ]);
    expect(jobs[0].waitingMs).toBeGreaterThanOrEqual(5_000);
    expect(await t.mutation(internal.cleanup.compensateNow, { jobId: failed.jobId as Id<"provisioningJobs">, actor: "operator" })).toBe(true);
    await drainFor(t, 60_000);
    expect(((await (await t.fetch("/admin/dead-letter", { headers: adminHeaders() })).json()) as { jobs: unknown[] }).jobs).toEqual([]);
    expect((await t.fetch("/admin/dead-letter")).status).toBe(401);
  });
});

describe("circuit breaker", () => {
  test("an outage longer than the retry budget opens the circuit; steps wait instead of failing and it closes on recovery", async () => {
    const t = setupBackend({ env: { CIRCUIT_FAILURE_THRESHOLD: "3", CIRCUIT_COOLDOWN_MS: "60000", RETRY_MAX_ATTEMPTS: "4" } });
    // Eight failures in a row: twice the step's budget of four attempts.
    await inject(t, "pagesProject", "transient", 8);
    const { sessionId } = await sendCheckout(t);
    await drainFor(t, 90_000);
    const during = await (await t.fetch("/admin/circuits", { headers: adminHeaders() })).json();
    expect(during.circuits.find((c: { provider: string }) => c.provider === "cloudflare")).toMatchObject({
      state: "open",
      failures: expect.any(Number),
      openedAt: expect.any(Number),
    });
    expect(during.circuits.find((c: { provider: string }) => c.provider === "workos")).toMatchObject({ state: "closed", failures: 0 });
    expect((await statusOf(t, sessionId)).body.status).toBe("provisioning");
    await drain(t);
    const done = (await statusOf(t, sessionId)).body;
    expect(done.status).toBe("ready");
    expect(done.steps.find((s) => s.name === "pagesProject")?.attempts).toBe(9);
    const after = await (await t.fetch("/admin/circuits", { headers: adminHeaders() })).json();
    expect(after.circuits.find((c: { provider: string }) => c.provider === "cloudflare")).toEqual({
      provider: "cloudflare",
      state: "closed",
      failures: 0,
    });
    expect((await t.fetch("/admin/circuits")).status).toBe(401);
  });

  test("an outage that does not end still fails the job once CIRCUIT_MAX_WAITS failures were waited out", async () => {
    const t = setupBackend({
      env: { CIRCUIT_FAILURE_THRESHOLD: "2", CIRCUIT_COOLDOWN_MS: "1000", CIRCUIT_MAX_WAITS: "3", RETRY_MAX_ATTEMPTS: "4", CLEANUP_DELAY_MS: "0" },
    });
    await inject(t, "pagesProject", "transient", 1000);
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const done = (await statusOf(t, sessionId)).body;
    expect(done.status).toBe("failed");
    expect(done.error).toMatchObject({ step: "pagesProject", class: "transient" });
    const step = (await jobOf(t, done.jobId!)).steps.find((s) => s.name === "pagesProject")!;
    expect(step.circuitWaits).toBe(3);
    expect(step.attempts).toBe(4 + 3);
  });

  test("without an open circuit the same outage exhausts the step's attempts and fails the job", async () => {
    const t = setupBackend({ env: { CIRCUIT_FAILURE_THRESHOLD: "100", RETRY_MAX_ATTEMPTS: "4", CLEANUP_DELAY_MS: "0" } });
    await inject(t, "pagesProject", "transient", 8);
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const done = (await statusOf(t, sessionId)).body;
    expect(done.status).toBe("failed");
    expect(done.error).toMatchObject({ step: "pagesProject", class: "transient", message: expect.stringContaining("gave up after 4 attempts") });
  });
});
