// Live GitHub adapter: dispatches the tenant deploy workflow (provision_backend.yml in
// GITHUB_REPOSITORY) over the REST API. The run reports back to POST
// /provisioning-callback, signed with PROVISION_CALLBACK_SECRET. The deploy key travels
// sealed with that secret, never as a plain input.
import { fail } from "../lib/errors";
import { requestJson } from "./http";
import type { GithubAdapter, ProviderEnv } from "./types";

export const DEPLOY_WORKFLOW = "provision_backend.yml";

// GitHub signals its rate limits with 403 (or 429) plus x-ratelimit-remaining: 0 or retry-after;
// any other 403 is a permission problem.
const readError = (status: number, body: unknown, headers: Headers) => {
  const b = (body ?? {}) as { message?: string };
  const rateLimited =
    status === 403 && (headers.get("x-ratelimit-remaining") === "0" || headers.get("retry-after") !== null);
  return { message: b.message ?? "no message", rateLimited };
};

export function liveGithub(env: ProviderEnv): GithubAdapter {
  const { config } = env;
  const token = config.GITHUB_TOKEN ?? fail("CONFIG_INVALID", "GITHUB_TOKEN is not set");
  const repository = config.GITHUB_REPOSITORY ?? fail("CONFIG_INVALID", "GITHUB_REPOSITORY is not set");
  const siteUrl = config.CONVEX_SITE_URL ?? fail("CONFIG_INVALID", "CONVEX_SITE_URL is not set (Convex sets it on every deployment)");
  const base = config.GITHUB_API_URL.replace(/\/$/, "");

  return {
    async dispatchDeploy({ jobId, instanceId, attempt, deploymentName, deploymentUrl, sealedDeployKey, pagesProjectName }) {
      const dispatchId = `${jobId}-${attempt}`;
      await requestJson(
        env,
        "github",
        {
          operation: "dispatchWorkflow",
          method: "POST",
          url: `${base}/repos/${repository}/actions/workflows/${DEPLOY_WORKFLOW}/dispatches`,
          headers: {
            authorization: `Bearer ${token}`,
            accept: "application/vnd.github+json",
            "x-github-api-version": "2022-11-28",
          },
          body: {
            ref: config.GITHUB_WORKFLOW_REF,
            inputs: {
              job_id: jobId,
              step: "deployApp",
              dispatch_id: dispatchId,
              instance_id: instanceId,
              deployment_name: deploymentName,
              deployment_url: deploymentUrl,
              pages_project_name: pagesProjectName,
              sealed_deploy_key: sealedDeployKey,
              callback_url: `${siteUrl.replace(/\/$/, "")}/provisioning-callback`,
            },
          },
        },
        readError,
      );
      // The dispatch API answers 204 without a run id: the run names itself in its callback,
      // which must carry this dispatch's id.
      return {};
    },
  };
}
