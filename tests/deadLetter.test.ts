// The dead-letter list (GET /admin/dead-letter, provisioning:listDeadLetter): jobs that failed
// for good and were neither retried nor cleaned up, oldest first. Jobs are seeded directly.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
import type { CompensationStatus, FailureClass } from "../convex/lib/validators";
import { adminHeaders, setupBackend, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

type Seed = { class: FailureClass; compensationStatus: CompensationStatus; finishedAt: number };

/** Inserts failed jobs (each with its own instance) as the job engine leaves them. */
async function seedFailedJobs(t: TestBackend, seeds: Seed[]): Promise<Id<"provisioningJobs">[]> {
  return t.run(async (ctx) => {
    const customerId = await ctx.db.insert("customers", { email: "ada@example.com", createdAt: 0 });
    const ids: Id<"provisioningJobs">[] = [];
    for (const [i, seed] of seeds.entries()) {
      const instanceId = await ctx.db.insert("instances", {
        customerId,
        checkoutSessionId: `cs_test_dead_${i}`,
        plan: "starter",
        status: "failed",
        resources: {},
        createdAt: seed.finishedAt - 1_000,
      });
      ids.push(
        await ctx.db.insert("provisioningJobs", {
          instanceId,
          kind: "provision",
          status: "failed",
          steps: [],
          totalSteps: 9,
          currentStep: 0,
          retryCount: 0,
          correlationId: `corr-${i}`,
          trigger: "test",
          error: { step: "pagesProject", class: seed.class, message: `${seed.class} ${i}` },
          compensationStatus: seed.compensationStatus,
          compensateAt: seed.finishedAt,
          createdAt: seed.finishedAt - 1_000,
          updatedAt: seed.finishedAt,
          finishedAt: seed.finishedAt,
        }),
      );
    }
    return ids;
  });
}

async function deadLetter(t: TestBackend) {
  const response = await t.fetch("/admin/dead-letter", { headers: adminHeaders() });
  expect(response.status).toBe(200);
  return ((await response.json()) as { jobs: { jobId: string; class: string; failedAt: number }[] }).jobs;
}

describe("dead letter", () => {
  test("cancelled jobs whose cleanup keeps failing, more of them than the list holds, do not hide a job that failed for good", async () => {
    const t = setupBackend();
    const now = Date.now();
    // Cancelled jobs are the operator's own doing: they are never dead letters, even while
    // a deletion of their cleanup keeps failing (compensation stays running).
    const cancelled = Array.from({ length: 250 }, (_, i) => ({
      class: "cancelled" as const,
      compensationStatus: "running" as const,
      finishedAt: now - 100_000 + i,
    }));
    await seedFailedJobs(t, cancelled);
    const [real] = await seedFailedJobs(t, [{ class: "permanent", compensationStatus: "running", finishedAt: now - 50_000 }]);

    const jobs = await deadLetter(t);

    expect(jobs.map((j) => [j.jobId, j.class])).toEqual([[real, "permanent"]]);
  });

  test("lists the oldest failures first across classes and cleanup states, at most the limit", async () => {
    const t = setupBackend();
    const now = Date.now();
    const ids = await seedFailedJobs(t, [
      { class: "transient", compensationStatus: "scheduled", finishedAt: now - 3_000 },
      { class: "permanent", compensationStatus: "running", finishedAt: now - 5_000 },
      { class: "cancelled", compensationStatus: "scheduled", finishedAt: now - 6_000 },
      { class: "deadline", compensationStatus: "scheduled", finishedAt: now - 4_000 },
      { class: "rate_limited", compensationStatus: "running", finishedAt: now - 1_000 },
      { class: "permanent", compensationStatus: "done", finishedAt: now - 9_000 },
    ]);

    expect((await deadLetter(t)).map((j) => j.jobId)).toEqual([ids[1], ids[3], ids[0], ids[4]]);
    const limited = await t.query(internal.provisioning.listDeadLetter, { now, limit: 2 });
    expect(limited.map((j) => j.jobId)).toEqual([ids[1], ids[3]]);
  });
});
