// The provision job's step graph, read off the registry: a step starts as soon as
// everything it needs succeeded.
import type { StepName, StepState } from "../lib/validators";
import { STEP_LIST, STEPS } from "../registry";

export function initialSteps(): StepState[] {
  return STEP_LIST.map((name) => ({ name, status: "pending" as const, attempts: 0 }));
}

/** Pending steps whose inputs have all succeeded. */
export function readySteps(steps: StepState[]): StepName[] {
  const succeeded = new Set(steps.filter((s) => s.status === "succeeded").map((s) => s.name));
  return steps
    .filter((s) => s.status === "pending" && STEPS[s.name].needs.every((need: StepName) => succeeded.has(need)))
    .map((s) => s.name);
}
