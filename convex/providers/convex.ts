// Live Convex adapter: the Management API (projects, deployments, deploy keys) and each
// tenant deployment's own API (environment variables, pause and unpause), over fetch.
// The Management API has no idempotency key, so a create is always preceded by a lookup
// under the deterministic project name: a retry after a lost response adopts the project.
// It also forwards Stripe events to the tenant app's own HTTP actions (deliverEvent).
import { fail } from "../lib/errors";
import { logCall, networkError, requestJson } from "./http";
import { instanceIdFromName, ownedResource } from "./owned";
import { probeUrls, type ProbeSpec } from "./probe";
import { hasStatus, ProviderError, type ConvexAdapter, type OwnedResource, type ProviderEnv } from "./types";

type Project = { id: number; name: string; slug: string; prodDeploymentName?: string | null };
type Deployment = { name: string; deploymentUrl: string; deploymentType?: string; isDefault?: boolean };
type ProjectPage = { items: Project[]; pagination: { hasMore: boolean; nextCursor?: string | null } };

const readError = (_status: number, body: unknown) => {
  const b = (body ?? {}) as { code?: string; message?: string };
  return { message: b.message ?? (typeof body === "string" && body ? body : "no message"), code: b.code };
};

/** Health: a deployment's `/version` answers 200 while its backend serves. */
const BACKEND_PROBE: ProbeSpec = {
  provider: "convex",
  operation: "convex.probeBackend",
  urlOf: (target) => `${target.url.replace(/\/$/, "")}/version`,
  passes: (status) => status === 200,
};

export function liveConvex(env: ProviderEnv): ConvexAdapter {
  const { config } = env;
  const teamId = config.CONVEX_TEAM_ID ?? fail("CONFIG_INVALID", "CONVEX_TEAM_ID is not set");
  const token = config.CONVEX_TEAM_TOKEN ?? fail("CONFIG_INVALID", "CONVEX_TEAM_TOKEN is not set");
  const base = config.CONVEX_MANAGEMENT_API_URL.replace(/\/$/, "");
  const management = { authorization: `Bearer ${token}` };

  const call = <T>(operation: string, method: "GET" | "POST", path: string, body?: unknown) =>
    requestJson<T>(env, "convex", { operation, method, url: `${base}${path}`, headers: management, body }, readError);

  const deploymentCall = <T>(operation: string, method: "GET" | "POST", url: string, deployKey: string, body?: unknown) =>
    requestJson<T>(env, "convex", { operation, method, url, headers: { authorization: `Convex ${deployKey}` }, body }, readError);

  const deploymentApi = (deploymentUrl: string, path: string) => `${deploymentUrl.replace(/\/$/, "")}/api/v1/${path}`;

  /** Every project whose name or slug contains `query`, across all pages. */
  async function searchProjects(query: string): Promise<Project[]> {
    const found: Project[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const params = new URLSearchParams({ limit: "100", q: query, ...(cursor ? { cursor } : {}) });
      const { body } = await call<ProjectPage>("listProjects", "GET", `/teams/${teamId}/projects?${params}`);
      found.push(...body.items);
      if (!body.pagination.hasMore || !body.pagination.nextCursor) break;
      cursor = body.pagination.nextCursor;
    }
    return found;
  }

  async function prodDeployment(project: Project): Promise<Deployment> {
    const { body } = await call<Deployment[]>("listDeployments", "GET", `/projects/${project.id}/list_deployments`);
    const prod =
      body.find((d) => d.deploymentType === "prod" && d.isDefault !== false) ?? body.find((d) => d.deploymentType === "prod");
    if (prod) return prod;
    const { body: created } = await call<Deployment>("createDeployment", "POST", `/projects/${project.id}/create_deployment`, {
      type: "prod",
      isDefault: true,
    });
    return created;
  }

  return {
    async ensureProject({ instanceId, projectName }) {
      const existing = (await searchProjects(projectName)).find((p) => p.name === projectName);
      let projectId: number;
      let deployment: Deployment;
      if (existing) {
        projectId = existing.id;
        deployment = await prodDeployment(existing);
      } else {
        const { body } = await call<{ id: number; deploymentName?: string; deploymentUrl?: string }>(
          "createProject",
          "POST",
          `/teams/${teamId}/create_project`,
          { projectName, deploymentType: "prod" },
        );
        projectId = body.id;
        deployment =
          body.deploymentName && body.deploymentUrl
            ? { name: body.deploymentName, deploymentUrl: body.deploymentUrl }
            : await prodDeployment({ id: body.id, name: projectName, slug: "" });
      }
      // A deploy key cannot be read back, so every (re)run mints one; the newest is stored.
      const { body: key } = await call<{ deployKey: string }>(
        "createDeployKey",
        "POST",
        `/deployments/${deployment.name}/create_deploy_key`,
        { name: `brain-${instanceId}`.slice(0, 60) },
      );
      return {
        projectId: String(projectId),
        projectName,
        deploymentName: deployment.name,
        deploymentUrl: deployment.deploymentUrl,
        deployKey: key.deployKey,
      };
    },

    async setEnvironment({ deploymentUrl, deployKey, variables }) {
      // A change without a value deletes the variable (the Deployment API's own convention).
      const changes = Object.entries(variables).map(([name, value]) => (value === null ? { name } : { name, value }));
      await deploymentCall(
        "updateEnvironmentVariables",
        "POST",
        deploymentApi(deploymentUrl, "update_environment_variables"),
        deployKey,
        { changes },
      );
    },

    async getEnvironment({ deploymentUrl, deployKey }) {
      const { body } = await deploymentCall<{ environmentVariables: Record<string, string> }>(
        "listEnvironmentVariables",
        "GET",
        deploymentApi(deploymentUrl, "list_environment_variables"),
        deployKey,
      );
      return body.environmentVariables;
    },

    // Pausing an already paused deployment (or unpausing a running one) answers 200 like the
    // first call, so a retried suspension or resume is safe; a gone deployment is a permanent 404.
    async pauseDeployment({ deploymentUrl, deployKey }) {
      await deploymentCall("pauseDeployment", "POST", deploymentApi(deploymentUrl, "pause_deployment"), deployKey);
    },

    async unpauseDeployment({ deploymentUrl, deployKey }) {
      await deploymentCall("unpauseDeployment", "POST", deploymentApi(deploymentUrl, "unpause_deployment"), deployKey);
    },

    async deliverEvent({ url, body, signature }) {
      // A call to the tenant's own app, not to Convex's API: no management request budget.
      // Any answer is the tenant's verdict on the event (the caller decides what a non-2xx
      // means); only no answer at all is an error. Never log the body or the signature.
      const started = Date.now();
      let response: Response;
      try {
        response = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", "stripe-signature": signature },
          body,
          signal: AbortSignal.timeout(config.PROVIDER_TIMEOUT_MS),
        });
      } catch (error) {
        logCall(env, "convex", "deliverEvent", "network_error", started, { method: "POST", url });
        throw networkError("convex", error);
      }
      // The status is the answer; read the body to the end only to release the connection.
      await response.arrayBuffer().catch(() => undefined);
      logCall(env, "convex", "deliverEvent", String(response.status), started, { method: "POST", url });
      return { status: response.status };
    },

    async probeDeployment({ deploymentName, deploymentUrl }) {
      try {
        await call<Deployment>("getDeployment", "GET", `/deployments/${deploymentName}`);
      } catch (error) {
        if (hasStatus(error, 404)) {
          return { ok: false, detail: `Convex deployment ${deploymentName} not found` };
        }
        throw error;
      }
      try {
        await requestJson(
          env,
          "convex",
          { operation: "getVersion", method: "GET", url: `${deploymentUrl.replace(/\/$/, "")}/version`, headers: {} },
          readError,
        );
        return { ok: true, detail: `Convex deployment ${deploymentName} answers` };
      } catch (error) {
        // Only a definite 4xx answer says the URL is wrong. A network error, timeout, 408,
        // 429 or 5xx means the probe could not be made: it stays thrown, classified.
        if (error instanceof ProviderError && error.kind === "permanent" && error.status !== undefined) {
          return { ok: false, detail: `Convex deployment ${deploymentName} answered ${error.status}` };
        }
        throw error;
      }
    },

    async listProjects(): Promise<OwnedResource[]> {
      const prefix = `${config.RESOURCE_PREFIX}-`;
      return (await searchProjects(prefix))
        .filter((p) => instanceIdFromName(config.RESOURCE_PREFIX, p.name) !== undefined)
        .map((p) => ownedResource(String(p.id), p.name, instanceIdFromName(config.RESOURCE_PREFIX, p.name)));
    },

    probeBackends: (targets) => probeUrls(env, BACKEND_PROBE, targets),

    async deleteProject({ projectId }) {
      try {
        await call("deleteProject", "POST", `/projects/${projectId}/delete`);
      } catch (error) {
        if (hasStatus(error, 404)) return; // already gone
        throw error;
      }
    },

    // Deploy-key rotation (convex/deployKeys.ts). The key is never logged: logCall names the operation only.
    async createDeployKey({ deploymentName, name }) {
      const { body } = await call<{ deployKey: string }>("createDeployKey", "POST", `/deployments/${deploymentName}/create_deploy_key`, {
        name: name.slice(0, 60),
      });
      return { deployKey: body.deployKey };
    },

    async verifyDeployKey({ deploymentUrl, deployKey }) {
      await deploymentCall("verifyDeployKey", "GET", deploymentApi(deploymentUrl, "list_environment_variables"), deployKey);
    },

    async revokeDeployKey({ deploymentName, deployKey }) {
      // The Management API's delete_deploy_key takes `{ id }`: the key itself identifies it
      // (keys made by re-runs share a name, so the name would not).
      try {
        await call("deleteDeployKey", "POST", `/deployments/${deploymentName}/delete_deploy_key`, { id: deployKey });
      } catch (error) {
        if (hasStatus(error, 404)) return; // already revoked, or the deployment is gone
        throw error;
      }
    },

    async revokeDeployKeyNamed({ deploymentName, name }) {
      // Rotation names each key it makes uniquely, so the name identifies it too.
      try {
        await call("deleteDeployKey", "POST", `/deployments/${deploymentName}/delete_deploy_key`, { id: name.slice(0, 60) });
      } catch (error) {
        if (hasStatus(error, 404)) return; // never made, or already revoked
        throw error;
      }
    },
  };
}
