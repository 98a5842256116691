// @vitest-environment node
// Drives the Cloudflare Pages fake through the real `cloudflare` SDK (7.3.0), as Brain's adapter does.
import Cloudflare from "cloudflare";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { CLOUDFLARE_CODES, startCloudflareFake, type CloudflareFake } from "./cloudflare";

const ACCOUNT = "acc0123456789";
const TOKEN = "cf-token-1";

let fake: CloudflareFake;
let client: Cloudflare;
beforeEach(async () => {
  fake = await startCloudflareFake({ accountId: ACCOUNT, token: TOKEN, projectLimit: 30 });
  client = new Cloudflare({ apiToken: TOKEN, baseURL: fake.apiUrl, maxRetries: 0 });
});
afterEach(async () => {
  await fake.close();
});

const create = (name: string, extra: Partial<Cloudflare.Pages.ProjectCreateParams> = {}) =>
  client.pages.projects.create({ account_id: ACCOUNT, name, production_branch: "main", ...extra });

/** The SDK error a call fails with (the test fails if it succeeds). */
async function failure(promise: Promise<unknown>): Promise<InstanceType<typeof Cloudflare.APIError>> {
  const error: unknown = await promise.then(
    () => new Error("expected the call to fail"),
    (e: unknown) => e,
  );
  if (!(error instanceof Cloudflare.APIError)) throw error;
  return error;
}

describe("cloudflare fake: pages projects through the SDK", () => {
  test("creating a project answers the Project shape with a pages.dev subdomain and empty env vars", async () => {
    const project = await create("tenant-abc");
    expect(project).toMatchObject({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: "tenant-abc",
      subdomain: "tenant-abc.pages.dev",
      domains: ["tenant-abc.pages.dev"],
      production_branch: "main",
      created_on: expect.any(String),
      source: null,
      latest_deployment: null,
      canonical_deployment: null,
      deployment_configs: { production: { env_vars: {} }, preview: { env_vars: {} } },
    });
    expect(await client.pages.projects.get("tenant-abc", { account_id: ACCOUNT })).toEqual(project);
  });

  test("a name taken on pages.dev by another account gets a suffixed subdomain, so it must be read, not derived", async () => {
    await fake.close();
    fake = await startCloudflareFake({ accountId: ACCOUNT, token: TOKEN, takenSubdomains: ["popular"] });
    client = new Cloudflare({ apiToken: TOKEN, baseURL: fake.apiUrl, maxRetries: 0 });
    const project = await create("popular");
    expect(project.subdomain).toMatch(/^popular-[a-z0-9]{3}\.pages\.dev$/);
  });

  test("for-await pagination visits every project and stops on the first empty page", async () => {
    for (let i = 0; i < 23; i++) await create(`site-${i}`);
    const names: string[] = [];
    for await (const project of client.pages.projects.list({ account_id: ACCOUNT, per_page: 10 })) names.push(project.name);
    expect(names).toHaveLength(23);
    expect(new Set(names).size).toBe(23);
    const pages = fake.requests.filter((r) => r.method === "GET" && r.path.endsWith("/pages/projects"));
    expect(pages).toHaveLength(4); // 10 + 10 + 3 + the empty page that ends the iteration
  });

  test("a list page carries result_info and a page past the last one is empty", async () => {
    for (let i = 0; i < 3; i++) await create(`p-${i}`);
    const first = await client.pages.projects.list({ account_id: ACCOUNT, per_page: 2 });
    expect(first.result).toHaveLength(2);
    expect(first.result_info).toEqual({ page: 1, per_page: 2, count: 2, total_count: 3, total_pages: 2 });
    const past = await client.pages.projects.list({ account_id: ACCOUNT, page: 3, per_page: 2 });
    expect(past.result).toEqual([]);
  });

  test("edit deep-merges env vars per environment, deletes a var set to null and never echoes secret values", async () => {
    await create("envs", {
      deployment_configs: { production: { env_vars: { KEEP: { type: "plain_text", value: "1" } } } },
    });
    const edited = await client.pages.projects.edit("envs", {
      account_id: ACCOUNT,
      deployment_configs: {
        production: {
          env_vars: {
            CONVEX_URL: { type: "plain_text", value: "https://x.convex.cloud" },
            TOKEN: { type: "secret_text", value: "s3cret" },
          },
        },
        preview: { env_vars: { CONVEX_URL: { type: "plain_text", value: "https://y.convex.cloud" } } },
      },
    });
    expect(edited.deployment_configs.production.env_vars).toEqual({
      KEEP: { type: "plain_text", value: "1" },
      CONVEX_URL: { type: "plain_text", value: "https://x.convex.cloud" },
      TOKEN: { type: "secret_text", value: "" },
    });
    expect(fake.projects()[0].deployment_configs.production.env_vars.TOKEN).toEqual({ type: "secret_text", value: "s3cret" });

    const removed = await client.pages.projects.edit("envs", {
      account_id: ACCOUNT,
      deployment_configs: { production: { env_vars: { KEEP: null } } },
    });
    expect(Object.keys(removed.deployment_configs.production.env_vars ?? {}).sort()).toEqual(["CONVEX_URL", "TOKEN"]);
    expect(removed.deployment_configs.preview.env_vars).toEqual({ CONVEX_URL: { type: "plain_text", value: "https://y.convex.cloud" } });
  });

  test("delete answers a null result, and the project is then not found", async () => {
    await create("doomed");
    expect(await client.pages.projects.delete("doomed", { account_id: ACCOUNT })).toBeNull();
    const error = await failure(client.pages.projects.get("doomed", { account_id: ACCOUNT }));
    expect(error).toBeInstanceOf(Cloudflare.NotFoundError);
    expect(error.errors).toEqual([
      {
        code: 8000007,
        message: "Project not found. The specified project name does not match any of your existing projects.",
      },
    ]);
    expect((await failure(client.pages.projects.delete("doomed", { account_id: ACCOUNT }))).status).toBe(404);
  });

  test("a duplicate name is a 409 ConflictError carrying code 8000002 and the real message", async () => {
    await create("taken");
    const error = await failure(create("taken"));
    expect(error).toBeInstanceOf(Cloudflare.ConflictError);
    expect(error.status).toBe(409);
    expect(error.errors).toEqual([
      { code: 8000002, message: "A project with this name already exists. Choose a different project name." },
    ]);
    expect(error.error).toMatchObject({ success: false, result: null, messages: [] });
    expect(fake.projects()).toHaveLength(1);
  });

  test("an invalid name or a missing production branch is a 400 with an 8000xxx code", async () => {
    for (const name of ["Upper", "-leading", "under_score", "x".repeat(59)]) {
      const error = await failure(create(name));
      expect(error).toBeInstanceOf(Cloudflare.BadRequestError);
      expect(error.errors[0]?.code).toBe(CLOUDFLARE_CODES.invalidRequest);
    }
    const noBranch = await failure(
      client.pages.projects.create({ account_id: ACCOUNT, name: "ok" } as Cloudflare.Pages.ProjectCreateParams),
    );
    expect(noBranch.status).toBe(400);
    expect(fake.projects()).toEqual([]);
  });

  test("creating past the account's project limit is a 400 with code 8000027 naming the limit", async () => {
    await fake.close();
    fake = await startCloudflareFake({ accountId: ACCOUNT, token: TOKEN, projectLimit: 2 });
    client = new Cloudflare({ apiToken: TOKEN, baseURL: fake.apiUrl, maxRetries: 0 });
    await create("one");
    await create("two");
    const error = await failure(create("three"));
    expect(error.status).toBe(400);
    expect(error.errors[0]).toEqual({ code: 8000027, message: expect.stringContaining("2") });
  });

  test("a wrong token is a 401 AuthenticationError with code 10000 and a foreign account a 403", async () => {
    const stranger = new Cloudflare({ apiToken: "wrong", baseURL: fake.apiUrl, maxRetries: 0 });
    const error = await failure(stranger.pages.projects.get("x", { account_id: ACCOUNT }));
    expect(error).toBeInstanceOf(Cloudflare.AuthenticationError);
    expect(error.errors).toEqual([{ code: 10000, message: "Authentication error" }]);
    const foreign = await failure(client.pages.projects.get("x", { account_id: "someone-else" }));
    expect(foreign).toBeInstanceOf(Cloudflare.PermissionDeniedError);
  });
});

describe("cloudflare fake: deployments", () => {
  test("a successful deployment becomes latest and canonical, and deployments list newest first", async () => {
    await create("site");
    fake.addDeployment("site", "success");
    fake.addDeployment("site", "failure");
    const project = await client.pages.projects.get("site", { account_id: ACCOUNT });
    expect(project.latest_deployment?.latest_stage).toMatchObject({ name: "deploy", status: "failure" });
    expect(project.canonical_deployment?.latest_stage).toMatchObject({ name: "deploy", status: "success" });

    const listed: Cloudflare.Pages.Deployment[] = [];
    for await (const d of client.pages.projects.deployments.list("site", { account_id: ACCOUNT })) listed.push(d);
    expect(listed.map((d) => d.latest_stage.status)).toEqual(["failure", "success"]);
    expect(listed[0]).toMatchObject({
      project_name: "site",
      environment: "production",
      url: expect.stringMatching(/^https:\/\/[0-9a-f]{8}\.site\.pages\.dev$/),
      short_id: expect.any(String),
      created_on: expect.any(String),
      modified_on: expect.any(String),
    });
    expect(listed[0].stages.map((s) => s.name)).toEqual(["queued", "initialize", "clone_repo", "build", "deploy"]);
  });

  test("an active deployment has not ended", async () => {
    await create("busy");
    fake.addDeployment("busy", "active");
    const project = await client.pages.projects.get("busy", { account_id: ACCOUNT });
    expect(project.latest_deployment?.latest_stage).toMatchObject({ status: "active", ended_on: null });
    expect(project.canonical_deployment).toBeNull();
  });

  test("a project deleted out of band is not found through the API", async () => {
    await create("gone");
    fake.deleteProjectOutOfBand("gone");
    expect((await failure(client.pages.projects.get("gone", { account_id: ACCOUNT }))).status).toBe(404);
  });
});

describe("cloudflare fake: faults", () => {
  test("two injected 503s surface as InternalServerError, then the create goes through", async () => {
    fake.inject({ method: "POST", path: "/pages/projects", status: 503, times: 2 });
    for (let i = 0; i < 2; i++) {
      const error = await failure(create("flaky"));
      expect(error).toBeInstanceOf(Cloudflare.InternalServerError);
      expect(error.error).toMatchObject({ success: false, errors: [{ code: expect.any(Number) }] });
    }
    expect((await create("flaky")).name).toBe("flaky");
  });

  test("the SDK's own retries ride over injected 503s when Retry-After is zero", async () => {
    const retrying = new Cloudflare({ apiToken: TOKEN, baseURL: fake.apiUrl, maxRetries: 2 });
    fake.inject({ method: "POST", path: "/pages/projects", status: 503, times: 2, retryAfterSeconds: 0 });
    const project = await retrying.pages.projects.create({ account_id: ACCOUNT, name: "retried", production_branch: "main" });
    expect(project.name).toBe("retried");
    expect(fake.requests.filter((r) => r.method === "POST")).toHaveLength(3);
  });

  test("an injected 429 is a RateLimitError with Retry-After", async () => {
    fake.inject({ status: 429, retryAfterSeconds: 30 });
    const error = await failure(client.pages.projects.get("x", { account_id: ACCOUNT }));
    expect(error).toBeInstanceOf(Cloudflare.RateLimitError);
    expect(error.headers?.get("retry-after")).toBe("30");
    expect(error.errors[0]?.code).toBe(971);
  });

  test("a dropped response still creates the project: the SDK sees a connection error and a retry sees 8000002", async () => {
    fake.inject({ method: "POST", path: "/pages/projects", dropResponse: true });
    const error: unknown = await create("lost").then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Cloudflare.APIConnectionError);
    expect(fake.projects().map((p) => p.name)).toEqual(["lost"]);
    const again = await failure(create("lost"));
    expect(again.errors[0]?.code).toBe(8000002);
    expect((await client.pages.projects.get("lost", { account_id: ACCOUNT })).name).toBe("lost");
  });
});

describe("cloudflare fake: tenant sites", () => {
  const status = (url: string, signal?: AbortSignal) => fetch(url, { signal }).then((r) => r.status);

  test("a site answers at its subdomain or project name once a deployment succeeded, and keeps serving past a failed one", async () => {
    const project = await create("tenant-site");
    const bySubdomain = fake.siteUrlTemplate.replace("{subdomain}", project.subdomain!);
    expect(await status(bySubdomain)).toBe(404);

    fake.addDeployment("tenant-site", "success");
    fake.addDeployment("tenant-site", "failure");

    expect(await status(bySubdomain)).toBe(200);
    expect(await status(`${fake.siteUrl}/tenant-site`)).toBe(200);
    expect(await status(`${fake.siteUrl}/no-such-site.pages.dev`)).toBe(404);
  });

  test("sites.setMode makes one site answer 503 or never, leaving the others up", async () => {
    for (const name of ["site-a", "site-b"]) {
      await create(name);
      fake.addDeployment(name, "success");
    }
    const url = (name: string) => `${fake.siteUrl}/${name}.pages.dev`;

    fake.sites.setMode("site-a", "down");
    expect([await status(url("site-a")), await status(url("site-b"))]).toEqual([503, 200]);
    fake.sites.setMode("site-a", "hang");
    await expect(status(url("site-a"), AbortSignal.timeout(200))).rejects.toMatchObject({ name: "TimeoutError" });
    fake.sites.setMode("site-a", "up");
    expect(await status(url("site-a"))).toBe(200);
  });

  test("the projects list shows each project's latest deployment stage, a cancelled one included", async () => {
    await create("site-c");
    fake.addDeployment("site-c", "success");
    fake.addDeployment("site-c", "canceled");

    const page = await client.pages.projects.list({ account_id: ACCOUNT });

    const project = page.result.find((p) => p.name === "site-c") as { latest_deployment?: { latest_stage?: unknown } };
    expect(project.latest_deployment?.latest_stage).toMatchObject({ name: "deploy", status: "canceled" });
  });
});
