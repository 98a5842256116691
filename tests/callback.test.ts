// POST /provisioning-callback: the deploy workflow's signed report. Every bad callback is
// rejected and changes nothing; a good one completes the waiting deployApp step.
import { createDecipheriv, createHash, createHmac } from "node:crypto";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import type { Id } from "../convex/_generated/dataModel";
import { sealForWorkflow } from "../convex/lib/crypto";
import { drain, sendCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

const SECRET = "callback-secret-0123456789abcdef";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

function sign(body: string, options: { secret?: string; timestamp?: number } = {}) {
  const t = options.timestamp ?? Math.floor(Date.now() / 1000);
  const v1 = createHmac("sha256", options.secret ?? SECRET).update(`${t}.${body}`).digest("hex");
  return `t=${t},v1=${v1}`;
}

/** A job whose deployApp step waits for its report (as after a live dispatch). */
async function waitingJob(t: TestBackend) {
  const { sessionId } = await sendCheckout(t);
  await drain(t);
  const { body } = await statusOf(t, sessionId);
  const jobId = body.jobId as Id<"provisioningJobs">;
  await t.run(async (ctx) => {
    const job = (await ctx.db.get("provisioningJobs", jobId))!;
    const steps = job.steps.map((s) =>
      ["deployApp", "validate", "activate"].includes(s.name)
        ? { name: s.name, status: s.name === "deployApp" ? ("waiting" as const) : ("pending" as const), attempts: s.name === "deployApp" ? 1 : 0 }
        : s,
    );
    await ctx.db.patch("provisioningJobs", jobId, { steps, status: "running", currentStep: 7, finishedAt: undefined });
    const instance = (await ctx.db.get("instances", job.instanceId))!;
    await ctx.db.patch("instances", job.instanceId, {
      status: "provisioning",
      resources: { ...instance.resources, deployRunId: `${jobId}-1` },
    });
  });
  return { jobId, sessionId };
}

const post = (t: TestBackend, body: string, signature?: string) =>
  t.fetch("/provisioning-callback", {
    method: "POST",
    body,
    headers: { "content-type": "application/json", ...(signature ? { "X-Brain-Signature": signature } : {}) },
  });

const report = (jobId: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ jobId, step: "deployApp", status: "succeeded", runId: "987654", dispatchId: `${jobId}-1`, timings: { backendMs: 1200 }, ...extra });

async function stepOf(t: TestBackend, jobId: Id<"provisioningJobs">) {
  return t.run(async (ctx) => (await ctx.db.get("provisioningJobs", jobId))!.steps.find((s) => s.name === "deployApp")!);
}

describe("provisioning callback", () => {
  test("a correctly signed report completes the waiting step and the job reaches ready", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { jobId, sessionId } = await waitingJob(t);
    const body = report(jobId);
    const response = await post(t, body, sign(body));
    expect(response.status).toBe(200);
    expect((await stepOf(t, jobId)).status).toBe("succeeded");
    await drain(t);
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
  });

  test("a signed report without a dispatch id is refused and changes nothing", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { jobId } = await waitingJob(t);
    const body = JSON.stringify({ jobId, step: "deployApp", status: "succeeded", runId: "987654" });
    const response = await post(t, body, sign(body));
    expect(response.status).toBe(409);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("STEP_NOT_WAITING");
    expect((await stepOf(t, jobId)).status).toBe("waiting");
  });

  test("when the dispatch named its run, a report from another run is refused", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { jobId } = await waitingJob(t);
    await t.run(async (ctx) => {
      const job = (await ctx.db.get("provisioningJobs", jobId))!;
      const steps = job.steps.map((s) => (s.name === "deployApp" ? { ...s, runId: "111" } : s));
      await ctx.db.patch("provisioningJobs", jobId, { steps });
    });
    const other = report(jobId, { runId: "222" });
    expect((await post(t, other, sign(other))).status).toBe(409);
    expect((await stepOf(t, jobId)).status).toBe("waiting");
    const own = report(jobId, { runId: "111" });
    expect((await post(t, own, sign(own))).status).toBe(200);
    expect((await stepOf(t, jobId)).status).toBe("succeeded");
  });

  test("the run that reports is recorded as the instance's deploy run", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { jobId } = await waitingJob(t);
    const body = report(jobId, { runId: "555" });
    expect((await post(t, body, sign(body))).status).toBe(200);
    await drain(t);
    const instance = await t.run(async (ctx) => ctx.db.get("instances", (await ctx.db.get("provisioningJobs", jobId))!.instanceId));
    expect(instance!.resources.deployRunId).toBe("555");
  });

  test.each([
    ["unsigned", (body: string) => undefined, 401, "CALLBACK_UNSIGNED"],
    ["signed with another secret", (body: string) => sign(body, { secret: "another-secret-0123456789" }), 401, "CALLBACK_BAD_SIGNATURE"],
    ["with a malformed signature header", () => "t=abc,v1=xyz", 401, "CALLBACK_BAD_SIGNATURE"],
    ["signed more than 300 s ago", (body: string) => sign(body, { timestamp: Math.floor(Date.now() / 1000) - 301 }), 400, "CALLBACK_STALE"],
  ])("a callback %s is rejected and changes nothing", async (_label, signer, status, code) => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { jobId } = await waitingJob(t);
    const body = report(jobId);
    const response = await post(t, body, signer(body));
    expect(response.status).toBe(status);
    expect(await response.json()).toMatchObject({ error: { code } });
    expect((await stepOf(t, jobId)).status).toBe("waiting");
  });

  test("a body changed after signing is rejected", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { jobId } = await waitingJob(t);
    const signature = sign(report(jobId, { status: "failed" }));
    const response = await post(t, report(jobId), signature);
    expect(response.status).toBe(401);
    expect((await stepOf(t, jobId)).status).toBe("waiting");
  });

  test("a replayed callback is rejected even when the step waits again", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { jobId } = await waitingJob(t);
    const failed = report(jobId, { status: "failed", message: "build broke" });
    const signature = sign(failed);
    expect((await post(t, failed, signature)).status).toBe(200);
    const step = await stepOf(t, jobId);
    expect(step).toMatchObject({ status: "retrying", lastError: { class: "transient" } });
    // Put the step back to waiting, as the retried dispatch would.
    await t.run(async (ctx) => {
      const job = (await ctx.db.get("provisioningJobs", jobId))!;
      await ctx.db.patch("provisioningJobs", jobId, {
        steps: job.steps.map((s) => (s.name === "deployApp" ? { ...s, status: "waiting" as const } : s)),
      });
    });
    const replay = await post(t, failed, signature);
    expect(replay.status).toBe(400);
    expect(await replay.json()).toMatchObject({ error: { code: "CALLBACK_REPLAYED" } });
    expect((await stepOf(t, jobId)).status).toBe("waiting");
  });

  test("a report that beats the dispatching action's own completion is accepted for the current dispatch", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { jobId } = await waitingJob(t);
    await t.run(async (ctx) => {
      const job = (await ctx.db.get("provisioningJobs", jobId))!;
      await ctx.db.patch("provisioningJobs", jobId, {
        steps: job.steps.map((s) => (s.name === "deployApp" ? { ...s, status: "running" as const } : s)),
      });
    });
    const body = report(jobId);
    expect((await post(t, body, sign(body))).status).toBe(200);
    expect((await stepOf(t, jobId)).status).toBe("succeeded");
    // A report naming another dispatch is still refused while running.
    const other = report(jobId, { dispatchId: `${jobId}-7`, runId: "1" });
    expect((await post(t, other, sign(other))).status).toBe(409);
  });

  test("a report for a step that is not waiting answers 409", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body: status } = await statusOf(t, sessionId);
    const body = report(status.jobId!);
    const response = await post(t, body, sign(body));
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ error: { code: "STEP_NOT_WAITING" } });
  });

  test("a report from an earlier dispatch of the step answers 409 and changes nothing", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const { jobId } = await waitingJob(t);
    const body = report(jobId, { dispatchId: `${jobId}-0` });
    expect((await post(t, body, sign(body))).status).toBe(409);
    expect((await stepOf(t, jobId)).status).toBe("waiting");
  });

  test("a malformed body or unknown job is rejected", async () => {
    const t = setupBackend({ env: { PROVISION_CALLBACK_SECRET: SECRET } });
    const notJson = "not json";
    expect((await post(t, notJson, sign(notJson))).status).toBe(400);
    const wrongShape = JSON.stringify({ jobId: "x", status: "maybe" });
    expect((await post(t, wrongShape, sign(wrongShape))).status).toBe(400);
    const unknown = report("jx7notajob");
    expect((await post(t, unknown, sign(unknown))).status).toBe(404);
  });

  test("without PROVISION_CALLBACK_SECRET callbacks are refused (503)", async () => {
    const t = setupBackend();
    const body = report("anything");
    const response = await post(t, body, sign(body));
    expect(response.status).toBe(503);
  });
});

describe("sealed deploy key", () => {
  test("the workflow's Node aes-256-gcm opens what Brain seals, with the shared secret", async () => {
    const sealed = await sealForWorkflow("prod:happy-otter-123|secret", SECRET);
    const [version, iv, data] = sealed.split(":");
    expect(version).toBe("v1");
    const key = createHash("sha256").update(SECRET).digest();
    const buf = Buffer.from(data, "base64");
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64"));
    decipher.setAuthTag(buf.subarray(buf.length - 16));
    const plain = Buffer.concat([decipher.update(buf.subarray(0, buf.length - 16)), decipher.final()]).toString();
    expect(plain).toBe("prod:happy-otter-123|secret");
  });
});
