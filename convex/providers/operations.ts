// Names of the provider operations, shared by the sandbox's fault injection and logs.
import { STEPS } from "../registry";

export const OPERATIONS = [
  "convex.ensureProject",
  "convex.setEnvironment",
  "convex.getEnvironment",
  "convex.probeDeployment",
  "convex.listProjects",
  "convex.deleteProject",
  "convex.pauseDeployment",
  "convex.unpauseDeployment",
  "convex.deliverEvent",
  "convex.probeBackend",
  "convex.createDeployKey",
  "convex.verifyDeployKey",
  "convex.revokeDeployKey",
  "workos.ensureOrganization",
  "workos.ensureMembership",
  "workos.ensureAccess",
  "workos.probeOrganization",
  "workos.listOrganizations",
  "workos.deleteOrganization",
  "workos.setMembershipsActive",
  "cloudflare.ensurePagesProject",
  "cloudflare.setEnvironment",
  "cloudflare.probePagesProject",
  "cloudflare.listPagesProjects",
  "cloudflare.deletePagesProject",
  "cloudflare.probeSite",
  "cloudflare.listPagesDeployments",
  "stripe.listSubscriptions",
  "stripe.retrieveSubscription",
  "stripe.listCheckoutSessions",
  "stripe.listWebhookEndpoints",
  "stripe.deleteWebhookEndpoint",
  "github.dispatchDeploy",
  "resend.sendEmail",
] as const;
export type OperationName = (typeof OPERATIONS)[number];

/** Accepts an operation name or a step name (the registry names each step's operation). */
export function resolveOperation(name: string): OperationName | null {
  if ((OPERATIONS as readonly string[]).includes(name)) return name as OperationName;
  const step = (STEPS as Record<string, { operation?: OperationName }>)[name];
  if (step?.operation) return step.operation;
  // A bare operation name, when only one provider has it (`probeSite`, `probeBackend`).
  const bare = OPERATIONS.filter((operation) => operation.endsWith(`.${name}`));
  return bare.length === 1 ? bare[0] : null;
}
