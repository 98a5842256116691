// The job engine's transition function: decide(job, event, context) -> { patch, effects }.
// Pure: it reads nothing and writes nothing. The interpreter (jobs.ts) loads the job and the
// circuit rows it needs, calls decide, patches the job once and performs the effects in the
// same transaction. Every way a step can end goes through here: its outcome, its deadline
// (the watchdog and a deploy report's wait alike), a deploy report, a cancel, a manual retry,
// admission, and a circuit wake-up. Tests drive it table by table (tests/decide.test.ts).
import type { Doc } from "../_generated/dataModel";
import { retryDelayMs, type RetryPolicy } from "../lib/backoff";
import type { FailureClass, InstanceResources, JobError, ProviderName, StepName, StepOutcome, StepState } from "../lib/validators";
import { JOB_KINDS, STEPS } from "../registry";
import { afterResult, gate, isProbe, type CircuitRow, type CircuitSettings } from "./circuits";
import { readySteps } from "./dag";

export type Job = Doc<"provisioningJobs">;

export type EngineEvent =
  /** What a step action returned (or how the pool says it died). */
  | { kind: "outcome"; step: StepName; attempt: number; outcome: StepOutcome }
  /** The attempt's deadline passed without a report (watchdog, or a deploy report's wait). */
  | { kind: "deadline"; step: StepName; attempt: number; message: string }
  /** The deploy workflow's report, tied to its dispatch (`<jobId>-<attempt>`) and run. */
  | { kind: "deployReport"; step: StepName; dispatchId?: string; runId: string; status: "succeeded" | "failed"; message?: string }
  | { kind: "cancel"; by: string }
  /** A manual retry; `admit` says whether a slot is free now (else the job queues). */
  | { kind: "retry"; by: string; admit: boolean }
  /** Admission gave the queued job a slot. */
  | { kind: "admit" }
  /** A step parked behind its provider's circuit looks again. */
  | { kind: "circuitWake"; step: StepName; attempt: number };

export type DecideContext = {
  now: number;
  /** The policy a retry starts with (the job keeps the one in force when it started). */
  policy: RetryPolicy;
  circuit: CircuitSettings & { maxWaits: number };
  cleanupDelayMs: number;
  deadlineMs: (step: StepName) => number;
  /** Circuit rows of the providers this event may dispatch to (missing: never written). */
  circuits: Partial<Record<ProviderName, CircuitRow | null>>;
  random: () => number;
};

export type Effect =
  | { kind: "enqueue"; step: StepName; attempt: number; delayMs: number }
  | { kind: "wakeAt"; step: StepName; attempt: number; delayMs: number }
  | { kind: "expireAt"; step: StepName; attempt: number; delayMs: number }
  | { kind: "audit"; action: string; detail?: string; step?: StepName; attempt?: number; delayMs?: number; errorClass?: FailureClass }
  /** Resources that arrive after the job stopped go straight to the instance (for its cleanup). */
  | { kind: "mergeResources"; resources: InstanceResources }
  | { kind: "circuit"; provider: ProviderName; row: CircuitRow }
  /** The job ended: the instance takes what its kind settles on (JOB_KINDS) and what the job made, in one write. */
  | { kind: "syncInstance"; outcome: "succeeded" | "failed" }
  /** A retry: the instance takes the kind's running status again, and the job starts from what it still holds. */
  | { kind: "resumeFromInstance" }
  | { kind: "cancelWork"; step: StepName; workId: string }
  | { kind: "compensate"; delayMs: number }
  | { kind: "cancelCleanup" }
  | { kind: "releaseSlot" }
  | { kind: "queueForAdmission" };

export type Decision =
  | { kind: "applied"; patch: Partial<Job>; effects: Effect[] }
  | { kind: "stale"; reason: string }
  | { kind: "refused"; code: RefusalCode; message: string };

export type RefusalCode = "JOB_NOT_IN_PROGRESS" | "JOB_NOT_FAILED" | "COMPENSATION_IN_PROGRESS" | "NOT_WAITING";

const LIVE = new Set(["running", "retrying", "waiting"]);
const idle = { nextAttemptAt: undefined, deadlineAt: undefined, waitingForCircuit: undefined } as const;

/** A transition under construction: the steps and job fields so far, and the effects. */
class Transition {
  steps: StepState[];
  patch: Partial<Job> = {};
  effects: Effect[] = [];
  circuits: Partial<Record<ProviderName, CircuitRow | null>>;
  constructor(
    readonly job: Job,
    readonly ctx: DecideContext,
  ) {
    this.steps = job.steps;
    this.circuits = { ...ctx.circuits };
  }
  get status(): Job["status"] {
    return this.patch.status ?? this.job.status;
  }
  step(name: StepName): StepState {
    return this.steps.find((s) => s.name === name)!;
  }
  set(name: StepName, fields: Partial<StepState>) {
    this.steps = this.steps.map((s) => (s.name === name ? { ...s, ...fields } : s));
  }
  emit(effect: Effect) {
    this.effects.push(effect);
  }
  audit(action: string, fields: Omit<Extract<Effect, { kind: "audit" }>, "kind" | "action"> = {}) {
    this.emit({ kind: "audit", action, ...fields });
  }
  done(): Decision {
    const currentStep = this.steps.filter((s) => s.status === "succeeded").length;
    return { kind: "applied", patch: { ...this.patch, steps: this.steps, currentStep, updatedAt: this.ctx.now }, effects: this.effects };
  }
}

export function decide(job: Job, event: EngineEvent, ctx: DecideContext): Decision {
  switch (event.kind) {
    case "outcome":
      return onOutcome(job, event.step, event.attempt, event.outcome, ctx);
    case "deadline": {
      const state = job.steps.find((s) => s.name === event.step);
      // A parked step had nothing in flight: its deadline is a wake-up, not a provider failure.
      if (state?.waitingForCircuit) return onCircuitWake(job, event.step, event.attempt, ctx);
      const decision = onOutcome(job, event.step, event.attempt, { kind: "deadline", message: event.message }, ctx);
      // The attempt past its deadline may still wait in its pool: it must not start now.
      if (decision.kind === "applied" && state?.workId) decision.effects.unshift({ kind: "cancelWork", step: event.step, workId: state.workId });
      return decision;
    }
    case "deployReport":
      return onDeployReport(job, event, ctx);
    case "cancel":
      return onCancel(job, event.by, ctx);
    case "retry":
      return onRetry(job, event.admit, ctx);
    case "admit":
      return onAdmit(job, ctx);
    case "circuitWake":
      return onCircuitWake(job, event.step, event.attempt, ctx);
  }
}

function onOutcome(job: Job, name: StepName, attempt: number, outcome: StepOutcome, ctx: DecideContext): Decision {
  const state = job.steps.find((s) => s.name === name);
  if (!state || !LIVE.has(state.status) || state.attempts !== attempt || state.waitingForCircuit) {
    return { kind: "stale", reason: `attempt ${attempt} of ${name} is not current (step ${state?.status} at attempt ${state?.attempts})` };
  }
  const t = new Transition(job, ctx);
  const provider = STEPS[name].provider;
  const row = t.circuits[provider];
  const probe = isProbe(row, job._id, name, attempt);
  // A permanent error or a rate limit means the provider answered: it says nothing about its
  // health. Nor does an attempt of a job that had already stopped, unless it was the probe.
  let tripped = false;
  const answered = outcome.kind === "permanent" || outcome.kind === "rate_limited";
  // The probe's answer, whatever it is, ends the probe: a provider that answered is up.
  if (row !== undefined && (probe || (!answered && job.status === "running"))) {
    const next = afterResult(row, outcome.kind === "transient" || outcome.kind === "deadline", ctx.circuit, ctx.now);
    tripped = next.tripped;
    if (next.changed) {
      t.circuits[provider] = next.row;
      t.emit({ kind: "circuit", provider, row: next.row });
    }
  }

  t.set(name, { workId: undefined });
  if (outcome.kind === "succeeded" || outcome.kind === "waiting") {
    if (Object.keys(outcome.resources).length > 0) {
      // While the job runs, what it makes lives on the job (the instance is written once, at
      // the end); after it stopped, straight on the instance, where cleanup looks.
      if (job.status === "running") t.patch.resources = { ...job.resources, ...outcome.resources };
      else t.emit({ kind: "mergeResources", resources: outcome.resources });
    }
    if (outcome.kind === "waiting") {
      t.set(name, { status: "waiting", nextAttemptAt: undefined, deadlineAt: ctx.now + outcome.deadlineMs, runId: outcome.resources.deployRunId });
      t.emit({ kind: "expireAt", step: name, attempt, delayMs: outcome.deadlineMs });
      t.audit("step.waiting", { step: name, attempt, delayMs: outcome.deadlineMs, detail: `${name} attempt ${attempt}: waiting up to ${outcome.deadlineMs} ms for its report` });
      return t.done();
    }
    t.set(name, { status: "succeeded", finishedAt: ctx.now, ...idle });
    t.audit("step.succeeded", { step: name, attempt, detail: `${name} attempt ${attempt}` });
    if (job.status === "running") dispatchReady(t);
    else recompensate(t, `late result of ${name}`);
    return t.done();
  }

  const error = { class: outcome.kind, message: outcome.message, at: ctx.now };
  if (job.status !== "running") {
    // The job already failed (or was cancelled): record this failure, schedule no retry. A
    // failed attempt may still have acted (a lost response), so clean up once more.
    t.set(name, { status: "failed", finishedAt: ctx.now, lastError: error, ...idle });
    t.audit("step.failed", { step: name, attempt, errorClass: outcome.kind, detail: `${name}: ${outcome.message}` });
    recompensate(t);
    return t.done();
  }
  const policy = job.retryPolicy ?? ctx.policy;
  const attemptsThisRun = state.attempts - (state.attemptsBeforeRetry ?? 0);
  // While the provider's circuit is open a failure does not burn the step's budget, but only
  // for CIRCUIT_MAX_WAITS failures: an outage that never ends still fails the job in the end.
  const waitsOutOutage = tripped && (state.circuitWaits ?? 0) < ctx.circuit.maxWaits;
  if (outcome.kind !== "permanent" && (waitsOutOutage || attemptsThisRun < policy.maxAttempts)) {
    const retryAfter = outcome.kind === "rate_limited" ? outcome.retryAfterMs : undefined;
    const backoff = retryDelayMs(policy, attemptsThisRun, retryAfter, ctx.random);
    const next = state.attempts + 1;
    const budget = waitsOutOutage
      ? { attemptsBeforeRetry: (state.attemptsBeforeRetry ?? 0) + 1, circuitWaits: (state.circuitWaits ?? 0) + 1 }
      : {};
    // Behind a circuit that is not closed the retry is parked, not enqueued: when it wakes,
    // the circuit decides whether it goes (possibly as the one probe) or waits again.
    const g = gate(t.circuits[provider], ctx.circuit, ctx.now + backoff);
    const parked = g.kind === "wait" || g.probe;
    const delay = g.kind === "wait" ? backoff + g.delayMs : backoff;
    t.set(name, {
      status: "retrying",
      attempts: next,
      runId: undefined,
      ...budget,
      lastError: error,
      nextAttemptAt: ctx.now + delay,
      deadlineAt: ctx.now + delay + ctx.deadlineMs(name),
      waitingForCircuit: parked ? true : undefined,
    });
    const timing = { step: name, attempt: next, delayMs: delay };
    t.emit(parked ? { kind: "wakeAt", ...timing } : { kind: "enqueue", ...timing });
    t.audit("step.retry_scheduled", {
      step: name,
      attempt: next,
      delayMs: delay,
      errorClass: outcome.kind,
      detail: `${name} attempt ${next} in ${delay} ms after ${outcome.kind}: ${outcome.message}`,
    });
    return t.done();
  }
  const message = outcome.kind === "permanent" ? outcome.message : `${outcome.message} (gave up after ${attemptsThisRun} attempts)`;
  t.set(name, { status: "failed", finishedAt: ctx.now, lastError: error, ...idle });
  t.audit("step.failed", { step: name, attempt, errorClass: outcome.kind, detail: `${name}: ${message}` });
  failJob(t, { step: name, class: outcome.kind, message }, ctx.cleanupDelayMs);
  return t.done();
}

function onDeployReport(job: Job, report: Extract<EngineEvent, { kind: "deployReport" }>, ctx: DecideContext): Decision {
  const state = job.steps.find((s) => s.name === report.step);
  const refuse = (message: string): Decision => ({ kind: "refused", code: "NOT_WAITING", message });
  if (!state) return refuse(`job ${job._id} has no step ${report.step}`);
  // The dispatch id (job + attempt) ties a report to the current dispatch: a report without
  // one, or from an earlier dispatch, is refused. A fast run may report before the
  // dispatching action's own completion marked the step waiting: its dispatch id proves it.
  const current = `${job._id}-${state.attempts}`;
  if (report.dispatchId !== current) return refuse(`the report is not for ${report.step}'s current dispatch (${current})`);
  const dispatched = state.status === "waiting" || state.status === "running" || (state.status === "retrying" && !state.waitingForCircuit);
  if (!dispatched) return refuse(`${report.step} of job ${job._id} is ${state.status}`);
  // When the dispatch named its run, only that run may report.
  if (state.runId !== undefined && state.runId !== report.runId) return refuse(`run ${report.runId} is not the run dispatched (${state.runId})`);
  const outcome: StepOutcome =
    report.status === "succeeded"
      ? { kind: "succeeded", resources: { deployRunId: report.runId } }
      : { kind: "transient", message: `deploy run ${report.runId} failed: ${report.message ?? "no message"}` };
  const decision = onOutcome(job, report.step, state.attempts, outcome, ctx);
  return decision.kind === "stale" ? refuse(decision.reason) : decision;
}

function onCancel(job: Job, by: string, ctx: DecideContext): Decision {
  if (job.status !== "running" && job.status !== "queued") {
    return { kind: "refused", code: "JOB_NOT_IN_PROGRESS", message: `job ${job._id} is ${job.status}; only a job in progress can be cancelled` };
  }
  const t = new Transition(job, ctx);
  const inFlight = job.steps.find((s) => LIVE.has(s.status) && !s.waitingForCircuit);
  const step = inFlight?.name ?? job.steps.find((s) => s.status !== "succeeded")?.name ?? job.steps[job.steps.length - 1].name;
  // Nothing new starts; a step still running finishes, and if it made something its result
  // schedules one more cleanup. Cleanup starts at once.
  failJob(t, { step, class: "cancelled", message: `cancelled by ${by}` }, 0);
  return t.done();
}

function onRetry(job: Job, admit: boolean, ctx: DecideContext): Decision {
  if (job.status !== "failed") {
    return { kind: "refused", code: "JOB_NOT_FAILED", message: `job ${job._id} is ${job.status}; only a failed job can be retried` };
  }
  if (job.compensationStatus === "running" && (job.cleanupRun?.until ?? 0) > ctx.now) {
    return { kind: "refused", code: "COMPENSATION_IN_PROGRESS", message: `job ${job._id} is being cleaned up; retry once that finishes` };
  }
  const t = new Transition(job, ctx);
  // Once cleanup has started some resources may be gone: every step runs again (the same
  // deterministic names adopt what is left). A cleanup stuck on a failing deletion is
  // abandoned: the retried job owns its resources again.
  const cleanupStarted = job.compensationStatus === "done" || job.compensationStatus === "running";
  if (job.compensationStatus === "running") t.emit({ kind: "cancelCleanup" });
  // A job that queues keeps no step in flight: a step still out when it failed starts over
  // once admitted (its late result is then stale; what it made is adopted by name).
  const restart = (s: StepState) => s.status === "failed" || cleanupStarted || (!admit && LIVE.has(s.status));
  for (const s of job.steps) {
    if (!admit && LIVE.has(s.status) && s.workId) t.emit({ kind: "cancelWork", step: s.name, workId: s.workId });
  }
  t.steps = job.steps.map((s): StepState =>
    restart(s) ? { name: s.name, status: "pending", attempts: s.attempts, attemptsBeforeRetry: s.attempts, startedAt: s.startedAt } : s,
  );
  const retryCount = job.retryCount + 1;
  Object.assign(t.patch, {
    retryCount,
    retryPolicy: ctx.policy,
    error: undefined,
    finishedAt: undefined,
    compensationStatus: undefined,
    compensateAt: undefined,
    cleanupRun: undefined,
  });
  t.audit("job.retried", { detail: `retry ${retryCount}` });
  t.emit({ kind: "resumeFromInstance" });
  if (admit) {
    t.patch.status = "running";
    dispatchReady(t);
  } else {
    // Admitted like any job: it waits its turn behind MAX_ACTIVE_JOBS.
    Object.assign(t.patch, { status: "queued", queuedAt: ctx.now });
    t.audit("job.queued");
    t.emit({ kind: "queueForAdmission" });
  }
  return t.done();
}

function onAdmit(job: Job, ctx: DecideContext): Decision {
  if (job.status !== "queued") return { kind: "stale", reason: `job ${job._id} is ${job.status}, not queued` };
  const t = new Transition(job, ctx);
  t.patch.status = "running";
  t.audit("job.admitted");
  dispatchReady(t);
  return t.done();
}

function onCircuitWake(job: Job, name: StepName, attempt: number, ctx: DecideContext): Decision {
  const state = job.steps.find((s) => s.name === name);
  if (!state || !state.waitingForCircuit || state.attempts !== attempt || job.status !== "running") {
    return { kind: "stale", reason: `${name} attempt ${attempt} is not parked behind a circuit` };
  }
  const t = new Transition(job, ctx);
  go(t, name, attempt, false);
  return t.done();
}

/**
 * Sends attempt `attempt` of a step out now if its provider's circuit lets it (claiming the
 * probe of a half-open circuit), or parks it until the circuit may let it.
 */
function go(t: Transition, name: StepName, attempt: number, fresh: boolean) {
  const { now } = t.ctx;
  const provider = STEPS[name].provider;
  const state = t.step(name);
  const g = gate(t.circuits[provider], t.ctx.circuit, now);
  if (g.kind === "go") {
    if (g.probe) {
      const row: CircuitRow = { ...t.circuits[provider]!, probe: { jobId: t.job._id, step: name, attempt, until: now + t.ctx.deadlineMs(name) } };
      t.circuits[provider] = row;
      t.emit({ kind: "circuit", provider, row });
    }
    t.set(name, {
      status: fresh ? "running" : state.status,
      attempts: attempt,
      startedAt: state.startedAt ?? now,
      nextAttemptAt: undefined,
      deadlineAt: now + t.ctx.deadlineMs(name),
      waitingForCircuit: undefined,
    });
    t.emit({ kind: "enqueue", step: name, attempt, delayMs: 0 });
  } else {
    t.set(name, {
      status: fresh ? "running" : state.status,
      attempts: attempt,
      startedAt: state.startedAt ?? now,
      nextAttemptAt: now + g.delayMs,
      deadlineAt: now + g.delayMs + t.ctx.deadlineMs(name),
      waitingForCircuit: true,
    });
    t.emit({ kind: "wakeAt", step: name, attempt, delayMs: g.delayMs });
  }
  if (fresh) t.audit("step.started", { step: name, attempt, detail: `${name} attempt ${attempt}` });
}

/** Starts every step whose inputs are done; inline steps complete on the spot. */
function dispatchReady(t: Transition) {
  for (;;) {
    const ready = readySteps(t.steps);
    if (ready.length === 0) return;
    let inline = false;
    for (const name of ready) {
      const state = t.step(name);
      if (STEPS[name].runs === "inline") {
        inline = true;
        t.set(name, { status: "succeeded", attempts: state.attempts + 1, startedAt: t.ctx.now, finishedAt: t.ctx.now, ...idle });
        t.audit("step.started", { step: name, attempt: state.attempts + 1, detail: `${name} attempt ${state.attempts + 1}` });
        t.audit("step.succeeded", { step: name, attempt: state.attempts + 1, detail: `${name} attempt ${state.attempts + 1}` });
        // A kind's inline step is its last: it settles the instance (activate, markDeleted, …).
        finish(t);
      } else {
        go(t, name, state.attempts + 1, true);
      }
    }
    if (!inline) return;
  }
}

function finish(t: Transition) {
  Object.assign(t.patch, { status: "succeeded", finishedAt: t.ctx.now });
  t.emit({ kind: "syncInstance", outcome: "succeeded" });
  t.audit("job.succeeded");
  t.emit({ kind: "releaseSlot" });
}

/**
 * The job fails for good: its slot is freed and the instance is told. A provision job's
 * instance is failed and its partial resources are cleaned up after `cleanupDelayMs` (unless
 * retried first); a lifecycle job compensates nothing (its undo would be the very change it
 * was asked for): the lifecycle retries it later. Steps parked behind a circuit never ran
 * this attempt: they end failed too.
 */
function failJob(t: Transition, error: JobError, cleanupDelayMs: number) {
  const compensates = JOB_KINDS[t.job.kind].compensates;
  const wasRunning = t.job.status === "running";
  for (const s of t.steps) {
    if (s.waitingForCircuit) t.set(s.name, { status: "failed", finishedAt: t.ctx.now, ...idle });
    // Work still waiting in its pool starts nothing now (the pool reports it canceled); an
    // attempt already running finishes and reports as usual.
    else if (LIVE.has(s.status) && s.workId) t.emit({ kind: "cancelWork", step: s.name, workId: s.workId });
  }
  Object.assign(t.patch, {
    status: "failed",
    finishedAt: t.ctx.now,
    error,
    queuedAt: undefined,
    ...(compensates ? { compensationStatus: "scheduled", compensateAt: t.ctx.now + cleanupDelayMs } : {}),
  });
  t.emit({ kind: "syncInstance", outcome: "failed" });
  t.audit("job.failed", { step: error.step, errorClass: error.class, detail: `${error.step} (${error.class}): ${error.message}` });
  if (compensates) t.emit({ kind: "compensate", delayMs: cleanupDelayMs });
  // Only a job leaving `running` frees a slot (a queued job held none).
  if (wasRunning) t.emit({ kind: "releaseSlot" });
}

/** A step that ended after its job failed may have made something the cleanup missed. */
function recompensate(t: Transition, why?: string) {
  if (t.job.compensationStatus !== "running" && t.job.compensationStatus !== "done") return;
  Object.assign(t.patch, { compensationStatus: "scheduled", compensateAt: t.ctx.now });
  t.emit({ kind: "compensate", delayMs: 0 });
  if (why) t.audit("job.compensation_scheduled", { detail: why });
}
