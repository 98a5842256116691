// @vitest-environment node
// Drives the GitHub fake with fetch (as Brain dispatches workflows) and receives its signed callbacks
// on a small node:http server that checks the HMAC the way Brain must.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { startCloudflareFake } from "./cloudflare";
import { startConvexFake } from "./convex";
import { GITHUB_WORKFLOW_ID, startGithubFake, type GithubFake } from "./github";

const TOKEN = "ghp_test";
const REPO = "acme/tenant-app";
const SECRET = "callback-secret";
const DISPATCH = `/repos/${REPO}/actions/workflows/provision_backend.yml/dispatches`;

type Callback = { body: Record<string, unknown>; signature: string; verified: boolean };

/** A callback receiver: records each POST and whether its X-Brain-Signature verifies. */
async function startReceiver(status = 200) {
  const received: Callback[] = [];
  const waiters: (() => void)[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const signature = String(request.headers["x-brain-signature"] ?? "");
      const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature);
      const expected = match ? createHmac("sha256", SECRET).update(`${match[1]}.${raw}`).digest() : Buffer.alloc(0);
      const verified =
        !!match &&
        timingSafeEqual(Buffer.from(match[2], "hex"), expected) &&
        Math.abs(Date.now() / 1000 - Number(match[1])) < 300;
      received.push({ body: JSON.parse(raw) as Record<string, unknown>, signature, verified });
      response.writeHead(status).end();
      waiters.splice(0).forEach((wake) => wake());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/callbacks/github`,
    received,
    /** Resolves once `count` callbacks have arrived. */
    next: async (count = 1) => {
      while (received.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
      return received[count - 1];
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let fake: GithubFake;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
beforeEach(async () => {
  fake = await startGithubFake({ token: TOKEN, repository: REPO, callbackSecret: SECRET });
  receiver = await startReceiver();
});
afterEach(async () => {
  await fake.close();
  await receiver.close();
});

async function post(path: string, body: unknown, auth: string | null = `Bearer ${TOKEN}`) {
  const response = await fetch(`${fake.url}${path}`, {
    method: "POST",
    headers: {
      accept: "application/vnd.github+json",
      "content-type": "application/json",
      ...(auth ? { authorization: auth } : {}),
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, text, body: text ? (JSON.parse(text) as Record<string, unknown>) : null, headers: response.headers };
}

const inputs = (extra: Record<string, string> = {}) => ({
  job_id: "job_123",
  step: "deployApp",
  callback_url: receiver.url,
  ...extra,
});

describe("github fake: workflow dispatch", () => {
  test("an accepted dispatch answers 204 with no body and is recorded with its ref, inputs and a run id", async () => {
    const answer = await post(DISPATCH, { ref: "main", inputs: inputs() });
    expect(answer.status).toBe(204);
    expect(answer.text).toBe("");
    await post(DISPATCH, { ref: "main", inputs: inputs({ job_id: "job_124" }) });
    const [first, second] = fake.dispatches();
    expect(first).toEqual({ ref: "main", inputs: inputs(), at: expect.any(Number), runId: expect.any(Number) });
    expect(second.runId).toBeGreaterThan(first.runId);
  });

  test("a succeeded run posts a callback signed with the shared secret", async () => {
    await post(DISPATCH, { ref: "main", inputs: inputs() });
    const callback = await receiver.next();
    expect(callback.verified).toBe(true);
    expect(callback.body).toEqual({
      jobId: "job_123",
      step: "deployApp",
      status: "succeeded",
      runId: String(fake.dispatches()[0].runId),
      timings: { deployMs: expect.any(Number) },
    });
    await fake.settle();
    expect(fake.callbacks()).toEqual([{ runId: fake.dispatches()[0].runId, url: receiver.url, at: expect.any(Number), status: 200 }]);
  });

  test("a signature made with another secret does not verify at the receiver", async () => {
    await fake.close();
    fake = await startGithubFake({ token: TOKEN, repository: REPO, callbackSecret: "not-the-shared-secret" });
    await post(DISPATCH, { ref: "main", inputs: inputs() });
    expect((await receiver.next()).verified).toBe(false);
  });

  test("in fail mode the callback reports a failed run with a message, and step defaults to deployApp", async () => {
    fake.setCallbackMode("fail");
    const { step: _omitted, ...withoutStep } = inputs();
    await post(DISPATCH, { ref: "main", inputs: withoutStep });
    const callback = await receiver.next();
    expect(callback.verified).toBe(true);
    expect(callback.body).toMatchObject({ jobId: "job_123", step: "deployApp", status: "failed", message: expect.any(String) });
    expect(callback.body.timings).toBeUndefined();
  });

  test("in silent mode the run happens but no callback ever arrives", async () => {
    const ran: number[] = [];
    fake.onRun((_inputs, runId) => {
      ran.push(runId);
    });
    fake.setCallbackMode("silent");
    await post(DISPATCH, { ref: "main", inputs: inputs() });
    await fake.settle();
    expect(ran).toEqual([fake.dispatches()[0].runId]);
    expect(receiver.received).toEqual([]);
    expect(fake.callbacks()).toEqual([]);
  });

  test("the run hook finishes the deploy in the other fakes before the callback arrives", async () => {
    const cloudflare = await startCloudflareFake({ accountId: "acc", token: "cf" });
    const convex = await startConvexFake({ teamId: "1", token: "cx" });
    try {
      const created = await fetch(`${convex.managementUrl}/teams/1/create_project`, {
        method: "POST",
        headers: { authorization: "Bearer cx", "content-type": "application/json" },
        body: JSON.stringify({ projectName: "tenant", deploymentType: "prod" }),
      });
      const { deploymentName } = (await created.json()) as { deploymentName: string };
      await fetch(`${cloudflare.apiUrl}/accounts/acc/pages/projects`, {
        method: "POST",
        headers: { authorization: "Bearer cf", "content-type": "application/json" },
        body: JSON.stringify({ name: "tenant-site", production_branch: "main" }),
      });
      fake.onRun((runInputs) => {
        cloudflare.addDeployment(runInputs.pages_project, "success");
        convex.markDeployed(runInputs.convex_deployment);
      });
      await post(DISPATCH, { ref: "main", inputs: inputs({ pages_project: "tenant-site", convex_deployment: deploymentName }) });
      expect((await receiver.next()).body.status).toBe("succeeded");
      expect(cloudflare.projects()[0].canonical_deployment?.latest_stage.status).toBe("success");
      expect(convex.deployments()[0].lastDeployTime).not.toBeNull();
    } finally {
      await cloudflare.close();
      await convex.close();
    }
  });

  test("a hook that throws fails the run and the callback says why", async () => {
    fake.onRun(() => {
      throw new Error("wrangler exploded");
    });
    await post(DISPATCH, { ref: "main", inputs: inputs() });
    expect((await receiver.next()).body).toMatchObject({ status: "failed", message: expect.stringContaining("wrangler exploded") });
  });

  test("with a delay nothing is called back until the run starts", async () => {
    fake.setCallbackMode("succeed", 30);
    await post(DISPATCH, { ref: "main", inputs: inputs() });
    const runId = fake.dispatches()[0].runId;
    const before = await fetch(`${fake.url}/repos/${REPO}/actions/runs/${runId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await before.json()).toMatchObject({ id: runId, status: "queued", conclusion: null });
    expect(receiver.received).toEqual([]);
    await receiver.next();
    const after = await fetch(`${fake.url}/repos/${REPO}/actions/runs/${runId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await after.json()).toEqual({
      id: runId,
      status: "completed",
      conclusion: "success",
      html_url: `https://github.com/${REPO}/actions/runs/${runId}`,
    });
  });

  test("a callback that cannot be delivered is recorded and the fake keeps serving", async () => {
    await post(DISPATCH, { ref: "main", inputs: inputs({ callback_url: "http://127.0.0.1:1/unreachable" }) });
    await fake.settle();
    expect(fake.callbacks()).toEqual([
      { runId: fake.dispatches()[0].runId, url: "http://127.0.0.1:1/unreachable", at: expect.any(Number), error: expect.any(String) },
    ]);
    expect((await post(DISPATCH, { ref: "main", inputs: inputs() })).status).toBe(204);
  });

  test("a receiver answering 500 is recorded with its status", async () => {
    const failing = await startReceiver(500);
    try {
      await post(DISPATCH, { ref: "main", inputs: inputs({ callback_url: failing.url }) });
      await failing.next();
      await fake.settle();
      expect(fake.callbacks()[0]).toMatchObject({ status: 500 });
    } finally {
      await failing.close();
    }
  });

  test("the workflow may be named by its numeric id and the repository is matched case-insensitively", async () => {
    const path = `/repos/ACME/Tenant-App/actions/workflows/${GITHUB_WORKFLOW_ID}/dispatches`;
    expect((await post(path, { ref: "main", inputs: inputs() }, `token ${TOKEN}`)).status).toBe(204);
  });
});

describe("github fake: errors", () => {
  test("a missing token is 401 Requires authentication and a wrong one 401 Bad credentials", async () => {
    const missing = await post(DISPATCH, { ref: "main" }, null);
    expect(missing.status).toBe(401);
    expect(missing.body).toEqual({ message: "Requires authentication", documentation_url: expect.any(String), status: "401" });
    const wrong = await post(DISPATCH, { ref: "main" }, "Bearer nope");
    expect(wrong.body).toMatchObject({ message: "Bad credentials", documentation_url: expect.stringContaining("docs.github.com") });
    expect(fake.dispatches()).toEqual([]);
  });

  test("an unknown repository or workflow is 404 Not Found", async () => {
    for (const path of [
      "/repos/acme/other/actions/workflows/provision_backend.yml/dispatches",
      `/repos/${REPO}/actions/workflows/other.yml/dispatches`,
    ]) {
      const answer = await post(path, { ref: "main" });
      expect(answer.status).toBe(404);
      expect(answer.body).toMatchObject({ message: "Not Found", documentation_url: expect.any(String) });
    }
    const run = await fetch(`${fake.url}/repos/${REPO}/actions/runs/42`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(run.status).toBe(404);
  });

  test("a missing ref, a non-string input or more than 25 inputs is a 422 and dispatches nothing", async () => {
    const noRef = await post(DISPATCH, { inputs: inputs() });
    expect(noRef.status).toBe(422);
    expect(noRef.body).toMatchObject({ message: expect.stringContaining("ref"), documentation_url: expect.any(String) });
    const number = await post(DISPATCH, { ref: "main", inputs: { ...inputs(), retries: 3 } });
    expect(number.status).toBe(422);
    expect(number.body).toMatchObject({ message: expect.stringContaining("retries"), errors: expect.any(Array) });
    const many = Object.fromEntries(Array.from({ length: 26 }, (_, i) => [`in_${i}`, "x"]));
    expect((await post(DISPATCH, { ref: "main", inputs: many })).status).toBe(422);
    const max = Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`in_${i}`, "x"]));
    expect((await post(DISPATCH, { ref: "main", inputs: max })).status).toBe(204);
    expect(fake.dispatches()).toHaveLength(1);
  });

  test("a body that is not JSON is 400 Problems parsing JSON", async () => {
    expect(await post(DISPATCH, "{not json")).toMatchObject({ status: 400, body: { message: "Problems parsing JSON" } });
  });
});

describe("github fake: faults", () => {
  test("two injected 503s answer with GitHub's error body and dispatch nothing, then the dispatch goes through", async () => {
    fake.inject({ path: "/dispatches", status: 503, times: 2 });
    for (let i = 0; i < 2; i++) {
      const answer = await post(DISPATCH, { ref: "main", inputs: inputs() });
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({ message: expect.any(String), documentation_url: expect.any(String) });
    }
    expect(fake.dispatches()).toEqual([]);
    expect((await post(DISPATCH, { ref: "main", inputs: inputs() })).status).toBe(204);
    expect(fake.dispatches()).toHaveLength(1);
  });

  test("an injected 429 carries Retry-After", async () => {
    fake.inject({ status: 429, retryAfterSeconds: 60 });
    const answer = await post(DISPATCH, { ref: "main", inputs: inputs() });
    expect(answer.status).toBe(429);
    expect(answer.headers.get("retry-after")).toBe("60");
  });

  test("a dropped response still dispatches: the client sees a connection error but the run calls back", async () => {
    fake.inject({ path: "/dispatches", dropResponse: true });
    await expect(post(DISPATCH, { ref: "main", inputs: inputs() })).rejects.toThrow();
    expect(fake.dispatches()).toHaveLength(1);
    expect((await receiver.next()).body).toMatchObject({ jobId: "job_123", status: "succeeded" });
  });
});
