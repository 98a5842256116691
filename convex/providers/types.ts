// The adapter interface every provider implements (sandbox or live), and the one
// error type adapters throw. Steps see only these interfaces, never an SDK.
import type { GenericActionCtx } from "convex/server";
import type { DataModel } from "../_generated/dataModel";
import type { Config } from "../lib/config";
import type { CheckoutSummary, FailureClass, ProviderName, SubscriptionSummary } from "../lib/validators";

/** What an adapter may use of the calling action: read and write through functions, schedule. */
export type ProviderCtx = GenericActionCtx<DataModel>;

export type ProviderEnv = {
  ctx: ProviderCtx;
  config: Config;
  correlationId: string;
  /** Which try this is of the work making the calls (a step's attempt, an email's), for the logs. */
  attempt?: number;
};

/** A classified provider failure. Adapters turn every failure into one of these. */
export class ProviderError extends Error {
  constructor(
    readonly provider: ProviderName,
    readonly kind: FailureClass,
    message: string,
    readonly retryAfterMs?: number,
    readonly providerCode?: string,
    /** The HTTP status the provider answered, when there was an answer. */
    readonly status?: number,
  ) {
    super(message);
    this.name = "ProviderError";
  }
}

/** True when the error is the provider answering `status` (404 on a delete means "already gone"). */
export function hasStatus(error: unknown, status: number): error is ProviderError {
  return error instanceof ProviderError && error.status === status;
}

/**
 * Result of asking a provider whether a resource exists and answers.
 *
 * `{ ok: false }` is only for a definite answer that the resource is missing or wrong
 * (a 404, a disabled endpoint, a failed deployment): `validate` fails the job for good on it.
 * A probe that could not be made (network error, timeout, 408, 429, 5xx, a deployment
 * still in progress) must throw a classified ProviderError instead (`networkError`,
 * `errorForStatus` in http.ts), so `validate` retries it and health reports it as unknown.
 */
export type ResourceProbe = { ok: boolean; detail: string };

/**
 * A resource Brain owns in a provider account (by name prefix or managedBy metadata).
 * `id` is what the adapter's delete takes. `instanceId` is the instance it was made for,
 * read from the resource itself (name, externalId or metadata); absent when unreadable.
 */
export type OwnedResource = { id: string; name: string; instanceId?: string };

/** One health probe target: a tenant's site or backend. */
export type ProbeTarget = {
  instanceId: string;
  /** The thread its failure lines carry (the instance's provisioning event), else the caller's. */
  correlationId?: string;
  /** What is fetched: the site URL, or the deployment URL (the adapter appends /version). */
  url: string;
  /** The resource behind it (Pages project or deployment name): what the sandbox looks up. */
  name: string;
};

/**
 * A site or backend probe's answer. Never an exception: a timeout, a refused connection or a
 * non-2xx answer is `ok: false` with the reason; `ms` is the time to the answer (or to giving up).
 */
export type ProbeOutcome = { ok: boolean; detail: string; ms: number; status?: number };

/** A Pages project as the deep check lists it: is its latest production deployment live? */
export type PagesDeploymentState = { name: string; instanceId?: string; live: boolean; detail: string };

export interface ConvexAdapter {
  /** Creates the tenant's project and prod deployment, or adopts the one already under that name. */
  ensureProject(input: { instanceId: string; projectName: string }): Promise<{
    projectId: string;
    projectName: string;
    deploymentName: string;
    deploymentUrl: string;
    deployKey: string;
  }>;
  /** Sets the deployment's variables; a `null` value removes that variable. */
  setEnvironment(input: {
    deploymentName: string;
    deploymentUrl: string;
    deployKey: string;
    variables: Record<string, string | null>;
  }): Promise<void>;
  /** Suspension: Deployment API `POST /api/v1/pause_deployment` (already paused is success). */
  pauseDeployment(input: { deploymentName: string; deploymentUrl: string; deployKey: string }): Promise<void>;
  /** Resume: `POST /api/v1/unpause_deployment` (already running is success). */
  unpauseDeployment(input: { deploymentName: string; deploymentUrl: string; deployKey: string }): Promise<void>;
  /**
   * Forwards one Stripe event to the tenant's HTTP actions: POST `url` with the original body
   * and its `Stripe-Signature`. Resolves with the tenant's HTTP status whatever it is; throws a
   * classified (transient) ProviderError only when no answer came (network error, timeout).
   */
  deliverEvent(input: { deploymentName: string; url: string; body: string; signature: string }): Promise<{ status: number }>;
  /** Reads the deployment's environment back (validation). */
  getEnvironment(input: { deploymentUrl: string; deployKey: string }): Promise<Record<string, string>>;
  /** The deployment exists and its URL answers. */
  probeDeployment(input: { deploymentName: string; deploymentUrl: string }): Promise<ResourceProbe>;
  /**
   * Health: `GET <deployment URL>/version` for every target at once, each expecting 200 within
   * HEALTH_PROBE_TIMEOUT_MS. Results in target order. Tenant URLs, not the management API: no
   * request budget is spent. Operation `convex.probeBackend` (one fault per target).
   */
  probeBackends(targets: ProbeTarget[]): Promise<ProbeOutcome[]>;
  listProjects(): Promise<OwnedResource[]>;
  /** Deletes a project and its deployments; "already gone" is success. */
  deleteProject(input: { projectId: string }): Promise<void>;
  /** Deploy-key rotation: mints a new key on the deployment (`POST /deployments/{name}/create_deploy_key`). */
  createDeployKey(input: { deploymentName: string; name: string }): Promise<{ deployKey: string }>;
  /** A call made with the key (lists the deployment's variables); throws when the deployment refuses it. */
  verifyDeployKey(input: { deploymentName: string; deploymentUrl: string; deployKey: string }): Promise<void>;
  /** Revokes a deploy key (`POST /deployments/{name}/delete_deploy_key`); "already gone" is success. */
  revokeDeployKey(input: { deploymentName: string; deployKey: string }): Promise<void>;
  /** Revokes the key made under `name` (one whose making was never recorded); none by that name is success. */
  revokeDeployKeyNamed(input: { deploymentName: string; name: string }): Promise<void>;
}

/** How the customer gets into their organization: an existing user's membership, or an invitation. */
export type WorkosAccess = { userId: string } | { invitationId: string };

export interface WorkosAdapter {
  ensureOrganization(input: { instanceId: string; name: string }): Promise<{ organizationId: string }>;
  /** Finds (cached) or creates the customer's user and makes it a member of the organization, once. */
  ensureMembership(input: { organizationId: string; email: string; name?: string }): Promise<{ userId: string }>;
  /**
   * Lets the customer sign in to the organization. A WorkOS user with that email already exists:
   * its membership, as `ensureMembership` makes it → `{ userId }`. Otherwise: one pending
   * invitation to the organization for that email (WorkOS emails it), found before one is sent,
   * so a retry never sends a second → `{ invitationId }`.
   */
  ensureAccess(input: { organizationId: string; email: string; name?: string }): Promise<WorkosAccess>;
  probeOrganization(input: { organizationId: string }): Promise<ResourceProbe>;
  /**
   * Suspension and resume: deactivates (or reactivates) every membership of the organization,
   * paging through them; one already in the wanted state is left alone. Returns how many changed.
   */
  setMembershipsActive(input: { organizationId: string; active: boolean }): Promise<{ changed: number }>;
  listOrganizations(): Promise<OwnedResource[]>;
  deleteOrganization(input: { organizationId: string }): Promise<void>;
}

export interface CloudflareAdapter {
  ensurePagesProject(input: { instanceId: string; projectName: string }): Promise<{
    projectName: string;
    subdomain: string;
  }>;
  /** Sets the site's variables for production and preview. */
  setEnvironment(input: { projectName: string; variables: Record<string, string> }): Promise<void>;
  /** The project exists and its latest deployment succeeded (the site is live). */
  probePagesProject(input: { projectName: string }): Promise<ResourceProbe>;
  listPagesProjects(): Promise<OwnedResource[]>;
  /**
   * The deep health check: every Brain-owned Pages project and whether its latest production
   * deployment succeeded, paged through the list endpoint (a few requests per hundred projects,
   * on the provider's request budget). Operation `cloudflare.listPagesDeployments`.
   */
  listPagesDeployments(): Promise<PagesDeploymentState[]>;
  /**
   * Health: `GET <site URL>` for every target at once, each expecting 2xx within
   * HEALTH_PROBE_TIMEOUT_MS (redirects followed). Results in target order; no request budget is
   * spent (the tenant's site, not Cloudflare's API). Operation `cloudflare.probeSite`.
   */
  probeSites(targets: ProbeTarget[]): Promise<ProbeOutcome[]>;
  deletePagesProject(input: { projectName: string }): Promise<void>;
}

/** A subscription as Stripe returned it (reconciliation, and the tie-break of same-second events). */
export type SubscriptionSnapshot = SubscriptionSummary & { /** ms */ created: number };

/** A Checkout Session as Stripe's list returned it (reconciliation looks for paid ones without an instance). */
export type CheckoutSnapshot = CheckoutSummary & {
  status: "open" | "complete" | "expired";
  mode: "payment" | "setup" | "subscription";
  /** ms */
  created: number;
};

/** One page of a Stripe list; pass the last item's id as `startingAfter` for the next one. */
export type StripePage<T> = { data: T[]; hasMore: boolean };

export interface StripeAdapter {
  /** `GET /v1/subscriptions?status=all`, one page (limit up to 100). */
  listSubscriptions(input: { startingAfter?: string; limit?: number }): Promise<StripePage<SubscriptionSnapshot>>;
  /** `GET /v1/subscriptions/:id`; null when Stripe has no such subscription (404). */
  retrieveSubscription(input: { subscriptionId: string }): Promise<SubscriptionSnapshot | null>;
  /** `GET /v1/checkout/sessions?status=complete&created[gte]=`, one page (limit up to 100). */
  listCheckoutSessions(input: { createdAfter: number; startingAfter?: string; limit?: number }): Promise<StripePage<CheckoutSnapshot>>;
  /** Brain-tagged webhook endpoints left by earlier versions (no step makes one now): the orphan scan's. */
  listWebhookEndpoints(): Promise<OwnedResource[]>;
  deleteWebhookEndpoint(input: { endpointId: string }): Promise<void>;
}

export interface GithubAdapter {
  /** Starts the tenant deploy; the run reports back later (a callback, or the sandbox's scheduler). */
  dispatchDeploy(input: {
    jobId: string;
    instanceId: string;
    attempt: string;
    deploymentName: string;
    deploymentUrl: string;
    /** The deploy key, sealed for the workflow (never a plain input). */
    sealedDeployKey: string;
    pagesProjectName: string;
  }): Promise<{ runId?: string }>;
}

export interface ResendAdapter {
  /** Sends one email; the idempotency key makes a repeated send a no-op at Resend. */
  sendEmail(input: { to: string; subject: string; html: string; text: string; idempotencyKey: string }): Promise<{
    id: string;
  }>;
}

export type Providers = {
  convex: ConvexAdapter;
  workos: WorkosAdapter;
  cloudflare: CloudflareAdapter;
  stripe: StripeAdapter;
  github: GithubAdapter;
  resend: ResendAdapter;
};
