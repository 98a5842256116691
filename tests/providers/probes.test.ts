// Contract tests: the live health probes (a tenant's site, its backend's /version) and the Pages
// deep check, against the local fakes. Real timers; a small HEALTH_PROBE_TIMEOUT_MS so a hung
// target times out quickly; a fresh fake set and backend per test.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { liveCloudflare } from "../../convex/providers/cloudflare";
import { liveConvex } from "../../convex/providers/convex";
import type { CloudflareAdapter, ConvexAdapter, ProbeTarget } from "../../convex/providers/types";
import { FAKE_CREDENTIALS } from "../fakes";
import { adapterHarness, providerError, type AdapterHarness } from "./env";

const TIMEOUT_MS = 300;
const PROJECTS_PATH = `/client/v4/accounts/${FAKE_CREDENTIALS.cloudflareAccount}/pages/projects`;

let h: AdapterHarness;
let convex: ConvexAdapter;
let cloudflare: CloudflareAdapter;
let extra: Server[] = [];

beforeEach(async () => {
  h = await adapterHarness({ HEALTH_PROBE_TIMEOUT_MS: String(TIMEOUT_MS) });
  convex = liveConvex(h.env);
  cloudflare = liveCloudflare(h.env);
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const server of extra) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  extra = [];
  await h.close();
});

/** A URL on 127.0.0.1 where nothing listens: a port just freed. */
async function refusedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** A local server answering `answer(path)`: a status, or a redirect to a URL. */
async function serve(answer: (path: string) => { status: number; location?: string }): Promise<string> {
  const server = createServer((request, response) => {
    const { status, location } = answer(request.url ?? "/");
    response.writeHead(status, location ? { location } : {}).end();
  });
  extra.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The health.probe_failed lines logged while `run` ran. */
async function probeFailureLogs<T>(run: () => Promise<T>): Promise<{ result: T; lines: Record<string, unknown>[]; raw: string[] }> {
  const raw: string[] = [];
  vi.spyOn(console, "warn").mockImplementation((line: unknown) => void raw.push(String(line)));
  const result = await run();
  const lines = raw.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.event === "health.probe_failed");
  return { result, lines, raw };
}

describe("live convex.probeBackends", () => {
  /** A tenant backend on the Convex fake. */
  async function backend(instanceId: string): Promise<ProbeTarget> {
    const project = await convex.ensureProject({ instanceId, projectName: `brain-${instanceId}` });
    return { instanceId, name: project.deploymentName, url: project.deploymentUrl };
  }

  test("answers every target in order: up, 503, timed out, refused, missing deployment; never throws", async () => {
    const [up, down, hung, gone] = await Promise.all(["b1", "b2", "b3", "b4"].map(backend));
    h.fakes.convex.backends.setMode(down.name, "down");
    h.fakes.convex.backends.setMode(hung.name, "hang");
    const refused: ProbeTarget = { instanceId: "b5", name: "nowhere", url: await refusedUrl() };
    const missing: ProbeTarget = { ...gone, url: `${gone.url.replace(/\/d\/.*$/, "")}/d/no-such-deployment` };

    const outcomes = await convex.probeBackends([up, down, hung, refused, missing]);

    expect(outcomes.map((o) => o.ok)).toEqual([true, false, false, false, false]);
    expect(outcomes[0]).toMatchObject({ status: 200, detail: expect.stringMatching(/^200 in \d+ ms$/) });
    expect(outcomes[1]).toMatchObject({ status: 503, detail: "503 Service Unavailable" });
    expect(outcomes[2]).toMatchObject({ detail: `timed out after ${TIMEOUT_MS} ms` });
    expect(outcomes[2].status).toBeUndefined();
    expect(outcomes[2].ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    expect(outcomes[3]).toMatchObject({ detail: "connection refused" });
    expect(outcomes[3].status).toBeUndefined();
    expect(outcomes[4]).toMatchObject({ status: 404, detail: "404 Not Found" });
    for (const outcome of outcomes) expect(outcome.ms).toBeGreaterThanOrEqual(0);
  });

  test("fetches <deployment URL>/version once per target, with or without a trailing slash", async () => {
    const target = await backend("v1");
    h.fakes.convex.requests.length = 0;

    const outcomes = await convex.probeBackends([target, { ...target, url: `${target.url}/` }]);

    expect(outcomes.map((o) => o.ok)).toEqual([true, true]);
    expect(h.fakes.convex.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /d/${target.name}/version`,
      `GET /d/${target.name}/version`,
    ]);
  });

  test("probes every target at once and spends no request budget: a batch takes about one timeout, not one per target", async () => {
    const targets = await Promise.all(["p1", "p2", "p3", "p4", "p5", "p6"].map(backend));
    for (const target of targets) h.fakes.convex.backends.setMode(target.name, "hang");
    // One request a second: six probes that each took from this budget would need five seconds.
    const tightBudget = liveConvex({ ...h.env, config: { ...h.env.config, RATE_LIMIT_CONVEX_RPS: 1 } });

    const started = Date.now();
    const outcomes = await tightBudget.probeBackends(targets);

    expect(outcomes.every((o) => !o.ok && o.detail === `timed out after ${TIMEOUT_MS} ms`)).toBe(true);
    // One after another they would take six timeouts.
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS * 3);
  });

  test("a backend back up answers 200 again", async () => {
    const target = await backend("r1");
    h.fakes.convex.backends.setMode(target.name, "down");
    expect((await convex.probeBackends([target]))[0].ok).toBe(false);

    h.fakes.convex.backends.setMode(target.name, "up");
    expect((await convex.probeBackends([target]))[0]).toMatchObject({ ok: true, status: 200 });
  });

  test("logs one health.probe_failed line per failed probe, with the instance and outcome and never the URL", async () => {
    const [up, down] = await Promise.all(["l1", "l2"].map(backend));
    h.fakes.convex.backends.setMode(down.name, "down");
    const refused: ProbeTarget = { instanceId: "l3", name: "nowhere", url: `${await refusedUrl()}/?token=secret-value` };

    const { lines, raw } = await probeFailureLogs(() => convex.probeBackends([up, down, refused]));

    expect(lines).toHaveLength(2);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ level: "warn", correlationId: "contract-test", provider: "convex", operation: "convex.probeBackend", instanceId: "l2", outcome: "503" }),
        expect.objectContaining({ instanceId: "l3", outcome: "connection refused", durationMs: expect.any(Number) }),
      ]),
    );
    expect(raw.join("\n")).not.toMatch(/127\.0\.0\.1|secret-value/);
  });
});

describe("live cloudflare.probeSites", () => {
  /** A Brain Pages project with a successful production deployment, probed at the fake's site URL. */
  async function site(instanceId: string): Promise<ProbeTarget> {
    const { projectName, subdomain } = await cloudflare.ensurePagesProject({ instanceId, projectName: `brain-${instanceId}` });
    h.fakes.cloudflare.addDeployment(projectName, "success");
    return { instanceId, name: projectName, url: h.fakes.cloudflare.siteUrlTemplate.replace("{subdomain}", subdomain) };
  }

  test("answers every target in order: up, 503, timed out, refused, never deployed; never throws", async () => {
    const [up, down, hung] = await Promise.all(["s1", "s2", "s3"].map(site));
    h.fakes.cloudflare.sites.setMode(down.name, "down");
    h.fakes.cloudflare.sites.setMode(hung.name, "hang");
    const refused: ProbeTarget = { instanceId: "s4", name: "brain-s4", url: await refusedUrl() };
    const fresh = await cloudflare.ensurePagesProject({ instanceId: "s5", projectName: "brain-s5" });
    const undeployed: ProbeTarget = { instanceId: "s5", name: fresh.projectName, url: `${h.fakes.cloudflare.siteUrl}/${fresh.subdomain}` };

    const outcomes = await cloudflare.probeSites([up, down, hung, refused, undeployed]);

    expect(outcomes.map((o) => o.ok)).toEqual([true, false, false, false, false]);
    expect(outcomes[0]).toMatchObject({ status: 200, detail: expect.stringMatching(/^200 in \d+ ms$/) });
    expect(outcomes[1]).toMatchObject({ status: 503, detail: "503 Service Unavailable" });
    expect(outcomes[2]).toMatchObject({ detail: `timed out after ${TIMEOUT_MS} ms` });
    expect(outcomes[3]).toMatchObject({ detail: "connection refused" });
    expect(outcomes[4]).toMatchObject({ status: 404 });
  });

  test("any 2xx passes and redirects are followed to the final answer", async () => {
    const target = await site("rd1");
    const base = await serve((path) =>
      path === "/moved" ? { status: 301, location: target.url } : path === "/gone" ? { status: 302, location: "/missing" } : path === "/empty" ? { status: 204 } : { status: 404 },
    );
    const at = (path: string): ProbeTarget => ({ instanceId: "rd", name: "rd", url: `${base}${path}` });

    const outcomes = await cloudflare.probeSites([at("/moved"), at("/empty"), at("/gone")]);

    expect(outcomes.map((o) => [o.ok, o.status])).toEqual([
      [true, 200],
      [true, 204],
      [false, 404],
    ]);
  });

  test("a site keeps serving after a failed deployment, and goes dark when its project is deleted", async () => {
    const target = await site("k1");
    h.fakes.cloudflare.addDeployment(target.name, "failure");
    expect((await cloudflare.probeSites([target]))[0].ok).toBe(true);

    h.fakes.cloudflare.deleteProjectOutOfBand(target.name);
    expect((await cloudflare.probeSites([target]))[0]).toMatchObject({ ok: false, status: 404 });
  });

  test("logs one health.probe_failed line per failed site probe", async () => {
    const [up, down] = await Promise.all(["ls1", "ls2"].map(site));
    h.fakes.cloudflare.sites.setMode(down.name, "down");

    const { lines } = await probeFailureLogs(() => cloudflare.probeSites([up, down]));

    expect(lines).toEqual([
      expect.objectContaining({ provider: "cloudflare", operation: "cloudflare.probeSite", instanceId: "ls2", outcome: "503" }),
    ]);
  });
});

describe("live cloudflare.listPagesDeployments", () => {
  test("pages through every Brain project and reports whether its latest deployment is live, and why", async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `dep${i}`);
    for (const id of ids) {
      await cloudflare.ensurePagesProject({ instanceId: id, projectName: `brain-${id}` });
      h.fakes.cloudflare.addDeployment(`brain-${id}`, "success");
    }
    h.fakes.cloudflare.addDeployment("brain-dep1", "failure");
    h.fakes.cloudflare.addDeployment("brain-dep2", "canceled");
    h.fakes.cloudflare.addDeployment("brain-dep3", "active");
    await cloudflare.ensurePagesProject({ instanceId: "fresh", projectName: "brain-fresh" });
    await cloudflare.ensurePagesProject({ instanceId: "x", projectName: "someone-elses-site" });
    h.fakes.cloudflare.requests.length = 0;

    const states = await cloudflare.listPagesDeployments();

    const byName = new Map(states.map((s) => [s.name, s]));
    expect(states).toHaveLength(31);
    expect(byName.has("someone-elses-site")).toBe(false);
    expect(byName.get("brain-dep0")).toEqual({ name: "brain-dep0", instanceId: "dep0", live: true, detail: "latest deployment is live" });
    expect(byName.get("brain-dep1")).toMatchObject({ instanceId: "dep1", live: false, detail: expect.stringContaining("failure") });
    expect(byName.get("brain-dep2")).toMatchObject({ live: false, detail: expect.stringContaining("canceled") });
    expect(byName.get("brain-dep3")).toMatchObject({ live: true, detail: "deploying" });
    expect(byName.get("brain-fresh")).toMatchObject({ live: false, detail: "no deployment yet" });
    expect(states.filter((s) => s.live)).toHaveLength(28);
    const listCalls = h.fakes.cloudflare.requests.filter((r) => r.method === "GET" && r.path === PROJECTS_PATH);
    expect(listCalls.length).toBeGreaterThanOrEqual(2);
    expect(listCalls.length).toBeLessThanOrEqual(3);
  });

  test("a failing list throws the classified ProviderError", async () => {
    h.fakes.cloudflare.inject({ method: "GET", path: PROJECTS_PATH, status: 503 });
    expect(await providerError(cloudflare.listPagesDeployments())).toMatchObject({ provider: "cloudflare", kind: "transient", status: 503 });

    h.fakes.cloudflare.inject({ method: "GET", path: PROJECTS_PATH, status: 429, retryAfterSeconds: 2 });
    expect(await providerError(cloudflare.listPagesDeployments())).toMatchObject({ kind: "rate_limited", retryAfterMs: 2000 });

    h.fakes.cloudflare.inject({ method: "GET", path: PROJECTS_PATH, status: 403 });
    expect(await providerError(cloudflare.listPagesDeployments())).toMatchObject({ kind: "permanent" });
  });
});
