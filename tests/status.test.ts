import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { api, internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { initialSteps } from "../convex/model/dag";
import { DEFAULT_STEP_MS } from "../convex/model/eta";
import { admitNow, checkoutEvent, drain, sendCheckout, setupBackend, signedStripeRequest, statusOf } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("public status page", () => {
  test("answers JSON with status, progress, steps and ids when asked for application/json", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const response = await t.fetch(`/status?session_id=${sessionId}`, { headers: { Accept: "application/json" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("application/json");
    const body = await response.json();
    expect(Object.keys(body).sort()).toEqual(
      ["currentStepName", "estimatedReadyAt", "etaMs", "instanceId", "instanceUrl", "jobId", "message", "progress", "status", "steps"].sort(),
    );
    expect(body.progress).toEqual({ currentStep: 9, totalSteps: 9, percent: 100 });
    expect(body).toMatchObject({ currentStepName: null, etaMs: 0, estimatedReadyAt: expect.any(Number) });
  });

  test("shows a payment being processed as pending, then provisioning while steps run", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    expect((await statusOf(t, sessionId)).body).toMatchObject({ status: "pending", jobId: null });
    // Run the event's processing: the job exists, queued for admission.
    vi.advanceTimersByTime(1);
    await t.finishInProgressScheduledFunctions();
    expect((await statusOf(t, sessionId)).body).toMatchObject({ status: "pending", jobId: expect.any(String) });
    // Admission starts it: its first steps are out.
    await admitNow(t);
    const { body } = await statusOf(t, sessionId);
    expect(body.status).toBe("provisioning");
    expect(body.jobId).toEqual(expect.any(String));
    expect(body.progress).toEqual({ currentStep: 0, totalSteps: 9, percent: 0 });
    expect(body.steps.filter((s) => s.status === "running").map((s) => s.name)).toEqual([
      "convexProject",
      "workosOrg",
      "pagesProject",
    ]);
    expect(body.instanceUrl).toBeUndefined();
  });

  test("serves HTML to browsers that refreshes itself while work is in progress, and stops once ready", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    const during = await t.fetch(`/status?session_id=${sessionId}`, { headers: { Accept: "text/html" } });
    expect(during.headers.get("content-type")).toContain("text/html");
    expect(await during.text()).toContain('http-equiv="refresh"');
    await drain(t);
    const after = await t.fetch(`/status?session_id=${sessionId}`);
    const html = await after.text();
    expect(html).not.toContain('http-equiv="refresh"');
    expect(html).toContain("Your instance is ready");
    expect(html).toMatch(/https:\/\/brain-[a-z0-9-]+\.pages\.dev/);
  });

  test("a suspended or deleted instance says so, with the progress of its provision job, not of the lifecycle job after it", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const ready = (await statusOf(t, sessionId)).body;
    expect(ready.status).toBe("ready");
    // A newer lifecycle job (a suspension, still running) must not become the page's job.
    await t.run(async (ctx) => {
      const instanceId = ready.instanceId as Id<"instances">;
      const now = Date.now();
      await ctx.db.insert("provisioningJobs", {
        instanceId,
        kind: "suspend",
        status: "running",
        steps: initialSteps("suspend"),
        totalSteps: 3,
        currentStep: 0,
        retryCount: 0,
        correlationId: "corr-suspend",
        trigger: "test",
        createdAt: now,
        updatedAt: now,
      });
      await ctx.db.patch("instances", instanceId, { status: "suspended", suspendedAt: now });
    });
    const suspended = (await statusOf(t, sessionId)).body;
    expect(suspended).toMatchObject({ status: "suspended", jobId: ready.jobId, progress: { currentStep: 9, totalSteps: 9, percent: 100 } });
    expect(suspended.message).toContain("suspended");
    expect(await (await t.fetch(`/status?session_id=${sessionId}`)).text()).toContain("Your instance is suspended");

    await t.run(async (ctx) => ctx.db.patch("instances", ready.instanceId as Id<"instances">, { status: "deleted", deletedAt: Date.now() }));
    const deleted = (await statusOf(t, sessionId)).body;
    expect(deleted).toMatchObject({ status: "deleted", jobId: ready.jobId });
    expect(deleted.message).toContain("deleted");
  });

  test("a failed job shows the failed step and a support link", async () => {
    const t = setupBackend({ env: { SUPPORT_URL: "https://support.example.com/" } });
    await t.mutation(internal.sandbox.injectFault, { operation: "convex.probeDeployment", kind: "permanent", times: 1 });
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    expect(body.status).toBe("failed");
    expect(body.error).toMatchObject({ step: "validate", class: "permanent" });
    const html = await (await t.fetch(`/status?session_id=${sessionId}`)).text();
    expect(html).toContain("https://support.example.com/");
  });

  test("before an instance exists, the newest event by Stripe's created time wins, not the last one received", async () => {
    const t = setupBackend();
    const completed = checkoutEvent({ paymentStatus: "unpaid" });
    const sessionId = completed.data.object.id;
    const failed = {
      ...checkoutEvent({ sessionId, type: "checkout.session.async_payment_failed", paymentStatus: "unpaid" }),
      created: completed.created + 3600,
    };
    // Stripe does not promise delivery order: the failure (created an hour later) arrives first.
    expect((await t.fetch("/stripe/webhook", signedStripeRequest(failed))).status).toBe(200);
    await drain(t);
    expect((await t.fetch("/stripe/webhook", signedStripeRequest(completed))).status).toBe(200);
    await drain(t);

    const { body } = await statusOf(t, sessionId);
    expect(body).toMatchObject({ status: "failed", jobId: null, instanceId: null });
    expect(body.message).toContain("payment did not go through");
  });

  test("an unknown session answers 404 JSON and a missing session_id 400 JSON", async () => {
    const t = setupBackend();
    const unknown = await t.fetch("/status?session_id=cs_test_nobody");
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: { code: "NOT_FOUND", message: expect.any(String) } });
    const missing = await t.fetch("/status");
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ error: { code: "BAD_REQUEST" } });
  });

  test("an admin path with a malformed percent-encoded id answers 400 JSON, not 500", async () => {
    const t = setupBackend();
    for (const path of ["/retry-provisioning/%zz", "/cancel-provisioning/%zz"]) {
      const response = await t.fetch(path, { method: "POST", headers: { Authorization: `Bearer ${t.TEST_ADMIN_API_TOKEN}` } });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "INVALID_ID" } });
    }
    const health = await t.fetch("/instance-health/%", { headers: { Authorization: `Bearer ${t.TEST_ADMIN_API_TOKEN}` } });
    expect(health.status).toBe(400);
  });

  test("known routes asked with the wrong method answer 405 JSON", async () => {
    const t = setupBackend();
    const getWebhook = await t.fetch("/stripe/webhook");
    expect(getWebhook.status).toBe(405);
    expect(getWebhook.headers.get("allow")).toBe("POST");
    expect(await getWebhook.json()).toMatchObject({ error: { code: "METHOD_NOT_ALLOWED" } });
    expect((await t.fetch("/status?session_id=x", { method: "POST" })).status).toBe(405);
    expect((await t.fetch("/retry-provisioning/abc")).status).toBe(405);
  });

  test("shows only that session's instance and no customer data or secrets", async () => {
    const t = setupBackend();
    const mine = await sendCheckout(t, { email: "mine@example.com" });
    const theirs = await sendCheckout(t, { email: "theirs@example.com" });
    await drain(t);
    const a = await statusOf(t, mine.sessionId);
    const b = await statusOf(t, theirs.sessionId);
    expect(a.body.instanceId).not.toBe(b.body.instanceId);
    const text = JSON.stringify(a.body);
    expect(text).not.toContain("@example.com");
    expect(text).not.toContain(b.body.instanceId!);
    expect(text).not.toMatch(/ciphertext|whsec_|deployKey/i);
  });
});

describe("status estimate and live query", () => {
  const criticalPathMs = (ms: Partial<Record<string, number>>) =>
    Math.max(ms.convexProject!, ms.workosOrg!) + ms.configureBackend! + ms.deployApp! + ms.validate! + ms.activate!;

  test("with no finished job yet, the ETA is the documented default critical path and names the step in progress", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    vi.advanceTimersByTime(1);
    await t.finishInProgressScheduledFunctions();
    const queued = (await statusOf(t, sessionId)).body;
    expect(queued).toMatchObject({ status: "pending", currentStepName: null });
    expect(queued.etaMs).toBe(criticalPathMs(DEFAULT_STEP_MS));
    await admitNow(t);
    const running = (await statusOf(t, sessionId)).body;
    expect(running.status).toBe("provisioning");
    expect(running.currentStepName).toBe("convexProject");
    expect(running.etaMs).toBeGreaterThan(0);
    expect(running.etaMs!).toBeLessThanOrEqual(criticalPathMs(DEFAULT_STEP_MS));
    expect(running.estimatedReadyAt!).toBeGreaterThan(Date.now());
  });

  test("after a job finishes, the next checkout's ETA comes from its measured step durations", async () => {
    const t = setupBackend();
    await sendCheckout(t);
    await drain(t);
    const measured = await t.run(async (ctx) => {
      const [job] = await ctx.db.query("provisioningJobs").collect();
      return Object.fromEntries(job.steps.map((s) => [s.name, s.finishedAt! - s.startedAt!]));
    });
    const { sessionId } = await sendCheckout(t);
    vi.advanceTimersByTime(1);
    await t.finishInProgressScheduledFunctions();
    const { body } = await statusOf(t, sessionId);
    // One sample per step: its median is that sample (the histogram keeps min and max exactly).
    expect(body).toMatchObject({ status: "pending", etaMs: criticalPathMs(measured) });
    expect(body.etaMs).not.toBe(criticalPathMs(DEFAULT_STEP_MS));
  });

  test("a failed job has no estimate", async () => {
    const t = setupBackend();
    await t.mutation(internal.sandbox.injectFault, { operation: "convex.probeDeployment", kind: "permanent", times: 1 });
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    expect((await statusOf(t, sessionId)).body).toMatchObject({ status: "failed", etaMs: null, estimatedReadyAt: null, currentStepName: null });
  });

  test("status:get returns the same view as GET /status JSON, measured from the job's last change instead of the clock", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const live = await t.query(api.status.get, { sessionId });
    expect(live).toEqual((await statusOf(t, sessionId)).body);
    expect(live).toMatchObject({ status: "ready", etaMs: 0 });

    const other = await sendCheckout(t);
    vi.advanceTimersByTime(1);
    await t.finishInProgressScheduledFunctions();
    await admitNow(t);
    const running = await t.query(api.status.get, { sessionId: other.sessionId });
    const http = (await statusOf(t, other.sessionId)).body;
    const { etaMs: _a, ...liveRest } = running!;
    const { etaMs: _b, ...httpRest } = http;
    expect(liveRest).toEqual(httpRest);
    const updatedAt = await t.run(async (ctx) => (await ctx.db.get("provisioningJobs", running!.jobId!))!.updatedAt);
    expect(running!.etaMs).toBe(running!.estimatedReadyAt! - updatedAt);
  });

  test("status:get answers null for an unknown session and BAD_REQUEST for a malformed id or extra arguments", async () => {
    const t = setupBackend();
    expect(await t.query(api.status.get, { sessionId: "cs_test_nobody" })).toBeNull();
    for (const sessionId of ["", "cs_test_<script>", "x".repeat(256), "cs test"]) {
      await expect(t.query(api.status.get, { sessionId })).rejects.toMatchObject({ data: { code: "BAD_REQUEST" } });
    }
    // @ts-expect-error: the validator rejects anything but { sessionId: string }
    await expect(t.query(api.status.get, { sessionId: "cs_test_x", jobId: "j" })).rejects.toThrow();
    // @ts-expect-error: likewise a number
    await expect(t.query(api.status.get, { sessionId: 42 })).rejects.toThrow();
  });
});
