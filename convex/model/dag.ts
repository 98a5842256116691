// The provision job's step graph (ARCHITECTURE.md): what each step needs and which
// provider's pool runs it. A step starts as soon as everything it needs succeeded.
import { STEP_NAMES, type ProviderName, type StepName, type StepState } from "../lib/validators";

export const STEP_NEEDS: Record<StepName, readonly StepName[]> = {
  convexProject: [],
  workosOrg: [],
  pagesProject: [],
  workosUser: ["workosOrg"],
  stripeEndpoint: ["convexProject"],
  configureBackend: ["convexProject", "workosOrg", "stripeEndpoint"],
  configureSite: ["pagesProject", "convexProject", "workosOrg"],
  deployApp: ["configureBackend", "configureSite"],
  validate: ["deployApp", "workosUser"],
  activate: ["validate"],
};

export const STEP_PROVIDER: Record<StepName, ProviderName> = {
  convexProject: "convex",
  workosOrg: "workos",
  pagesProject: "cloudflare",
  workosUser: "workos",
  stripeEndpoint: "stripe",
  configureBackend: "convex",
  configureSite: "cloudflare",
  deployApp: "github",
  validate: "brain",
  activate: "brain",
};

export function initialSteps(): StepState[] {
  return STEP_NAMES.map((name) => ({ name, status: "pending" as const, attempts: 0 }));
}

/** Pending steps whose inputs have all succeeded. */
export function readySteps(steps: StepState[]): StepName[] {
  const succeeded = new Set(steps.filter((s) => s.status === "succeeded").map((s) => s.name));
  return steps
    .filter((s) => s.status === "pending" && STEP_NEEDS[s.name].every((need) => succeeded.has(need)))
    .map((s) => s.name);
}
