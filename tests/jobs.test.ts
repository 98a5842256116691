// The engine's interpreter over a real backend: admission under MAX_ACTIVE_JOBS, cancels
// racing a step's result, the half-open probe, and retry or cleanup of a job whose cleanup
// is stuck. Sandbox providers, fake timers. Transitions themselves: tests/decide.test.ts.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";
import { ADMISSION_SEGMENT_MS } from "../convex/model/jobs";
import { adminHeaders, admitNow, drain, sendCheckout, settleCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

/** Runs scheduled work a little at a time until `done` holds (fake timers). */
async function drainUntil(t: TestBackend, done: () => Promise<boolean>) {
  for (let i = 0; i < 2_000 && !(await done()); i++) {
    vi.advanceTimersByTime(100);
    await t.finishAllScheduledFunctions(() => vi.advanceTimersByTime(100), 1).catch(() => undefined);
  }
  if (!(await done())) throw new Error("condition never held");
}

const jobOf = (t: TestBackend, jobId: Id<"provisioningJobs">) => t.run(async (ctx) => (await ctx.db.get("provisioningJobs", jobId))!);
const instanceOf = (t: TestBackend, id: Id<"instances">) => t.run(async (ctx) => (await ctx.db.get("instances", id))!);
const releasesOf = (t: TestBackend, jobId: Id<"provisioningJobs">) =>
  t.run(async (ctx) => (await ctx.db.query("jobSlotReleases").withIndex("by_releasedAt").collect()).filter((r) => r.jobId === jobId).length);

/** Puts a finished job back to "running with `step` in flight" (attempt 1), as if its action were still out. */
async function rewindTo(t: TestBackend, jobId: Id<"provisioningJobs">, step: "validate" | "activate") {
  await t.run(async (ctx) => {
    const job = (await ctx.db.get("provisioningJobs", jobId))!;
    const after = step === "validate" ? ["validate", "activate"] : ["activate"];
    const steps = job.steps.map((s) =>
      s.name === step
        ? { name: s.name, status: "running" as const, attempts: 1, startedAt: Date.now(), deadlineAt: Date.now() + 60_000 }
        : after.includes(s.name)
          ? { name: s.name, status: "pending" as const, attempts: 0 }
          : s,
    );
    await ctx.db.patch("provisioningJobs", jobId, { steps, status: "running", finishedAt: undefined, currentStep: 8 });
    await ctx.db.patch("instances", job.instanceId, { status: "provisioning", activatedAt: undefined, url: undefined });
  });
}

const succeeded = (jobId: Id<"provisioningJobs">, step: "validate" | "activate") => ({
  workId: "w1" as never,
  context: { jobId, step, attempt: 1 },
  result: { kind: "success" as const, returnValue: { kind: "succeeded" as const, resources: {} } },
});

describe("admission", () => {
  test("a manual retry waits its turn behind MAX_ACTIVE_JOBS instead of starting past it", async () => {
    const t = setupBackend({ env: { MAX_ACTIVE_JOBS: "1" } });
    await t.mutation(internal.sandbox.injectFault, { operation: "pagesProject", kind: "permanent", times: 1 });
    const failing = await sendCheckout(t);
    const failed = await settleCheckout(t, failing.sessionId);
    expect(failed.status).toBe("failed");
    const busy = await sendCheckout(t);
    vi.advanceTimersByTime(1);
    await t.finishInProgressScheduledFunctions(); // its event is processed: the job is queued
    vi.setSystemTime(Date.now() + ADMISSION_SEGMENT_MS + 1); // a segment on, without firing any timer
    expect(await t.mutation(internal.provisioning.admitQueuedJobs, {})).toEqual({ admitted: 1, running: 1 });
    expect((await statusOf(t, busy.sessionId)).body.status).toBe("provisioning");

    const retry = await t.fetch(`/retry-provisioning/${failed.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(retry.status).toBe(202);
    expect(await retry.json()).toMatchObject({ jobId: failed.jobId, status: "queued", retryCount: 1 });
    expect((await statusOf(t, failing.sessionId)).body.status).toBe("pending");

    await drain(t);
    expect((await statusOf(t, busy.sessionId)).body.status).toBe("ready");
    expect((await statusOf(t, failing.sessionId)).body.status).toBe("ready");
    // The retried job was admitted only after the busy one finished.
    const admittedAt = (await t.query(internal.audit.listForJob, { jobId: failed.jobId as Id<"provisioningJobs"> })).filter((r) => r.action === "job.admitted").at(-1)!.at;
    const busyDone = (await t.query(internal.audit.listForJob, { jobId: (await statusOf(t, busy.sessionId)).body.jobId as Id<"provisioningJobs"> })).find((r) => r.action === "job.succeeded")!.at;
    expect(admittedAt).toBeGreaterThanOrEqual(busyDone);
  });

  test("with a slot free a manual retry starts at once", async () => {
    const t = setupBackend();
    await t.mutation(internal.sandbox.injectFault, { operation: "pagesProject", kind: "permanent", times: 1 });
    const { sessionId } = await sendCheckout(t);
    const failed = await settleCheckout(t, sessionId);
    const retry = await t.fetch(`/retry-provisioning/${failed.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(await retry.json()).toMatchObject({ status: "running" });
    expect((await settleCheckout(t, sessionId)).status).toBe("ready");
  });

  test("while jobs wait for a slot, however many admission runs there are, one look-again is pending", async () => {
    const t = setupBackend({ env: { MAX_ACTIVE_JOBS: "1" } });
    for (let i = 0; i < 4; i++) await sendCheckout(t);
    await admitNow(t);
    for (let i = 0; i < 5; i++) await t.mutation(internal.provisioning.admitQueuedJobs, {});
    const pending = await t.run(async (ctx) =>
      (await ctx.db.system.query("_scheduled_functions").collect()).filter(
        (f) => f.name.includes("admitQueuedJobs") && f.state.kind === "pending" && (f.args[0] as { poll?: boolean }).poll,
      ),
    );
    expect(pending).toHaveLength(1);
    await drain(t);
    const jobs = await t.run((ctx) => ctx.db.query("provisioningJobs").collect());
    expect(jobs.map((j) => j.status)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded"]);
  });

  test("a slot count gone wrong (a lost release) is reset by the watchdog, and the waiting job starts", async () => {
    const t = setupBackend({ env: { MAX_ACTIVE_JOBS: "1" } });
    await t.run((ctx) => ctx.db.insert("admission", { running: 1, updatedAt: 0 })); // a slot held by no job
    const { sessionId } = await sendCheckout(t);
    await admitNow(t);
    expect((await statusOf(t, sessionId)).body.status).toBe("pending");
    await t.mutation(internal.provisioning.runWatchdog, {});
    await drain(t);
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
  });

  test("admission's count returns to zero once every job has finished", async () => {
    const t = setupBackend({ env: { MAX_ACTIVE_JOBS: "3" } });
    const sessions = await Promise.all(Array.from({ length: 7 }, () => sendCheckout(t)));
    await drain(t);
    for (const s of sessions) expect((await statusOf(t, s.sessionId)).body.status).toBe("ready");
    const result = await t.mutation(internal.provisioning.admitQueuedJobs, {});
    expect(result).toEqual({ admitted: 0, running: 0 });
  });
});

describe("cancel racing a step's result", () => {
  test("a cancel landing while activate is in flight ends the job cancelled with the instance failed, and frees one slot", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    const ready = await settleCheckout(t, sessionId);
    const jobId = ready.jobId as Id<"provisioningJobs">;
    await rewindTo(t, jobId, "activate");
    const before = await releasesOf(t, jobId);

    const cancel = await t.fetch(`/cancel-provisioning/${jobId}`, { method: "POST", headers: adminHeaders() });
    expect(cancel.status).toBe(202);
    // The in-flight attempt reports success after the cancel.
    await t.mutation(internal.provisioning.onStepComplete, succeeded(jobId, "activate"));

    const job = await jobOf(t, jobId);
    expect(job.status).toBe("failed");
    expect(job.error).toMatchObject({ class: "cancelled" });
    const instance = await instanceOf(t, job.instanceId);
    expect(instance.status).toBe("failed");
    expect(instance.activatedAt).toBeUndefined();
    expect((await releasesOf(t, jobId)) - before).toBe(1);
    expect((await statusOf(t, sessionId)).body).toMatchObject({ status: "failed", error: { class: "cancelled" } });
  });

  test("a cancel landing while validate is in flight: its late success activates nothing", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    const jobId = (await settleCheckout(t, sessionId)).jobId as Id<"provisioningJobs">;
    await rewindTo(t, jobId, "validate");
    await t.fetch(`/cancel-provisioning/${jobId}`, { method: "POST", headers: adminHeaders() });
    await t.mutation(internal.provisioning.onStepComplete, succeeded(jobId, "validate"));
    const job = await jobOf(t, jobId);
    expect(job.status).toBe("failed");
    expect(job.steps.find((s) => s.name === "activate")!.status).toBe("pending");
    expect((await instanceOf(t, job.instanceId)).status).toBe("failed");
  });
});

describe("a job that stops", () => {
  test("a retry still waiting in its pool when the job is cancelled never reaches the provider", async () => {
    const t = setupBackend({ env: { RETRY_BASE_DELAY_MS: "600000", RETRY_MAX_DELAY_MS: "600000", RETRY_JITTER: "0" } });
    await t.mutation(internal.sandbox.injectFault, { operation: "pagesProject", kind: "transient", times: 2 });
    const { sessionId } = await sendCheckout(t);
    await drainUntil(t, async () => (await statusOf(t, sessionId)).body.steps.find((s) => s.name === "pagesProject")?.status === "retrying");
    const jobId = (await statusOf(t, sessionId)).body.jobId!;
    expect((await t.fetch(`/cancel-provisioning/${jobId}`, { method: "POST", headers: adminHeaders() })).status).toBe(202);
    await drain(t);
    // The first attempt used one injected fault; the cancelled retry would have used the second.
    const faults = await t.run((ctx) => ctx.db.query("sandboxFaults").collect());
    expect(faults.map((f) => f.remaining)).toEqual([1]);
    const step = (await jobOf(t, jobId as Id<"provisioningJobs">)).steps.find((s) => s.name === "pagesProject")!;
    expect(step).toMatchObject({ status: "failed", attempts: 2 });
  });
});

describe("half-open circuit", () => {
  test("when a circuit turns half-open, exactly one waiting step goes out as the probe; the others wait for its result", async () => {
    const t = setupBackend({ env: { CIRCUIT_COOLDOWN_MS: "30000" } });
    const sessions = [await sendCheckout(t), await sendCheckout(t), await sendCheckout(t)];
    const jobs: Id<"provisioningJobs">[] = [];
    for (const s of sessions) jobs.push((await settleCheckout(t, s.sessionId)).jobId as Id<"provisioningJobs">);
    // Each job parked at pagesProject behind an open Cloudflare circuit whose cool-down just ended.
    await t.run(async (ctx) => {
      await ctx.db.insert("circuits", { provider: "cloudflare", failures: 5, openedAt: Date.now() - 30_001, updatedAt: Date.now() });
      for (const jobId of jobs) {
        const job = (await ctx.db.get("provisioningJobs", jobId))!;
        const steps = job.steps.map((s) =>
          s.name === "pagesProject" ? { name: s.name, status: "retrying" as const, attempts: 2, waitingForCircuit: true } : s,
        );
        await ctx.db.patch("provisioningJobs", jobId, { steps, status: "running" });
      }
    });
    for (const jobId of jobs) await t.mutation(internal.provisioning.onCircuitWake, { jobId, step: "pagesProject", attempt: 2 });

    const states = await Promise.all(jobs.map(async (id) => (await jobOf(t, id)).steps.find((s) => s.name === "pagesProject")!));
    expect(states.filter((s) => !s.waitingForCircuit)).toHaveLength(1);
    expect(states.filter((s) => s.waitingForCircuit)).toHaveLength(2);
    const circuit = await t.run(async (ctx) => (await ctx.db.query("circuits").collect())[0] as Doc<"circuits">);
    expect(circuit.probe).toMatchObject({ jobId: jobs[states.findIndex((s) => !s.waitingForCircuit)], step: "pagesProject", attempt: 2 });

    // The probe succeeds: the circuit closes and the others go on their next look.
    await drain(t);
    const after = await t.run(async (ctx) => (await ctx.db.query("circuits").collect())[0] as Doc<"circuits">);
    expect(after).toMatchObject({ failures: 0 });
    expect(after.openedAt).toBeUndefined();
    for (const jobId of jobs) {
      expect((await jobOf(t, jobId)).steps.find((s) => s.name === "pagesProject")).toMatchObject({ status: "succeeded", attempts: 2 });
    }
  });
});

describe("a cleanup stuck on a failing deletion", () => {
  async function stuckJob(t: TestBackend) {
    await t.mutation(internal.sandbox.injectFault, { operation: "configureSite", kind: "permanent", times: 1 });
    await t.mutation(internal.sandbox.injectFault, { operation: "cloudflare.deletePagesProject", kind: "transient", times: 1000 });
    const { sessionId } = await sendCheckout(t);
    const failed = await settleCheckout(t, sessionId);
    const jobId = failed.jobId as Id<"provisioningJobs">;
    const job = await jobOf(t, jobId);
    expect(job).toMatchObject({ status: "failed", compensationStatus: "running" });
    expect(job.cleanupRun).toBeUndefined();
    return { sessionId, jobId };
  }

  test("sits in the dead letter and can be retried; the stuck deletion is abandoned", async () => {
    const t = setupBackend({ env: { CLEANUP_DELAY_MS: "0" } });
    const { sessionId, jobId } = await stuckJob(t);
    const dead = (await (await t.fetch("/admin/dead-letter", { headers: adminHeaders() })).json()) as { jobs: { jobId: string }[] };
    expect(dead.jobs.map((j) => j.jobId)).toContain(jobId);

    const retry = await t.fetch(`/retry-provisioning/${jobId}`, { method: "POST", headers: adminHeaders() });
    expect(retry.status).toBe(202);
    expect((await settleCheckout(t, sessionId)).status).toBe("ready");
    const tasks = await t.run((ctx) => ctx.db.query("cleanupTasks").withIndex("by_jobId_and_status", (q) => q.eq("jobId", jobId)).collect());
    expect(tasks.filter((task) => task.status === "pending")).toEqual([]);
    expect(tasks.some((task) => task.status === "cancelled")).toBe(true);
    // The Pages project the stuck deletion targeted is the ready instance's now, and still there.
    const projects = await t.query(internal.sandbox.listResources, { provider: "cloudflare" });
    expect(projects.filter((p) => p.kind === "pagesProject")).toHaveLength(1);
  });

  test("can be cleaned up now instead of waiting for the cleanup cron", async () => {
    const t = setupBackend({ env: { CLEANUP_DELAY_MS: "0" } });
    const { jobId } = await stuckJob(t);
    await t.run(async (ctx) => {
      for (const fault of await ctx.db.query("sandboxFaults").collect()) await ctx.db.delete("sandboxFaults", fault._id);
    });
    expect(await t.mutation(internal.cleanup.compensateNow, { jobId, actor: "operator" })).toBe(true);
    await drain(t);
    expect(await jobOf(t, jobId)).toMatchObject({ compensationStatus: "done" });
    expect((await jobOf(t, jobId)).cleanupRun).toBeUndefined();
  });
});
