// Contract tests: the live Convex adapter (Management API + each deployment's own API)
// against the local Convex fake. Real timers; a fresh fake set and backend per test.
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { liveConvex } from "../../convex/providers/convex";
import { ProviderError, type ConvexAdapter } from "../../convex/providers/types";
import { FAKE_CREDENTIALS } from "../fakes";
import { adapterHarness, type AdapterHarness, providerError } from "./env";

let h: AdapterHarness;
let convex: ConvexAdapter;

beforeEach(async () => {
  h = await adapterHarness();
  convex = liveConvex(h.env);
});
afterEach(async () => {
  await h.close();
});

/** The ProviderError a call fails with (anything else, or success, fails the test). */
/** The adapter with some settings changed (a wrong token, another URL...). */
const convexWith = (overrides: Partial<AdapterHarness["env"]["config"]>) =>
  liveConvex({ ...h.env, config: { ...h.env.config, ...overrides } });

/** Requests the fake saw whose path ends with `suffix` (and method, when given). */
const requestsTo = (suffix: string, method?: string) =>
  h.fakes.convex.requests.filter((r) => r.path.endsWith(suffix) && (!method || r.method === method));

type TenantRequest = { method: string; path: string; headers: IncomingMessage["headers"]; body: string };

/**
 * A stand-in for a tenant app's HTTP actions on a free localhost port: records each request
 * and answers `status` (or never answers, with `status: "hang"`).
 */
async function startTenant(answer: { status: number | "hang"; body?: string }) {
  const received: TenantRequest[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({ method: request.method ?? "", path: request.url ?? "", headers: request.headers, body: Buffer.concat(chunks).toString("utf8") });
      if (answer.status === "hang") return;
      response.writeHead(answer.status, { "content-type": "text/plain" }).end(answer.body ?? "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    answer,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A localhost port nothing listens on: one the OS just gave out, closed again. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Creates a project straight through the fake's API, as someone outside Brain would. */
async function createOutsideBrain(projectName: string, deploymentType?: "prod" | "dev") {
  const response = await fetch(`${h.fakes.convex.managementUrl}/teams/${FAKE_CREDENTIALS.convexTeamId}/create_project`, {
    method: "POST",
    headers: { authorization: `Bearer ${FAKE_CREDENTIALS.convexToken}`, "content-type": "application/json" },
    body: JSON.stringify({ projectName, ...(deploymentType ? { deploymentType } : {}) }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { id: number; deploymentName?: string; deploymentUrl?: string };
}

describe("live Convex adapter against the Convex fake", () => {
  describe("deploy-key rotation: createDeployKey, verifyDeployKey, revokeDeployKey", () => {
    test("a new key works on its deployment; once revoked the deployment refuses it and a second revoke is success", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      const { deployKey } = await convex.createDeployKey({ deploymentName: project.deploymentName, name: "brain-inst1-rotated" });
      expect(deployKey).toMatch(new RegExp(`^prod:${project.deploymentName}\\|`));
      expect(deployKey).not.toBe(project.deployKey);
      expect(h.fakes.convex.deployments()[0].deployKeys.map((k) => k.key)).toEqual([project.deployKey, deployKey]);

      await convex.verifyDeployKey({ deploymentName: project.deploymentName, deploymentUrl: project.deploymentUrl, deployKey });
      await convex.revokeDeployKey({ deploymentName: project.deploymentName, deployKey: project.deployKey });
      expect(h.fakes.convex.deployments()[0].deployKeys.map((k) => k.key)).toEqual([deployKey]);
      expect(requestsTo("/delete_deploy_key", "POST")).toHaveLength(1);

      const refused = await convex
        .verifyDeployKey({ deploymentName: project.deploymentName, deploymentUrl: project.deploymentUrl, deployKey: project.deployKey })
        .then(() => null, (error: unknown) => error);
      expect(refused).toBeInstanceOf(ProviderError);
      expect((refused as ProviderError).kind).toBe("permanent");
      // Already revoked: success, so a retried revocation never fails.
      await convex.revokeDeployKey({ deploymentName: project.deploymentName, deployKey: project.deployKey });
      // The key never appears in an error message.
      expect(String((refused as Error).message)).not.toContain(project.deployKey);
    });
  });

  test("revokeDeployKeyNamed revokes the key a rotation made under a unique name; no such name is success", async () => {
    const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
    const { deployKey } = await convex.createDeployKey({ deploymentName: project.deploymentName, name: "brain-inst1-1700000000000" });
    await convex.revokeDeployKeyNamed({ deploymentName: project.deploymentName, name: "brain-inst1-1700000000000" });
    expect(h.fakes.convex.deployments()[0].deployKeys.map((k) => k.key)).toEqual([project.deployKey]);
    expect(h.fakes.convex.deployments()[0].deployKeys.map((k) => k.key)).not.toContain(deployKey);
    await convex.revokeDeployKeyNamed({ deploymentName: project.deploymentName, name: "brain-inst1-1700000000000" });
  });

  describe("ensureProject", () => {
    test("creates a project with a prod deployment and returns the deployment's URL and a deploy key for it", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });

      const [stored] = h.fakes.convex.projects();
      expect(h.fakes.convex.projects()).toHaveLength(1);
      expect(stored.name).toBe("brain-inst1");
      const [deployment] = h.fakes.convex.deployments();
      expect(deployment).toMatchObject({ projectId: stored.id, deploymentType: "prod", name: project.deploymentName });
      expect(project).toEqual({
        projectId: String(stored.id),
        projectName: "brain-inst1",
        deploymentName: deployment.name,
        deploymentUrl: `${h.fakes.convex.url}/d/${deployment.name}`,
        deployKey: expect.stringMatching(new RegExp(`^prod:${deployment.name}\\|`)),
      });
      expect(deployment.deployKeys).toEqual([{ name: "brain-inst1", key: project.deployKey }]);
      // Every Management API call carries the team token.
      expect(h.fakes.convex.requests.every((r) => r.headers.authorization === `Bearer ${FAKE_CREDENTIALS.convexToken}`)).toBe(true);
    });

    test("a second ensureProject under the same name adopts the project instead of creating a duplicate", async () => {
      const first = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      const second = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });

      expect(h.fakes.convex.projects()).toHaveLength(1);
      expect(requestsTo("/create_project", "POST")).toHaveLength(1);
      expect(second).toMatchObject({
        projectId: first.projectId,
        deploymentName: first.deploymentName,
        deploymentUrl: first.deploymentUrl,
      });
      // A deploy key cannot be read back, so the adopting run mints a fresh one.
      expect(second.deployKey).not.toBe(first.deployKey);
      expect(h.fakes.convex.deployments()[0].deployKeys.map((k) => k.key)).toEqual([first.deployKey, second.deployKey]);
    });

    test("the lookup before create matches the exact name, not projects whose names merely contain it", async () => {
      await createOutsideBrain("brain-inst1-old", "prod");
      await createOutsideBrain("Brain Inst1", "prod"); // slug brain-inst1: matches the search, not the name

      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });

      expect(h.fakes.convex.projects().map((p) => p.name).sort()).toEqual(["Brain Inst1", "brain-inst1", "brain-inst1-old"]);
      const created = h.fakes.convex.projects().find((p) => p.name === "brain-inst1")!;
      expect(project.projectId).toBe(String(created.id));
    });

    test("adopting a project created elsewhere picks its prod deployment", async () => {
      const outside = await createOutsideBrain("brain-inst2", "prod");

      const project = await convex.ensureProject({ instanceId: "inst2", projectName: "brain-inst2" });

      expect(requestsTo("/create_project", "POST")).toHaveLength(1); // only the outside one
      expect(project).toMatchObject({
        projectId: String(outside.id),
        deploymentName: outside.deploymentName,
        deploymentUrl: outside.deploymentUrl,
      });
    });

    test("a create whose response is lost fails as transient, and the retry adopts the project it made", async () => {
      h.fakes.convex.inject({ method: "POST", path: "/create_project", dropResponse: true });

      const error = await providerError(convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" }));
      expect(error).toMatchObject({ provider: "convex", kind: "transient" });
      expect(error.message).toMatch(/^network error/);
      expect(h.fakes.convex.projects()).toHaveLength(1); // the fake acted before the response was lost

      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });

      expect(h.fakes.convex.projects()).toHaveLength(1);
      expect(h.fakes.convex.deployments()).toHaveLength(1);
      expect(requestsTo("/create_project", "POST")).toHaveLength(1);
      expect(project.projectId).toBe(String(h.fakes.convex.projects()[0].id));
      expect(project.deploymentName).toBe(h.fakes.convex.deployments()[0].name);
    });

    test("a create that fails with a 503 is one request, and the next attempt creates exactly one project", async () => {
      h.fakes.convex.inject({ method: "POST", path: "/create_project", status: 503 });

      const error = await providerError(convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" }));
      expect(error).toMatchObject({ kind: "transient", status: 503 });
      expect(requestsTo("/create_project", "POST")).toHaveLength(1);
      expect(h.fakes.convex.projects()).toHaveLength(0);

      await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      expect(requestsTo("/create_project", "POST")).toHaveLength(2);
      expect(h.fakes.convex.projects()).toHaveLength(1);
    });
  });

  describe("deployment environment", () => {
    test("setEnvironment writes through the deployment URL the API returned, with the deploy key, and getEnvironment reads it back", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      const variables = { BRAIN_INSTANCE_ID: "inst1", WORKOS_ORGANIZATION_ID: "org_123", STRIPE_WEBHOOK_SECRET: "whsec_abc" };

      await convex.setEnvironment({
        deploymentName: project.deploymentName,
        deploymentUrl: project.deploymentUrl,
        deployKey: project.deployKey,
        variables,
      });

      expect(h.fakes.convex.envVars(project.deploymentName)).toEqual(variables);
      expect(await convex.getEnvironment({ deploymentUrl: project.deploymentUrl, deployKey: project.deployKey })).toEqual(variables);
      const deploymentCalls = h.fakes.convex.requests.filter((r) => r.path.startsWith(`/d/${project.deploymentName}/api/v1/`));
      expect(deploymentCalls.map((r) => `${r.method} ${r.path}`)).toEqual([
        `POST /d/${project.deploymentName}/api/v1/update_environment_variables`,
        `GET /d/${project.deploymentName}/api/v1/list_environment_variables`,
      ]);
      // The deployment API gets the deploy key, never the team token.
      for (const call of deploymentCalls) expect(call.headers.authorization).toBe(`Convex ${project.deployKey}`);
      expect(deploymentCalls[0].body).toEqual({ changes: Object.entries(variables).map(([name, value]) => ({ name, value })) });
    });

    test("a deploy key minted for another deployment is refused as a permanent error with Convex's message", async () => {
      const a = await convex.ensureProject({ instanceId: "a", projectName: "brain-a" });
      const b = await convex.ensureProject({ instanceId: "b", projectName: "brain-b" });

      const error = await providerError(convex.getEnvironment({ deploymentUrl: b.deploymentUrl, deployKey: a.deployKey }));

      expect(error).toMatchObject({ provider: "convex", kind: "permanent", status: 401, providerCode: "BadAdminKey" });
      expect(error.message).toBe("401: The provided admin key was invalid for this instance");
    });

    test("an invalid variable name is a permanent error carrying Convex's message, and nothing is written", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });

      const error = await providerError(
        convex.setEnvironment({ ...project, variables: { GOOD: "1", "1BAD": "2" } }),
      );

      expect(error).toMatchObject({ kind: "permanent", status: 400, providerCode: "EnvironmentVariableNameInvalid" });
      expect(error.message).toMatch(/^400: The environment variable name 1BAD is invalid/);
      expect(h.fakes.convex.envVars(project.deploymentName)).toEqual({});
    });

    test("the environment of a deployment that no longer exists is a permanent not-found error", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.convex.deleteProjectOutOfBand(Number(project.projectId));

      const error = await providerError(convex.getEnvironment({ deploymentUrl: project.deploymentUrl, deployKey: project.deployKey }));

      expect(error).toMatchObject({ kind: "permanent", status: 404, providerCode: "DeploymentNotFound" });
      expect(error.message).toBe(`404: Deployment ${project.deploymentName} not found`);
    });
  });

  describe("environment removal", () => {
    test("a null value removes that variable with a change that has a name and no value, leaving the others", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      await convex.setEnvironment({ ...project, variables: { KEEP: "1", DROP: "2" } });

      await convex.setEnvironment({ ...project, variables: { DROP: null, KEEP: "3" } });

      expect(h.fakes.convex.envVars(project.deploymentName)).toEqual({ KEEP: "3" });
      expect(requestsTo("/update_environment_variables", "POST").at(-1)?.body).toEqual({
        changes: [{ name: "DROP" }, { name: "KEEP", value: "3" }],
      });
      // Removing a variable that is not set is success.
      await convex.setEnvironment({ ...project, variables: { DROP: null } });
      expect(await convex.getEnvironment(project)).toEqual({ KEEP: "3" });
    });
  });

  describe("pauseDeployment and unpauseDeployment", () => {
    test("pause and unpause call the deployment's API with its deploy key, and repeating either is success", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });

      await convex.pauseDeployment(project);
      expect(h.fakes.convex.isPaused(project.deploymentName)).toBe(true);
      await convex.pauseDeployment(project);
      expect(h.fakes.convex.isPaused(project.deploymentName)).toBe(true);

      await convex.unpauseDeployment(project);
      expect(h.fakes.convex.isPaused(project.deploymentName)).toBe(false);
      await convex.unpauseDeployment(project);
      expect(h.fakes.convex.isPaused(project.deploymentName)).toBe(false);

      const calls = h.fakes.convex.requests.filter((r) => /_deployment$/.test(r.path));
      expect(calls.map((r) => `${r.method} ${r.path}`)).toEqual([
        ...Array(2).fill(`POST /d/${project.deploymentName}/api/v1/pause_deployment`),
        ...Array(2).fill(`POST /d/${project.deploymentName}/api/v1/unpause_deployment`),
      ]);
      for (const call of calls) expect(call.headers.authorization).toBe(`Convex ${project.deployKey}`);
    });

    test("pausing or unpausing a deployment that no longer exists is a permanent 404", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.convex.deleteProjectOutOfBand(Number(project.projectId));

      for (const change of [convex.pauseDeployment(project), convex.unpauseDeployment(project)]) {
        const error = await providerError(change);
        expect(error).toMatchObject({ provider: "convex", kind: "permanent", status: 404, providerCode: "DeploymentNotFound" });
      }
    });

    test("a 503 while pausing is transient, and the retry pauses", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.convex.inject({ method: "POST", path: "/pause_deployment", status: 503 });

      expect(await providerError(convex.pauseDeployment(project))).toMatchObject({ kind: "transient", status: 503 });
      expect(h.fakes.convex.isPaused(project.deploymentName)).toBe(false);

      await convex.pauseDeployment(project);
      expect(h.fakes.convex.isPaused(project.deploymentName)).toBe(true);
    });
  });

  describe("deliverEvent", () => {
    const body = JSON.stringify({ id: "evt_1", object: "event", type: "customer.subscription.updated" });
    const signature = "t=1700000000,v1=abc123";

    test("posts the body as-is with its Stripe-Signature and answers the tenant's 200", async () => {
      const tenant = await startTenant({ status: 200, body: "ok" });
      try {
        const answer = await convex.deliverEvent({ deploymentName: "happy-otter-1", url: `${tenant.url}/stripe/events`, body, signature });

        expect(answer).toEqual({ status: 200 });
        expect(tenant.received).toHaveLength(1);
        expect(tenant.received[0]).toMatchObject({ method: "POST", path: "/stripe/events", body });
        expect(tenant.received[0].headers["stripe-signature"]).toBe(signature);
        expect(tenant.received[0].headers["content-type"]).toBe("application/json");
        // A call to the tenant, not to Convex's API.
        expect(h.fakes.convex.requests).toHaveLength(0);
      } finally {
        await tenant.close();
      }
    });

    test.each([400, 401, 404, 409, 429, 500, 503])("resolves with the tenant's %i instead of throwing", async (status) => {
      const tenant = await startTenant({ status, body: "no" });
      try {
        expect(await convex.deliverEvent({ deploymentName: "d", url: tenant.url, body, signature })).toEqual({ status });
        expect(tenant.received).toHaveLength(1);
      } finally {
        await tenant.close();
      }
    });

    test("nothing listening at the URL is a transient network error", async () => {
      const port = await closedPort();

      const error = await providerError(convex.deliverEvent({ deploymentName: "d", url: `http://127.0.0.1:${port}/stripe`, body, signature }));

      expect(error).toMatchObject({ provider: "convex", kind: "transient", status: undefined });
      expect(error.message).toMatch(/^network error/);
    });

    test("a tenant that does not answer within PROVIDER_TIMEOUT_MS is a transient network error", async () => {
      const tenant = await startTenant({ status: "hang" });
      try {
        const error = await providerError(
          convexWith({ PROVIDER_TIMEOUT_MS: 150 }).deliverEvent({ deploymentName: "d", url: tenant.url, body, signature }),
        );
        expect(error).toMatchObject({ provider: "convex", kind: "transient", status: undefined });
        expect(error.message).toMatch(/^network error: .*(timeout|aborted)/i);
      } finally {
        await tenant.close();
      }
    });

    test("logs one provider.call line with the tenant's status, never the body or the signature", async () => {
      const tenant = await startTenant({ status: 400 });
      const lines: string[] = [];
      const capture = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
      const info = vi.spyOn(console, "info").mockImplementation(capture);
      const warn = vi.spyOn(console, "warn").mockImplementation(capture);
      try {
        await convex.deliverEvent({ deploymentName: "d", url: tenant.url, body, signature });
      } finally {
        info.mockRestore();
        warn.mockRestore();
        await tenant.close();
      }
      const calls = lines.filter((line) => line.includes('"provider.call"'));
      expect(calls).toHaveLength(1);
      expect(JSON.parse(calls[0])).toMatchObject({ provider: "convex", operation: "deliverEvent", outcome: "400", mode: "live" });
      expect(calls[0]).not.toContain("evt_1");
      expect(calls[0]).not.toContain("abc123");
    });

    test("does not wait for the Convex request budget: a tenant call is not a call to Convex's API", async () => {
      await h.close();
      h = await adapterHarness({ RATE_LIMIT_CONVEX_RPS: "1" });
      convex = liveConvex(h.env);
      const tenant = await startTenant({ status: 200 });
      try {
        const started = Date.now();
        for (let i = 0; i < 6; i++) await convex.deliverEvent({ deploymentName: "d", url: tenant.url, body, signature });
        // Six budgeted calls at one per second would take five seconds at least.
        expect(Date.now() - started).toBeLessThan(3_000);
        expect(tenant.received).toHaveLength(6);
      } finally {
        await tenant.close();
      }
    });
  });

  describe("probeDeployment", () => {
    test("reports a deployment that exists and answers as ok, and one deleted out of band as not found", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });

      expect(await convex.probeDeployment(project)).toEqual({ ok: true, detail: `Convex deployment ${project.deploymentName} answers` });

      h.fakes.convex.deleteProjectOutOfBand(Number(project.projectId));
      expect(await convex.probeDeployment(project)).toEqual({
        ok: false,
        detail: `Convex deployment ${project.deploymentName} not found`,
      });
    });

    test("a deployment URL that cannot be reached is thrown as a transient network error, not reported as down", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });

      const error = await providerError(
        convex.probeDeployment({ deploymentName: project.deploymentName, deploymentUrl: "http://127.0.0.1:1" }),
      );

      expect(error).toMatchObject({ provider: "convex", kind: "transient", status: undefined });
      expect(error.message).toMatch(/^network error/);
    });

    test.each([500, 502, 503, 504, 408])(
      "a %i from the deployment's /version is thrown as transient, not reported as down",
      async (status) => {
        const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
        h.fakes.convex.inject({ method: "GET", path: `/d/${project.deploymentName}/version`, status });

        const error = await providerError(convex.probeDeployment(project));

        expect(error).toMatchObject({ provider: "convex", kind: "transient", status });
        // The probe is made again once the deployment answers.
        expect(await convex.probeDeployment(project)).toMatchObject({ ok: true });
      },
    );

    test("a 429 from the deployment's /version is thrown as rate_limited with its Retry-After", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.convex.inject({ method: "GET", path: `/d/${project.deploymentName}/version`, status: 429, retryAfterSeconds: 2 });

      const error = await providerError(convex.probeDeployment(project));

      expect(error).toMatchObject({ provider: "convex", kind: "rate_limited", status: 429, retryAfterMs: 2000 });
    });

    test("a deployment whose /version answers 404 is reported as not ok: a definite wrong answer", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.convex.inject({ method: "GET", path: `/d/${project.deploymentName}/version`, status: 404 });

      expect(await convex.probeDeployment(project)).toEqual({
        ok: false,
        detail: `Convex deployment ${project.deploymentName} answered 404`,
      });
    });

    test("a Management API failure while probing is thrown as a classified error, not reported as down", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.convex.inject({ method: "GET", path: `/v1/deployments/${project.deploymentName}`, status: 502 });

      const error = await providerError(convex.probeDeployment(project));

      expect(error).toMatchObject({ kind: "transient", status: 502 });
    });
  });

  describe("listProjects", () => {
    test("returns only Brain-owned projects, following the cursor over more than one page", async () => {
      const owned: string[] = [];
      for (let i = 0; i < 103; i++) {
        const name = `brain-t${i}`;
        owned.push(name);
        await createOutsideBrain(name);
        if (i % 40 === 0) {
          await createOutsideBrain(`Brain Tenant ${i}`); // slug brain-tenant-<i> matches the search; the name is not ours
          await createOutsideBrain(`my-brain-site-${i}`); // the name contains the prefix but does not start with it
          await createOutsideBrain(`acme-${i}`);
        }
      }
      const before = h.fakes.convex.requests.length;

      const listed = await convex.listProjects();

      expect(listed.map((p) => p.name).sort()).toEqual([...owned].sort());
      const byName = new Map(h.fakes.convex.projects().map((p) => [p.name, String(p.id)]));
      for (const project of listed) expect(project.id).toBe(byName.get(project.name));
      // The instance each was made for, read from the name brain-<instanceId>.
      for (const project of listed) expect(project.instanceId).toBe(project.name.slice("brain-".length));
      const pages = h.fakes.convex.requests.slice(before);
      expect(pages.length).toBeGreaterThanOrEqual(2);
      expect(pages.every((r) => r.method === "GET" && r.path === `/v1/teams/${FAKE_CREDENTIALS.convexTeamId}/projects`)).toBe(true);
    });

    test("is empty when the team holds no Brain projects", async () => {
      await createOutsideBrain("acme");
      expect(await convex.listProjects()).toEqual([]);
    });
  });

  describe("deleteProject", () => {
    test("deletes the project and its deployments, and deleting it again is success", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });

      await convex.deleteProject({ projectId: project.projectId });
      expect(h.fakes.convex.projects()).toEqual([]);
      expect(h.fakes.convex.deployments()).toEqual([]);

      await expect(convex.deleteProject({ projectId: project.projectId })).resolves.toBeUndefined();
      expect(requestsTo(`/projects/${project.projectId}/delete`, "POST")).toHaveLength(2);
    });

    test("a delete that fails with a 500 is thrown as transient and leaves the project in place", async () => {
      const project = await convex.ensureProject({ instanceId: "inst1", projectName: "brain-inst1" });
      h.fakes.convex.inject({ method: "POST", path: "/delete", status: 500 });

      const error = await providerError(convex.deleteProject({ projectId: project.projectId }));

      expect(error).toMatchObject({ kind: "transient", status: 500 });
      expect(h.fakes.convex.projects()).toHaveLength(1);
    });
  });

  describe("errors", () => {
    test.each([
      [500, "transient", "InternalServerError"],
      [502, "transient", "BadGateway"],
      [503, "transient", "ServiceUnavailable"],
      [504, "transient", "GatewayTimeout"],
      [408, "transient", "Http408"],
      [400, "permanent", "BadRequest"],
      [401, "permanent", "Unauthorized"],
      [403, "permanent", "Forbidden"],
      [404, "permanent", "NotFound"],
      [422, "permanent", "Http422"],
    ] as const)("a %i answer is a %s ProviderError with Convex's message and code, after exactly one request", async (status, kind, code) => {
      h.fakes.convex.inject({ method: "GET", path: "/projects", status });

      const error = await providerError(convex.listProjects());

      expect(error).toMatchObject({ provider: "convex", kind, status, providerCode: code, message: `${status}: injected ${status}` });
      expect(error.retryAfterMs).toBeUndefined();
      expect(h.fakes.convex.requests).toHaveLength(1);
    });

    test("a 429 is rate_limited with retryAfterMs taken from Retry-After, after exactly one request", async () => {
      h.fakes.convex.inject({ method: "GET", path: "/projects", status: 429, retryAfterSeconds: 1 });

      const error = await providerError(convex.listProjects());

      expect(error).toMatchObject({ provider: "convex", kind: "rate_limited", status: 429, retryAfterMs: 1000 });
      expect(h.fakes.convex.requests).toHaveLength(1);
    });

    test("the fake's own rate limit answers a longer Retry-After, which the error carries instead of retrying", async () => {
      h.fakes.convex.setRateLimit({ requests: 1, windowMs: 5_000 });
      await convex.listProjects();

      const error = await providerError(convex.listProjects());

      expect(error).toMatchObject({ kind: "rate_limited", status: 429 });
      // Retry-After counts whole seconds left in the fake's 5 s window (not the adapter's 1 s default).
      expect(error.retryAfterMs).toBeGreaterThanOrEqual(4_000);
      expect(error.retryAfterMs).toBeLessThanOrEqual(5_000);
      expect(h.fakes.convex.requests).toHaveLength(2);
    });

    test("a wrong team token (401) and a team the token cannot reach (403) are permanent with Convex's messages", async () => {
      const badToken = await providerError(convexWith({ CONVEX_TEAM_TOKEN: "not-the-token" }).listProjects());
      expect(badToken).toMatchObject({ kind: "permanent", status: 401, providerCode: "Unauthorized" });
      expect(badToken.message).toBe("401: The access token is missing, invalid or expired");

      const otherTeam = await providerError(convexWith({ CONVEX_TEAM_ID: "9999" }).listProjects());
      expect(otherTeam).toMatchObject({ kind: "permanent", status: 403, providerCode: "Forbidden" });
      expect(otherTeam.message).toBe("403: The access token does not grant access to team 9999");
    });

    test("a request that outlives PROVIDER_TIMEOUT_MS is a transient error", async () => {
      h.fakes.convex.inject({ method: "GET", path: "/projects", latencyMs: 1_000 });

      const error = await providerError(convexWith({ PROVIDER_TIMEOUT_MS: 150 }).listProjects());

      expect(error).toMatchObject({ provider: "convex", kind: "transient" });
      expect(error.status).toBeUndefined();
      expect(error.message).toMatch(/^network error: .*(timeout|aborted)/i);
    });

    test("an unreachable Management API is a transient network error", async () => {
      const error = await providerError(convexWith({ CONVEX_MANAGEMENT_API_URL: "http://127.0.0.1:1/v1" }).listProjects());

      expect(error).toMatchObject({ provider: "convex", kind: "transient" });
      expect(error.message).toMatch(/^network error/);
    });
  });
});
