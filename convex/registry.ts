// The one registry: every fact about a step (provider, needs, what it does, its undo, its
// probe, its label) and about a provider (pool, concurrency, request budget, mode and
// credential variables, owned-resource list and delete). The DAG, dispatch, compensation,
// orphan scans, health probes, fault injection, the config schema and the status page all
// read from here. Adding a step or a provider is one entry here plus its adapter.
//
// It is read by every layer, lib/config.ts included, so it imports only leaf modules
// (crypto, validators, the adapter types and step helpers); nothing it imports imports it.
import { components } from "./_generated/api";
import { decryptSecret, encryptSecret, encryptionKeys, sealForWorkflow } from "./lib/crypto";
import type { Config } from "./lib/config";
import { newTenantWebhookSecret } from "./lib/stripeSignature";
import { PROVISION_STEP_NAMES } from "./lib/validators";
import type { InstanceResources, InstanceStatus, JobKind, ProviderName, StepName, StepOutcome } from "./lib/validators";
import { need, planVariables, resourceName, type StepEnv } from "./model/steps";
import type { OperationName } from "./providers/operations";
import { ProviderError, type OwnedResource, type Providers, type ResourceProbe } from "./providers/types";

/** A numeric environment setting: its variable and its default. */
type Setting = { readonly variable: string; readonly default: number };

type ProviderSpec = {
  readonly label: string;
  /** The workpool that runs this provider's steps (declared in convex.config.ts). */
  readonly pool: { readonly name: string; readonly concurrency: Setting };
  /** Live providers only: the request budget (requests per second, paced evenly). */
  readonly rate?: Setting;
  /** Live providers only: the variable that overrides PROVIDER_MODE for this provider. */
  readonly modeVariable?: string;
  /** What live mode needs; a missing one is reported by name before any job starts. */
  readonly credentials: readonly string[];
  /** Repeated transient failures open this provider's circuit. */
  readonly circuit: boolean;
  /** Resources Brain creates per instance: how to list them (by Brain's tags) and delete one. */
  readonly owned?: {
    readonly list: (providers: Providers) => Promise<OwnedResource[]>;
    /** Deletes by the id `list` returns; "already gone" is success. */
    readonly remove: (providers: Providers, resourceId: string) => Promise<void>;
    /** Owned by name only (`<prefix>-<instanceId>`): a name whose rest is not an instance id is someone else's. */
    readonly namedOnly: boolean;
    /** No step makes these any more: every one Brain's tags name is an orphan. */
    readonly retired?: boolean;
  };
};

export const PROVIDERS = {
  convex: {
    label: "Convex",
    pool: { name: "convexPool", concurrency: { variable: "CONCURRENCY_CONVEX", default: 10 } },
    rate: { variable: "RATE_LIMIT_CONVEX_RPS", default: 20 },
    modeVariable: "PROVIDER_MODE_CONVEX",
    credentials: ["CONVEX_TEAM_ID", "CONVEX_TEAM_TOKEN"],
    circuit: true,
    owned: {
      list: (p) => p.convex.listProjects(),
      remove: (p, projectId) => p.convex.deleteProject({ projectId }),
      namedOnly: true,
    },
  },
  workos: {
    label: "WorkOS",
    pool: { name: "workosPool", concurrency: { variable: "CONCURRENCY_WORKOS", default: 10 } },
    rate: { variable: "RATE_LIMIT_WORKOS_RPS", default: 50 },
    modeVariable: "PROVIDER_MODE_WORKOS",
    credentials: ["WORKOS_API_KEY", "WORKOS_CLIENT_ID"],
    circuit: true,
    owned: {
      list: (p) => p.workos.listOrganizations(),
      remove: (p, organizationId) => p.workos.deleteOrganization({ organizationId }),
      namedOnly: false,
    },
  },
  cloudflare: {
    label: "Cloudflare Pages",
    pool: { name: "cloudflarePool", concurrency: { variable: "CONCURRENCY_CLOUDFLARE", default: 5 } },
    rate: { variable: "RATE_LIMIT_CLOUDFLARE_RPS", default: 3.9 },
    modeVariable: "PROVIDER_MODE_CLOUDFLARE",
    credentials: ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"],
    circuit: true,
    owned: {
      list: (p) => p.cloudflare.listPagesProjects(),
      remove: (p, projectName) => p.cloudflare.deletePagesProject({ projectName }),
      namedOnly: true,
    },
  },
  stripe: {
    label: "Stripe",
    pool: { name: "stripePool", concurrency: { variable: "CONCURRENCY_STRIPE", default: 10 } },
    rate: { variable: "RATE_LIMIT_STRIPE_RPS", default: 20 },
    modeVariable: "PROVIDER_MODE_STRIPE",
    credentials: ["STRIPE_SECRET_KEY"],
    circuit: true,
    // No step makes a Stripe resource now (one platform webhook, forwarded to each tenant);
    // webhook endpoints earlier versions made per tenant are still found and removed as orphans.
    owned: {
      list: (p) => p.stripe.listWebhookEndpoints(),
      remove: (p, endpointId) => p.stripe.deleteWebhookEndpoint({ endpointId }),
      namedOnly: false,
      retired: true,
    },
  },
  github: {
    label: "GitHub Actions",
    pool: { name: "githubPool", concurrency: { variable: "CONCURRENCY_GITHUB", default: 5 } },
    rate: { variable: "RATE_LIMIT_GITHUB_RPS", default: 1.3 },
    modeVariable: "PROVIDER_MODE_GITHUB",
    credentials: ["GITHUB_TOKEN", "GITHUB_REPOSITORY", "PROVISION_CALLBACK_SECRET"],
    circuit: true,
  },
  resend: {
    label: "Resend",
    pool: { name: "resendPool", concurrency: { variable: "CONCURRENCY_RESEND", default: 10 } },
    // Resend's documented default was 2 req/s per team (5 today): the safe one (issue #10).
    rate: { variable: "RATE_LIMIT_RESEND_RPS", default: 2 },
    modeVariable: "PROVIDER_MODE_RESEND",
    credentials: ["RESEND_API_KEY", "EMAIL_FROM"],
    circuit: true,
  },
  brain: {
    label: "Brain",
    pool: { name: "brainPool", concurrency: { variable: "CONCURRENCY_BRAIN", default: 10 } },
    credentials: [],
    circuit: false,
  },
} as const satisfies Record<ProviderName, ProviderSpec>;

/** The workpool component of each pool name (Convex needs them declared statically). */
export const POOL_COMPONENTS = {
  convexPool: components.convexPool,
  workosPool: components.workosPool,
  cloudflarePool: components.cloudflarePool,
  stripePool: components.stripePool,
  githubPool: components.githubPool,
  resendPool: components.resendPool,
  brainPool: components.brainPool,
} as const satisfies { [P in ProviderName as (typeof PROVIDERS)[P]["pool"]["name"]]: unknown };

export type LiveProviderName = { [P in ProviderName]: (typeof PROVIDERS)[P] extends { modeVariable: string } ? P : never }[ProviderName];
export type OwnerProviderName = { [P in ProviderName]: (typeof PROVIDERS)[P] extends { owned: object } ? P : never }[ProviderName];

const entries = <K extends string, V>(record: Record<K, V>) => Object.entries(record) as [K, V][];

export const PROVIDER_NAMES = Object.keys(PROVIDERS) as ProviderName[];
export const LIVE_PROVIDERS = PROVIDER_NAMES.filter((p): p is LiveProviderName => "modeVariable" in PROVIDERS[p]);
export const OWNER_PROVIDERS = PROVIDER_NAMES.filter((p): p is OwnerProviderName => "owned" in PROVIDERS[p]);
export const CIRCUIT_PROVIDERS = PROVIDER_NAMES.filter((p) => PROVIDERS[p].circuit);
export const POOL_NAMES = PROVIDER_NAMES.map((p) => PROVIDERS[p].pool.name);

/** Probes a resource a step made: what validation checks and health reports. */
type ProbeSpec = {
  /** The resource's name in health reports. */
  readonly resource: string;
  /** The instance field the probe needs; absent means "not provisioned". */
  readonly requires: keyof InstanceResources;
  /** False for checks only validation makes (health probes what customers use). */
  readonly health: boolean;
  readonly run: (env: { providers: Providers; config: Config; instanceId: string; resources: InstanceResources }) => Promise<ResourceProbe>;
};

type StepSpec = {
  readonly provider: ProviderName;
  readonly needs: readonly StepName[];
  /** What the status page calls it. */
  readonly label: string;
  /** The adapter operation it performs, so a fault can be injected by step name. */
  readonly operation?: OperationName;
  /** The step's own deadline default (STEP_DEADLINE_MS_<STEP> overrides; else STEP_DEADLINE_MS). */
  readonly deadlineMs?: number;
  /**
   * `action`: an internal action on the provider's pool. `inline`: decided inside the
   * completion that makes it ready (no provider call, so no action, pool or completion).
   */
  readonly runs: "action" | "inline";
  readonly run: (env: StepEnv) => Promise<StepOutcome>;
  /** Compensation and deprovisioning: the resource this step made and the fields cleared once it is gone. */
  readonly undo?: {
    readonly provider: OwnerProviderName;
    /** The instance field holding the id that provider's delete takes. */
    readonly recorded: keyof InstanceResources;
    readonly clears: readonly (keyof InstanceResources)[];
  };
  readonly probe?: ProbeSpec;
  /** A deprovision step: the provision step whose undo it runs. */
  readonly deletes?: StepName;
};

const done = (resources: InstanceResources): StepOutcome => ({ kind: "succeeded", resources });

export const STEPS = {
  convexProject: {
    provider: "convex",
    needs: [],
    label: "Backend project",
    operation: "convex.ensureProject",
    runs: "action",
    async run({ providers, config, input }) {
      // A re-run (a retried job starts from what the instance holds) mints a new key: the key it
      // replaces is revoked first, so a re-run never leaves an unrevoked key behind it. Revoking
      // an already revoked key is success, so a retry after a crash here repeats it harmlessly.
      const replaced = input.resources.convexDeployKeyCiphertext;
      if (replaced && input.resources.convexDeploymentName) {
        await providers.convex.revokeDeployKey({
          deploymentName: input.resources.convexDeploymentName,
          deployKey: await decryptSecret(replaced, encryptionKeys(config)),
        });
      }
      const project = await providers.convex.ensureProject({
        instanceId: input.instanceId,
        projectName: resourceName(config.RESOURCE_PREFIX, input.instanceId),
      });
      return done({
        convexProjectId: project.projectId,
        convexProjectName: project.projectName,
        convexDeploymentName: project.deploymentName,
        convexDeploymentUrl: project.deploymentUrl,
        convexDeployKeyCiphertext: await encryptSecret(project.deployKey, encryptionKeys(config)),
      });
    },
    undo: {
      provider: "convex",
      recorded: "convexProjectId",
      // The deploy key goes with the project; what later steps did to it goes too.
      clears: ["convexProjectId", "convexProjectName", "convexDeploymentName", "convexDeploymentUrl", "convexDeployKeyCiphertext", "backendConfiguredAt", "deployRunId"],
    },
    probe: {
      resource: "convexDeployment",
      requires: "convexDeploymentName",
      health: true,
      run: ({ providers, resources }) =>
        providers.convex.probeDeployment({ deploymentName: resources.convexDeploymentName!, deploymentUrl: resources.convexDeploymentUrl! }),
    },
  },

  workosOrg: {
    provider: "workos",
    needs: [],
    label: "Organization",
    operation: "workos.ensureOrganization",
    runs: "action",
    async run({ providers, input }) {
      const name = `${input.customerName ?? input.email} (${input.plan})`;
      const { organizationId } = await providers.workos.ensureOrganization({ instanceId: input.instanceId, name });
      return done({ workosOrganizationId: organizationId });
    },
    // The membership and any invitation go with the organization; the user is the customer's and stays.
    undo: {
      provider: "workos",
      recorded: "workosOrganizationId",
      clears: ["workosOrganizationId", "workosUserId", "workosInvitationId"],
    },
    probe: {
      resource: "workosOrganization",
      requires: "workosOrganizationId",
      health: true,
      run: ({ providers, resources }) => providers.workos.probeOrganization({ organizationId: resources.workosOrganizationId! }),
    },
  },

  pagesProject: {
    provider: "cloudflare",
    needs: [],
    label: "Website",
    operation: "cloudflare.ensurePagesProject",
    runs: "action",
    async run({ providers, config, input }) {
      const project = await providers.cloudflare.ensurePagesProject({
        instanceId: input.instanceId,
        projectName: resourceName(config.RESOURCE_PREFIX, input.instanceId),
      });
      return done({ pagesProjectName: project.projectName, pagesSubdomain: project.subdomain });
    },
    undo: { provider: "cloudflare", recorded: "pagesProjectName", clears: ["pagesProjectName", "pagesSubdomain", "siteConfiguredAt"] },
    probe: {
      resource: "pagesProject",
      requires: "pagesProjectName",
      health: true,
      run: ({ providers, resources }) => providers.cloudflare.probePagesProject({ projectName: resources.pagesProjectName! }),
    },
  },

  workosUser: {
    provider: "workos",
    needs: ["workosOrg"],
    label: "Your account",
    operation: "workos.ensureAccess",
    runs: "action",
    // An existing WorkOS user is added to the organization; anyone else is invited to it (WorkOS
    // emails the invitation, and accepting it makes the user and the membership). The welcome
    // email tells the two apart by workosInvitationId.
    async run({ providers, input }) {
      const access = await providers.workos.ensureAccess({
        organizationId: need(input, "workosOrganizationId"),
        email: input.email,
        name: input.customerName,
      });
      return done("userId" in access ? { workosUserId: access.userId } : { workosInvitationId: access.invitationId });
    },
  },

  configureBackend: {
    provider: "convex",
    needs: ["convexProject", "workosOrg"],
    label: "Backend configuration",
    operation: "convex.setEnvironment",
    runs: "action",
    async run({ providers, config, input }) {
      // The tenant's own Stripe signing secret: Brain forwards the tenant's events signed with it.
      // Made once; a re-run sets the same one again.
      const secretCiphertext =
        input.resources.tenantWebhookSecretCiphertext ?? (await encryptSecret(newTenantWebhookSecret(), encryptionKeys(config)));
      await providers.convex.setEnvironment({
        deploymentName: need(input, "convexDeploymentName"),
        deploymentUrl: need(input, "convexDeploymentUrl"),
        deployKey: await decryptSecret(need(input, "convexDeployKeyCiphertext"), encryptionKeys(config)),
        variables: {
          BRAIN_INSTANCE_ID: input.instanceId,
          BRAIN_PLAN: input.plan,
          WORKOS_ORGANIZATION_ID: need(input, "workosOrganizationId"),
          STRIPE_WEBHOOK_SECRET: await decryptSecret(secretCiphertext, encryptionKeys(config)),
          ...planVariables(config, input.plan),
        },
      });
      return done({ backendConfiguredAt: Date.now(), tenantWebhookSecretCiphertext: secretCiphertext });
    },
    probe: {
      resource: "convexConfiguration",
      requires: "convexDeployKeyCiphertext",
      health: false,
      async run({ providers, config, instanceId, resources }) {
        const deployKey = await decryptSecret(resources.convexDeployKeyCiphertext!, encryptionKeys(config));
        const environment = await providers.convex.getEnvironment({ deploymentUrl: resources.convexDeploymentUrl!, deployKey });
        return environment.BRAIN_INSTANCE_ID === instanceId
          ? { ok: true, detail: "backend configuration present" }
          : { ok: false, detail: `Convex deployment ${resources.convexDeploymentName} is missing its configuration` };
      },
    },
  },

  configureSite: {
    provider: "cloudflare",
    needs: ["pagesProject", "convexProject", "workosOrg"],
    label: "Website configuration",
    operation: "cloudflare.setEnvironment",
    runs: "action",
    async run({ providers, config, input }) {
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
  },

  deployApp: {
    provider: "github",
    needs: ["configureBackend", "configureSite"],
    label: "Application deploy",
    operation: "github.dispatchDeploy",
    // The workflow run reports back; the attempt's deadline covers the whole run.
    deadlineMs: 15 * 60_000,
    runs: "action",
    async run({ providers, config, input, attempt, deadlineMs }) {
      const deployKey = await decryptSecret(need(input, "convexDeployKeyCiphertext"), encryptionKeys(config));
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
      return { kind: "waiting", resources: runId ? { deployRunId: runId } : {}, deadlineMs };
    },
  },

  validate: {
    provider: "brain",
    needs: ["deployApp", "workosUser"],
    label: "Final checks",
    runs: "action",
    async run({ providers, config, input }) {
      // Every probe the registry names. A probe that could not be made throws (transient);
      // only a definite "missing or wrong" answer fails the job for good.
      const probes = STEP_LIST.flatMap((name) => {
        const probe = (STEPS[name] as StepSpec).probe;
        return probe ? [probe] : [];
      });
      for (const probe of probes) need(input, probe.requires);
      const results = await Promise.allSettled(
        probes.map((probe) => probe.run({ providers, config, instanceId: input.instanceId, resources: input.resources })),
      );
      // A definite failure fails at once, even when another probe could not be made.
      const failing = results.flatMap((r) => (r.status === "fulfilled" && !r.value.ok ? [r.value.detail] : []));
      if (failing.length > 0) throw new ProviderError("brain", "permanent", `validation failed: ${failing.join("; ")}`);
      const unmade = results.find((r) => r.status === "rejected");
      if (unmade) throw unmade.reason;
      return done({ validatedAt: Date.now() });
    },
  },

  activate: {
    provider: "brain",
    needs: ["validate"],
    label: "Activation",
    // Activation is a state change (the instance goes active), made by the completion of
    // `validate` in the same transaction: no provider call, so nothing to dispatch.
    runs: "inline",
    async run() {
      return done({});
    },
  },

  // Deprovisioning: each provision step's undo, newest-made first (the reverse of the DAG's
  // order), then the instance is marked deleted. "Already gone" is success.
  deletePagesProject: {
    provider: "cloudflare",
    needs: [],
    label: "Delete website",
    operation: "cloudflare.deletePagesProject",
    runs: "action",
    deletes: "pagesProject",
    run: (env) => runUndo("pagesProject", env),
  },
  deleteWorkosOrg: {
    provider: "workos",
    needs: ["deletePagesProject"],
    label: "Delete organization",
    operation: "workos.deleteOrganization",
    runs: "action",
    deletes: "workosOrg",
    run: (env) => runUndo("workosOrg", env),
  },
  deleteConvexProject: {
    provider: "convex",
    needs: ["deleteWorkosOrg"],
    label: "Delete backend project",
    operation: "convex.deleteProject",
    runs: "action",
    deletes: "convexProject",
    run: (env) => runUndo("convexProject", env),
  },
  markDeleted: {
    provider: "brain",
    needs: ["deleteConvexProject"],
    label: "Deleted",
    runs: "inline",
    async run() {
      return done({});
    },
  },

  // Suspension removes access and deletes nothing: the backend is told (BRAIN_SUSPENDED=1) and
  // paused, and the organization's memberships are deactivated. Resume undoes both.
  suspendBackend: {
    provider: "convex",
    needs: [],
    label: "Pause backend",
    operation: "convex.pauseDeployment",
    runs: "action",
    async run({ providers, config, input }) {
      const deployment = await deploymentOf(input, config);
      if (!deployment) return done({}); // never made, or already deleted: nothing to pause
      await providers.convex.setEnvironment({ ...deployment, variables: { BRAIN_SUSPENDED: "1" } });
      await providers.convex.pauseDeployment(deployment);
      return done({});
    },
  },
  deactivateMembers: {
    provider: "workos",
    needs: [],
    label: "Deactivate members",
    operation: "workos.setMembershipsActive",
    runs: "action",
    async run({ providers, input }) {
      const organizationId = input.resources.workosOrganizationId;
      if (organizationId) await providers.workos.setMembershipsActive({ organizationId, active: false });
      return done({});
    },
  },
  markSuspended: {
    provider: "brain",
    needs: ["suspendBackend", "deactivateMembers"],
    label: "Suspended",
    runs: "inline",
    async run() {
      return done({});
    },
  },
  resumeBackend: {
    provider: "convex",
    needs: [],
    label: "Resume backend",
    operation: "convex.unpauseDeployment",
    runs: "action",
    async run({ providers, config, input }) {
      const deployment = await deploymentOf(input, config);
      if (!deployment) return done({});
      await providers.convex.unpauseDeployment(deployment);
      await providers.convex.setEnvironment({ ...deployment, variables: { BRAIN_SUSPENDED: null } });
      return done({});
    },
  },
  reactivateMembers: {
    provider: "workos",
    needs: [],
    label: "Reactivate members",
    operation: "workos.setMembershipsActive",
    runs: "action",
    async run({ providers, input }) {
      const organizationId = input.resources.workosOrganizationId;
      if (organizationId) await providers.workos.setMembershipsActive({ organizationId, active: true });
      return done({});
    },
  },
  markResumed: {
    provider: "brain",
    needs: ["resumeBackend", "reactivateMembers"],
    label: "Resumed",
    runs: "inline",
    async run() {
      return done({});
    },
  },

  // A plan change: the new plan's variables (PLANS) are set on the tenant deployment.
  applyPlan: {
    provider: "convex",
    needs: [],
    label: "Apply plan",
    operation: "convex.setEnvironment",
    runs: "action",
    async run({ providers, config, input }) {
      const plan = input.params?.plan ?? input.plan;
      const deployment = await deploymentOf(input, config);
      if (!deployment) throw new ProviderError("brain", "permanent", "the instance has no backend deployment to set the plan on");
      await providers.convex.setEnvironment({ ...deployment, variables: { ...input.params?.env, BRAIN_PLAN: plan } });
      return done({});
    },
  },
  markPlanApplied: {
    provider: "brain",
    needs: ["applyPlan"],
    label: "Plan applied",
    runs: "inline",
    async run() {
      return done({});
    },
  },
} as const satisfies Record<StepName, StepSpec>;

type JobKindSpec = {
  readonly steps: readonly StepName[];
  /** The instance's status while the job runs (null: left as it is). */
  readonly startStatus: InstanceStatus | null;
  /** The instance's status once the job succeeded (null: left as it is). */
  readonly endStatus: InstanceStatus | null;
  /** A provision job that fails for good has its partial resources removed; a lifecycle job is retried instead. */
  readonly compensates: boolean;
};

/**
 * The jobs the engine runs, each a DAG of the steps above. Every kind ends in an inline step:
 * the transition that settles the instance (activate, markDeleted, …).
 */
export const JOB_KINDS = {
  provision: { steps: PROVISION_STEP_NAMES, startStatus: "provisioning", endStatus: "active", compensates: true },
  deprovision: {
    steps: ["deletePagesProject", "deleteWorkosOrg", "deleteConvexProject", "markDeleted"],
    startStatus: "deprovisioning",
    endStatus: "deleted",
    compensates: false,
  },
  suspend: { steps: ["suspendBackend", "deactivateMembers", "markSuspended"], startStatus: "suspended", endStatus: "suspended", compensates: false },
  resume: { steps: ["resumeBackend", "reactivateMembers", "markResumed"], startStatus: null, endStatus: "active", compensates: false },
  changePlan: { steps: ["applyPlan", "markPlanApplied"], startStatus: null, endStatus: null, compensates: false },
} as const satisfies Record<JobKind, JobKindSpec>;

export const jobKindSpec = (kind: JobKind): JobKindSpec => JOB_KINDS[kind];

/** The provision job's steps in their public order (the status page's). */
export const STEP_LIST: StepName[] = [...PROVISION_STEP_NAMES];

/** Every step of every kind (the config's per-step deadline variables). */
export const ALL_STEPS = Object.keys(STEPS) as StepName[];

export const stepSpec = (name: StepName): StepSpec => STEPS[name];
export const providerSpec = (name: ProviderName): ProviderSpec => PROVIDERS[name];

/** Steps whose undo deletes a resource, with their undo. */
export const UNDOABLE = entries(STEPS as Record<StepName, StepSpec>).flatMap(([step, spec]) =>
  spec.undo ? [{ step, ...spec.undo }] : [],
);

/** The instance field recording each owner provider's resource (the id its delete takes). */
export function recordedField(provider: OwnerProviderName): keyof InstanceResources {
  const undo = UNDOABLE.find((u) => u.provider === provider);
  if (!undo) throw new Error(`no step records a ${provider} resource`);
  return undo.recorded;
}

/** Providers some step calls: the only ones whose live credentials a job needs. */
export const PROVIDERS_IN_USE = new Set<ProviderName>(
  ALL_STEPS.flatMap((name) => {
    const spec = STEPS[name] as StepSpec;
    const used: ProviderName[] = [spec.provider];
    if (spec.undo) used.push(spec.undo.provider);
    return used;
  }),
);
// validate calls every probe's provider.
for (const name of STEP_LIST) {
  const probe = (STEPS[name] as StepSpec).probe;
  if (probe) PROVIDERS_IN_USE.add(STEPS[name].provider);
}
// The lifecycle reads subscriptions from Stripe (a same-second tie, the daily reconciliation).
PROVIDERS_IN_USE.add("stripe");
// Every provision job emails its customer (model/notifications.ts).
PROVIDERS_IN_USE.add("resend");

/**
 * A deprovision step: the undo of `step`. The recorded resource is deleted by its id; one never
 * recorded (its create's answer was lost) is found by the instance it is tagged with.
 */
async function runUndo(step: StepName, { providers, input }: StepEnv): Promise<StepOutcome> {
  const undo = (STEPS[step] as StepSpec).undo;
  if (!undo) throw new ProviderError("brain", "permanent", `${step} has no undo`);
  const owned = PROVIDERS[undo.provider].owned;
  const recorded = input.resources[undo.recorded];
  if (recorded !== undefined) await owned.remove(providers, String(recorded));
  else {
    for (const resource of await owned.list(providers)) {
      if (resource.instanceId === input.instanceId) await owned.remove(providers, resource.id);
    }
  }
  return done({});
}

/** The tenant deployment and its deploy key, or null when the instance has none. */
async function deploymentOf(input: StepEnv["input"], config: Config) {
  const { convexDeploymentName, convexDeploymentUrl, convexDeployKeyCiphertext } = input.resources;
  if (!convexDeploymentName || !convexDeploymentUrl || !convexDeployKeyCiphertext) return null;
  const deployKey = await decryptSecret(convexDeployKeyCiphertext, encryptionKeys(config));
  return { deploymentName: convexDeploymentName, deploymentUrl: convexDeploymentUrl, deployKey };
}
