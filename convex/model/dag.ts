// A job's step graph, read off the registry: a step starts as soon as
// everything it needs succeeded.
import type { JobKind, StepName, StepState } from "../lib/validators";
import { JOB_KINDS, STEPS } from "../registry";

/** A new job's steps, all pending: the provision DAG, or a lifecycle job's. */
export function initialSteps(kind: JobKind = "provision"): StepState[] {
  return JOB_KINDS[kind].steps.map((name) => ({ name, status: "pending" as const, attempts: 0 }));
}

/** Pending steps whose inputs have all succeeded. */
export function readySteps(steps: StepState[]): StepName[] {
  const succeeded = new Set(steps.filter((s) => s.status === "succeeded").map((s) => s.name));
  return steps
    .filter((s) => s.status === "pending" && STEPS[s.name].needs.every((need: StepName) => succeeded.has(need)))
    .map((s) => s.name);
}
