// Contract tests: the live GitHub adapter (workflow_dispatch of provision_backend.yml over
// the REST API) against the local GitHub fake. Real timers; a fresh fake set and backend per test.
import { createHash } from "node:crypto";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { decryptSecret, sealForWorkflow } from "../../convex/lib/crypto";
import { DEPLOY_WORKFLOW, liveGithub } from "../../convex/providers/github";
import { ProviderError, type GithubAdapter } from "../../convex/providers/types";
import { FAKE_CREDENTIALS } from "../fakes";
import { adapterHarness, type AdapterHarness, providerError } from "./env";

const DISPATCH_PATH = `/repos/${FAKE_CREDENTIALS.repository}/actions/workflows/${DEPLOY_WORKFLOW}/dispatches`;
const PLAIN_DEPLOY_KEY = "prod:happy-otter-123|eyJ2MiI6ImJyYWluLWNvbnRyYWN0LXRlc3Qtc2VjcmV0In0";

let h: AdapterHarness;
let github: GithubAdapter;

beforeEach(async () => {
  h = await adapterHarness();
  // These tests look at the dispatch only: the fake's run does nothing and never calls back.
  h.fakes.github.onRun(() => {});
  h.fakes.github.setCallbackMode("silent");
  github = liveGithub(h.env);
});
afterEach(async () => {
  await h.fakes.github.settle();
  await h.close();
});

/** The ProviderError a call fails with (anything else, or success, fails the test). */
/** The adapter with some settings changed (a wrong token, another repository...). */
const githubWith = (overrides: Partial<AdapterHarness["env"]["config"]>) =>
  liveGithub({ ...h.env, config: { ...h.env.config, ...overrides } });

async function dispatchInput(attempt = "1") {
  return {
    jobId: "job123",
    instanceId: "inst1",
    attempt,
    deploymentName: "happy-otter-123",
    deploymentUrl: "https://happy-otter-123.convex.cloud",
    sealedDeployKey: await sealForWorkflow(PLAIN_DEPLOY_KEY, FAKE_CREDENTIALS.callbackSecret),
    pagesProjectName: "brain-inst1",
  };
}

describe("live GitHub adapter against the GitHub fake", () => {
  describe("dispatchDeploy", () => {
    test("dispatches provision_backend.yml on the configured ref with every input the workflow reads", async () => {
      const input = await dispatchInput();

      const { runId } = await github.dispatchDeploy(input);

      // GitHub answers 204 without a run id: the run names itself in its callback.
      expect(runId).toBeUndefined();
      const dispatches = h.fakes.github.dispatches();
      expect(dispatches).toHaveLength(1);
      expect(dispatches[0].ref).toBe(h.env.config.GITHUB_WORKFLOW_REF);
      expect(dispatches[0].inputs).toEqual({
        job_id: "job123",
        step: "deployApp",
        dispatch_id: "job123-1",
        instance_id: "inst1",
        deployment_name: "happy-otter-123",
        deployment_url: "https://happy-otter-123.convex.cloud",
        pages_project_name: "brain-inst1",
        sealed_deploy_key: input.sealedDeployKey,
        callback_url: `${h.fakes.env.CONVEX_SITE_URL}/provisioning-callback`,
      });
      const [request] = h.fakes.github.requests;
      expect(h.fakes.github.requests).toHaveLength(1);
      expect(request).toMatchObject({ method: "POST", path: DISPATCH_PATH });
      expect(request.headers).toMatchObject({
        authorization: `Bearer ${FAKE_CREDENTIALS.githubToken}`,
        accept: "application/vnd.github+json",
        "x-github-api-version": "2022-11-28",
      });
    });

    test("the deploy key travels only sealed: no input carries the plain key or any credential", async () => {
      const input = await dispatchInput();

      await github.dispatchDeploy(input);

      const [request] = h.fakes.github.requests;
      const wire = JSON.stringify(request.body);
      for (const secret of [
        PLAIN_DEPLOY_KEY,
        PLAIN_DEPLOY_KEY.split("|")[1],
        FAKE_CREDENTIALS.callbackSecret,
        FAKE_CREDENTIALS.githubToken,
        FAKE_CREDENTIALS.convexToken,
      ]) {
        expect(wire).not.toContain(secret);
      }
      const { sealed_deploy_key: sealed } = h.fakes.github.dispatches()[0].inputs;
      expect(sealed).toMatch(/^v1:/);
      // The workflow opens it with the secret it shares with Brain (SHA-256 of PROVISION_CALLBACK_SECRET).
      const workflowKey = createHash("sha256").update(FAKE_CREDENTIALS.callbackSecret).digest("base64");
      expect(await decryptSecret(sealed, workflowKey)).toBe(PLAIN_DEPLOY_KEY);
    });

    test("each attempt dispatches under its own dispatch_id, and claims no run id it was not given", async () => {
      const first = await github.dispatchDeploy(await dispatchInput("1"));
      const second = await github.dispatchDeploy(await dispatchInput("2"));

      expect([first.runId, second.runId]).toEqual([undefined, undefined]);
      expect(h.fakes.github.dispatches().map((d) => d.inputs.dispatch_id)).toEqual(["job123-1", "job123-2"]);
    });

    test("a dispatch whose response is lost fails as transient; repeating the attempt sends the same dispatch_id", async () => {
      h.fakes.github.inject({ method: "POST", path: DISPATCH_PATH, dropResponse: true });
      const input = await dispatchInput();

      const error = await providerError(github.dispatchDeploy(input));
      expect(error).toMatchObject({ provider: "github", kind: "transient" });
      expect(error.message).toMatch(/^network error/);
      expect(h.fakes.github.dispatches()).toHaveLength(1); // GitHub acted before the response was lost

      await github.dispatchDeploy(input);

      // The dispatch API has no idempotency key: both runs exist, told apart (and deduplicated) by dispatch_id.
      expect(h.fakes.github.dispatches().map((d) => d.inputs.dispatch_id)).toEqual(["job123-1", "job123-1"]);
      expect(h.fakes.github.requests).toHaveLength(2);
    });
  });

  describe("errors", () => {
    test("an unknown repository is a permanent 404 error with GitHub's message", async () => {
      const error = await providerError(githubWith({ GITHUB_REPOSITORY: "acme/no-such-repo" }).dispatchDeploy(await dispatchInput()));

      expect(error).toMatchObject({ provider: "github", kind: "permanent", status: 404, message: "404: Not Found" });
      expect(h.fakes.github.dispatches()).toHaveLength(0);
    });

    test("a bad token is a permanent 401 error with GitHub's message", async () => {
      const error = await providerError(githubWith({ GITHUB_TOKEN: "ghp_wrong" }).dispatchDeploy(await dispatchInput()));

      expect(error).toMatchObject({ provider: "github", kind: "permanent", status: 401, message: "401: Bad credentials" });
      expect(h.fakes.github.dispatches()).toHaveLength(0);
    });

    test.each([
      [500, "transient", "injected 500"],
      [502, "transient", "injected 502"],
      [503, "transient", "injected 503"],
      [504, "transient", "injected 504"],
      [408, "transient", "injected 408"],
      [400, "permanent", "injected 400"],
      [401, "permanent", "injected 401"],
      [403, "permanent", "injected 403"],
      [404, "permanent", "Not Found"],
      [422, "permanent", "injected 422"],
    ] as const)("a %i answer is a %s ProviderError with GitHub's message, after exactly one request", async (status, kind, message) => {
      h.fakes.github.inject({ method: "POST", path: DISPATCH_PATH, status });

      const error = await providerError(github.dispatchDeploy(await dispatchInput()));

      expect(error).toMatchObject({ provider: "github", kind, status, message: `${status}: ${message}` });
      expect(error.retryAfterMs).toBeUndefined();
      expect(h.fakes.github.requests).toHaveLength(1);
      expect(h.fakes.github.dispatches()).toHaveLength(0);
    });

    test("a 422 validation answer keeps GitHub's message", async () => {
      h.fakes.github.inject({
        method: "POST",
        path: DISPATCH_PATH,
        status: 422,
        body: { message: "No ref found for: main", documentation_url: "https://docs.github.com/rest", status: "422" },
      });

      const error = await providerError(github.dispatchDeploy(await dispatchInput()));

      expect(error).toMatchObject({ kind: "permanent", status: 422, message: "422: No ref found for: main" });
    });

    test("a 429 is rate_limited with retryAfterMs taken from Retry-After, after exactly one request", async () => {
      h.fakes.github.inject({ method: "POST", path: DISPATCH_PATH, status: 429, retryAfterSeconds: 1 });

      const error = await providerError(github.dispatchDeploy(await dispatchInput()));

      expect(error).toMatchObject({ provider: "github", kind: "rate_limited", status: 429, retryAfterMs: 1000 });
      expect(h.fakes.github.requests).toHaveLength(1);
    });

    test("GitHub's secondary rate limit (403 with Retry-After) is rate_limited, not a permission error", async () => {
      h.fakes.github.inject({
        method: "POST",
        path: DISPATCH_PATH,
        status: 403,
        retryAfterSeconds: 2,
        body: { message: "You have exceeded a secondary rate limit.", documentation_url: "https://docs.github.com" },
      });

      const error = await providerError(github.dispatchDeploy(await dispatchInput()));

      expect(error).toMatchObject({ kind: "rate_limited", status: 403, retryAfterMs: 2000 });
      expect(error.message).toContain("secondary rate limit");
    });

    test("the fake's own rate limit answers a longer Retry-After, which the error carries instead of retrying", async () => {
      h.fakes.github.setRateLimit({ requests: 1, windowMs: 5_000 });
      await github.dispatchDeploy(await dispatchInput("1"));

      const error = await providerError(github.dispatchDeploy(await dispatchInput("2")));

      expect(error).toMatchObject({ kind: "rate_limited", status: 429 });
      // Retry-After counts whole seconds left in the fake's 5 s window (not the adapter's 1 s default).
      expect(error.retryAfterMs).toBeGreaterThanOrEqual(4_000);
      expect(error.retryAfterMs).toBeLessThanOrEqual(5_000);
      expect(h.fakes.github.requests).toHaveLength(2);
      expect(h.fakes.github.dispatches()).toHaveLength(1);
    });

    test("a request that outlives PROVIDER_TIMEOUT_MS is a transient error", async () => {
      h.fakes.github.inject({ method: "POST", path: DISPATCH_PATH, latencyMs: 1_000 });

      const error = await providerError(githubWith({ PROVIDER_TIMEOUT_MS: 150 }).dispatchDeploy(await dispatchInput()));

      expect(error).toMatchObject({ provider: "github", kind: "transient" });
      expect(error.status).toBeUndefined();
      expect(error.message).toMatch(/^network error: .*(timeout|aborted)/i);
    });

    test("an unreachable API is a transient network error", async () => {
      const error = await providerError(githubWith({ GITHUB_API_URL: "http://127.0.0.1:1" }).dispatchDeploy(await dispatchInput()));

      expect(error).toMatchObject({ provider: "github", kind: "transient" });
      expect(error.message).toMatch(/^network error/);
    });
  });
});
