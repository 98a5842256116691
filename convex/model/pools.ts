// One work pool per provider: its parallelism is that provider's concurrency budget
// (CONCURRENCY_<PROVIDER>). Brain makes its own retry decisions (model/jobs.ts), so the
// pools never retry. Options travel with every enqueue, so they are built per call.
import { Workpool } from "@convex-dev/workpool";
import { components } from "../_generated/api";
import type { Config } from "../lib/config";
import type { ProviderName } from "../lib/validators";

const COMPONENT = {
  convex: components.convexPool,
  workos: components.workosPool,
  cloudflare: components.cloudflarePool,
  stripe: components.stripePool,
  github: components.githubPool,
  resend: components.resendPool,
  brain: components.brainPool,
} as const;

function parallelism(config: Config, provider: ProviderName): number {
  switch (provider) {
    case "convex":
      return config.CONCURRENCY_CONVEX;
    case "workos":
      return config.CONCURRENCY_WORKOS;
    case "cloudflare":
      return config.CONCURRENCY_CLOUDFLARE;
    case "github":
      return config.CONCURRENCY_GITHUB;
    case "stripe":
      return config.CONCURRENCY_STRIPE;
    default:
      return config.CONCURRENCY_BRAIN;
  }
}

export function poolFor(config: Config, provider: ProviderName): Workpool {
  return new Workpool(COMPONENT[provider], {
    maxParallelism: parallelism(config, provider),
    retryActionsByDefault: false,
    logLevel: "WARN",
  });
}
