import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import { adminHeaders, admitNow, drain, sendCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

async function readyInstance(t: TestBackend) {
  const { sessionId } = await sendCheckout(t);
  await drain(t);
  return (await statusOf(t, sessionId)).body;
}

describe("admin authentication", () => {
  test.each([
    ["no Authorization header", {}],
    ["a wrong token", adminHeaders("wrong-token-wrong-token")],
    ["a non-bearer scheme", { Authorization: "Basic dXNlcjpwYXNz" }],
  ])("%s answers 401 JSON on both admin routes", async (_label, headers) => {
    const t = setupBackend();
    const status = await readyInstance(t);
    const health = await t.fetch(`/instance-health/${status.instanceId}`, { headers });
    const retry = await t.fetch(`/retry-provisioning/${status.jobId}`, { method: "POST", headers });
    for (const response of [health, retry]) {
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: { code: "UNAUTHORIZED", message: expect.any(String) } });
    }
  });

  test("repeated failed authentications from one address are throttled with 429 there only; the right token still works from it", async () => {
    const t = setupBackend({ env: { RATE_LIMIT_ADMIN_FAILURES_PER_ADDRESS_PER_MINUTE: "30" } });
    const status = await readyInstance(t);
    const attacker = t.withRequestMetadata({ ip: "203.0.113.7" });
    const codes: number[] = [];
    for (let i = 0; i < 32; i++) {
      codes.push((await attacker.fetch(`/instance-health/${status.instanceId}`, { headers: adminHeaders("guess-guess-guess") })).status);
    }
    expect(codes.slice(0, 30).every((c) => c === 401)).toBe(true);
    expect(codes.slice(30)).toEqual([429, 429]);
    const ok = await attacker.fetch(`/instance-health/${status.instanceId}`, { headers: adminHeaders() });
    expect(ok.status).toBe(200);
    const elsewhere = await t.withRequestMetadata({ ip: "198.51.100.2" }).fetch(`/instance-health/${status.instanceId}`, { headers: adminHeaders("typo-typo-typo-typo") });
    expect(elsewhere.status).toBe(401);
  });

  test("with no ADMIN_API_TOKEN configured the admin API is disabled (503), not open", async () => {
    const t = setupBackend({ env: { ADMIN_API_TOKEN: "" } });
    const response = await t.fetch("/instance-health/anything", { headers: adminHeaders() });
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: { code: "ADMIN_API_NOT_CONFIGURED" } });
  });
});

describe("GET /instance-health/:instanceId", () => {
  test("checks every resource now and reports healthy when all answer", async () => {
    const t = setupBackend();
    const status = await readyInstance(t);
    const response = await t.fetch(`/instance-health/${status.instanceId}`, { headers: adminHeaders() });
    expect(response.status).toBe(200);
    const report = await response.json();
    expect(report.overall).toBe("healthy");
    expect(report.resources.map((r: { resource: string }) => r.resource)).toEqual([
      "convexDeployment",
      "workosOrganization",
      "pagesProject",
    ]);
    const instance = await t.run(async (ctx) => ctx.db.get("instances", status.instanceId as Id<"instances">));
    // One probe is history, never the confirmed status (that moves only with the rounds' hysteresis).
    expect(instance?.healthStatus).toBeUndefined();
    expect(report.healthStatus).toBe("unchecked");
    expect(report.history).toEqual([expect.objectContaining({ overall: "healthy", trigger: "admin-api" })]);
    const audit = await t.query(internal.audit.listForInstance, { instanceId: status.instanceId as Id<"instances"> });
    expect(audit.filter((r) => r.action === "instance.health_checked").map((r) => r.actor)).toEqual(["admin-api"]);
  });

  test("reports degraded when one resource is gone and down when none answers", async () => {
    const t = setupBackend();
    const status = await readyInstance(t);
    await t.run(async (ctx) => {
      const instance = (await ctx.db.get("instances", status.instanceId as Id<"instances">))!;
      const pages = await ctx.db
        .query("sandboxResources")
        .withIndex("by_provider_and_kind_and_name", (q) =>
          q.eq("provider", "cloudflare").eq("kind", "pagesProject").eq("name", instance.resources.pagesProjectName!),
        )
        .unique();
      await ctx.db.delete("sandboxResources", pages!._id);
    });
    const degraded = await (await t.fetch(`/instance-health/${status.instanceId}`, { headers: adminHeaders() })).json();
    expect(degraded.overall).toBe("degraded");
    expect(degraded.resources.find((r: { resource: string }) => r.resource === "pagesProject")).toMatchObject({ ok: false });

    await t.run(async (ctx) => {
      for (const row of await ctx.db.query("sandboxResources").collect()) await ctx.db.delete("sandboxResources", row._id);
    });
    const down = await (await t.fetch(`/instance-health/${status.instanceId}`, { headers: adminHeaders() })).json();
    expect(down.overall).toBe("down");
  });

  test("a provider error during a check marks that resource failing, saying the probe could not be made, instead of erroring the call", async () => {
    const t = setupBackend();
    const status = await readyInstance(t);
    await t.mutation(internal.sandbox.injectFault, { operation: "workos.probeOrganization", kind: "transient", times: 1 });
    const response = await t.fetch(`/instance-health/${status.instanceId}`, { headers: adminHeaders() });
    expect(response.status).toBe(200);
    const report = await response.json();
    expect(report.overall).toBe("degraded");
    expect(report.resources.find((r: { resource: string }) => r.resource === "workosOrganization")).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^probe could not be made \(transient\): .*injected transient fault/),
    });
  });

  test("an unknown or malformed instance id answers 404 JSON and is audited", async () => {
    const t = setupBackend();
    const status = await readyInstance(t);
    const jobIdAsInstance = await t.fetch(`/instance-health/${status.jobId}`, { headers: adminHeaders() });
    const malformed = await t.fetch("/instance-health/not-an-id", { headers: adminHeaders() });
    expect([jobIdAsInstance.status, malformed.status]).toEqual([404, 404]);
    expect(await malformed.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
    const empty = await t.fetch("/instance-health/", { headers: adminHeaders() });
    expect(empty.status).toBe(400);
    const audited = await t.run((ctx) =>
      ctx.db.query("auditLogs").withIndex("by_action", (q) => q.eq("action", "instance.health_not_found")).collect(),
    );
    expect(audited).toHaveLength(2);
  });
});

describe("POST /retry-provisioning/:jobId", () => {
  test("a job that is not failed answers 409 and is left as it was", async () => {
    const t = setupBackend();
    const status = await readyInstance(t);
    const response = await t.fetch(`/retry-provisioning/${status.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ error: { code: "JOB_NOT_FAILED" } });
    const job = await t.run(async (ctx) => ctx.db.get("provisioningJobs", status.jobId as Id<"provisioningJobs">));
    expect(job).toMatchObject({ status: "succeeded", retryCount: 0 });
    const audit = await t.query(internal.audit.listForJob, { jobId: status.jobId as Id<"provisioningJobs"> });
    expect(audit.at(-1)).toMatchObject({ action: "job.retry_refused", actor: "admin-api" });
  });

  test("a running job answers 409", async () => {
    const t = setupBackend();
    const { sessionId } = await sendCheckout(t);
    await admitNow(t);
    const { body } = await statusOf(t, sessionId);
    expect(body.status).toBe("provisioning");
    const response = await t.fetch(`/retry-provisioning/${body.jobId}`, { method: "POST", headers: adminHeaders() });
    expect(response.status).toBe(409);
    await drain(t);
    expect((await statusOf(t, sessionId)).body.status).toBe("ready");
  });

  test("an unknown or malformed job id answers 404 JSON", async () => {
    const t = setupBackend();
    const status = await readyInstance(t);
    const wrongTable = await t.fetch(`/retry-provisioning/${status.instanceId}`, { method: "POST", headers: adminHeaders() });
    const malformed = await t.fetch("/retry-provisioning/%20nope", { method: "POST", headers: adminHeaders() });
    expect([wrongTable.status, malformed.status]).toEqual([404, 404]);
    expect(await wrongTable.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
  });

  test("two retries of one failed job start one run; the second is refused with 409", async () => {
    const t = setupBackend();
    await t.mutation(internal.sandbox.injectFault, { operation: "pagesProject", kind: "permanent", times: 1 });
    const { sessionId } = await sendCheckout(t);
    await drain(t);
    const { body } = await statusOf(t, sessionId);
    const [first, second] = await Promise.all([
      t.fetch(`/retry-provisioning/${body.jobId}`, { method: "POST", headers: adminHeaders() }),
      t.fetch(`/retry-provisioning/${body.jobId}`, { method: "POST", headers: adminHeaders() }),
    ]);
    expect([first.status, second.status].sort()).toEqual([202, 409]);
    await drain(t);
    const after = await statusOf(t, sessionId);
    expect(after.body.status).toBe("ready");
    expect(after.body.steps.find((s) => s.name === "pagesProject")?.attempts).toBe(2);
  });
});
