// Names of the provider operations, shared by the sandbox's fault injection and logs.
import type { StepName } from "../lib/validators";

export const OPERATIONS = [
  "convex.ensureProject",
  "convex.setEnvironment",
  "convex.getEnvironment",
  "convex.probeDeployment",
  "convex.listProjects",
  "convex.deleteProject",
  "workos.ensureOrganization",
  "workos.ensureMembership",
  "workos.probeOrganization",
  "workos.listOrganizations",
  "workos.deleteOrganization",
  "cloudflare.ensurePagesProject",
  "cloudflare.setEnvironment",
  "cloudflare.probePagesProject",
  "cloudflare.listPagesProjects",
  "cloudflare.deletePagesProject",
  "stripe.ensureWebhookEndpoint",
  "stripe.probeWebhookEndpoint",
  "stripe.listWebhookEndpoints",
  "stripe.deleteWebhookEndpoint",
  "github.dispatchDeploy",
  "resend.sendEmail",
] as const;
export type OperationName = (typeof OPERATIONS)[number];

/** The operation each provider-facing step performs, so faults can be named by step. */
export const STEP_OPERATION: Partial<Record<StepName, OperationName>> = {
  convexProject: "convex.ensureProject",
  workosOrg: "workos.ensureOrganization",
  pagesProject: "cloudflare.ensurePagesProject",
  workosUser: "workos.ensureMembership",
  stripeEndpoint: "stripe.ensureWebhookEndpoint",
  configureBackend: "convex.setEnvironment",
  configureSite: "cloudflare.setEnvironment",
  deployApp: "github.dispatchDeploy",
};

/** Accepts an operation name or a step name; returns the operation, or null when neither. */
export function resolveOperation(name: string): OperationName | null {
  if ((OPERATIONS as readonly string[]).includes(name)) return name as OperationName;
  return STEP_OPERATION[name as StepName] ?? null;
}
