// Fake of the Convex Management API (https://api.convex.dev/v1, served here under "/v1") and of each
// deployment's own API (https://<name>.convex.cloud, served here under "/d/<name>"), for tests only.
// State lives in memory: projects, their deployments, deploy keys, environment variables and
// whether each deployment is paused. `backends.setMode(name, "down" | "hang" | "up")` makes a
// deployment's `/version` (what health probes fetch) answer 503 or never.
// It must never: accept a token other than the team token it was started with, accept a deploy key on a
// deployment it was not created for, make project names unique (the real API does not), or call out anywhere.
import { randomBytes } from "node:crypto";
import { startFakeServer, type FakeRequest, type FakeResponse, type FakeServer, type Route } from "./base";
import { answerInMode, probeModes, type ProbeModes } from "./probes";

export type ConvexDeploymentType = "dev" | "prod" | "preview" | "custom";

export type ProjectRecord = { id: number; name: string; slug: string; createTime: number };

export type DeploymentRecord = {
  id: number;
  name: string;
  projectId: number;
  deploymentType: ConvexDeploymentType;
  reference: string;
  region: string;
  class: string;
  createTime: number;
  lastDeployTime: number | null;
  deployKeys: { name: string; key: string }[];
};

export type ConvexFake = FakeServer & {
  /** The Management API base URL (url + "/v1"), what `CONVEX_PROVISION_HOST` + "/v1" would be. */
  managementUrl: string;
  projects(): ProjectRecord[];
  deployments(): DeploymentRecord[];
  envVars(deploymentName: string): Record<string, string>;
  /** True while the deployment is paused (`POST /api/v1/pause_deployment`, until unpaused). */
  isPaused(deploymentName: string): boolean;
  /** Records a code push (what `npx convex deploy` would do): sets the deployment's lastDeployTime. */
  markDeployed(deploymentName: string): void;
  /** Deletes a project and its deployments as if someone used the dashboard. */
  deleteProjectOutOfBand(projectId: number): void;
  /** How a deployment's `GET /version` answers, by deployment name (404 for no such deployment, whatever the mode). */
  backends: ProbeModes;
};

const DEPLOYMENT_TYPES: readonly string[] = ["dev", "prod", "preview", "custom"];
const REGIONS: readonly string[] = ["aws-us-east-1", "aws-eu-west-1"];
// Limits and codes from convex-backend's env var validation (common/src/types/environment_variables.rs).
const ENV_NAME = /^[a-zA-Z_]+[a-zA-Z0-9_]*$/;
const ENV_NAME_MAX = 256;
const ENV_VALUE_MAX = 8 * 1024;
const ENV_VAR_LIMIT = 100;
const BUILT_IN_ENV_VARS = ["CONVEX_CLOUD_URL", "CONVEX_SITE_URL"];
const ADJECTIVES = ["happy", "brave", "quiet", "clever", "gentle", "lively", "proud", "calm", "eager", "bold"];
const ANIMALS = ["otter", "falcon", "badger", "heron", "lynx", "marmot", "pelican", "gecko", "bison", "walrus"];

const CODE_FOR_STATUS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  429: "TooManyRequests",
  500: "InternalServerError",
  502: "BadGateway",
  503: "ServiceUnavailable",
  504: "GatewayTimeout",
};

const fail = (status: number, code: string, message: string): FakeResponse => ({ status, body: { code, message } });
const ok = (body?: unknown): FakeResponse => ({ status: 200, body });
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The JSON body as an object, or the 400 the real API's JSON extractor answers with. */
function jsonObject(request: FakeRequest): { input: Record<string, unknown> } | { error: FakeResponse } {
  if (!(request.headers["content-type"] ?? "").includes("application/json")) {
    return { error: fail(400, "BadJsonBody", "Expected request with `Content-Type: application/json`") };
  }
  if (!isObject(request.body)) {
    return { error: fail(400, "BadJsonBody", "Failed to parse the request body as a JSON object") };
  }
  return { input: request.body };
}
const missingField = (field: string) =>
  fail(400, "BadJsonBody", `Failed to deserialize the JSON body into the target type: missing field \`${field}\``);
const wrongType = (field: string, expected: string) =>
  fail(400, "BadJsonBody", `Failed to deserialize the JSON body into the target type: ${field}: expected ${expected}`);

function slugify(name: string): string {
  const base = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return base || "project";
}

export async function startConvexFake(options: { teamId: string; token: string }): Promise<ConvexFake> {
  const teamIdValue: number | string = /^\d+$/.test(options.teamId) ? Number(options.teamId) : options.teamId;
  const teamSlug = `team-${options.teamId}`;
  const projects = new Map<number, ProjectRecord>();
  const deployments = new Map<string, DeploymentRecord>();
  const envVars = new Map<string, Map<string, string>>();
  const paused = new Set<string>();
  let nextProjectId = 1;
  let nextDeploymentId = 1;
  let baseUrl = "";
  const backends = probeModes();

  const deploymentsOf = (projectId: number) => [...deployments.values()].filter((d) => d.projectId === projectId);

  const projectResponse = (project: ProjectRecord) => {
    const own = deploymentsOf(project.id);
    return {
      id: project.id,
      name: project.name,
      slug: project.slug,
      teamId: teamIdValue,
      teamSlug,
      createTime: project.createTime,
      prodDeploymentName: own.find((d) => d.deploymentType === "prod")?.name ?? null,
      devDeploymentName: own.find((d) => d.deploymentType === "dev")?.name ?? null,
    };
  };

  const deploymentResponse = (deployment: DeploymentRecord) => ({
    kind: "cloud",
    id: deployment.id,
    name: deployment.name,
    deploymentUrl: `${baseUrl}/d/${deployment.name}`,
    deploymentType: deployment.deploymentType,
    projectId: deployment.projectId,
    isDefault: deployment.deploymentType === "prod" || deployment.deploymentType === "dev",
    reference: deployment.reference,
    region: deployment.region,
    class: deployment.class,
    createTime: deployment.createTime,
    lastDeployTime: deployment.lastDeployTime,
  });

  const uniqueSlug = (name: string) => {
    const base = slugify(name);
    const taken = new Set([...projects.values()].map((p) => p.slug));
    let slug = base;
    while (taken.has(slug)) slug = `${base}-${randomBytes(3).toString("hex").slice(0, 5)}`;
    return slug;
  };

  const uniqueDeploymentName = () => {
    for (;;) {
      const pick = (list: string[]) => list[Math.floor(Math.random() * list.length)];
      const name = `${pick(ADJECTIVES)}-${pick(ANIMALS)}-${100 + Math.floor(Math.random() * 900)}`;
      if (!deployments.has(name)) return name;
    }
  };

  const removeProject = (projectId: number) => {
    projects.delete(projectId);
    for (const deployment of deploymentsOf(projectId)) {
      deployments.delete(deployment.name);
      envVars.delete(deployment.name);
      paused.delete(deployment.name);
    }
  };

  /** Team token check, then the route's own work. */
  const management =
    (handler: (request: FakeRequest) => FakeResponse): Route["handler"] =>
    (request) => {
      if (request.headers.authorization !== `Bearer ${options.token}`) {
        return fail(401, "Unauthorized", "The access token is missing, invalid or expired");
      }
      if (request.params.teamId !== undefined && request.params.teamId !== options.teamId && request.params.teamId !== teamSlug) {
        return fail(403, "Forbidden", `The access token does not grant access to team ${request.params.teamId}`);
      }
      return handler(request);
    };

  const withProject = (request: FakeRequest, then: (project: ProjectRecord) => FakeResponse): FakeResponse => {
    if (!/^\d+$/.test(request.params.projectId)) {
      return fail(400, "BadRequest", `Invalid project id: ${request.params.projectId}`);
    }
    const project = projects.get(Number(request.params.projectId));
    return project ? then(project) : fail(404, "ProjectNotFound", `Project ${request.params.projectId} not found`);
  };

  const withDeployment = (name: string, then: (deployment: DeploymentRecord) => FakeResponse): FakeResponse => {
    const deployment = deployments.get(name);
    return deployment ? then(deployment) : fail(404, "DeploymentNotFound", `Deployment ${name} not found`);
  };

  /** Deployment API: the deployment must exist, then `Authorization: Convex <deploy key for it>`. */
  const deploymentApi =
    (handler: (request: FakeRequest, deployment: DeploymentRecord) => FakeResponse): Route["handler"] =>
    (request) =>
      withDeployment(request.params.name, (deployment) => {
        const header = request.headers.authorization ?? "";
        const key = header.startsWith("Convex ") ? header.slice("Convex ".length) : "";
        if (!deployment.deployKeys.some((k) => k.key === key)) {
          return fail(401, "BadAdminKey", "The provided admin key was invalid for this instance");
        }
        return handler(request, deployment);
      });

  const createProject = (request: FakeRequest): FakeResponse => {
    const parsed = jsonObject(request);
    if ("error" in parsed) return parsed.error;
    const { input } = parsed;
    if (input.projectName === undefined) return missingField("projectName");
    if (typeof input.projectName !== "string" || !input.projectName.trim()) return wrongType("projectName", "a non-empty string");
    const type = input.deploymentType;
    if (type !== undefined && type !== null && (typeof type !== "string" || !DEPLOYMENT_TYPES.includes(type))) {
      return wrongType("deploymentType", `one of ${DEPLOYMENT_TYPES.join(", ")}`);
    }
    const region = input.deploymentRegion ?? "aws-us-east-1";
    if (typeof region !== "string" || !REGIONS.includes(region)) return wrongType("deploymentRegion", REGIONS.join(" or "));
    const deploymentClass = input.deploymentClass ?? "s16";
    if (typeof deploymentClass !== "string") return wrongType("deploymentClass", "a string");

    const project: ProjectRecord = {
      id: nextProjectId++,
      name: input.projectName,
      slug: uniqueSlug(input.projectName),
      createTime: Date.now(),
    };
    projects.set(project.id, project);
    const answer: Record<string, unknown> = { id: project.id, projectId: project.id, slug: project.slug };
    if (typeof type === "string") {
      const deploymentType = type as ConvexDeploymentType;
      const id = nextDeploymentId++;
      const deployment: DeploymentRecord = {
        id,
        name: uniqueDeploymentName(),
        projectId: project.id,
        deploymentType,
        reference: deploymentType === "prod" ? "production" : `${deploymentType}-${id}`,
        region,
        class: deploymentClass,
        createTime: Date.now(),
        lastDeployTime: null,
        deployKeys: [],
      };
      deployments.set(deployment.name, deployment);
      envVars.set(deployment.name, new Map());
      answer.deploymentName = deployment.name;
      answer.deploymentUrl = `${baseUrl}/d/${deployment.name}`;
    }
    return ok(answer);
  };

  const listProjects = (request: FakeRequest): FakeResponse => {
    const limitParam = request.query.get("limit");
    const limit = limitParam === null ? 10 : Number(limitParam);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
      return fail(400, "BadRequest", `limit must be an integer between 1 and 100, got ${limitParam}`);
    }
    const cursorParam = request.query.get("cursor");
    if (cursorParam && !/^\d+$/.test(cursorParam)) return fail(400, "BadRequest", `Invalid cursor: ${cursorParam}`);
    const q = (request.query.get("q") ?? "").toLowerCase();
    const matching = [...projects.values()]
      .filter((p) => !cursorParam || p.id < Number(cursorParam))
      .filter((p) => !q || p.name.toLowerCase().includes(q) || p.slug.toLowerCase().includes(q))
      .sort((a, b) => b.id - a.id);
    const page = matching.slice(0, limit);
    const hasMore = matching.length > limit;
    return ok({
      items: page.map(projectResponse),
      pagination: hasMore ? { hasMore, nextCursor: String(page[page.length - 1].id) } : { hasMore },
    });
  };

  const createDeployKey = (request: FakeRequest): FakeResponse =>
    withDeployment(request.params.name, (deployment) => {
      const parsed = jsonObject(request);
      if ("error" in parsed) return parsed.error;
      const { input } = parsed;
      if (input.name === undefined) return missingField("name");
      if (typeof input.name !== "string") return wrongType("name", "a string");
      const key = `${deployment.deploymentType}:${deployment.name}|${randomBytes(32).toString("base64url")}`;
      deployment.deployKeys.push({ name: input.name, key });
      return ok({ deployKey: key });
    });

  // `{ id }`: the key itself, or a key's name when exactly one key has it. Unknown: 404.
  const deleteDeployKey = (request: FakeRequest): FakeResponse =>
    withDeployment(request.params.name, (deployment) => {
      const parsed = jsonObject(request);
      if ("error" in parsed) return parsed.error;
      const { input } = parsed;
      if (input.id === undefined) return missingField("id");
      if (typeof input.id !== "string") return wrongType("id", "a string");
      const byKey = deployment.deployKeys.findIndex((k) => k.key === input.id);
      const byName = deployment.deployKeys.filter((k) => k.name === input.id);
      const index = byKey >= 0 ? byKey : byName.length === 1 ? deployment.deployKeys.indexOf(byName[0]) : -1;
      if (index < 0) return fail(404, "DeployKeyNotFound", "No such deploy key on this deployment");
      deployment.deployKeys.splice(index, 1);
      return ok();
    });

  const updateEnvironmentVariables = (request: FakeRequest, deployment: DeploymentRecord): FakeResponse => {
    const parsed = jsonObject(request);
    if ("error" in parsed) return parsed.error;
    const { changes } = parsed.input;
    if (changes === undefined) return missingField("changes");
    if (!Array.isArray(changes)) return wrongType("changes", "a sequence");
    const seen = new Set<string>();
    for (const change of changes) {
      if (!isObject(change) || typeof change.name !== "string") return wrongType("changes[].name", "a string");
      const { name, value } = change;
      if (!ENV_NAME.test(name)) {
        return fail(
          400,
          "EnvironmentVariableNameInvalid",
          `The environment variable name ${name} is invalid. Environment variable names must begin with a letter and may only include characters a-z, A-Z, 0-9, and underscores.`,
        );
      }
      if (name.length > ENV_NAME_MAX) {
        return fail(400, "EnvironmentVariableNameTooLong", `The environment variable name ${name} is too long.`);
      }
      if (value !== undefined && value !== null && typeof value !== "string") return wrongType("changes[].value", "a string");
      if (typeof value === "string" && Buffer.byteLength(value) > ENV_VALUE_MAX) {
        return fail(400, "EnvironmentVariableValueTooLarge", `The environment variable value for ${name} is too large.`);
      }
      if (BUILT_IN_ENV_VARS.includes(name)) {
        return fail(400, "EnvVarNameForbidden", `Environment variable with name "${name}" is built-in and cannot be overridden`);
      }
      if (seen.has(name)) return fail(400, "EnvVarNameNotUnique", `An environment variable with name "${name}" already exists`);
      seen.add(name);
    }
    const next = new Map(envVars.get(deployment.name));
    for (const change of changes as { name: string; value?: string | null }[]) {
      if (typeof change.value === "string") next.set(change.name, change.value);
      else next.delete(change.name);
    }
    if (next.size > ENV_VAR_LIMIT) {
      return fail(400, "EnvVarLimitMet", `The environment variable limit (${ENV_VAR_LIMIT}) has been met.`);
    }
    envVars.set(deployment.name, next);
    return ok();
  };

  /** Pause or unpause: no body, 200 with no body, and asking for the state it is already in is fine. */
  const setPaused =
    (value: boolean) =>
    (_request: FakeRequest, deployment: DeploymentRecord): FakeResponse => {
      if (value) paused.add(deployment.name);
      else paused.delete(deployment.name);
      return ok();
    };

  const routes: Route[] = [
    { method: "POST", path: "/v1/teams/:teamId/create_project", handler: management(createProject) },
    { method: "GET", path: "/v1/teams/:teamId/projects", handler: management(listProjects) },
    {
      method: "GET",
      path: "/v1/teams/:teamId/projects/:slug",
      handler: management((request) => {
        const project = [...projects.values()].find((p) => p.slug === request.params.slug);
        return project ? ok(projectResponse(project)) : fail(404, "ProjectNotFound", `Project ${request.params.slug} not found`);
      }),
    },
    {
      method: "GET",
      path: "/v1/projects/:projectId",
      handler: management((request) => withProject(request, (project) => ok(projectResponse(project)))),
    },
    {
      method: "GET",
      path: "/v1/projects/:projectId/list_deployments",
      handler: management((request) =>
        withProject(request, (project) => ok(deploymentsOf(project.id).map(deploymentResponse))),
      ),
    },
    {
      method: "POST",
      path: "/v1/projects/:projectId/delete",
      handler: management((request) =>
        withProject(request, (project) => {
          removeProject(project.id);
          return ok();
        }),
      ),
    },
    {
      method: "GET",
      path: "/v1/deployments/:name",
      handler: management((request) => withDeployment(request.params.name, (d) => ok(deploymentResponse(d)))),
    },
    { method: "POST", path: "/v1/deployments/:name/create_deploy_key", handler: management(createDeployKey) },
    { method: "POST", path: "/v1/deployments/:name/delete_deploy_key", handler: management(deleteDeployKey) },
    // The deployment's own API (https://<name>.convex.cloud in production).
    {
      method: "GET",
      path: "/d/:name/version",
      handler: (request) =>
        withDeployment(request.params.name, (deployment) =>
          answerInMode(backends.modeOf(deployment.name), () => ok("1.48.0"), {
            code: "ServiceUnavailable",
            message: "The deployment is unavailable",
          }),
        ),
    },
    {
      method: "POST",
      path: "/d/:name/api/v1/update_environment_variables",
      handler: deploymentApi(updateEnvironmentVariables),
    },
    { method: "POST", path: "/d/:name/api/v1/pause_deployment", handler: deploymentApi(setPaused(true)) },
    { method: "POST", path: "/d/:name/api/v1/unpause_deployment", handler: deploymentApi(setPaused(false)) },
    {
      method: "GET",
      path: "/d/:name/api/v1/list_environment_variables",
      handler: deploymentApi((_request, deployment) =>
        ok({ environmentVariables: Object.fromEntries(envVars.get(deployment.name) ?? []) }),
      ),
    },
  ];

  const server = await startFakeServer({
    name: "convex",
    routes,
    errorBody: (status, message) => ({ code: CODE_FOR_STATUS[status] ?? `Http${status}`, message }),
  });
  baseUrl = server.url;

  const deploymentNamed = (name: string) => {
    const deployment = deployments.get(name);
    if (!deployment) throw new Error(`convex fake: no deployment named ${name}`);
    return deployment;
  };

  return {
    ...server,
    managementUrl: `${server.url}/v1`,
    backends,
    projects: () => [...projects.values()].map((p) => ({ ...p })),
    deployments: () => [...deployments.values()].map((d) => ({ ...d, deployKeys: d.deployKeys.map((k) => ({ ...k })) })),
    envVars: (name) => Object.fromEntries(envVars.get(deploymentNamed(name).name) ?? []),
    isPaused: (name) => paused.has(deploymentNamed(name).name),
    markDeployed: (name) => {
      deploymentNamed(name).lastDeployTime = Date.now();
    },
    deleteProjectOutOfBand: (projectId) => {
      if (!projects.has(projectId)) throw new Error(`convex fake: no project ${projectId}`);
      removeProject(projectId);
    },
  };
}
