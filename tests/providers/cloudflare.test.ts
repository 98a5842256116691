// Contract tests: the live Cloudflare Pages adapter (on the `cloudflare` SDK, retries off)
// against the local Cloudflare fake, plus the Pages project cap end to end. Real timers;
// a fresh fake set and backend per test.
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { liveCloudflare } from "../../convex/providers/cloudflare";
import { ProviderError, type CloudflareAdapter } from "../../convex/providers/types";
import { FAKE_CREDENTIALS } from "../fakes";
import { CLOUDFLARE_CODES, startCloudflareFake, type CloudflareFake } from "../fakes/cloudflare";
import { pollUntilSettled, sendCheckout, statusOf } from "../harness";
import { adapterHarness, type AdapterHarness, providerError } from "./env";

const ACCOUNT = FAKE_CREDENTIALS.cloudflareAccount;
const PROJECTS_PATH = `/client/v4/accounts/${ACCOUNT}/pages/projects`;

let h: AdapterHarness;

/** The ProviderError a call fails with (anything else, or success, fails the test). */
describe("live Cloudflare Pages adapter against the Cloudflare fake", () => {
  let cloudflare: CloudflareAdapter;
  let standalone: CloudflareFake | undefined;

  beforeEach(async () => {
    h = await adapterHarness();
    cloudflare = liveCloudflare(h.env);
  });
  afterEach(async () => {
    await standalone?.close();
    standalone = undefined;
    await h.close();
  });

  /** The adapter with some settings changed (a wrong token, another URL...). */
  const cloudflareWith = (overrides: Partial<AdapterHarness["env"]["config"]>) =>
    liveCloudflare({ ...h.env, config: { ...h.env.config, ...overrides } });

  /** The adapter against a standalone fake started with options startFakes does not expose. */
  async function againstStandalone(options: { takenSubdomains?: string[]; projectLimit?: number }) {
    standalone = await startCloudflareFake({ accountId: ACCOUNT, token: FAKE_CREDENTIALS.cloudflareToken, ...options });
    return cloudflareWith({ CLOUDFLARE_API_URL: standalone.apiUrl });
  }

  const requests = (method: string, path: string | RegExp) =>
    h.fakes.cloudflare.requests.filter(
      (r) => r.method === method && (typeof path === "string" ? r.path === path : path.test(r.path)),
    );

  /** Creates a project straight through the fake's API, as someone outside Brain would. */
  async function createOutsideBrain(name: string) {
    const response = await fetch(`${h.fakes.cloudflare.apiUrl}/accounts/${ACCOUNT}/pages/projects`, {
      method: "POST",
      headers: { authorization: `Bearer ${FAKE_CREDENTIALS.cloudflareToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name, production_branch: "main" }),
    });
    expect(response.status).toBe(200);
  }

  describe("ensurePagesProject", () => {
    test("creates a project on the main branch and returns the subdomain Cloudflare gave it", async () => {
      const project = await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });

      expect(project).toEqual({ projectName: "brain-inst1", subdomain: "brain-inst1.pages.dev" });
      const stored = h.fakes.cloudflare.projects();
      expect(stored).toHaveLength(1);
      expect(stored[0]).toMatchObject({ name: "brain-inst1", production_branch: "main", subdomain: "brain-inst1.pages.dev" });
      expect(requests("POST", PROJECTS_PATH)).toHaveLength(1);
      expect(h.fakes.cloudflare.requests[0].headers.authorization).toBe(`Bearer ${FAKE_CREDENTIALS.cloudflareToken}`);
    });

    test("the subdomain is read from the response, so a suffixed one (name taken on pages.dev) is returned as is", async () => {
      const adapter = await againstStandalone({ takenSubdomains: ["brain-popular"] });

      const project = await adapter.ensurePagesProject({ instanceId: "popular", projectName: "brain-popular" });

      expect(project.subdomain).toMatch(/^brain-popular-[a-z0-9]{3}\.pages\.dev$/);
      expect(project.subdomain).toBe(standalone!.projects()[0].subdomain);
      // Adopting it later reads the same suffixed subdomain back.
      expect(await adapter.ensurePagesProject({ instanceId: "popular", projectName: "brain-popular" })).toEqual(project);
      expect(standalone!.projects()).toHaveLength(1);
    });

    test("ensuring a Brain project that already exists adopts it: one project, the same subdomain", async () => {
      const first = await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });
      const second = await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });

      expect(second).toEqual(first);
      expect(h.fakes.cloudflare.projects()).toHaveLength(1);
      // The 409 "already exists" is not retried by the SDK: one POST per ensure, then one GET to adopt.
      expect(requests("POST", PROJECTS_PATH)).toHaveLength(2);
      expect(requests("GET", `${PROJECTS_PATH}/brain-inst1`)).toHaveLength(1);
    });

    test("a create whose response is lost fails as transient, and the retry adopts the project it made", async () => {
      h.fakes.cloudflare.inject({ method: "POST", path: PROJECTS_PATH, dropResponse: true });

      const error = await providerError(cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" }));
      expect(error).toMatchObject({ provider: "cloudflare", kind: "transient" });
      expect(error.status).toBeUndefined();
      expect(requests("POST", PROJECTS_PATH)).toHaveLength(1); // no SDK retry
      expect(h.fakes.cloudflare.projects()).toHaveLength(1); // the fake acted before the response was lost

      const project = await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });

      expect(project).toEqual({ projectName: "brain-inst1", subdomain: "brain-inst1.pages.dev" });
      expect(h.fakes.cloudflare.projects()).toHaveLength(1);
    });

    test("an existing project without Brain's prefix is not adopted: 'already exists' is a permanent error", async () => {
      await createOutsideBrain("acme-site");

      const error = await providerError(cloudflare.ensurePagesProject({ instanceId: "x", projectName: "acme-site" }));

      expect(error).toMatchObject({
        provider: "cloudflare",
        kind: "permanent",
        status: 409,
        providerCode: String(CLOUDFLARE_CODES.projectExists),
      });
      expect(error.message).toBe("409: A project with this name already exists. Choose a different project name.");
      expect(requests("GET", `${PROJECTS_PATH}/acme-site`)).toHaveLength(0);
    });

    test("Cloudflare's own project limit is a permanent error with its message", async () => {
      const adapter = await againstStandalone({ projectLimit: 1 });
      await adapter.ensurePagesProject({ instanceId: "a", projectName: "brain-a" });

      const error = await providerError(adapter.ensurePagesProject({ instanceId: "b", projectName: "brain-b" }));

      expect(error).toMatchObject({ kind: "permanent", status: 400, providerCode: String(CLOUDFLARE_CODES.projectLimit) });
      expect(error.message).toMatch(/^400: You have reached the limit of 1 Pages projects/);
      expect(standalone!.projects().map((p) => p.name)).toEqual(["brain-a"]);
    });
  });

  describe("setEnvironment", () => {
    test("sets every variable as plain text for both production and preview", async () => {
      await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });
      const variables = { VITE_CONVEX_URL: "https://happy-otter-123.convex.cloud", WORKOS_ORGANIZATION_ID: "org_123" };

      await cloudflare.setEnvironment({ projectName: "brain-inst1", variables });

      const expected = {
        VITE_CONVEX_URL: { type: "plain_text", value: "https://happy-otter-123.convex.cloud" },
        WORKOS_ORGANIZATION_ID: { type: "plain_text", value: "org_123" },
      };
      const [project] = h.fakes.cloudflare.projects();
      expect(project.deployment_configs.production.env_vars).toEqual(expected);
      expect(project.deployment_configs.preview.env_vars).toEqual(expected);
      expect(requests("PATCH", `${PROJECTS_PATH}/brain-inst1`)).toHaveLength(1);
    });

    test("setting the variables of a missing project is a permanent not-found error", async () => {
      const error = await providerError(cloudflare.setEnvironment({ projectName: "brain-gone", variables: { A: "1" } }));

      expect(error).toMatchObject({ kind: "permanent", status: 404, providerCode: String(CLOUDFLARE_CODES.projectNotFound) });
      expect(error.message).toMatch(/^404: Project not found/);
    });
  });

  describe("probePagesProject", () => {
    test("is not live until the latest deployment succeeds, and not live again if a later one fails", async () => {
      await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });
      const probe = () => cloudflare.probePagesProject({ projectName: "brain-inst1" });

      expect(await probe()).toEqual({ ok: false, detail: "Pages project brain-inst1 is not live (latest deployment: none)" });

      h.fakes.cloudflare.addDeployment("brain-inst1", "failure");
      expect((await probe()).ok).toBe(false);

      h.fakes.cloudflare.addDeployment("brain-inst1", "success");
      expect(await probe()).toEqual({ ok: true, detail: "Pages project brain-inst1 is live" });

      h.fakes.cloudflare.addDeployment("brain-inst1", "failure");
      expect(await probe()).toEqual({ ok: false, detail: "Pages project brain-inst1 is not live (latest deployment: deploy failure)" });
    });

    test("a latest deployment still in progress is thrown as transient, not reported as not live", async () => {
      await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.cloudflare.addDeployment("brain-inst1", "active");

      const error = await providerError(cloudflare.probePagesProject({ projectName: "brain-inst1" }));

      expect(error).toMatchObject({ provider: "cloudflare", kind: "transient" });
      expect(error.message).toBe("Pages project brain-inst1 is still deploying (latest deployment: deploy active)");

      // Once that deployment has ended, the probe gives a definite answer again.
      h.fakes.cloudflare.addDeployment("brain-inst1", "success");
      expect(await cloudflare.probePagesProject({ projectName: "brain-inst1" })).toEqual({
        ok: true,
        detail: "Pages project brain-inst1 is live",
      });
    });

    test("an unreachable Cloudflare API while probing is thrown as a transient network error", async () => {
      await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.cloudflare.inject({ method: "GET", path: `${PROJECTS_PATH}/brain-inst1`, dropResponse: true });

      const error = await providerError(cloudflare.probePagesProject({ projectName: "brain-inst1" }));

      expect(error).toMatchObject({ provider: "cloudflare", kind: "transient", status: undefined });
      expect(error.message).toMatch(/^network error/);
    });

    test("reports a missing project as not found instead of throwing", async () => {
      expect(await cloudflare.probePagesProject({ projectName: "brain-gone" })).toEqual({
        ok: false,
        detail: "Pages project brain-gone not found",
      });
    });

    test("a server error while probing is thrown as transient, not reported as down", async () => {
      await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.cloudflare.inject({ method: "GET", path: `${PROJECTS_PATH}/brain-inst1`, status: 503 });

      const error = await providerError(cloudflare.probePagesProject({ projectName: "brain-inst1" }));

      expect(error).toMatchObject({ kind: "transient", status: 503 });
    });
  });

  describe("listPagesProjects", () => {
    test("returns only Brain-owned projects, over more than one page", async () => {
      const owned: string[] = [];
      for (let i = 0; i < 30; i++) {
        owned.push(`brain-t${i}`);
        await createOutsideBrain(`brain-t${i}`);
        if (i % 6 === 0) await createOutsideBrain(`acme-${i}`); // not ours, on every page
        if (i === 20) await createOutsideBrain("not-brain-site"); // contains the prefix, does not start with it
      }
      const before = h.fakes.cloudflare.requests.length;

      const listed = await cloudflare.listPagesProjects();

      expect(listed.map((p) => p.name).sort()).toEqual([...owned].sort());
      for (const project of listed) expect(project.id).toBe(project.name);
      // The instance each was made for, read from the name brain-<instanceId>.
      for (const project of listed) expect(project.instanceId).toBe(project.name.slice("brain-".length));
      const pages = h.fakes.cloudflare.requests.slice(before);
      expect(pages.length).toBeGreaterThanOrEqual(2);
      expect(pages.every((r) => r.method === "GET" && r.path === PROJECTS_PATH)).toBe(true);
    });

    test("is empty when the account holds no Brain projects", async () => {
      await createOutsideBrain("acme");

      expect(await cloudflare.listPagesProjects()).toEqual([]);
    });
  });

  describe("deletePagesProject", () => {
    test("deletes the project, and deleting it again is success", async () => {
      await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });

      await cloudflare.deletePagesProject({ projectName: "brain-inst1" });
      expect(h.fakes.cloudflare.projects()).toEqual([]);

      await expect(cloudflare.deletePagesProject({ projectName: "brain-inst1" })).resolves.toBeUndefined();
      expect(requests("DELETE", `${PROJECTS_PATH}/brain-inst1`)).toHaveLength(2);
    });

    test("a delete that fails with a 500 is thrown as transient and leaves the project in place", async () => {
      await cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.cloudflare.inject({ method: "DELETE", status: 500 });

      const error = await providerError(cloudflare.deletePagesProject({ projectName: "brain-inst1" }));

      expect(error).toMatchObject({ kind: "transient", status: 500 });
      expect(h.fakes.cloudflare.projects()).toHaveLength(1);
      expect(requests("DELETE", `${PROJECTS_PATH}/brain-inst1`)).toHaveLength(1);
    });
  });

  describe("errors", () => {
    const unknown = (status: number) => `An unknown error occurred. Contact support. (injected ${status})`;

    test.each([
      [500, "transient", CLOUDFLARE_CODES.unknown, unknown(500)],
      [502, "transient", CLOUDFLARE_CODES.unknown, unknown(502)],
      [503, "transient", CLOUDFLARE_CODES.unknown, unknown(503)],
      [504, "transient", CLOUDFLARE_CODES.unknown, unknown(504)],
      [408, "transient", CLOUDFLARE_CODES.unknown, unknown(408)],
      [400, "permanent", CLOUDFLARE_CODES.unknown, unknown(400)],
      [401, "permanent", CLOUDFLARE_CODES.authentication, "Authentication error"],
      [403, "permanent", CLOUDFLARE_CODES.authentication, "Authentication error"],
      [404, "permanent", CLOUDFLARE_CODES.routeNotFound, "Could not route to injected 404, perhaps your object identifier is invalid?"],
      [422, "permanent", CLOUDFLARE_CODES.unknown, unknown(422)],
    ] as const)(
      "a %i answer is a %s ProviderError with Cloudflare's message and code, after exactly one request",
      async (status, kind, code, message) => {
        h.fakes.cloudflare.inject({ method: "POST", path: PROJECTS_PATH, status });

        const error = await providerError(cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" }));

        expect(error).toMatchObject({ provider: "cloudflare", kind, status, providerCode: String(code), message: `${status}: ${message}` });
        expect(error.retryAfterMs).toBeUndefined();
        expect(h.fakes.cloudflare.requests).toHaveLength(1);
        expect(h.fakes.cloudflare.projects()).toHaveLength(0);
      },
    );

    test("a 429 is rate_limited with retryAfterMs taken from Retry-After, and the SDK does not retry it", async () => {
      h.fakes.cloudflare.inject({ method: "POST", path: PROJECTS_PATH, status: 429, retryAfterSeconds: 1 });

      const error = await providerError(cloudflare.ensurePagesProject({ instanceId: "inst1", projectName: "brain-inst1" }));

      expect(error).toMatchObject({
        provider: "cloudflare",
        kind: "rate_limited",
        status: 429,
        retryAfterMs: 1000,
        providerCode: String(CLOUDFLARE_CODES.rateLimited),
      });
      expect(h.fakes.cloudflare.requests).toHaveLength(1);
    });

    test("the fake's own rate limit answers a longer Retry-After, which the error carries instead of waiting for it", async () => {
      h.fakes.cloudflare.setRateLimit({ requests: 1, windowMs: 5_000 });
      await cloudflare.listPagesProjects();

      const started = Date.now();
      const error = await providerError(cloudflare.listPagesProjects());

      expect(error).toMatchObject({ kind: "rate_limited", status: 429 });
      // Retry-After counts whole seconds left in the fake's 5 s window (not the adapter's 1 s default).
      expect(error.retryAfterMs).toBeGreaterThanOrEqual(4_000);
      expect(error.retryAfterMs).toBeLessThanOrEqual(5_000);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(h.fakes.cloudflare.requests).toHaveLength(2);
    });

    test("a wrong token (401) and an account the token cannot reach (403) are permanent authentication errors", async () => {
      const badToken = await providerError(cloudflareWith({ CLOUDFLARE_API_TOKEN: "wrong-token" }).listPagesProjects());
      expect(badToken).toMatchObject({ kind: "permanent", status: 401, message: "401: Authentication error" });

      const otherAccount = await providerError(
        cloudflareWith({ CLOUDFLARE_ACCOUNT_ID: "fedcba9876543210fedcba9876543210" }).listPagesProjects(),
      );
      expect(otherAccount).toMatchObject({ kind: "permanent", status: 403, message: "403: Authentication error" });
      expect(h.fakes.cloudflare.requests).toHaveLength(2);
    });

    test("a request that outlives PROVIDER_TIMEOUT_MS is a transient error, after exactly one request", async () => {
      h.fakes.cloudflare.inject({ method: "GET", path: PROJECTS_PATH, latencyMs: 1_000 });

      const error = await providerError(cloudflareWith({ PROVIDER_TIMEOUT_MS: 150 }).listPagesProjects());

      expect(error).toMatchObject({ provider: "cloudflare", kind: "transient" });
      expect(error.status).toBeUndefined();
      expect(error.message).toMatch(/^network error: .*timed? ?out/i);
      expect(h.fakes.cloudflare.requests).toHaveLength(1);
    });

    test("an unreachable API is a transient network error", async () => {
      const error = await providerError(cloudflareWith({ CLOUDFLARE_API_URL: "http://127.0.0.1:1/client/v4" }).listPagesProjects());

      expect(error).toMatchObject({ provider: "cloudflare", kind: "transient" });
      expect(error.message).toMatch(/^network error/);
    });
  });
});

describe("the Pages project cap, end to end in live mode", () => {
  beforeEach(async () => {
    h = await adapterHarness({ CLOUDFLARE_PAGES_PROJECT_LIMIT: "1" });
  });
  afterEach(async () => {
    await h.close();
  });

  const settle = pollUntilSettled;

  test("a checkout past CLOUDFLARE_PAGES_PROJECT_LIMIT fails at once as permanent on pagesProject, and Cloudflare holds one project", async () => {
    const first = await sendCheckout(h.t);
    expect(first.response.status).toBe(200);
    // The cap is counted when a checkout arrives: the first one's instance exists by then.
    for (let i = 0; i < 200 && (await statusOf(h.t, first.sessionId)).body.instanceId === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const second = await sendCheckout(h.t);
    expect(second.response.status).toBe(200);

    // The second checkout is refused before any step runs: once processed, it is already terminal.
    let refused = (await statusOf(h.t, second.sessionId)).body;
    for (let i = 0; i < 200 && refused.jobId === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      refused = (await statusOf(h.t, second.sessionId)).body;
    }
    expect(refused.steps.every((s) => s.attempts === 0 || s.name === "pagesProject")).toBe(true);
    expect(refused.status).toBe("failed");
    expect(refused.error).toMatchObject({ step: "pagesProject", class: "permanent" });
    expect(refused.error!.message).toMatch(/CLOUDFLARE_PAGES_PROJECT_LIMIT/);

    const provisioned = await settle(h.t, first.sessionId);
    expect(provisioned.status).toBe("ready");
    expect(await settle(h.t, second.sessionId)).toMatchObject({ status: "failed", error: { step: "pagesProject" } });
    expect(h.fakes.cloudflare.projects()).toHaveLength(1);
    expect(h.fakes.cloudflare.projects()[0].name).toBe(provisioned.instanceUrl!.replace(/^https:\/\/|\.pages\.dev$/g, ""));
  });
});
