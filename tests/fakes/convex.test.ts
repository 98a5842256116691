// @vitest-environment node
// Drives the Convex fake with fetch, the way Brain calls the Management and Deployment APIs.
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { startConvexFake, type ConvexFake } from "./convex";

const TEAM = "41";
const TOKEN = "team-token-1";

let fake: ConvexFake;
beforeEach(async () => {
  fake = await startConvexFake({ teamId: TEAM, token: TOKEN });
});
afterEach(async () => {
  await fake.close();
});

type Answer = { status: number; body: unknown; text: string; headers: Headers };

async function call(
  method: string,
  url: string,
  options: { body?: unknown; auth?: string | null; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const auth = options.auth === undefined ? `Bearer ${TOKEN}` : options.auth;
  const response = await fetch(url, {
    method,
    headers: {
      ...(auth ? { authorization: auth } : {}),
      ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, text, headers: response.headers };
}

const api = (path: string) => `${fake.managementUrl}${path}`;
const createProject = (projectName: string, deploymentType?: string) =>
  call("POST", api(`/teams/${TEAM}/create_project`), { body: { projectName, ...(deploymentType ? { deploymentType } : {}) } });

type Created = { id: number; projectId: number; slug: string; deploymentName?: string; deploymentUrl?: string };
type Page = { items: { id: number; name: string; slug: string }[]; pagination: { hasMore: boolean; nextCursor?: string } };

describe("convex fake: management API", () => {
  test("creating a project with a prod deployment answers its id, slug and a deployment URL served by the fake", async () => {
    const { status, body } = await createProject("Acme Corp", "prod");
    expect(status).toBe(200);
    const created = body as Created;
    expect(created.id).toBe(created.projectId);
    expect(Number.isInteger(created.id)).toBe(true);
    expect(created.slug).toBe("acme-corp");
    expect(created.deploymentName).toMatch(/^[a-z]+-[a-z]+-\d{3}$/);
    expect(created.deploymentUrl).toBe(`${fake.url}/d/${created.deploymentName}`);

    const project = await call("GET", api(`/projects/${created.id}`));
    expect(project.body).toEqual({
      id: created.id,
      name: "Acme Corp",
      slug: "acme-corp",
      teamId: 41,
      teamSlug: expect.any(String),
      createTime: expect.any(Number),
      prodDeploymentName: created.deploymentName,
      devDeploymentName: null,
    });

    const deployment = await call("GET", api(`/deployments/${created.deploymentName}`));
    expect(deployment.body).toEqual({
      kind: "cloud",
      id: expect.any(Number),
      name: created.deploymentName,
      deploymentUrl: created.deploymentUrl,
      deploymentType: "prod",
      projectId: created.id,
      isDefault: true,
      reference: expect.any(String),
      region: "aws-us-east-1",
      class: "s16",
      createTime: expect.any(Number),
      lastDeployTime: null,
    });
    const listed = await call("GET", api(`/projects/${created.id}/list_deployments`));
    expect(listed.body).toEqual([deployment.body]);
  });

  test("a project created without a deployment type has no deployment fields and no deployments", async () => {
    const created = (await createProject("bare")).body as Created;
    expect(Object.keys(created).sort()).toEqual(["id", "projectId", "slug"]);
    expect((await call("GET", api(`/projects/${created.id}/list_deployments`))).body).toEqual([]);
    expect((await call("GET", api(`/projects/${created.id}`))).body).toMatchObject({ prodDeploymentName: null });
  });

  test("two creates with the same name make two projects with increasing ids and distinct slugs", async () => {
    const first = (await createProject("tenant-7", "prod")).body as Created;
    const second = (await createProject("tenant-7", "prod")).body as Created;
    expect(second.id).toBeGreaterThan(first.id);
    expect(second.slug).not.toBe(first.slug);
    expect(second.slug.startsWith("tenant-7")).toBe(true);
    expect(second.deploymentName).not.toBe(first.deploymentName);
    expect(fake.projects().filter((p) => p.name === "tenant-7")).toHaveLength(2);
  });

  test("listing pages through projects newest first with a cursor, 10 per page by default", async () => {
    for (let i = 1; i <= 12; i++) await createProject(`p${i}`);
    const first = (await call("GET", api(`/teams/${TEAM}/projects`))).body as Page;
    expect(first.items.map((p) => p.name)).toEqual(["p12", "p11", "p10", "p9", "p8", "p7", "p6", "p5", "p4", "p3"]);
    expect(first.pagination).toEqual({ hasMore: true, nextCursor: expect.any(String) });
    const second = (await call("GET", api(`/teams/${TEAM}/projects?cursor=${first.pagination.nextCursor}`))).body as Page;
    expect(second.items.map((p) => p.name)).toEqual(["p2", "p1"]);
    expect(second.pagination).toEqual({ hasMore: false });

    const small = (await call("GET", api(`/teams/${TEAM}/projects?limit=5`))).body as Page;
    expect(small.items).toHaveLength(5);
  });

  test("q filters case-insensitively on name or slug", async () => {
    await createProject("Brain Tenant ABC");
    await createProject("other");
    const byName = (await call("GET", api(`/teams/${TEAM}/projects?q=tenant%20abc`))).body as Page;
    expect(byName.items.map((p) => p.name)).toEqual(["Brain Tenant ABC"]);
    const bySlug = (await call("GET", api(`/teams/${TEAM}/projects?q=BRAIN-TENANT`))).body as Page;
    expect(bySlug.items.map((p) => p.slug)).toEqual(["brain-tenant-abc"]);
    expect(((await call("GET", api(`/teams/${TEAM}/projects?q=nothing`))).body as Page).items).toEqual([]);
  });

  test("a limit outside 1..100 is a 400 with a code and message", async () => {
    for (const limit of ["0", "101", "abc"]) {
      const answer = await call("GET", api(`/teams/${TEAM}/projects?limit=${limit}`));
      expect(answer.status).toBe(400);
      expect(answer.body).toEqual({ code: "BadRequest", message: expect.any(String) });
    }
  });

  test("an unknown project or deployment is a 404 with a code", async () => {
    expect(await call("GET", api("/projects/999"))).toMatchObject({ status: 404, body: { code: "ProjectNotFound" } });
    expect(await call("POST", api("/projects/999/delete"))).toMatchObject({ status: 404, body: { code: "ProjectNotFound" } });
    expect(await call("GET", api("/projects/999/list_deployments"))).toMatchObject({ status: 404 });
    expect(await call("GET", api("/deployments/no-such-thing-1"))).toMatchObject({
      status: 404,
      body: { code: "DeploymentNotFound", message: expect.any(String) },
    });
  });

  test("a missing or wrong token is a 401 Unauthorized and a foreign team is a 403", async () => {
    expect(await call("GET", api(`/teams/${TEAM}/projects`), { auth: null })).toMatchObject({
      status: 401,
      body: { code: "Unauthorized", message: expect.any(String) },
    });
    expect(await call("POST", api(`/teams/${TEAM}/create_project`), { auth: "Bearer nope", body: { projectName: "x" } })).toMatchObject({
      status: 401,
      body: { code: "Unauthorized" },
    });
    expect(await call("GET", api("/teams/42/projects"))).toMatchObject({ status: 403, body: { code: "Forbidden" } });
    expect(fake.projects()).toEqual([]);
  });

  test("a create without a project name, or with an unknown deployment type, is a 400 and creates nothing", async () => {
    expect(await call("POST", api(`/teams/${TEAM}/create_project`), { body: {} })).toMatchObject({
      status: 400,
      body: { code: "BadJsonBody", message: expect.stringContaining("projectName") },
    });
    expect(await createProject("x", "staging")).toMatchObject({ status: 400, body: { code: "BadJsonBody" } });
    expect(fake.projects()).toEqual([]);
  });

  test("deleting a project answers 200 with no body and removes it with its deployments", async () => {
    const created = (await createProject("doomed", "prod")).body as Created;
    const deleted = await call("POST", api(`/projects/${created.id}/delete`));
    expect(deleted.status).toBe(200);
    expect(deleted.text).toBe("");
    expect(await call("GET", api(`/projects/${created.id}`))).toMatchObject({ status: 404 });
    expect(await call("GET", api(`/deployments/${created.deploymentName}`))).toMatchObject({ status: 404 });
    expect(fake.deployments()).toEqual([]);
  });

  test("a project deleted out of band is gone from the API", async () => {
    const created = (await createProject("dashboard-deleted", "prod")).body as Created;
    fake.deleteProjectOutOfBand(created.id);
    expect(await call("GET", api(`/projects/${created.id}`))).toMatchObject({ status: 404 });
    expect(((await call("GET", api(`/teams/${TEAM}/projects`))).body as Page).items).toEqual([]);
  });

  test("markDeployed sets the deployment's lastDeployTime", async () => {
    const created = (await createProject("deployed", "prod")).body as Created;
    fake.markDeployed(created.deploymentName!);
    const deployment = await call("GET", api(`/deployments/${created.deploymentName}`));
    expect((deployment.body as { lastDeployTime: number }).lastDeployTime).toBeGreaterThan(0);
  });
});

describe("convex fake: deployment API", () => {
  async function deploymentWithKey() {
    const created = (await createProject("envs", "prod")).body as Created;
    const key = await call("POST", api(`/deployments/${created.deploymentName}/create_deploy_key`), { body: { name: "brain" } });
    expect(key.status).toBe(200);
    const deployKey = (key.body as { deployKey: string }).deployKey;
    return { name: created.deploymentName!, url: created.deploymentUrl!, deployKey };
  }

  test("a deploy key names its deployment and unlocks that deployment's env vars", async () => {
    const { name, url, deployKey } = await deploymentWithKey();
    expect(deployKey.startsWith(`prod:${name}|`)).toBe(true);
    expect(fake.deployments()[0].deployKeys).toEqual([{ name: "brain", key: deployKey }]);

    const auth = `Convex ${deployKey}`;
    const update = await call("POST", `${url}/api/v1/update_environment_variables`, {
      auth,
      body: { changes: [{ name: "WORKOS_ORG", value: "org_1" }, { name: "SITE", value: "https://a" }] },
    });
    expect(update.status).toBe(200);
    expect(update.text).toBe("");
    await call("POST", `${url}/api/v1/update_environment_variables`, {
      auth,
      body: { changes: [{ name: "SITE" }, { name: "WORKOS_ORG", value: "org_2" }, { name: "GONE", value: null }] },
    });
    const listed = await call("GET", `${url}/api/v1/list_environment_variables`, { auth });
    expect(listed.body).toEqual({ environmentVariables: { WORKOS_ORG: "org_2" } });
    expect(fake.envVars(name)).toEqual({ WORKOS_ORG: "org_2" });
  });

  test("delete_deploy_key revokes a key by the key itself (then 401 with it, 404 on a second delete) and checks its body", async () => {
    const { name, url, deployKey } = await deploymentWithKey();
    const auth = `Convex ${deployKey}`;
    expect((await call("GET", `${url}/api/v1/list_environment_variables`, { auth })).status).toBe(200);
    expect(await call("POST", api(`/deployments/${name}/delete_deploy_key`), { body: {} })).toMatchObject({ status: 400 });
    expect((await call("POST", api(`/deployments/${name}/delete_deploy_key`), { body: { id: deployKey } })).status).toBe(200);
    expect(fake.deployments()[0].deployKeys).toEqual([]);
    expect((await call("GET", `${url}/api/v1/list_environment_variables`, { auth })).status).toBe(401);
    expect(await call("POST", api(`/deployments/${name}/delete_deploy_key`), { body: { id: deployKey } })).toMatchObject({
      status: 404,
      body: { code: "DeployKeyNotFound" },
    });
  });

  test("the deployment API refuses the team token, a wrong key and another deployment's key with 401 BadAdminKey", async () => {
    const { url } = await deploymentWithKey();
    const other = await deploymentWithKey();
    for (const auth of [null, `Bearer ${TOKEN}`, "Convex prod:whatever|nope", `Convex ${other.deployKey}`]) {
      expect(await call("GET", `${url}/api/v1/list_environment_variables`, { auth })).toMatchObject({
        status: 401,
        body: { code: "BadAdminKey", message: expect.any(String) },
      });
    }
  });

  test("invalid env var names and built-in names are refused with the backend's codes, atomically", async () => {
    const { name, url, deployKey } = await deploymentWithKey();
    const auth = `Convex ${deployKey}`;
    const bad = await call("POST", `${url}/api/v1/update_environment_variables`, {
      auth,
      body: { changes: [{ name: "GOOD", value: "1" }, { name: "1BAD", value: "2" }] },
    });
    expect(bad).toMatchObject({ status: 400, body: { code: "EnvironmentVariableNameInvalid" } });
    const builtIn = await call("POST", `${url}/api/v1/update_environment_variables`, {
      auth,
      body: { changes: [{ name: "CONVEX_SITE_URL", value: "x" }] },
    });
    expect(builtIn).toMatchObject({ status: 400, body: { code: "EnvVarNameForbidden" } });
    expect(fake.envVars(name)).toEqual({});
  });

  test("the version probe answers without auth and 404s once the deployment is gone", async () => {
    const created = (await createProject("probe", "prod")).body as Created;
    expect((await call("GET", `${created.deploymentUrl}/version`, { auth: null })).status).toBe(200);
    fake.deleteProjectOutOfBand(created.id);
    expect((await call("GET", `${created.deploymentUrl}/version`, { auth: null })).status).toBe(404);
    expect((await call("GET", `${created.deploymentUrl}/api/v1/list_environment_variables`)).status).toBe(404);
  });

  test("backends.setMode makes one deployment's /version answer 503 or never, and back up, leaving the others up", async () => {
    const one = (await createProject("probe-one", "prod")).body as Created;
    const two = (await createProject("probe-two", "prod")).body as Created;
    const version = (created: Created, signal?: AbortSignal) => fetch(`${created.deploymentUrl}/version`, { signal }).then((r) => r.status);

    fake.backends.setMode(one.deploymentName!, "down");
    expect([await version(one), await version(two)]).toEqual([503, 200]);

    fake.backends.setMode(one.deploymentName!, "hang");
    await expect(version(one, AbortSignal.timeout(200))).rejects.toMatchObject({ name: "TimeoutError" });

    fake.backends.setDefaultMode("down");
    fake.backends.setMode(one.deploymentName!, "up");
    expect([await version(one), await version(two)]).toEqual([200, 503]);
    fake.backends.reset();
    expect(await version(two)).toBe(200);
  });

  test("pause and unpause answer 200 with no body, are idempotent, and isPaused follows them", async () => {
    const { name, url, deployKey } = await deploymentWithKey();
    const auth = `Convex ${deployKey}`;
    expect(fake.isPaused(name)).toBe(false);

    for (let i = 0; i < 2; i++) {
      const paused = await call("POST", `${url}/api/v1/pause_deployment`, { auth });
      expect(paused).toMatchObject({ status: 200, text: "" });
      expect(fake.isPaused(name)).toBe(true);
    }
    for (let i = 0; i < 2; i++) {
      expect((await call("POST", `${url}/api/v1/unpause_deployment`, { auth })).status).toBe(200);
      expect(fake.isPaused(name)).toBe(false);
    }
  });

  test("pause needs the deployment's own deploy key and 404s once the deployment is gone", async () => {
    const { name, url, deployKey } = await deploymentWithKey();
    const other = await deploymentWithKey();
    expect(await call("POST", `${url}/api/v1/pause_deployment`, { auth: `Convex ${other.deployKey}` })).toMatchObject({
      status: 401,
      body: { code: "BadAdminKey" },
    });
    expect(fake.isPaused(name)).toBe(false);

    fake.deleteProjectOutOfBand(fake.deployments().find((d) => d.name === name)!.projectId);
    expect(await call("POST", `${url}/api/v1/pause_deployment`, { auth: `Convex ${deployKey}` })).toMatchObject({
      status: 404,
      body: { code: "DeploymentNotFound" },
    });
    expect(await call("POST", `${url}/api/v1/unpause_deployment`, { auth: `Convex ${deployKey}` })).toMatchObject({ status: 404 });
  });

  test("a change with a name and no value deletes that variable and leaves the others", async () => {
    const { name, url, deployKey } = await deploymentWithKey();
    const auth = `Convex ${deployKey}`;
    await call("POST", `${url}/api/v1/update_environment_variables`, {
      auth,
      body: { changes: [{ name: "KEEP", value: "1" }, { name: "DROP", value: "2" }] },
    });

    const removed = await call("POST", `${url}/api/v1/update_environment_variables`, { auth, body: { changes: [{ name: "DROP" }] } });

    expect(removed.status).toBe(200);
    expect(fake.envVars(name)).toEqual({ KEEP: "1" });
    // Deleting a variable that is not set is fine too.
    expect((await call("POST", `${url}/api/v1/update_environment_variables`, { auth, body: { changes: [{ name: "DROP" }] } })).status).toBe(200);
  });

  test("creating a deploy key for an unknown deployment is a 404", async () => {
    expect(await call("POST", api("/deployments/missing-otter-1/create_deploy_key"), { body: { name: "k" } })).toMatchObject({
      status: 404,
      body: { code: "DeploymentNotFound" },
    });
  });
});

describe("convex fake: faults", () => {
  test("two injected 503s answer with the Convex error body, then the call goes through", async () => {
    fake.inject({ path: "/create_project", status: 503, times: 2 });
    for (let i = 0; i < 2; i++) {
      expect(await createProject("flaky", "prod")).toMatchObject({
        status: 503,
        body: { code: "ServiceUnavailable", message: expect.any(String) },
      });
    }
    expect(fake.projects()).toEqual([]);
    expect((await createProject("flaky", "prod")).status).toBe(200);
    expect(fake.projects()).toHaveLength(1);
  });

  test("an injected 429 carries Retry-After in seconds", async () => {
    fake.inject({ status: 429, retryAfterSeconds: 7 });
    const answer = await call("GET", api(`/teams/${TEAM}/projects`));
    expect(answer.status).toBe(429);
    expect(answer.headers.get("retry-after")).toBe("7");
    expect(answer.body).toMatchObject({ code: "TooManyRequests" });
  });

  test("a dropped response still creates the project: the client sees a connection error, a lookup by name finds it", async () => {
    fake.inject({ path: "/create_project", dropResponse: true });
    await expect(createProject("tenant-lost", "prod")).rejects.toThrow();
    expect(fake.projects().map((p) => p.name)).toEqual(["tenant-lost"]);
    const found = (await call("GET", api(`/teams/${TEAM}/projects?q=tenant-lost`))).body as Page;
    expect(found.items.map((p) => p.name)).toEqual(["tenant-lost"]);
  });

  test("the request log records method, path and auth header of every call", async () => {
    await createProject("logged");
    expect(fake.requests.at(-1)).toMatchObject({
      method: "POST",
      path: `/v1/teams/${TEAM}/create_project`,
      headers: expect.objectContaining({ authorization: `Bearer ${TOKEN}` }),
      body: { projectName: "logged" },
    });
  });
});
