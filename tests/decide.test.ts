// The engine's transition function, driven directly: one row per transition, named
// `state + event → result`. No backend: decide() is pure, so each row is its whole story.
import { describe, expect, test } from "vitest";
import type { Id } from "../convex/_generated/dataModel";
import { PROVISION_STEP_NAMES, type InstanceResources, type StepName, type StepOutcome, type StepState } from "../convex/lib/validators";
import { initialSteps } from "../convex/model/dag";
import { decide, type DecideContext, type Decision, type Effect, type EngineEvent, type Job } from "../convex/model/decide";
import type { CircuitRow } from "../convex/model/circuits";

const NOW = 10_000_000;
const JOB_ID = "job1" as Id<"provisioningJobs">;
const DEADLINE = 300_000;
const CLEANUP_DELAY = 86_400_000;

type StepOverrides = Partial<Record<StepName, Partial<StepState>>>;

function job(fields: Partial<Job> & { stepStates?: StepOverrides } = {}): Job {
  const { stepStates = {}, ...rest } = fields;
  const steps = initialSteps(rest.kind ?? "provision");
  return {
    _id: JOB_ID,
    _creationTime: 0,
    instanceId: "inst1" as Id<"instances">,
    kind: "provision",
    status: "running",
    steps: steps.map((s) => ({ ...s, ...stepStates[s.name] })),
    totalSteps: steps.length,
    currentStep: 0,
    retryCount: 0,
    retryPolicy: { maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 30_000, jitter: 0 },
    correlationId: "evt_1",
    trigger: "stripe:evt_1",
    createdAt: 0,
    updatedAt: 0,
    ...rest,
  };
}

const done = (attempts = 1): Partial<StepState> => ({ status: "succeeded", attempts, finishedAt: NOW - 1 });
const running = (attempts = 1): Partial<StepState> => ({ status: "running", attempts, deadlineAt: NOW + DEADLINE });
const firstThreeDone = { convexProject: done(), workosOrg: done(), pagesProject: done() };
const allDoneUpTo = (last: StepName): StepOverrides => {
  const order: readonly StepName[] = PROVISION_STEP_NAMES;
  return Object.fromEntries(order.slice(0, order.indexOf(last) + 1).map((s) => [s, done()]));
};

function context(circuits: DecideContext["circuits"] = {}): DecideContext {
  return {
    now: NOW,
    policy: { maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 30_000, jitter: 0 },
    circuit: { threshold: 3, cooldownMs: 30_000, maxWaits: 5 },
    cleanupDelayMs: CLEANUP_DELAY,
    deadlineMs: () => DEADLINE,
    circuits,
    random: () => 0.5,
  };
}

const applied = (decision: Decision) => {
  if (decision.kind !== "applied") throw new Error(`expected applied, got ${decision.kind}: ${JSON.stringify(decision)}`);
  return decision;
};
const stepIn = (decision: Decision, name: StepName) => applied(decision).patch.steps!.find((s) => s.name === name)!;
const kinds = (decision: Decision) => applied(decision).effects.map((e) => e.kind);
const effectsOf = <K extends Effect["kind"]>(decision: Decision, kind: K) =>
  applied(decision).effects.filter((e): e is Extract<Effect, { kind: K }> => e.kind === kind);
const audits = (decision: Decision) => effectsOf(decision, "audit").map((e) => e.action);

const ok = (resources: InstanceResources = {}): StepOutcome => ({ kind: "succeeded", resources });
const outcome = (step: StepName, attempt: number, o: StepOutcome): EngineEvent => ({ kind: "outcome", step, attempt, outcome: o });

type Row = { name: string; job: Job; event: EngineEvent; ctx?: DecideContext; expect: (d: Decision) => void };

const rows: Row[] = [
  // Admission
  {
    name: "queued + admit → running; the three independent steps start",
    job: job({ status: "queued" }),
    event: { kind: "admit" },
    expect: (d) => {
      expect(applied(d).patch.status).toBe("running");
      expect(effectsOf(d, "enqueue").map((e) => [e.step, e.attempt, e.delayMs])).toEqual([
        ["convexProject", 1, 0],
        ["workosOrg", 1, 0],
        ["pagesProject", 1, 0],
      ]);
      expect(stepIn(d, "convexProject")).toMatchObject({ status: "running", attempts: 1, deadlineAt: NOW + DEADLINE });
      expect(audits(d)).toEqual(["job.admitted", "step.started", "step.started", "step.started"]);
    },
  },
  {
    name: "running + admit → stale (admitted twice changes nothing)",
    job: job(),
    event: { kind: "admit" },
    expect: (d) => expect(d.kind).toBe("stale"),
  },
  // Step outcomes
  {
    name: "running + success → step succeeded, resources merged, the steps it unblocks start",
    // workosOrg and pagesProject are done: convexProject unblocks configureBackend and configureSite.
    job: job({ stepStates: { convexProject: running(), workosOrg: done(), pagesProject: done(), workosUser: running() } }),
    event: outcome("convexProject", 1, ok({ convexProjectId: "p1" })),
    expect: (d) => {
      expect(stepIn(d, "convexProject")).toMatchObject({ status: "succeeded", finishedAt: NOW });
      // Kept on the job while it runs; the instance is written once, when the job ends.
      expect(applied(d).patch.resources).toEqual({ convexProjectId: "p1" });
      expect(effectsOf(d, "mergeResources")).toEqual([]);
      expect(effectsOf(d, "enqueue").map((e) => e.step)).toEqual(["configureBackend", "configureSite"]);
      expect(applied(d).patch.currentStep).toBe(3);
    },
  },
  {
    name: "running + result of a superseded attempt → stale",
    job: job({ stepStates: { convexProject: running(2) } }),
    event: outcome("convexProject", 1, ok()),
    expect: (d) => expect(d.kind).toBe("stale"),
  },
  {
    name: "running + second result of a step already succeeded → stale",
    job: job({ stepStates: { convexProject: done() } }),
    event: outcome("convexProject", 1, ok()),
    expect: (d) => expect(d.kind).toBe("stale"),
  },
  {
    name: "running + transient failure within budget → retrying, next attempt enqueued after the backoff",
    job: job({ stepStates: { workosOrg: running() } }),
    event: outcome("workosOrg", 1, { kind: "transient", message: "503" }),
    expect: (d) => {
      expect(stepIn(d, "workosOrg")).toMatchObject({ status: "retrying", attempts: 2, nextAttemptAt: NOW + 1_000, lastError: { class: "transient" } });
      expect(effectsOf(d, "enqueue")).toEqual([{ kind: "enqueue", step: "workosOrg", attempt: 2, delayMs: 1_000 }]);
      expect(effectsOf(d, "audit")[0]).toMatchObject({ action: "step.retry_scheduled", attempt: 2, delayMs: 1_000, errorClass: "transient" });
    },
  },
  {
    name: "running + rate limited → the retry waits the provider's retry-after when longer",
    job: job({ stepStates: { workosOrg: running() } }),
    event: outcome("workosOrg", 1, { kind: "rate_limited", message: "429", retryAfterMs: 7_000 }),
    expect: (d) => expect(effectsOf(d, "enqueue")[0].delayMs).toBe(7_000),
  },
  {
    name: "running + transient failure with the budget spent → job failed, cleanup after the delay, slot freed",
    job: job({ stepStates: { workosOrg: running(3) } }),
    event: outcome("workosOrg", 3, { kind: "transient", message: "503" }),
    expect: (d) => {
      expect(applied(d).patch).toMatchObject({ status: "failed", error: { step: "workosOrg", class: "transient" }, compensationStatus: "scheduled" });
      expect(applied(d).patch.error!.message).toContain("gave up after 3 attempts");
      expect(effectsOf(d, "compensate")).toEqual([{ kind: "compensate", delayMs: CLEANUP_DELAY }]);
      expect(effectsOf(d, "syncInstance")).toEqual([{ kind: "syncInstance", outcome: "failed" }]);
      expect(kinds(d)).toEqual(expect.arrayContaining(["syncInstance", "releaseSlot"]));
      expect(effectsOf(d, "enqueue")).toEqual([]);
    },
  },
  {
    name: "running + permanent failure → job failed at once, nothing else starts",
    job: job({ stepStates: { pagesProject: running() } }),
    event: outcome("pagesProject", 1, { kind: "permanent", message: "quota" }),
    expect: (d) => {
      expect(applied(d).patch).toMatchObject({ status: "failed", error: { step: "pagesProject", class: "permanent", message: "quota" } });
      expect(effectsOf(d, "enqueue")).toEqual([]);
    },
  },
  {
    name: "running + waiting (deploy dispatched) → step waits for its report until its deadline",
    job: job({ stepStates: { ...allDoneUpTo("configureSite"), deployApp: running() } }),
    event: outcome("deployApp", 1, { kind: "waiting", resources: { deployRunId: "run9" }, deadlineMs: 60_000 }),
    expect: (d) => {
      expect(stepIn(d, "deployApp")).toMatchObject({ status: "waiting", deadlineAt: NOW + 60_000, runId: "run9" });
      expect(effectsOf(d, "expireAt")).toEqual([{ kind: "expireAt", step: "deployApp", attempt: 1, delayMs: 60_000 }]);
    },
  },
  {
    name: "waiting + deadline → a transient failure of class deadline, retried",
    job: job({ stepStates: { ...allDoneUpTo("configureSite"), deployApp: { status: "waiting", attempts: 1 } } }),
    event: { kind: "deadline", step: "deployApp", attempt: 1, message: "no report" },
    expect: (d) => {
      expect(stepIn(d, "deployApp")).toMatchObject({ status: "retrying", attempts: 2, lastError: { class: "deadline" } });
      expect(effectsOf(d, "enqueue")).toHaveLength(1);
    },
  },
  {
    name: "running + validate succeeds → activate completes inline: job succeeded, instance active, slot freed",
    job: job({ stepStates: { ...allDoneUpTo("deployApp"), validate: running() } }),
    event: outcome("validate", 1, ok({ validatedAt: 1 })),
    expect: (d) => {
      expect(applied(d).patch.status).toBe("succeeded");
      expect(stepIn(d, "activate")).toMatchObject({ status: "succeeded", attempts: 1 });
      expect(effectsOf(d, "syncInstance")).toEqual([{ kind: "syncInstance", outcome: "succeeded" }]);
      expect(effectsOf(d, "releaseSlot")).toHaveLength(1);
      expect(effectsOf(d, "enqueue")).toEqual([]);
      expect(applied(d).patch.currentStep).toBe(9);
    },
  },
  {
    name: "cancelled with validate in flight + validate succeeds → job stays cancelled, instance not activated, no second slot release",
    job: job({
      status: "failed",
      error: { step: "validate", class: "cancelled", message: "cancelled by admin" },
      compensationStatus: "scheduled",
      stepStates: { ...allDoneUpTo("deployApp"), validate: running() },
    }),
    event: outcome("validate", 1, ok({ validatedAt: 1 })),
    expect: (d) => {
      expect(applied(d).patch.status).toBeUndefined();
      expect(stepIn(d, "activate").status).toBe("pending");
      expect(kinds(d)).not.toContain("syncInstance");
      expect(kinds(d)).not.toContain("releaseSlot");
    },
  },
  {
    name: "failed and cleaned up + a late success → cleanup scheduled again for what it made",
    job: job({ status: "failed", compensationStatus: "done", stepStates: { pagesProject: running() } }),
    event: outcome("pagesProject", 1, ok({ pagesProjectName: "brain-x" })),
    expect: (d) => {
      expect(effectsOf(d, "mergeResources")).toEqual([{ kind: "mergeResources", resources: { pagesProjectName: "brain-x" } }]);
      expect(applied(d).patch).toMatchObject({ compensationStatus: "scheduled", compensateAt: NOW });
      expect(effectsOf(d, "compensate")).toEqual([{ kind: "compensate", delayMs: 0 }]);
    },
  },
  {
    name: "failed + a late failure → recorded failed, no retry",
    job: job({ status: "failed", compensationStatus: "scheduled", stepStates: { pagesProject: { status: "retrying", attempts: 2 } } }),
    event: outcome("pagesProject", 2, { kind: "transient", message: "attempt of a stopped job" }),
    expect: (d) => {
      expect(stepIn(d, "pagesProject").status).toBe("failed");
      expect(effectsOf(d, "enqueue")).toEqual([]);
    },
  },
  // Cancel
  {
    name: "running + cancel → failed (cancelled), cleanup at once, slot freed",
    job: job({ stepStates: { convexProject: running() } }),
    event: { kind: "cancel", by: "admin-api" },
    expect: (d) => {
      expect(applied(d).patch).toMatchObject({ status: "failed", error: { step: "convexProject", class: "cancelled" } });
      expect(effectsOf(d, "compensate")).toEqual([{ kind: "compensate", delayMs: 0 }]);
      expect(effectsOf(d, "releaseSlot")).toHaveLength(1);
    },
  },
  {
    name: "running with a retry waiting in its pool + cancel → that retry is cancelled before it starts",
    job: job({ stepStates: { workosOrg: { status: "retrying", attempts: 2, nextAttemptAt: NOW + 5_000, workId: "w9" }, convexProject: running() } }),
    event: { kind: "cancel", by: "admin-api" },
    expect: (d) => expect(effectsOf(d, "cancelWork")).toEqual([{ kind: "cancelWork", step: "workosOrg", workId: "w9" }]),
  },
  {
    name: "queued + cancel → failed (cancelled) without freeing a slot it never held",
    job: job({ status: "queued" }),
    event: { kind: "cancel", by: "admin-api" },
    expect: (d) => {
      expect(applied(d).patch.status).toBe("failed");
      expect(kinds(d)).not.toContain("releaseSlot");
    },
  },
  {
    name: "succeeded + cancel → refused (JOB_NOT_IN_PROGRESS)",
    job: job({ status: "succeeded" }),
    event: { kind: "cancel", by: "admin-api" },
    expect: (d) => expect(d).toMatchObject({ kind: "refused", code: "JOB_NOT_IN_PROGRESS" }),
  },
  // Manual retry
  {
    name: "failed + retry with a free slot → running; failed steps reset and start again",
    job: job({ status: "failed", compensationStatus: "scheduled", stepStates: { ...firstThreeDone, workosUser: { status: "failed", attempts: 3 } } }),
    event: { kind: "retry", by: "admin-api", admit: true },
    expect: (d) => {
      expect(applied(d).patch).toMatchObject({ status: "running", retryCount: 1, compensationStatus: undefined });
      expect(stepIn(d, "workosUser")).toMatchObject({ status: "running", attempts: 4, attemptsBeforeRetry: 3 });
      expect(kinds(d)).toContain("resumeFromInstance");
    },
  },
  {
    name: "failed + retry with every slot taken → queued for admission (MAX_ACTIVE_JOBS holds)",
    job: job({ status: "failed", compensationStatus: "scheduled", stepStates: { workosOrg: { status: "failed", attempts: 3 } } }),
    event: { kind: "retry", by: "admin-api", admit: false },
    expect: (d) => {
      expect(applied(d).patch).toMatchObject({ status: "queued", queuedAt: NOW });
      expect(effectsOf(d, "enqueue")).toEqual([]);
      expect(kinds(d)).toContain("queueForAdmission");
    },
  },
  {
    name: "failed with its cleanup action running + retry → refused (COMPENSATION_IN_PROGRESS)",
    job: job({ status: "failed", compensationStatus: "running", cleanupRun: { token: "r1", until: NOW + 60_000 } }),
    event: { kind: "retry", by: "admin-api", admit: true },
    expect: (d) => expect(d).toMatchObject({ kind: "refused", code: "COMPENSATION_IN_PROGRESS" }),
  },
  {
    name: "failed with a cleanup stuck on a failing deletion + retry → retried; the stuck deletions are cancelled and every step runs again",
    job: job({ status: "failed", compensationStatus: "running", stepStates: { ...firstThreeDone, workosUser: { status: "failed", attempts: 3 } } }),
    event: { kind: "retry", by: "admin-api", admit: true },
    expect: (d) => {
      expect(applied(d).patch.status).toBe("running");
      expect(kinds(d)).toContain("cancelCleanup");
      expect(effectsOf(d, "enqueue").map((e) => e.step)).toEqual(["convexProject", "workosOrg", "pagesProject"]);
    },
  },
  {
    name: "failed with its cleanup run's lease expired (the action died) + retry → retried",
    job: job({ status: "failed", compensationStatus: "running", cleanupRun: { token: "r1", until: NOW - 1 }, stepStates: { workosOrg: { status: "failed", attempts: 3 } } }),
    event: { kind: "retry", by: "admin-api", admit: true },
    expect: (d) => expect(applied(d).patch.status).toBe("running"),
  },
  {
    name: "failed with a step still in flight + retry with every slot taken → queued with no step in flight; its pool work cancelled",
    job: job({
      status: "failed",
      compensationStatus: "scheduled",
      stepStates: { convexProject: { ...running(), workId: "w1" }, workosOrg: done(), pagesProject: { status: "failed", attempts: 1 } },
    }),
    event: { kind: "retry", by: "admin-api", admit: false },
    expect: (d) => {
      expect(applied(d).patch.status).toBe("queued");
      expect(stepIn(d, "convexProject")).toMatchObject({ status: "pending", attempts: 1, attemptsBeforeRetry: 1 });
      expect(stepIn(d, "workosOrg").status).toBe("succeeded");
      expect(effectsOf(d, "cancelWork")).toEqual([{ kind: "cancelWork", step: "convexProject", workId: "w1" }]);
    },
  },
  {
    name: "running + retry → refused (JOB_NOT_FAILED)",
    job: job(),
    event: { kind: "retry", by: "admin-api", admit: true },
    expect: (d) => expect(d).toMatchObject({ kind: "refused", code: "JOB_NOT_FAILED" }),
  },
  // Deploy reports
  {
    name: "waiting + report without a dispatch id → refused",
    job: job({ stepStates: { ...allDoneUpTo("configureSite"), deployApp: { status: "waiting", attempts: 1 } } }),
    event: { kind: "deployReport", step: "deployApp", runId: "42", status: "succeeded" },
    expect: (d) => expect(d).toMatchObject({ kind: "refused", code: "NOT_WAITING" }),
  },
  {
    name: "waiting + report for an earlier dispatch → refused",
    job: job({ stepStates: { ...allDoneUpTo("configureSite"), deployApp: { status: "waiting", attempts: 2 } } }),
    event: { kind: "deployReport", step: "deployApp", dispatchId: `${JOB_ID}-1`, runId: "42", status: "succeeded" },
    expect: (d) => expect(d).toMatchObject({ kind: "refused", code: "NOT_WAITING" }),
  },
  {
    name: "waiting for run 42 + report from run 43 → refused",
    job: job({ stepStates: { ...allDoneUpTo("configureSite"), deployApp: { status: "waiting", attempts: 1, runId: "42" } } }),
    event: { kind: "deployReport", step: "deployApp", dispatchId: `${JOB_ID}-1`, runId: "43", status: "succeeded" },
    expect: (d) => expect(d).toMatchObject({ kind: "refused", code: "NOT_WAITING" }),
  },
  {
    name: "waiting + the current dispatch's report of success → deployApp succeeded, validate starts",
    job: job({ stepStates: { ...allDoneUpTo("configureSite"), workosUser: done(), deployApp: { status: "waiting", attempts: 1, runId: "42" } } }),
    event: { kind: "deployReport", step: "deployApp", dispatchId: `${JOB_ID}-1`, runId: "42", status: "succeeded" },
    expect: (d) => {
      expect(stepIn(d, "deployApp").status).toBe("succeeded");
      expect(effectsOf(d, "enqueue").map((e) => e.step)).toEqual(["validate"]);
    },
  },
  {
    name: "retrying (attempt 2 dispatched) + its dispatch's report, before the dispatching action's own completion → accepted",
    job: job({ stepStates: { ...allDoneUpTo("configureSite"), workosUser: done(), deployApp: { status: "retrying", attempts: 2, nextAttemptAt: NOW - 1 } } }),
    event: { kind: "deployReport", step: "deployApp", dispatchId: `${JOB_ID}-2`, runId: "77", status: "succeeded" },
    expect: (d) => expect(stepIn(d, "deployApp").status).toBe("succeeded"),
  },
  {
    name: "waiting + deadline for an attempt whose work may still wait in its pool → that work is cancelled, the next attempt enqueued",
    job: job({ stepStates: { pagesProject: { ...running(), workId: "w5" } } }),
    event: { kind: "deadline", step: "pagesProject", attempt: 1, message: "past deadline" },
    expect: (d) => {
      expect(effectsOf(d, "cancelWork")).toEqual([{ kind: "cancelWork", step: "pagesProject", workId: "w5" }]);
      expect(effectsOf(d, "enqueue")).toEqual([{ kind: "enqueue", step: "pagesProject", attempt: 2, delayMs: 1_000 }]);
    },
  },
  {
    name: "waiting + the current dispatch's report of failure → retried as transient",
    job: job({ stepStates: { ...allDoneUpTo("configureSite"), deployApp: { status: "waiting", attempts: 1 } } }),
    event: { kind: "deployReport", step: "deployApp", dispatchId: `${JOB_ID}-1`, runId: "42", status: "failed", message: "build broke" },
    expect: (d) => expect(stepIn(d, "deployApp")).toMatchObject({ status: "retrying", lastError: { class: "transient" } }),
  },
  // Lifecycle jobs (kind ≠ provision): the same engine over their own DAG (registry JOB_KINDS).
  {
    name: "queued deprovision + admit → running; only its first deletion starts",
    job: job({ kind: "deprovision", status: "queued" }),
    event: { kind: "admit" },
    expect: (d) => {
      expect(applied(d).patch.status).toBe("running");
      expect(effectsOf(d, "enqueue").map((e) => e.step)).toEqual(["deletePagesProject"]);
    },
  },
  {
    name: "running deprovision + its last deletion succeeds → markDeleted finishes inline: job succeeded, instance settled, slot freed",
    job: job({ kind: "deprovision", stepStates: { deletePagesProject: done(), deleteWorkosOrg: done(), deleteConvexProject: running() } }),
    event: outcome("deleteConvexProject", 1, ok()),
    expect: (d) => {
      expect(applied(d).patch.status).toBe("succeeded");
      expect(stepIn(d, "markDeleted")).toMatchObject({ status: "succeeded", attempts: 1 });
      expect(effectsOf(d, "syncInstance")).toEqual([{ kind: "syncInstance", outcome: "succeeded" }]);
      expect(effectsOf(d, "releaseSlot")).toHaveLength(1);
      expect(effectsOf(d, "enqueue")).toEqual([]);
      expect(audits(d)).toEqual(expect.arrayContaining(["job.succeeded"]));
      expect(applied(d).patch.currentStep).toBe(4);
    },
  },
  {
    name: "running suspend + the second of its two steps succeeds → markSuspended finishes inline",
    job: job({ kind: "suspend", stepStates: { suspendBackend: done(), deactivateMembers: running() } }),
    event: outcome("deactivateMembers", 1, ok()),
    expect: (d) => {
      expect(applied(d).patch.status).toBe("succeeded");
      expect(stepIn(d, "markSuspended").status).toBe("succeeded");
      expect(effectsOf(d, "syncInstance")).toEqual([{ kind: "syncInstance", outcome: "succeeded" }]);
    },
  },
  {
    name: "running deprovision + permanent failure → job failed, instance told, slot freed; nothing compensated",
    job: job({ kind: "deprovision", stepStates: { deletePagesProject: done(), deleteWorkosOrg: running() } }),
    event: outcome("deleteWorkosOrg", 1, { kind: "permanent", message: "403" }),
    expect: (d) => {
      expect(applied(d).patch).toMatchObject({ status: "failed", error: { step: "deleteWorkosOrg", class: "permanent" } });
      // Its undo would be the very change it was asked for: the lifecycle retries it later.
      expect(applied(d).patch.compensationStatus).toBeUndefined();
      expect(applied(d).patch.compensateAt).toBeUndefined();
      expect(effectsOf(d, "compensate")).toEqual([]);
      expect(effectsOf(d, "syncInstance")).toEqual([{ kind: "syncInstance", outcome: "failed" }]);
      expect(effectsOf(d, "releaseSlot")).toHaveLength(1);
      expect(effectsOf(d, "enqueue")).toEqual([]);
    },
  },
  {
    name: "running changePlan + transient failure with the budget spent → job failed without compensation",
    job: job({ kind: "changePlan", stepStates: { applyPlan: running(3) } }),
    event: outcome("applyPlan", 3, { kind: "transient", message: "503" }),
    expect: (d) => {
      expect(applied(d).patch.status).toBe("failed");
      expect(applied(d).patch.compensationStatus).toBeUndefined();
      expect(kinds(d)).not.toContain("compensate");
    },
  },
  {
    name: "running suspend + cancel → failed (cancelled) without compensation",
    job: job({ kind: "suspend", stepStates: { suspendBackend: running(), deactivateMembers: running() } }),
    event: { kind: "cancel", by: "admin-api" },
    expect: (d) => {
      expect(applied(d).patch).toMatchObject({ status: "failed", error: { step: "suspendBackend", class: "cancelled" } });
      expect(applied(d).patch.compensationStatus).toBeUndefined();
      expect(kinds(d)).not.toContain("compensate");
      expect(effectsOf(d, "releaseSlot")).toHaveLength(1);
    },
  },
  {
    name: "failed deprovision + a late success → recorded; no cleanup scheduled (nothing to compensate)",
    job: job({ kind: "deprovision", status: "failed", stepStates: { deletePagesProject: running() } }),
    event: outcome("deletePagesProject", 1, ok()),
    expect: (d) => {
      expect(stepIn(d, "deletePagesProject").status).toBe("succeeded");
      expect(kinds(d)).not.toContain("compensate");
      expect(applied(d).patch.compensationStatus).toBeUndefined();
    },
  },
];

const openRow = (openedAt: number, probe?: CircuitRow["probe"]): CircuitRow => ({ failures: 3, openedAt, ...(probe ? { probe } : {}) });

const circuitRows: Row[] = [
  {
    name: "closed circuit at threshold - 1 + transient failure → circuit opens; the retry is parked, not enqueued",
    job: job({ stepStates: { workosOrg: running() } }),
    event: outcome("workosOrg", 1, { kind: "transient", message: "503" }),
    ctx: context({ workos: { failures: 2 } }),
    expect: (d) => {
      expect(effectsOf(d, "circuit")).toEqual([{ kind: "circuit", provider: "workos", row: { failures: 3, openedAt: NOW } }]);
      expect(effectsOf(d, "enqueue")).toEqual([]);
      expect(effectsOf(d, "wakeAt")[0]).toMatchObject({ step: "workosOrg", attempt: 2 });
      expect(stepIn(d, "workosOrg")).toMatchObject({ status: "retrying", waitingForCircuit: true, circuitWaits: 1 });
    },
  },
  {
    name: "open circuit + a step becomes ready → it is parked until the cool-down ends",
    job: job({ status: "queued" }),
    event: { kind: "admit" },
    ctx: context({ cloudflare: openRow(NOW - 10_000) }),
    expect: (d) => {
      expect(effectsOf(d, "enqueue").map((e) => e.step)).toEqual(["convexProject", "workosOrg"]);
      expect(effectsOf(d, "wakeAt")).toEqual([{ kind: "wakeAt", step: "pagesProject", attempt: 1, delayMs: 20_000 }]);
    },
  },
  {
    name: "half-open circuit without a probe + parked step wakes → it goes as the one probe",
    job: job({ stepStates: { pagesProject: { status: "running", attempts: 1, waitingForCircuit: true } } }),
    event: { kind: "circuitWake", step: "pagesProject", attempt: 1 },
    ctx: context({ cloudflare: openRow(NOW - 40_000) }),
    expect: (d) => {
      expect(effectsOf(d, "enqueue")).toEqual([{ kind: "enqueue", step: "pagesProject", attempt: 1, delayMs: 0 }]);
      expect(effectsOf(d, "circuit")[0].row.probe).toEqual({ jobId: JOB_ID, step: "pagesProject", attempt: 1, until: NOW + DEADLINE });
      expect(stepIn(d, "pagesProject").waitingForCircuit).toBeUndefined();
    },
  },
  {
    name: "half-open circuit with another job's probe in flight + parked step wakes → it keeps waiting",
    job: job({ stepStates: { pagesProject: { status: "running", attempts: 1, waitingForCircuit: true } } }),
    event: { kind: "circuitWake", step: "pagesProject", attempt: 1 },
    ctx: context({ cloudflare: openRow(NOW - 40_000, { jobId: "other", step: "pagesProject", attempt: 1, until: NOW + 1 }) }),
    expect: (d) => {
      expect(effectsOf(d, "enqueue")).toEqual([]);
      expect(effectsOf(d, "wakeAt")).toHaveLength(1);
      expect(stepIn(d, "pagesProject").waitingForCircuit).toBe(true);
    },
  },
  {
    name: "half-open circuit whose probe is past its deadline + parked step wakes → the lost probe is replaced",
    job: job({ stepStates: { pagesProject: { status: "running", attempts: 1, waitingForCircuit: true } } }),
    event: { kind: "circuitWake", step: "pagesProject", attempt: 1 },
    ctx: context({ cloudflare: openRow(NOW - 400_000, { jobId: "other", step: "pagesProject", attempt: 1, until: NOW - 1 }) }),
    expect: (d) => expect(effectsOf(d, "enqueue")).toHaveLength(1),
  },
  {
    name: "half-open + the probe succeeds → circuit closed",
    job: job({ stepStates: { pagesProject: running() } }),
    event: outcome("pagesProject", 1, ok({ pagesProjectName: "p" })),
    ctx: context({ cloudflare: openRow(NOW - 40_000, { jobId: JOB_ID, step: "pagesProject", attempt: 1, until: NOW + 1 }) }),
    expect: (d) => expect(effectsOf(d, "circuit")).toEqual([{ kind: "circuit", provider: "cloudflare", row: { failures: 0 } }]),
  },
  {
    name: "half-open + the probe fails → circuit re-opened now, probe released, the retry parked",
    job: job({ stepStates: { pagesProject: running() } }),
    event: outcome("pagesProject", 1, { kind: "transient", message: "503" }),
    ctx: context({ cloudflare: openRow(NOW - 40_000, { jobId: JOB_ID, step: "pagesProject", attempt: 1, until: NOW + 1 }) }),
    expect: (d) => {
      expect(effectsOf(d, "circuit")).toEqual([{ kind: "circuit", provider: "cloudflare", row: { failures: 4, openedAt: NOW } }]);
      expect(effectsOf(d, "wakeAt")).toHaveLength(1);
      expect(effectsOf(d, "enqueue")).toEqual([]);
    },
  },
  {
    name: "half-open + the probe answers permanent → circuit closed and the probe released (the provider answered)",
    job: job({ stepStates: { pagesProject: running() } }),
    event: outcome("pagesProject", 1, { kind: "permanent", message: "400" }),
    ctx: context({ cloudflare: openRow(NOW - 40_000, { jobId: JOB_ID, step: "pagesProject", attempt: 1, until: NOW + 1 }) }),
    expect: (d) => expect(effectsOf(d, "circuit")).toEqual([{ kind: "circuit", provider: "cloudflare", row: { failures: 0 } }]),
  },
  {
    name: "a permanent failure leaves the circuit alone (the provider answered)",
    job: job({ stepStates: { workosOrg: running() } }),
    event: outcome("workosOrg", 1, { kind: "permanent", message: "400" }),
    ctx: context({ workos: { failures: 2 } }),
    expect: (d) => expect(effectsOf(d, "circuit")).toEqual([]),
  },
  {
    name: "parked step + its deadline → treated as a wake-up, not as a provider failure",
    job: job({ stepStates: { pagesProject: { status: "retrying", attempts: 2, waitingForCircuit: true } } }),
    event: { kind: "deadline", step: "pagesProject", attempt: 2, message: "past deadline" },
    ctx: context({ cloudflare: null }),
    expect: (d) => {
      expect(effectsOf(d, "enqueue")).toEqual([{ kind: "enqueue", step: "pagesProject", attempt: 2, delayMs: 0 }]);
      expect(effectsOf(d, "circuit")).toEqual([]);
    },
  },
  {
    name: "step not parked + circuit wake → stale",
    job: job({ stepStates: { pagesProject: running() } }),
    event: { kind: "circuitWake", step: "pagesProject", attempt: 1 },
    expect: (d) => expect(d.kind).toBe("stale"),
  },
  {
    name: "running with a step parked + cancel → the parked step ends failed with the job",
    job: job({ stepStates: { pagesProject: { status: "retrying", attempts: 2, waitingForCircuit: true } } }),
    event: { kind: "cancel", by: "admin-api" },
    expect: (d) => {
      expect(stepIn(d, "pagesProject")).toMatchObject({ status: "failed", waitingForCircuit: undefined });
      expect(applied(d).patch.status).toBe("failed");
    },
  },
];

describe("decide: job transitions", () => {
  test.each(rows)("$name", ({ job: j, event, ctx, expect: check }) => check(decide(j, event, ctx ?? context())));
});

describe("decide: circuit breaker transitions", () => {
  test.each(circuitRows)("$name", ({ job: j, event, ctx, expect: check }) => check(decide(j, event, ctx ?? context())));
});

describe("decide: purity", () => {
  test("deciding never mutates the job it is given", () => {
    const j = job({ stepStates: { workosOrg: running() } });
    const before = JSON.stringify(j);
    decide(j, outcome("workosOrg", 1, { kind: "transient", message: "503" }), context());
    expect(JSON.stringify(j)).toBe(before);
  });
});
