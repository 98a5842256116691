// Out-of-band changes to the sandbox providers' state (convex/sandbox.ts), for tests that need
// an outage the sandbox adapters would never cause themselves. For probe faults use
// `internal.sandbox.injectFault` (with `instanceId` for one tenant).
import { internal } from "../../convex/_generated/api";
import type { TestBackend } from "../harness";

/**
 * Sets the status of a sandbox Pages project's latest deployment, as the deep check
 * (`cloudflare.listPagesDeployments`) reads it: "failure" or "canceled" are not live; "active"
 * is still deploying. The site itself keeps answering (`probeSite` only needs the project).
 */
export async function setSandboxPagesDeployment(
  t: TestBackend,
  projectName: string,
  status: "success" | "failure" | "canceled" | "active",
): Promise<void> {
  const result = await t.mutation(internal.sandbox.applyOperation, {
    operation: "cloudflare.setEnvironment",
    provider: "cloudflare",
    kind: "pagesProject",
    name: projectName,
    action: "update",
    attributes: { latestDeployment: status },
  });
  if (result.result !== "ok" || !result.resource) throw new Error(`sandbox: no Pages project ${projectName}`);
}

/** Deletes a sandbox WorkOS organization by its id, as if someone removed it in the dashboard. */
export async function deleteSandboxOrganization(t: TestBackend, organizationId: string): Promise<void> {
  const result = await t.mutation(internal.sandbox.applyOperation, {
    operation: "workos.deleteOrganization",
    provider: "workos",
    kind: "organization",
    name: organizationId,
    action: "delete",
  });
  if (result.result !== "ok" || !result.resource) throw new Error(`sandbox: no organization ${organizationId}`);
}
