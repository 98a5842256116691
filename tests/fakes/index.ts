// Every provider fake at once, wired together the way the real world is: the fake GitHub
// "workflow" deploys the site to the Cloudflare fake and the backend to the Convex fake,
// then reports to Brain through a local bridge to the convex-test backend. `env` is what
// Brain needs to run live against them (pass it to setupBackend({ env })).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { startCloudflareFake, type CloudflareFake } from "./cloudflare";
import { startConvexFake, type ConvexFake } from "./convex";
import { startGithubFake, type GithubFake } from "./github";
import { startResendFake, type ResendFake } from "./resend";
import { startStripeFake, type StripeFake } from "./stripe";
import { startWorkosFake, type WorkosFake } from "./workos";

export const FAKE_CREDENTIALS = {
  convexTeamId: "4242",
  convexToken: "convex-team-token-fake",
  workosKey: "sk_test_workos_fake",
  cloudflareToken: "cloudflare-token-fake",
  cloudflareAccount: "0123456789abcdef0123456789abcdef",
  githubToken: "ghp_fake_token",
  repository: "acme/tenant-app",
  callbackSecret: "provision-callback-secret-fake",
  stripeKey: "sk_test_stripe_fake",
  resendKey: "re_fake_key",
} as const;

/** Anything that answers like Brain's HTTP routes (a convex-test instance's `fetch`). */
type Target = { fetch: (path: string, init?: RequestInit) => Promise<Response> };

/** A real HTTP listener in front of the convex-test backend, so fakes can call Brain back. */
async function startBridge() {
  let target: Target | null = null;
  const server: Server = createServer((request, response) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      if (!target) {
        response.writeHead(503).end();
        return;
      }
      const headers = new Headers();
      for (const [key, value] of Object.entries(request.headers)) if (typeof value === "string") headers.set(key, value);
      const answer = await target.fetch(request.url ?? "/", {
        method: request.method,
        headers,
        ...(request.method === "GET" ? {} : { body: Buffer.concat(chunks).toString("utf8") }),
      });
      response.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "text/plain" });
      response.end(await answer.text());
    })().catch((error: unknown) => {
      response.writeHead(500).end(String(error));
    });
  });
  server.keepAliveTimeout = 0; // as in base.ts: only the client closes idle sockets
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    attach: (next: Target) => (target = next),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type Fakes = {
  convex: ConvexFake;
  workos: WorkosFake;
  cloudflare: CloudflareFake;
  github: GithubFake;
  stripe: StripeFake;
  resend: ResendFake;
  /** Environment for Brain in live mode against these fakes. */
  env: Record<string, string>;
  /** Route the fakes' callbacks to this backend. */
  attach(target: Target): void;
  close(): Promise<void>;
};

export async function startFakes(options: { pagesProjectLimit?: number; stripeMaxEndpoints?: number } = {}): Promise<Fakes> {
  const c = FAKE_CREDENTIALS;
  const [convex, workos, cloudflare, github, stripe, resend, bridge] = await Promise.all([
    startConvexFake({ teamId: c.convexTeamId, token: c.convexToken }),
    startWorkosFake({ apiKey: c.workosKey }),
    startCloudflareFake({ accountId: c.cloudflareAccount, token: c.cloudflareToken, projectLimit: options.pagesProjectLimit }),
    startGithubFake({ token: c.githubToken, repository: c.repository, callbackSecret: c.callbackSecret }),
    startStripeFake({ secretKey: c.stripeKey, maxEndpoints: options.stripeMaxEndpoints }),
    startResendFake({ apiKey: c.resendKey }),
    startBridge(),
  ]);
  // What provision_backend.yml does: deploy the backend, then the site.
  github.onRun((inputs) => {
    convex.markDeployed(inputs.deployment_name);
    cloudflare.addDeployment(inputs.pages_project_name, "success");
  });
  const env: Record<string, string> = {
    PROVIDER_MODE: "live",
    ENCRYPTION_KEY: Buffer.alloc(32, 11).toString("base64"),
    CONVEX_TEAM_ID: c.convexTeamId,
    CONVEX_TEAM_TOKEN: c.convexToken,
    CONVEX_MANAGEMENT_API_URL: convex.managementUrl,
    WORKOS_API_KEY: c.workosKey,
    WORKOS_API_URL: workos.url,
    WORKOS_CLIENT_ID: "client_fake_0123",
    CLOUDFLARE_API_TOKEN: c.cloudflareToken,
    CLOUDFLARE_ACCOUNT_ID: c.cloudflareAccount,
    CLOUDFLARE_API_URL: cloudflare.apiUrl,
    GITHUB_TOKEN: c.githubToken,
    GITHUB_REPOSITORY: c.repository,
    GITHUB_API_URL: github.url,
    PROVISION_CALLBACK_SECRET: c.callbackSecret,
    STRIPE_SECRET_KEY: c.stripeKey,
    STRIPE_API_URL: stripe.url,
    RESEND_API_KEY: c.resendKey,
    RESEND_API_URL: resend.url,
    EMAIL_FROM: "Brain <brain@example.com>",
    CONVEX_SITE_URL: bridge.url,
    TENANT_SITE_URL_TEMPLATE: cloudflare.siteUrlTemplate,
    RETRY_BASE_DELAY_MS: "20",
    RETRY_MAX_DELAY_MS: "200",
    PROVIDER_TIMEOUT_MS: "2000",
    RATE_LIMIT_CONVEX_RPS: "1000",
    RATE_LIMIT_WORKOS_RPS: "1000",
    RATE_LIMIT_CLOUDFLARE_RPS: "1000",
    RATE_LIMIT_GITHUB_RPS: "1000",
    RATE_LIMIT_STRIPE_RPS: "1000",
    RATE_LIMIT_RESEND_RPS: "1000",
  };
  const all = [convex, workos, cloudflare, github, stripe, resend];
  return {
    convex,
    workos,
    cloudflare,
    github,
    stripe,
    resend,
    env,
    attach: bridge.attach,
    close: async () => {
      await Promise.all([...all.map((fake) => fake.close()), bridge.close()]);
    },
  };
}
