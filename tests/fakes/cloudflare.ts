// Fake of the Cloudflare v4 API's Pages projects subset (https://api.cloudflare.com/client/v4, served here
// under "/client/v4"), speaking the `{success, errors, messages, result}` envelope the `cloudflare` SDK expects.
// State lives in memory: one account's Pages projects and their (simulated) deployments.
// It also serves each project's site (https://<subdomain> in production) under "/sites/<subdomain>",
// for health probes: up while the project has a successful production deployment, unless told otherwise.
// It must never: accept a token other than the one it was started with, return a non-empty page past the
// last one (the SDK's iterator only stops on an empty page), echo secret env var values, or call out anywhere.
import { randomBytes, randomUUID } from "node:crypto";
import { startFakeServer, type FakeRequest, type FakeResponse, type FakeServer, type Route } from "./base";
import { answerInMode, probeModes, type ProbeModes } from "./probes";

export type PagesEnvVar = { type: "plain_text" | "secret_text"; value: string };

export type PagesDeploymentConfig = {
  env_vars: Record<string, PagesEnvVar>;
  compatibility_date: string;
  compatibility_flags: string[];
  always_use_latest_compatibility_date: boolean;
  build_image_major_version: number;
  fail_open: boolean;
  usage_model: "standard" | "bundled" | "unbound";
  [other: string]: unknown;
};

export type PagesStage = { name: string; status: string; started_on: string | null; ended_on: string | null };

export type PagesDeploymentRecord = {
  id: string;
  short_id: string;
  project_id: string;
  project_name: string;
  environment: "production" | "preview";
  url: string;
  aliases: string[] | null;
  created_on: string;
  modified_on: string;
  latest_stage: PagesStage;
  stages: PagesStage[];
  [other: string]: unknown;
};

export type PagesProjectRecord = {
  id: string;
  name: string;
  subdomain: string;
  domains: string[];
  production_branch: string;
  created_on: string;
  source: unknown;
  build_config: Record<string, unknown>;
  deployment_configs: { production: PagesDeploymentConfig; preview: PagesDeploymentConfig };
  latest_deployment: PagesDeploymentRecord | null;
  canonical_deployment: PagesDeploymentRecord | null;
  framework: string;
  framework_version: string;
  preview_script_name: string;
  production_script_name: string;
  uses_functions: boolean | null;
};

export type CloudflareFake = FakeServer & {
  /** The SDK's baseURL (url + "/client/v4"). */
  apiUrl: string;
  /** Projects as stored (secret env var values included, unlike the API). */
  projects(): PagesProjectRecord[];
  /**
   * Simulates a production deployment finishing (or failing, cancelled, or still running) for a
   * project: it becomes the project's `latest_deployment`. A failed one leaves the site serving
   * the last successful deployment, as on Cloudflare.
   */
  addDeployment(projectName: string, status: "success" | "failure" | "canceled" | "active"): void;
  /**
   * Where each project's site is served: `GET <siteUrl>/<subdomain>` (or `/<project name>`).
   * 404 for no such project or one never deployed successfully; else 200, or as `sites` says.
   */
  siteUrl: string;
  /** TENANT_SITE_URL_TEMPLATE for these sites: `<siteUrl>/{subdomain}`. */
  siteUrlTemplate: string;
  /** How a project's site answers, by project name: `sites.setMode("brain-x", "down" | "hang" | "up")`. */
  sites: ProbeModes;
  /** Deletes a project as if someone used the dashboard. */
  deleteProjectOutOfBand(name: string): void;
};

export type CloudflareFakeOptions = {
  accountId: string;
  token: string;
  /** Projects allowed per account (default 100, the free plan's). */
  projectLimit?: number;
  /** Names whose `<name>.pages.dev` another account already owns: such projects get a suffixed subdomain. */
  takenSubdomains?: string[];
};

// Codes seen on the real API (see PROVIDERS.md section 3), plus one invented for bad input.
export const CLOUDFLARE_CODES = {
  authentication: 10000,
  projectExists: 8000002,
  projectNotFound: 8000007,
  projectLimit: 8000027,
  /** Invented: the real code for an invalid name or body is unconfirmed. */
  invalidRequest: 8000011,
  unknown: 8000000,
  routeNotFound: 7003,
  rateLimited: 971,
} as const;

const NAME_RULE = /^[a-z0-9][a-z0-9-]*$/;
const NAME_MAX = 58;
const PROJECT_NOT_FOUND = "Project not found. The specified project name does not match any of your existing projects.";
const PROJECT_EXISTS = "A project with this name already exists. Choose a different project name.";

const envelope = (result: unknown, resultInfo?: Record<string, number>) => ({
  success: true,
  errors: [],
  messages: [],
  result,
  ...(resultInfo ? { result_info: resultInfo } : {}),
});
const errorEnvelope = (code: number, message: string) => ({
  success: false,
  errors: [{ code, message }],
  messages: [],
  result: null,
});
const ok = (result: unknown, resultInfo?: Record<string, number>): FakeResponse => ({
  status: 200,
  body: envelope(result, resultInfo),
});
const fail = (status: number, code: number, message: string): FakeResponse => ({
  status,
  body: errorEnvelope(code, message),
});
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const now = () => new Date().toISOString();
const clone = <T>(value: T): T => structuredClone(value);

function defaultConfig(): PagesDeploymentConfig {
  return {
    env_vars: {},
    compatibility_date: new Date().toISOString().slice(0, 10),
    compatibility_flags: [],
    always_use_latest_compatibility_date: false,
    build_image_major_version: 3,
    fail_open: true,
    usage_model: "standard",
  };
}

/** Checks a deployment_configs patch; env vars must be {type, value} or null. Returns an error message or null. */
function invalidConfigs(configs: unknown): string | null {
  if (configs === undefined) return null;
  if (!isObject(configs)) return "deployment_configs must be an object";
  for (const [environment, config] of Object.entries(configs)) {
    if (environment !== "production" && environment !== "preview") return `unknown environment ${environment}`;
    if (!isObject(config)) return `deployment_configs.${environment} must be an object`;
    const envVars = config.env_vars;
    if (envVars === undefined || envVars === null) continue;
    if (!isObject(envVars)) return `deployment_configs.${environment}.env_vars must be an object`;
    for (const [name, variable] of Object.entries(envVars)) {
      if (variable === null) continue;
      if (
        !isObject(variable) ||
        (variable.type !== "plain_text" && variable.type !== "secret_text") ||
        typeof variable.value !== "string"
      ) {
        return `env var ${name} must be {type: "plain_text" | "secret_text", value: string} or null`;
      }
    }
  }
  return null;
}

/** Deep-merges a (checked) deployment_configs patch: env vars merge by name, null deletes. */
function mergeConfigs(project: PagesProjectRecord, configs: unknown) {
  if (!isObject(configs)) return;
  for (const environment of ["production", "preview"] as const) {
    const patch = configs[environment];
    if (!isObject(patch)) continue;
    const target = project.deployment_configs[environment];
    for (const [key, value] of Object.entries(patch)) {
      if (key !== "env_vars") target[key] = clone(value);
    }
    if (isObject(patch.env_vars)) {
      for (const [name, variable] of Object.entries(patch.env_vars)) {
        if (variable === null) delete target.env_vars[name];
        else target.env_vars[name] = clone(variable as PagesEnvVar);
      }
    }
  }
}

/** What the API shows: secret values are never returned. */
function redacted<T>(value: T): T {
  const copy = clone(value);
  const walk = (node: unknown) => {
    if (!isObject(node) && !Array.isArray(node)) return;
    for (const child of Object.values(node)) {
      if (isObject(child) && child.type === "secret_text" && "value" in child) child.value = "";
      else walk(child);
    }
  };
  walk(copy);
  return copy;
}

function pageOf<T>(request: FakeRequest, items: T[], defaultPerPage: number) {
  const page = Math.max(1, Math.floor(Number(request.query.get("page") ?? 1)) || 1);
  const perPage = Math.min(100, Math.max(1, Math.floor(Number(request.query.get("per_page") ?? defaultPerPage)) || defaultPerPage));
  const result = items.slice((page - 1) * perPage, page * perPage);
  return {
    result,
    resultInfo: {
      page,
      per_page: perPage,
      count: result.length,
      total_count: items.length,
      total_pages: Math.ceil(items.length / perPage),
    },
  };
}

export async function startCloudflareFake(options: CloudflareFakeOptions): Promise<CloudflareFake> {
  const projectLimit = options.projectLimit ?? 100;
  const taken = new Set(options.takenSubdomains ?? []);
  const projects = new Map<string, PagesProjectRecord>();
  const deployments = new Map<string, PagesDeploymentRecord[]>(); // newest first

  /** Token, then account; then the route's own work. */
  const authorized =
    (handler: (request: FakeRequest) => FakeResponse): Route["handler"] =>
    (request) => {
      if (request.headers.authorization !== `Bearer ${options.token}`) {
        return fail(401, CLOUDFLARE_CODES.authentication, "Authentication error");
      }
      if (request.params.accountId !== options.accountId) {
        return fail(403, CLOUDFLARE_CODES.authentication, "Authentication error");
      }
      return handler(request);
    };

  const withProject = (request: FakeRequest, then: (project: PagesProjectRecord) => FakeResponse) => {
    const project = projects.get(request.params.name);
    return project ? then(project) : fail(404, CLOUDFLARE_CODES.projectNotFound, PROJECT_NOT_FOUND);
  };

  const createProject = (request: FakeRequest): FakeResponse => {
    const body = request.body;
    if (!isObject(body)) return fail(400, CLOUDFLARE_CODES.invalidRequest, "Request body must be a JSON object.");
    const { name, production_branch: branch } = body;
    if (typeof name !== "string" || !NAME_RULE.test(name) || name.length > NAME_MAX) {
      return fail(
        400,
        CLOUDFLARE_CODES.invalidRequest,
        `Invalid project name. A name must be 1-${NAME_MAX} lowercase letters, numbers or dashes, starting with a letter or number.`,
      );
    }
    if (typeof branch !== "string" || !branch) {
      return fail(400, CLOUDFLARE_CODES.invalidRequest, "A production_branch is required.");
    }
    const configError = invalidConfigs(body.deployment_configs);
    if (configError) return fail(400, CLOUDFLARE_CODES.invalidRequest, configError);
    if (projects.has(name)) return fail(409, CLOUDFLARE_CODES.projectExists, PROJECT_EXISTS);
    if (projects.size >= projectLimit) {
      return fail(
        400,
        CLOUDFLARE_CODES.projectLimit,
        `You have reached the limit of ${projectLimit} Pages projects for this account. Delete a project before creating a new one.`,
      );
    }
    const subdomain = taken.has(name) ? `${name}-${randomBytes(2).toString("hex").slice(0, 3)}.pages.dev` : `${name}.pages.dev`;
    const project: PagesProjectRecord = {
      id: randomUUID(),
      name,
      subdomain,
      domains: [subdomain],
      production_branch: branch,
      created_on: now(),
      source: null,
      build_config: isObject(body.build_config) ? clone(body.build_config) : {},
      deployment_configs: { production: defaultConfig(), preview: defaultConfig() },
      latest_deployment: null,
      canonical_deployment: null,
      framework: "",
      framework_version: "",
      preview_script_name: "",
      production_script_name: "",
      uses_functions: null,
    };
    mergeConfigs(project, body.deployment_configs);
    projects.set(name, project);
    deployments.set(name, []);
    return ok(redacted(project));
  };

  const editProject = (request: FakeRequest) =>
    withProject(request, (project) => {
      const body = request.body;
      if (!isObject(body)) return fail(400, CLOUDFLARE_CODES.invalidRequest, "Request body must be a JSON object.");
      const configError = invalidConfigs(body.deployment_configs);
      if (configError) return fail(400, CLOUDFLARE_CODES.invalidRequest, configError);
      if (body.production_branch !== undefined) {
        if (typeof body.production_branch !== "string" || !body.production_branch) {
          return fail(400, CLOUDFLARE_CODES.invalidRequest, "production_branch must be a non-empty string.");
        }
        project.production_branch = body.production_branch;
      }
      if (isObject(body.build_config)) project.build_config = { ...project.build_config, ...clone(body.build_config) };
      mergeConfigs(project, body.deployment_configs);
      return ok(redacted(project));
    });

  const removeProject = (name: string) => {
    projects.delete(name);
    deployments.delete(name);
  };

  const sites = probeModes();
  const serveSite = (request: FakeRequest): FakeResponse => {
    const host = request.params.host;
    const project = projects.get(host) ?? [...projects.values()].find((p) => p.subdomain === host);
    if (!project?.canonical_deployment) return { status: 404, body: { error: `no site at ${host}` } };
    return answerInMode(sites.modeOf(project.name), () => ({ status: 200, body: { site: project.name } }), { error: "site down" });
  };

  const routes: Route[] = [
    { method: "GET", path: "/sites/:host", handler: serveSite, unprefixed: true },
    { method: "POST", path: "/accounts/:accountId/pages/projects", handler: authorized(createProject) },
    {
      method: "GET",
      path: "/accounts/:accountId/pages/projects",
      handler: authorized((request) => {
        const { result, resultInfo } = pageOf(request, [...projects.values()], 10);
        return ok(redacted(result), resultInfo);
      }),
    },
    {
      method: "GET",
      path: "/accounts/:accountId/pages/projects/:name",
      handler: authorized((request) => withProject(request, (project) => ok(redacted(project)))),
    },
    { method: "PATCH", path: "/accounts/:accountId/pages/projects/:name", handler: authorized(editProject) },
    {
      method: "DELETE",
      path: "/accounts/:accountId/pages/projects/:name",
      handler: authorized((request) =>
        withProject(request, (project) => {
          removeProject(project.name);
          return ok(null);
        }),
      ),
    },
    {
      method: "GET",
      path: "/accounts/:accountId/pages/projects/:name/deployments",
      handler: authorized((request) =>
        withProject(request, (project) => {
          const env = request.query.get("env");
          const all = (deployments.get(project.name) ?? []).filter((d) => !env || d.environment === env);
          const { result, resultInfo } = pageOf(request, all, 25);
          return ok(redacted(result), resultInfo);
        }),
      ),
    },
  ];

  const server = await startFakeServer({
    name: "cloudflare",
    prefix: "/client/v4",
    routes,
    errorBody: (status, message) => {
      if (status === 401 || status === 403) return errorEnvelope(CLOUDFLARE_CODES.authentication, "Authentication error");
      if (status === 404) {
        const path = message.replace(/^no route [A-Z]+ /, "");
        return errorEnvelope(CLOUDFLARE_CODES.routeNotFound, `Could not route to ${path}, perhaps your object identifier is invalid?`);
      }
      if (status === 429) return errorEnvelope(CLOUDFLARE_CODES.rateLimited, "Please wait and consider throttling your request speed");
      return errorEnvelope(CLOUDFLARE_CODES.unknown, `An unknown error occurred. Contact support. (${message})`);
    },
  });

  const projectNamed = (name: string) => {
    const project = projects.get(name);
    if (!project) throw new Error(`cloudflare fake: no project named ${name}`);
    return project;
  };

  return {
    ...server,
    apiUrl: `${server.url}/client/v4`,
    siteUrl: `${server.url}/sites`,
    siteUrlTemplate: `${server.url}/sites/{subdomain}`,
    sites,
    projects: () => [...projects.values()].map(clone),
    addDeployment: (projectName, status) => {
      const project = projectNamed(projectName);
      const started = now();
      const ended = status === "active" ? null : now();
      const stage = (name: string): PagesStage => ({ name, status: "success", started_on: started, ended_on: started });
      const shortId = randomBytes(4).toString("hex");
      const deployment: PagesDeploymentRecord = {
        id: randomUUID(),
        short_id: shortId,
        project_id: project.id,
        project_name: project.name,
        environment: "production",
        url: `https://${shortId}.${project.subdomain}`,
        aliases: null,
        created_on: started,
        modified_on: ended ?? started,
        latest_stage: { name: "deploy", status, started_on: started, ended_on: ended },
        stages: [
          stage("queued"),
          stage("initialize"),
          stage("clone_repo"),
          stage("build"),
          { name: "deploy", status, started_on: started, ended_on: ended },
        ],
        build_config: { build_caching: null, build_command: null, destination_dir: null, root_dir: null, web_analytics_tag: null, web_analytics_token: null },
        deployment_trigger: {
          type: "ad_hoc",
          metadata: { branch: project.production_branch, commit_hash: "", commit_message: "", commit_dirty: false },
        },
        env_vars: clone(project.deployment_configs.production.env_vars),
        is_skipped: false,
        source: null,
        uses_functions: null,
      };
      deployments.get(project.name)?.unshift(deployment);
      project.latest_deployment = deployment;
      // The canonical deployment is the one serving the production domain: only a successful one replaces it.
      if (status === "success") project.canonical_deployment = deployment;
    },
    deleteProjectOutOfBand: (name) => {
      projectNamed(name);
      removeProject(name);
    },
  };
}
