// What each step does: one provider operation through an adapter, turned into the
// resources it produced. Names are derived from the instance, so a re-run adopts
// what an earlier attempt made. Secrets leave this module only as ciphertext.
import type { Id } from "../_generated/dataModel";
import type { Config } from "../lib/config";
import { decryptSecret, encryptSecret, sealForWorkflow } from "../lib/crypto";
import type { InstanceResources, StepName, StepOutcome } from "../lib/validators";
import { ProviderError, type Providers } from "../providers/types";

export type StepInput = {
  jobId: Id<"provisioningJobs">;
  instanceId: Id<"instances">;
  correlationId: string;
  plan: string;
  email: string;
  customerName?: string;
  resources: InstanceResources;
};

type StepEnv = { providers: Providers; config: Config; input: StepInput; attempt: number };

/** The DNS-safe, deterministic name of an instance's Convex and Pages projects. */
export function resourceName(prefix: string, instanceId: string): string {
  return `${prefix}-${instanceId.toLowerCase().replace(/[^a-z0-9]/g, "")}`.slice(0, 58);
}

/** Where a tenant deployment serves HTTP actions: the .convex.site twin of its .convex.cloud URL. */
export function siteUrlOf(deploymentUrl: string): string {
  return deploymentUrl.replace(/\.convex\.cloud(\/|$)/, ".convex.site$1").replace(/\/$/, "");
}

function need<K extends keyof InstanceResources>(input: StepInput, key: K): NonNullable<InstanceResources[K]> {
  const value = input.resources[key];
  // The DAG guarantees inputs; a missing one means the record was damaged, and retrying won't help.
  if (value === undefined) throw new ProviderError("brain", "permanent", `missing input ${String(key)}`);
  return value as NonNullable<InstanceResources[K]>;
}

const done = (resources: InstanceResources): StepOutcome => ({ kind: "succeeded", resources });

export const STEP_RUNNERS: Record<StepName, (env: StepEnv) => Promise<StepOutcome>> = {
  async convexProject({ providers, config, input }) {
    const project = await providers.convex.ensureProject({
      instanceId: input.instanceId,
      projectName: resourceName(config.RESOURCE_PREFIX, input.instanceId),
    });
    return done({
      convexProjectId: project.projectId,
      convexProjectName: project.projectName,
      convexDeploymentName: project.deploymentName,
      convexDeploymentUrl: project.deploymentUrl,
      convexDeployKeyCiphertext: await encryptSecret(project.deployKey, config.ENCRYPTION_KEY),
    });
  },

  async workosOrg({ providers, input }) {
    const name = `${input.customerName ?? input.email} (${input.plan})`;
    const { organizationId } = await providers.workos.ensureOrganization({ instanceId: input.instanceId, name });
    return done({ workosOrganizationId: organizationId });
  },

  async pagesProject({ providers, config, input }) {
    const project = await providers.cloudflare.ensurePagesProject({
      instanceId: input.instanceId,
      projectName: resourceName(config.RESOURCE_PREFIX, input.instanceId),
    });
    return done({ pagesProjectName: project.projectName, pagesSubdomain: project.subdomain });
  },

  async workosUser({ providers, input }) {
    const { userId } = await providers.workos.ensureMembership({
      organizationId: need(input, "workosOrganizationId"),
      email: input.email,
      name: input.customerName,
    });
    return done({ workosUserId: userId });
  },

  async stripeEndpoint({ providers, config, input }) {
    const url = `${siteUrlOf(need(input, "convexDeploymentUrl"))}/stripe/webhook`;
    const endpoint = await providers.stripe.ensureWebhookEndpoint({ instanceId: input.instanceId, url });
    return done({
      stripeEndpointId: endpoint.endpointId,
      stripeEndpointSecretCiphertext: await encryptSecret(endpoint.secret, config.ENCRYPTION_KEY),
    });
  },

  async configureBackend({ providers, config, input }) {
    await providers.convex.setEnvironment({
      deploymentName: need(input, "convexDeploymentName"),
      deploymentUrl: need(input, "convexDeploymentUrl"),
      deployKey: await decryptSecret(need(input, "convexDeployKeyCiphertext"), config.ENCRYPTION_KEY),
      variables: {
        BRAIN_INSTANCE_ID: input.instanceId,
        WORKOS_ORGANIZATION_ID: need(input, "workosOrganizationId"),
        STRIPE_WEBHOOK_SECRET: await decryptSecret(need(input, "stripeEndpointSecretCiphertext"), config.ENCRYPTION_KEY),
      },
    });
    return done({ backendConfiguredAt: Date.now() });
  },

  async configureSite({ providers, config, input }) {
    await providers.cloudflare.setEnvironment({
      projectName: need(input, "pagesProjectName"),
      variables: {
        VITE_CONVEX_URL: need(input, "convexDeploymentUrl"),
        WORKOS_ORGANIZATION_ID: need(input, "workosOrganizationId"),
        ...(config.WORKOS_CLIENT_ID ? { WORKOS_CLIENT_ID: config.WORKOS_CLIENT_ID } : {}),
      },
    });
    return done({ siteConfiguredAt: Date.now() });
  },

  async deployApp({ providers, config, input, attempt }) {
    const deployKey = await decryptSecret(need(input, "convexDeployKeyCiphertext"), config.ENCRYPTION_KEY);
    const { runId } = await providers.github.dispatchDeploy({
      jobId: input.jobId,
      instanceId: input.instanceId,
      attempt: String(attempt),
      deploymentName: need(input, "convexDeploymentName"),
      deploymentUrl: need(input, "convexDeploymentUrl"),
      // Sealed with the secret the workflow shares with Brain; the sandbox run needs no key.
      sealedDeployKey: config.PROVISION_CALLBACK_SECRET ? await sealForWorkflow(deployKey, config.PROVISION_CALLBACK_SECRET) : "",
      pagesProjectName: need(input, "pagesProjectName"),
    });
    return { kind: "waiting", resources: { deployRunId: runId }, deadlineMs: config.STEP_DEADLINE_MS_DEPLOYAPP };
  },

  async validate({ providers, config, input }) {
    const deploymentUrl = need(input, "convexDeploymentUrl");
    const deployKey = await decryptSecret(need(input, "convexDeployKeyCiphertext"), config.ENCRYPTION_KEY);
    const environment = await providers.convex.getEnvironment({ deploymentUrl, deployKey });
    const configured: { ok: boolean; detail: string } =
      environment.BRAIN_INSTANCE_ID === input.instanceId
        ? { ok: true, detail: "backend configuration present" }
        : { ok: false, detail: `Convex deployment ${need(input, "convexDeploymentName")} is missing its configuration` };
    const probes = await Promise.all([
      providers.convex.probeDeployment({ deploymentName: need(input, "convexDeploymentName"), deploymentUrl }),
      providers.workos.probeOrganization({ organizationId: need(input, "workosOrganizationId") }),
      providers.cloudflare.probePagesProject({ projectName: need(input, "pagesProjectName") }),
      providers.stripe.probeWebhookEndpoint({ endpointId: need(input, "stripeEndpointId") }),
    ]);
    const failing = [configured, ...probes].filter((p) => !p.ok).map((p) => p.detail);
    if (failing.length > 0) throw new ProviderError("brain", "permanent", `validation failed: ${failing.join("; ")}`);
    return done({ validatedAt: Date.now() });
  },

  async activate() {
    return done({});
  },
};
