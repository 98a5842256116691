// Live Cloudflare Pages adapter on the `cloudflare` SDK (retries off: one attempt is one
// request). Projects are named brain-<instance>; the real subdomain is read from the
// response (Cloudflare may add a suffix). Create is not idempotent at Cloudflare, so
// "already exists" (code 8000002, whatever the status) adopts the project when it is ours.
import Cloudflare from "cloudflare";
import { fail } from "../lib/errors";
import { errorForStatus, networkError, sdkCall } from "./http";
import { instanceIdFromName, ownedResource } from "./owned";
import { probeUrls, type ProbeSpec } from "./probe";
import {
  hasStatus,
  ProviderError,
  type CloudflareAdapter,
  type OwnedResource,
  type PagesDeploymentState,
  type ProviderEnv,
} from "./types";

const ALREADY_EXISTS = 8000002;
const NOT_FOUND = 8000007;
/** Stage statuses that end a Pages deployment without it going live; any other (idle, active...) is still in progress. */
const DEPLOYMENT_FAILED = new Set(["failure", "canceled"]);

type CfError = { status?: unknown; errors?: { code?: number; message?: string }[]; headers?: Headers; message?: string };

function classify(error: unknown): ProviderError {
  const e = error as CfError;
  if (typeof e?.status === "number") {
    const first = e.errors?.[0];
    return errorForStatus("cloudflare", e.status, first?.message ?? e.message ?? "no message", {
      code: first?.code !== undefined ? String(first.code) : undefined,
      retryAfter: e.headers?.get?.("retry-after") ?? null,
    });
  }
  return networkError("cloudflare", error);
}

const hasCode = (error: unknown, code: number) =>
  error instanceof ProviderError && error.providerCode === String(code);

type Project = {
  name: string;
  subdomain?: string;
  latest_deployment?: { latest_stage?: { name?: string; status?: string } | null } | null;
};

/** Health: the site answers 2xx (after redirects) at the URL its customers use. */
const SITE_PROBE: ProbeSpec = {
  provider: "cloudflare",
  operation: "cloudflare.probeSite",
  urlOf: (target) => target.url,
  passes: (status) => status >= 200 && status < 300,
};

/** Whether a project's latest deployment is live, from the stage it reached. */
function deploymentState(project: Project, instanceId: string): PagesDeploymentState {
  const base = { name: project.name, instanceId };
  const deployment = project.latest_deployment;
  if (!deployment) return { ...base, live: false, detail: "no deployment yet" };
  const stage = deployment.latest_stage;
  if (stage?.name === "deploy" && stage.status === "success") return { ...base, live: true, detail: "latest deployment is live" };
  if (stage && DEPLOYMENT_FAILED.has(stage.status ?? "")) {
    return { ...base, live: false, detail: `latest deployment ${stage.status} at ${stage.name ?? "unknown"} stage` };
  }
  // Still queued, building or deploying: the site keeps serving the previous deployment meanwhile.
  return { ...base, live: true, detail: "deploying" };
}

export function liveCloudflare(env: ProviderEnv): CloudflareAdapter {
  const { config } = env;
  const apiToken = config.CLOUDFLARE_API_TOKEN ?? fail("CONFIG_INVALID", "CLOUDFLARE_API_TOKEN is not set");
  const accountId = config.CLOUDFLARE_ACCOUNT_ID ?? fail("CONFIG_INVALID", "CLOUDFLARE_ACCOUNT_ID is not set");
  // A client per call, on that call's traced fetch (constructing one is cheap: no I/O).
  const clientWith = (fetch: typeof globalThis.fetch) =>
    new Cloudflare({ apiToken, baseURL: config.CLOUDFLARE_API_URL, maxRetries: 0, timeout: config.PROVIDER_TIMEOUT_MS, fetch });
  const call = <T>(operation: string, run: (client: Cloudflare) => Promise<T>) =>
    sdkCall(env, "cloudflare", operation, (fetch) => run(clientWith(fetch as typeof globalThis.fetch)), classify);
  const prefix = `${config.RESOURCE_PREFIX}-`;
  const getProject = (name: string) =>
    call("getProject", (client) => client.pages.projects.get(name, { account_id: accountId }) as Promise<Project>);

  /** Every project Brain made (its name carries an instance id), paging through the list to the end. */
  async function listOwnedProjects(operation: string): Promise<{ project: Project; instanceId: string }[]> {
    const owned: { project: Project; instanceId: string }[] = [];
    for (let page = 1; page < 1000; page++) {
      const result = await call(operation, (client) => client.pages.projects.list({ account_id: accountId, page, per_page: 25 }));
      const items = result.result as Project[];
      for (const project of items) {
        const instanceId = instanceIdFromName(config.RESOURCE_PREFIX, project.name);
        if (instanceId !== undefined) owned.push({ project, instanceId });
      }
      if (items.length === 0 || !result.hasNextPage()) break;
    }
    return owned;
  }

  return {
    async ensurePagesProject({ projectName }) {
      let project: Project;
      try {
        project = await call("createProject", (client) =>
          client.pages.projects.create({ account_id: accountId, name: projectName, production_branch: "main" }) as Promise<Project>,
        );
      } catch (error) {
        // An earlier attempt created it (its response was lost): adopt it. The name carries
        // our prefix and the instance id, so a project under it is ours.
        if (!hasCode(error, ALREADY_EXISTS) || !projectName.startsWith(prefix)) throw error;
        project = await getProject(projectName);
      }
      if (!project.subdomain) throw new ProviderError("cloudflare", "transient", `project ${projectName} has no subdomain yet`);
      return { projectName: project.name, subdomain: project.subdomain };
    },

    async setEnvironment({ projectName, variables }) {
      const envVars = Object.fromEntries(
        Object.entries(variables).map(([name, value]) => [name, { type: "plain_text" as const, value }]),
      );
      await call("editProject", (client) =>
        client.pages.projects.edit(projectName, {
          account_id: accountId,
          deployment_configs: { production: { env_vars: envVars }, preview: { env_vars: envVars } },
        }),
      );
    },

    async probePagesProject({ projectName }) {
      let project: Project;
      try {
        project = await getProject(projectName);
      } catch (error) {
        if (hasStatus(error, 404) || hasCode(error, NOT_FOUND)) {
          return { ok: false, detail: `Pages project ${projectName} not found` };
        }
        throw error;
      }
      const stage = project.latest_deployment?.latest_stage;
      const latest = stage ? `${stage.name} ${stage.status}` : "none";
      if (stage?.name === "deploy" && stage.status === "success") {
        return { ok: true, detail: `Pages project ${projectName} is live` };
      }
      // No deployment at all, or one that failed or was cancelled, is a definite answer.
      // One still queued, building or deploying is not: ask again once it has ended.
      if (stage && !DEPLOYMENT_FAILED.has(stage.status ?? "")) {
        throw new ProviderError("cloudflare", "transient", `Pages project ${projectName} is still deploying (latest deployment: ${latest})`);
      }
      return { ok: false, detail: `Pages project ${projectName} is not live (latest deployment: ${latest})` };
    },

    async listPagesProjects(): Promise<OwnedResource[]> {
      const owned = await listOwnedProjects("listProjects");
      return owned.map(({ project, instanceId }) => ownedResource(project.name, project.name, instanceId));
    },

    async listPagesDeployments() {
      const owned = await listOwnedProjects("listPagesDeployments");
      return owned.map(({ project, instanceId }) => deploymentState(project, instanceId));
    },

    probeSites: (targets) => probeUrls(env, SITE_PROBE, targets),

    async deletePagesProject({ projectName }) {
      try {
        await call("deleteProject", (client) => client.pages.projects.delete(projectName, { account_id: accountId }));
      } catch (error) {
        if (!hasStatus(error, 404) && !hasCode(error, NOT_FOUND)) throw error; // already gone is success
      }
    },
  };
}
