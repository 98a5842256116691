// The adapter interface every provider implements (sandbox or live), and the one
// error type adapters throw. Steps see only these interfaces, never an SDK.
import type { GenericActionCtx } from "convex/server";
import type { DataModel } from "../_generated/dataModel";
import type { Config } from "../lib/config";
import type { FailureClass, ProviderName } from "../lib/validators";

/** What an adapter may use of the calling action: read and write through functions, schedule. */
export type ProviderCtx = Pick<GenericActionCtx<DataModel>, "runQuery" | "runMutation" | "scheduler">;

export type ProviderEnv = { ctx: ProviderCtx; config: Config; correlationId: string };

/** A classified provider failure. Adapters turn every failure into one of these. */
export class ProviderError extends Error {
  constructor(
    readonly provider: ProviderName,
    readonly kind: FailureClass,
    message: string,
    readonly retryAfterMs?: number,
    readonly providerCode?: string,
  ) {
    super(message);
    this.name = "ProviderError";
  }
}

/** Result of asking a provider whether a resource exists and answers. */
export type ResourceProbe = { ok: boolean; detail: string };

export interface ConvexAdapter {
  /** Creates the tenant's project and prod deployment, or adopts the one already under that name. */
  ensureProject(input: { instanceId: string; projectName: string }): Promise<{
    projectId: string;
    projectName: string;
    deploymentName: string;
    deploymentUrl: string;
    deployKey: string;
  }>;
  setEnvironment(input: {
    deploymentName: string;
    deploymentUrl: string;
    deployKey: string;
    variables: Record<string, string>;
  }): Promise<void>;
  probeDeployment(input: { deploymentName: string }): Promise<ResourceProbe>;
}

export interface WorkosAdapter {
  ensureOrganization(input: { instanceId: string; name: string }): Promise<{ organizationId: string }>;
  /** Finds or creates the customer's user and makes it a member of the organization, once. */
  ensureMembership(input: { organizationId: string; email: string; name?: string }): Promise<{ userId: string }>;
  probeOrganization(input: { organizationId: string }): Promise<ResourceProbe>;
}

export interface CloudflareAdapter {
  ensurePagesProject(input: { instanceId: string; projectName: string }): Promise<{
    projectName: string;
    subdomain: string;
  }>;
  setEnvironment(input: { projectName: string; variables: Record<string, string> }): Promise<void>;
  probePagesProject(input: { projectName: string }): Promise<ResourceProbe>;
}

export interface StripeAdapter {
  ensureWebhookEndpoint(input: { instanceId: string; url: string }): Promise<{ endpointId: string; secret: string }>;
  probeWebhookEndpoint(input: { endpointId: string }): Promise<ResourceProbe>;
}

export interface GithubAdapter {
  /** Starts the tenant deploy; the run reports back later (a callback, or the sandbox's scheduler). */
  dispatchDeploy(input: {
    jobId: string;
    instanceId: string;
    attempt: string;
    deploymentName: string;
    pagesProjectName: string;
  }): Promise<{ runId: string }>;
}

export type Providers = {
  convex: ConvexAdapter;
  workos: WorkosAdapter;
  cloudflare: CloudflareAdapter;
  stripe: StripeAdapter;
  github: GithubAdapter;
};
