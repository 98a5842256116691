// Sandbox adapters: no credentials, resources simulated in Convex (sandbox.ts),
// a configurable latency (SANDBOX_LATENCY_MS) and injectable faults. They keep the
// live adapters' contracts: deterministic names, adopt-on-retry, classified errors.
import type { FunctionReturnType } from "convex/server";
import Stripe from "stripe";
import { internal } from "../_generated/api";
import type { ProviderName } from "../lib/validators";
import { log } from "../lib/log";
import { sha256Hex } from "../lib/crypto";
import { chaosFault } from "./chaos";
import type { OperationName } from "./operations";
import { instanceIdFromName, ownedResource } from "./owned";
import { logProbeFailure } from "./probe";
import { checkoutFromAttributes, pageAfter, subscriptionFromAttributes } from "./stripe";
import {
  ProviderError,
  type ProbeOutcome,
  type ProbeTarget,
  type ProviderEnv,
  type Providers,
  type ResourceProbe,
} from "./types";

type Resource = { externalId: string; name: string; attributes: Record<string, string> };
type Call = {
  operation: OperationName;
  kind: string;
  name: string;
  action: "ensure" | "update" | "get" | "getById" | "delete";
  attributes?: Record<string, string>;
  /** `update` only: attributes to drop. */
  removeAttributes?: string[];
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function call(env: ProviderEnv, call: Call): Promise<Resource | null> {
  const provider = call.operation.split(".")[0] as ProviderName;
  const started = Date.now();
  // The latency stands for the time a provider takes to create or change a resource;
  // reads (probes) answer at once, so a health check over HTTP is never held up by it.
  const writes = call.action === "ensure" || call.action === "update";
  if (writes && env.config.SANDBOX_LATENCY_MS > 0) await sleep(env.config.SANDBOX_LATENCY_MS);
  // Random faults (SANDBOX_FAULT_RATE) hit calls that create or change something.
  const chaos = writes
    ? chaosFault(env.config.SANDBOX_FAULT_RATE, env.config.SANDBOX_FAULT_SEED, `${env.correlationId}:${call.operation}:${call.name}`)
    : null;
  if (chaos === "server_error") throw new ProviderError(provider, "transient", "503: simulated server error");
  if (chaos === "rate_limited") throw new ProviderError(provider, "rate_limited", "429: simulated rate limit", 1_000);
  if (chaos === "timeout") {
    await sleep(env.config.PROVIDER_TIMEOUT_MS);
    throw new ProviderError(provider, "transient", `network error: simulated timeout after ${env.config.PROVIDER_TIMEOUT_MS} ms`);
  }
  const result = await env.ctx.runMutation(internal.sandbox.applyOperation, { ...call, provider });
  // The provider acted, but its answer never arrived.
  if (chaos === "response_lost" && result.result !== "fault") {
    throw new ProviderError(provider, "transient", "network error: simulated response lost after the provider acted");
  }
  const outcome = result.result === "fault" ? result.fault.kind : "ok";
  if (result.result === "list") throw new Error("unexpected list result");
  log(outcome === "ok" ? "info" : "warn", "provider.call", {
    correlationId: env.correlationId,
    provider,
    operation: call.operation,
    mode: "sandbox",
    outcome,
    durationMs: Date.now() - started,
    attempt: env.attempt ?? 1,
  });
  if (result.result === "fault") {
    throw new ProviderError(provider, result.fault.kind, result.fault.message, result.fault.retryAfterMs);
  }
  return result.resource;
}

/**
 * Every resource of a kind (whose name starts with `prefix`, when given), page by page to the
 * end: an orphan scan must see them all.
 */
async function list(env: ProviderEnv, operation: OperationName, kind: string, prefix?: string): Promise<Resource[]> {
  const provider = operation.split(".")[0] as ProviderName;
  const resources: Resource[] = [];
  let cursor: string | null = null;
  for (;;) {
    const started = Date.now();
    const result: FunctionReturnType<typeof internal.sandbox.applyOperation> = await env.ctx.runMutation(
      internal.sandbox.applyOperation,
      { operation, provider, kind, name: "", action: "list", cursor, ...(prefix ? { prefix } : {}) },
    );
    // One line per page, as a live adapter logs each request.
    log(result.result === "fault" ? "warn" : "info", "provider.call", {
      correlationId: env.correlationId,
      provider,
      operation,
      mode: "sandbox",
      outcome: result.result === "fault" ? result.fault.kind : "ok",
      durationMs: Date.now() - started,
      attempt: env.attempt ?? 1,
    });
    if (result.result === "fault") {
      throw new ProviderError(provider, result.fault.kind, result.fault.message, result.fault.retryAfterMs);
    }
    if (result.result !== "list") return resources;
    resources.push(...result.resources);
    if (result.isDone) return resources;
    cursor = result.continueCursor;
  }
}

async function remove(env: ProviderEnv, operation: OperationName, kind: string, externalId: string): Promise<void> {
  await call(env, { operation, kind, name: externalId, action: "delete" });
}

function mustExist(resource: Resource | null, provider: ProviderName, what: string): Resource {
  if (!resource) throw new ProviderError(provider, "permanent", `${what} not found`, undefined, "not_found");
  return resource;
}

async function probe(
  env: ProviderEnv,
  operation: OperationName,
  kind: string,
  name: string,
  by: "name" | "externalId" = "name",
): Promise<ResourceProbe> {
  // Not found is the definite answer; an injected fault is thrown classified by `call`,
  // as a probe that could not be made (the ResourceProbe rule).
  const resource = await call(env, { operation, kind, name, action: by === "name" ? "get" : "getById" });
  return resource ? { ok: true, detail: `${kind} ${name} exists` } : { ok: false, detail: `${kind} ${name} not found` };
}

/**
 * Health probes of a batch of sandbox tenants: one mutation for the whole batch (a health round
 * costs a call per batch, not per instance); it answers as the tenants' URLs would.
 */
async function probeSandboxTargets(
  env: ProviderEnv,
  operation: "cloudflare.probeSite" | "convex.probeBackend",
  targets: ProbeTarget[],
): Promise<ProbeOutcome[]> {
  if (targets.length === 0) return [];
  const started = Date.now();
  const answers = await env.ctx.runMutation(internal.sandbox.probeTargets, {
    operation,
    targets: targets.map(({ instanceId, name }) => ({ instanceId, name })),
  });
  const ms = Date.now() - started;
  const provider = operation === "convex.probeBackend" ? "convex" : "cloudflare";
  return answers.map((answer, i) => {
    const outcome: ProbeOutcome = { ...answer, ms, detail: answer.ok ? `${answer.status ?? 200} in ${ms} ms` : answer.detail };
    if (!outcome.ok) logProbeFailure(env, { provider, operation }, targets[i], outcome);
    return outcome;
  });
}

/** A sandbox Pages project's `latestDeployment` attribute (absent: a successful one) as the deep check reads it. */
function sandboxDeploymentState(latest: string | undefined): { live: boolean; detail: string } {
  if (latest === "failure" || latest === "canceled") return { live: false, detail: `latest deployment ${latest}` };
  if (latest === undefined || latest === "success") return { live: true, detail: "latest deployment is live" };
  return { live: true, detail: "deploying" };
}

/** Stable short suffix from a name, so simulated deployment names look like Convex's. */
function shortHash(text: string): string {
  let hash = 2166136261;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 16777619);
  return (hash >>> 0).toString(36).padStart(7, "0").slice(0, 7);
}

const cryptoProvider = Stripe.createSubtleCryptoProvider();

/**
 * A sandbox tenant app receiving one forwarded Stripe event, answering as the real one would:
 * 404 when its deployment does not exist, 503 while it is paused, 500 while its
 * STRIPE_WEBHOOK_SECRET is not set yet, 400 when the signature does not verify against it,
 * else it records the event once (a `tenantEvent` named `<deploymentName>:<event id>`; a
 * redelivery finds it) and answers 200. Random faults (SANDBOX_FAULT_RATE) stand for a tenant
 * answering 503 or 429, never answering, or acting on the event but losing its answer. An
 * injected fault (sandbox.injectFault "convex.deliverEvent") is thrown as injected.
 */
async function deliverToSandboxTenant(
  env: ProviderEnv,
  { deploymentName, body, signature }: { deploymentName: string; body: string; signature: string },
): Promise<number> {
  const { config } = env;
  const chaos = chaosFault(config.SANDBOX_FAULT_RATE, config.SANDBOX_FAULT_SEED, `${env.correlationId}:convex.deliverEvent:${deploymentName}`);
  if (chaos === "server_error") return 503;
  if (chaos === "rate_limited") return 429;
  if (chaos === "timeout") {
    await sleep(config.PROVIDER_TIMEOUT_MS);
    throw new ProviderError("convex", "transient", `network error: simulated timeout after ${config.PROVIDER_TIMEOUT_MS} ms`);
  }
  const apply = (args: { kind: string; name: string; action: "get" | "ensure"; attributes?: Record<string, string> }) =>
    env.ctx.runMutation(internal.sandbox.applyOperation, { operation: "convex.deliverEvent", provider: "convex", ...args });
  const found = await apply({ kind: "deployment", name: deploymentName, action: "get" });
  if (found.result === "fault") throw new ProviderError("convex", found.fault.kind, found.fault.message, found.fault.retryAfterMs);
  if (found.result !== "ok") throw new Error("unexpected list result");
  const deployment = found.resource;
  if (!deployment) return 404;
  if (deployment.attributes.paused === "true") return 503;
  const secret = deployment.attributes["env.STRIPE_WEBHOOK_SECRET"];
  if (!secret) return 500;
  let event: { id?: unknown; type?: unknown };
  try {
    event = (await Stripe.webhooks.constructEventAsync(body, signature, secret, undefined, cryptoProvider)) as typeof event;
  } catch {
    return 400; // a bad signature, or a correctly signed body that is not JSON
  }
  if (typeof event.id !== "string" || typeof event.type !== "string") return 400;
  // The latency stands for the tenant's own handling of the event.
  if (config.SANDBOX_LATENCY_MS > 0) await sleep(config.SANDBOX_LATENCY_MS);
  const recorded = await apply({
    kind: "tenantEvent",
    name: `${deploymentName}:${event.id}`,
    action: "ensure",
    attributes: { deploymentName, eventId: event.id, type: event.type, receivedAt: String(Date.now()) },
  });
  if (recorded.result === "fault") throw new ProviderError("convex", recorded.fault.kind, recorded.fault.message, recorded.fault.retryAfterMs);
  if (chaos === "response_lost") {
    throw new ProviderError("convex", "transient", "network error: simulated response lost after the tenant acted");
  }
  return 200;
}

/** Pauses or unpauses a simulated deployment (its `paused` attribute; deliverEvent answers 503 while set). */
async function setPaused(env: ProviderEnv, deploymentName: string, paused: boolean): Promise<void> {
  const updated = await call(env, {
    operation: paused ? "convex.pauseDeployment" : "convex.unpauseDeployment",
    kind: "deployment",
    name: deploymentName,
    action: "update",
    attributes: { paused: String(paused) },
  });
  mustExist(updated, "convex", `deployment ${deploymentName}`);
}

/**
 * A new simulated deploy key for the deployment. Only its SHA-256 is recorded (as the resource's
 * name), so the sandbox's tables never hold a key; verify and revoke find it by that hash.
 */
async function mintSandboxDeployKey(env: ProviderEnv, operation: OperationName, deploymentName: string, keyName?: string): Promise<string> {
  const deployKey = `prod:${deploymentName}|sandbox-${crypto.randomUUID()}`;
  const hash = await sha256Hex(deployKey);
  await call(env, { operation, kind: "deployKey", name: hash, action: "ensure", attributes: { deploymentName, ...(keyName ? { keyName } : {}) } });
  // Keys made under a name can be revoked by it (revokeDeployKeyNamed), as with Convex.
  if (keyName) await call(env, { operation, kind: "deployKeyName", name: `${deploymentName}/${keyName}`, action: "ensure", attributes: { hash } });
  return deployKey;
}

export function sandboxProviders(env: ProviderEnv): Providers {
  return {
    convex: {
      async ensureProject({ instanceId, projectName }) {
        const deploymentName = `sandbox-${shortHash(projectName)}`;
        const resource = await call(env, {
          operation: "convex.ensureProject",
          kind: "project",
          name: projectName,
          action: "ensure",
          attributes: { instanceId, deploymentName, deploymentUrl: `https://${deploymentName}.convex.cloud` },
        });
        const project = mustExist(resource, "convex", `project ${projectName}`);
        await call(env, {
          operation: "convex.ensureProject",
          kind: "deployment",
          name: project.attributes.deploymentName,
          action: "ensure",
          attributes: { projectId: project.externalId },
        });
        // As with Convex, a deploy key cannot be read back: every (re)run mints one.
        const deployKey = await mintSandboxDeployKey(env, "convex.ensureProject", project.attributes.deploymentName);
        return {
          projectId: project.externalId,
          projectName,
          deploymentName: project.attributes.deploymentName,
          deploymentUrl: project.attributes.deploymentUrl,
          deployKey,
        };
      },
      createDeployKey: async ({ deploymentName, name }) => ({
        deployKey: await mintSandboxDeployKey(env, "convex.createDeployKey", deploymentName, name),
      }),
      async verifyDeployKey({ deploymentName, deployKey }) {
        const key = await call(env, { operation: "convex.verifyDeployKey", kind: "deployKey", name: await sha256Hex(deployKey), action: "get" });
        if (!key || key.attributes.deploymentName !== deploymentName) {
          throw new ProviderError("convex", "permanent", "401: The provided admin key was invalid for this instance", undefined, "BadAdminKey");
        }
      },
      async revokeDeployKey({ deployKey }) {
        const key = await call(env, { operation: "convex.revokeDeployKey", kind: "deployKey", name: await sha256Hex(deployKey), action: "get" });
        if (key) await remove(env, "convex.revokeDeployKey", "deployKey", key.externalId);
      },
      async revokeDeployKeyNamed({ deploymentName, name }) {
        const named = await call(env, { operation: "convex.revokeDeployKey", kind: "deployKeyName", name: `${deploymentName}/${name}`, action: "get" });
        if (!named) return;
        const key = await call(env, { operation: "convex.revokeDeployKey", kind: "deployKey", name: named.attributes.hash, action: "get" });
        if (key) await remove(env, "convex.revokeDeployKey", "deployKey", key.externalId);
        await remove(env, "convex.revokeDeployKey", "deployKeyName", named.externalId);
      },
      async setEnvironment({ deploymentName, variables }) {
        const entries = Object.entries(variables);
        const updated = await call(env, {
          operation: "convex.setEnvironment",
          kind: "deployment",
          name: deploymentName,
          action: "update",
          attributes: Object.fromEntries(entries.flatMap(([key, value]) => (value === null ? [] : [[`env.${key}`, value]]))),
          // A null value removes the variable.
          removeAttributes: entries.flatMap(([key, value]) => (value === null ? [`env.${key}`] : [])),
        });
        mustExist(updated, "convex", `deployment ${deploymentName}`);
      },
      // Pausing a paused deployment (or unpausing a running one) is success, as with Convex.
      pauseDeployment: ({ deploymentName }) => setPaused(env, deploymentName, true),
      unpauseDeployment: ({ deploymentName }) => setPaused(env, deploymentName, false),
      async deliverEvent({ deploymentName, body, signature }) {
        const started = Date.now();
        const logCall = (outcome: string) =>
          log(/^2\d\d$/.test(outcome) ? "info" : "warn", "provider.call", {
            correlationId: env.correlationId,
            provider: "convex",
            operation: "convex.deliverEvent",
            mode: "sandbox",
            outcome,
            durationMs: Date.now() - started,
            attempt: env.attempt ?? 1,
          });
        try {
          const status = await deliverToSandboxTenant(env, { deploymentName, body, signature });
          logCall(String(status));
          return { status };
        } catch (error) {
          logCall(error instanceof ProviderError ? error.kind : "error");
          throw error;
        }
      },
      async getEnvironment({ deploymentUrl }) {
        const name = new URL(deploymentUrl).hostname.split(".")[0];
        const deployment = mustExist(
          await call(env, { operation: "convex.getEnvironment", kind: "deployment", name, action: "get" }),
          "convex",
          `deployment ${name}`,
        );
        return Object.fromEntries(
          Object.entries(deployment.attributes)
            .filter(([key]) => key.startsWith("env."))
            .map(([key, value]) => [key.slice(4), value]),
        );
      },
      probeDeployment: ({ deploymentName }) => probe(env, "convex.probeDeployment", "deployment", deploymentName),
      async listProjects() {
        const projects = await list(env, "convex.listProjects", "project");
        return projects
          .filter((p) => instanceIdFromName(env.config.RESOURCE_PREFIX, p.name) !== undefined)
          .map((p) => ownedResource(p.externalId, p.name, instanceIdFromName(env.config.RESOURCE_PREFIX, p.name)));
      },
      probeBackends: (targets) => probeSandboxTargets(env, "convex.probeBackend", targets),
      async deleteProject({ projectId }) {
        const project = await call(env, { operation: "convex.deleteProject", kind: "project", name: projectId, action: "delete" });
        if (project?.attributes.deploymentName) {
          const deployment = await call(env, {
            operation: "convex.deleteProject",
            kind: "deployment",
            name: project.attributes.deploymentName,
            action: "get",
          });
          if (deployment) await remove(env, "convex.deleteProject", "deployment", deployment.externalId);
        }
      },
    },

    workos: {
      async ensureOrganization({ instanceId, name }) {
        const resource = await call(env, {
          operation: "workos.ensureOrganization",
          kind: "organization",
          name: instanceId, // externalId = instance id, the key a retry finds it by
          action: "ensure",
          attributes: { displayName: name, managedBy: env.config.RESOURCE_PREFIX },
        });
        return { organizationId: mustExist(resource, "workos", `organization for ${instanceId}`).externalId };
      },
      async ensureMembership({ organizationId, email }) {
        const user = mustExist(
          await call(env, {
            operation: "workos.ensureMembership",
            kind: "user",
            name: email.toLowerCase(),
            action: "ensure",
          }),
          "workos",
          `user ${email}`,
        );
        await call(env, {
          operation: "workos.ensureMembership",
          kind: "membership",
          name: `${organizationId}:${user.externalId}`,
          action: "ensure",
          // An existing membership is adopted as it is: a suspended (inactive) one stays so.
          attributes: { organizationId, userId: user.externalId, status: "active" },
        });
        return { userId: user.externalId };
      },
      async ensureAccess({ organizationId, email }) {
        const normalized = email.trim().toLowerCase();
        const user = await call(env, { operation: "workos.ensureAccess", kind: "user", name: normalized, action: "get" });
        if (user) {
          await call(env, {
            operation: "workos.ensureAccess",
            kind: "membership",
            name: `${organizationId}:${user.externalId}`,
            action: "ensure",
            // An existing membership is adopted as it is: a suspended (inactive) one stays so.
            attributes: { organizationId, userId: user.externalId, status: "active" },
          });
          return { userId: user.externalId };
        }
        // No user: one pending invitation per organization and email, adopted by a retry.
        const organization = await call(env, {
          operation: "workos.ensureAccess",
          kind: "organization",
          name: organizationId,
          action: "getById",
        });
        mustExist(organization, "workos", `organization ${organizationId}`);
        const invitation = await call(env, {
          operation: "workos.ensureAccess",
          kind: "invitation",
          name: `${organizationId}:${normalized}`,
          action: "ensure",
          attributes: { organizationId, state: "pending" },
        });
        return { invitationId: mustExist(invitation, "workos", `invitation to ${organizationId}`).externalId };
      },
      async setMembershipsActive({ organizationId, active }) {
        const organization = await call(env, {
          operation: "workos.setMembershipsActive",
          kind: "organization",
          name: organizationId,
          action: "getById",
        });
        if (!organization) return { changed: 0 }; // no such organization: nothing to change
        // Memberships are named `<organizationId>:<userId>`: one name range, paged to the end.
        const memberships = await list(env, "workos.setMembershipsActive", "membership", `${organizationId}:`);
        const wanted = active ? "active" : "inactive";
        let changed = 0;
        for (const membership of memberships) {
          // Made before memberships had a status: active.
          const status = membership.attributes.status ?? "active";
          if (status === wanted || status === "pending") continue;
          const updated = await call(env, {
            operation: "workos.setMembershipsActive",
            kind: "membership",
            name: membership.name,
            action: "update",
            attributes: { status: wanted },
          });
          if (updated) changed++;
        }
        return { changed };
      },
      probeOrganization: ({ organizationId }) =>
        probe(env, "workos.probeOrganization", "organization", organizationId, "externalId"),
      async listOrganizations() {
        const orgs = await list(env, "workos.listOrganizations", "organization");
        return orgs
          .filter((o) => o.attributes.managedBy === env.config.RESOURCE_PREFIX)
          // The simulated organization's name is its WorkOS externalId: the instance id.
          .map((o) => ownedResource(o.externalId, o.attributes.displayName ?? o.name, o.name || o.attributes.instanceId));
      },
      deleteOrganization: ({ organizationId }) =>
        remove(env, "workos.deleteOrganization", "organization", organizationId),
    },

    cloudflare: {
      async ensurePagesProject({ instanceId, projectName }) {
        const resource = await call(env, {
          operation: "cloudflare.ensurePagesProject",
          kind: "pagesProject",
          name: projectName,
          action: "ensure",
          attributes: { instanceId, subdomain: `${projectName}.pages.dev` },
        });
        const project = mustExist(resource, "cloudflare", `Pages project ${projectName}`);
        return { projectName, subdomain: project.attributes.subdomain };
      },
      async setEnvironment({ projectName, variables }) {
        const updated = await call(env, {
          operation: "cloudflare.setEnvironment",
          kind: "pagesProject",
          name: projectName,
          action: "update",
          attributes: Object.fromEntries(Object.entries(variables).map(([key, value]) => [`env.${key}`, value])),
        });
        mustExist(updated, "cloudflare", `Pages project ${projectName}`);
      },
      probeSites: (targets) => probeSandboxTargets(env, "cloudflare.probeSite", targets),
      async listPagesDeployments() {
        const prefix = env.config.RESOURCE_PREFIX;
        const projects = await list(env, "cloudflare.listPagesDeployments", "pagesProject", `${prefix}-`);
        return projects.flatMap((p) => {
          const instanceId = instanceIdFromName(prefix, p.name);
          return instanceId === undefined ? [] : [{ name: p.name, instanceId, ...sandboxDeploymentState(p.attributes.latestDeployment) }];
        });
      },
      probePagesProject: ({ projectName }) => probe(env, "cloudflare.probePagesProject", "pagesProject", projectName),
      async listPagesProjects() {
        const projects = await list(env, "cloudflare.listPagesProjects", "pagesProject");
        return projects
          .filter((p) => instanceIdFromName(env.config.RESOURCE_PREFIX, p.name) !== undefined)
          .map((p) => ownedResource(p.name, p.name, instanceIdFromName(env.config.RESOURCE_PREFIX, p.name)));
      },
      async deletePagesProject({ projectName }) {
        const project = await call(env, {
          operation: "cloudflare.deletePagesProject",
          kind: "pagesProject",
          name: projectName,
          action: "get",
        });
        if (project) await remove(env, "cloudflare.deletePagesProject", "pagesProject", project.externalId);
      },
    },

    // Subscriptions and Checkout Sessions are rows seeded by sandbox.seedStripe (name = the
    // Stripe id, attributes as strings, `created` in unix seconds). A list reads every row of
    // its kind (paged) and cuts Stripe's page from it: newest first, after `startingAfter`.
    stripe: {
      async listSubscriptions({ startingAfter, limit }) {
        const rows = await list(env, "stripe.listSubscriptions", "subscription");
        const snapshots = rows.map((row) => subscriptionFromAttributes(row.name, row.attributes));
        return pageAfter(snapshots, (s) => s.subscriptionId, startingAfter, limit);
      },
      async retrieveSubscription({ subscriptionId }) {
        const row = await call(env, { operation: "stripe.retrieveSubscription", kind: "subscription", name: subscriptionId, action: "get" });
        return row ? subscriptionFromAttributes(row.name, row.attributes) : null;
      },
      async listCheckoutSessions({ createdAfter, startingAfter, limit }) {
        const rows = await list(env, "stripe.listCheckoutSessions", "checkoutSession");
        const snapshots = rows.map((row) => checkoutFromAttributes(row.name, row.attributes));
        // Stripe's filters, status=complete and created[gte] (seconds; snapshots carry ms).
        return pageAfter(snapshots, (s) => s.sessionId, startingAfter, limit, (s) => s.status === "complete" && s.created >= createdAfter * 1000);
      },
      async listWebhookEndpoints() {
        const endpoints = await list(env, "stripe.listWebhookEndpoints", "webhookEndpoint");
        return endpoints
          .filter((e) => e.attributes.managedBy === env.config.RESOURCE_PREFIX)
          // The simulated endpoint's name is the instance its metadata names.
          .map((e) => ownedResource(e.externalId, e.attributes.url ?? e.name, e.attributes.instanceId ?? e.name));
      },
      deleteWebhookEndpoint: ({ endpointId }) =>
        remove(env, "stripe.deleteWebhookEndpoint", "webhookEndpoint", endpointId),
    },

    github: {
      async dispatchDeploy({ jobId, attempt, deploymentName, pagesProjectName }) {
        const dispatchId = `${jobId}-${attempt}`;
        const run = mustExist(
          await call(env, {
            operation: "github.dispatchDeploy",
            kind: "workflowRun",
            name: dispatchId,
            action: "ensure",
            attributes: { deploymentName, pagesProjectName },
          }),
          "github",
          "workflow run",
        );
        // No real workflow runs in the sandbox: the "run" reports success through the
        // scheduler after the configured latency, as the workflow's callback would.
        await env.ctx.scheduler.runAfter(env.config.SANDBOX_LATENCY_MS, internal.provisioning.recordDeployReport, {
          jobId: jobId as never,
          step: "deployApp",
          status: "succeeded",
          runId: run.externalId,
          dispatchId,
          reporter: "sandbox:github",
        });
        return { runId: run.externalId };
      },
    },

    resend: {
      async sendEmail({ to, subject, idempotencyKey }) {
        // The idempotency key names the email, so a repeated send finds the first one.
        const email = mustExist(
          await call(env, {
            operation: "resend.sendEmail",
            kind: "email",
            name: idempotencyKey,
            action: "ensure",
            attributes: { to, subject },
          }),
          "resend",
          "email",
        );
        return { id: email.externalId };
      },
    },
  };
}
