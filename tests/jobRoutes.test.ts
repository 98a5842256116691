// The admin job routes the operator CLI reads: GET /admin/jobs (a page of jobs, newest first,
// by status) and GET /admin/jobs/:jobId (one job with its steps). Sandbox providers, fake timers.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import { adminHeaders, drain, sendCheckout, setupBackend, statusOf, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

/** One job that succeeded and one that failed on pagesProject (permanent), in that order. */
async function twoJobs(t: TestBackend) {
  const ok = await sendCheckout(t);
  await drain(t);
  await t.mutation(internal.sandbox.injectFault, { operation: "pagesProject", kind: "permanent", times: 1 });
  const bad = await sendCheckout(t);
  await drain(t);
  const succeeded = (await statusOf(t, ok.sessionId)).body;
  const failed = (await statusOf(t, bad.sessionId)).body;
  expect([succeeded.status, failed.status]).toEqual(["ready", "failed"]);
  return { succeededJobId: succeeded.jobId!, failedJobId: failed.jobId! };
}

const get = async (t: TestBackend, path: string, headers: Record<string, string> = adminHeaders()) => {
  const response = await t.fetch(path, { headers });
  return { status: response.status, body: await response.json() };
};

describe("GET /admin/jobs", () => {
  test("lists jobs newest first, and only the failed one with status=failed", async () => {
    const t = setupBackend();
    const { succeededJobId, failedJobId } = await twoJobs(t);
    const all = await get(t, "/admin/jobs");
    expect(all.status).toBe(200);
    expect(all.body.jobs.map((job: { jobId: string }) => job.jobId)).toEqual([failedJobId, succeededJobId]);
    expect(all.body.continueCursor).toBeUndefined();
    const failed = await get(t, "/admin/jobs?status=failed");
    expect(failed.body.jobs).toEqual([
      expect.objectContaining({
        jobId: failedJobId,
        kind: "provision",
        status: "failed",
        error: expect.objectContaining({ step: "pagesProject", class: "permanent" }),
      }),
    ]);
    // A listing carries no steps, resources or customer facts.
    expect(failed.body.jobs[0]).not.toHaveProperty("steps");
    expect(JSON.stringify(all.body)).not.toContain("@example.com");
  });

  test("pages with limit and continueCursor until the last page", async () => {
    const t = setupBackend();
    const { succeededJobId, failedJobId } = await twoJobs(t);
    const first = await get(t, "/admin/jobs?limit=1");
    expect(first.body.jobs.map((job: { jobId: string }) => job.jobId)).toEqual([failedJobId]);
    expect(first.body.continueCursor).toEqual(expect.any(String));
    const second = await get(t, `/admin/jobs?limit=1&cursor=${encodeURIComponent(first.body.continueCursor)}`);
    expect(second.body.jobs.map((job: { jobId: string }) => job.jobId)).toEqual([succeededJobId]);
  });

  test.each([
    ["status=done", "status must be one of queued, running, succeeded, failed"],
    ["limit=0", "limit must be an integer from 1 to 200"],
    ["limit=201", "limit must be an integer from 1 to 200"],
    ["limit=ten", "limit must be an integer from 1 to 200"],
    ["cursor=", "cursor must not be empty"],
    // Found by npm run fuzz: a made-up cursor was a 500 offline.
    ["cursor=%7B%7D", "cursor is not valid for these filters"],
    ["cursor=not-a-cursor", "cursor is not valid for these filters"],
  ])("answers 400 BAD_REQUEST for %s", async (query, message) => {
    const t = setupBackend();
    const answer = await get(t, `/admin/jobs?${query}`);
    expect(answer).toEqual({ status: 400, body: { error: { code: "BAD_REQUEST", message } } });
  });

  test("answers 401 without the admin token, and 405 to a POST", async () => {
    const t = setupBackend();
    for (const headers of [{}, adminHeaders("wrong-token-wrong-token")]) {
      const answer = await get(t, "/admin/jobs", headers);
      expect(answer).toMatchObject({ status: 401, body: { error: { code: "UNAUTHORIZED" } } });
    }
    const post = await t.fetch("/admin/jobs", { method: "POST", headers: adminHeaders() });
    expect(post.status).toBe(405);
  });
});

describe("GET /admin/jobs/:jobId", () => {
  test("shows the job with each step's status, attempts and last error, and is audited", async () => {
    const t = setupBackend();
    const { failedJobId } = await twoJobs(t);
    const answer = await get(t, `/admin/jobs/${failedJobId}`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ jobId: failedJobId, status: "failed", kind: "provision", totalSteps: 9 });
    expect(answer.body.steps).toHaveLength(9);
    expect(answer.body.steps.find((step: { name: string }) => step.name === "pagesProject")).toMatchObject({
      status: "failed",
      attempts: 1,
      lastError: { class: "permanent" },
    });
    const audited = await t.run((ctx) => ctx.db.query("auditLogs").withIndex("by_action", (q) => q.eq("action", "job.read")).collect());
    expect(audited).toHaveLength(1);
  });

  test("follows a retried job to succeeded", async () => {
    const t = setupBackend();
    const { failedJobId } = await twoJobs(t);
    const retry = await t.fetch(`/retry-provisioning/${failedJobId}`, { method: "POST", headers: adminHeaders() });
    expect(retry.status).toBe(202);
    await drain(t);
    const answer = await get(t, `/admin/jobs/${failedJobId}`);
    expect(answer.body).toMatchObject({ status: "succeeded", retryCount: 1 });
    expect(answer.body.steps.every((step: { status: string }) => step.status === "succeeded")).toBe(true);
  });

  test("answers 404 NOT_FOUND for an unknown or malformed id, 400 INVALID_ID for none, 401 without the token", async () => {
    const t = setupBackend();
    const { succeededJobId } = await twoJobs(t);
    const instanceId = (await get(t, `/admin/jobs/${succeededJobId}`)).body.instanceId;
    for (const id of ["not-a-job", instanceId]) {
      expect(await get(t, `/admin/jobs/${id}`)).toMatchObject({ status: 404, body: { error: { code: "NOT_FOUND", message: `no job ${id}` } } });
    }
    expect(await get(t, "/admin/jobs/")).toMatchObject({ status: 400, body: { error: { code: "INVALID_ID" } } });
    expect(await get(t, `/admin/jobs/${succeededJobId}`, {})).toMatchObject({ status: 401, body: { error: { code: "UNAUTHORIZED" } } });
  });
});
