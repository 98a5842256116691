// One work pool per provider: its parallelism is that provider's concurrency budget.
// Brain makes its own retry decisions (model/jobs.ts), so the pools never retry.
import { Workpool } from "@convex-dev/workpool";
import { components } from "../_generated/api";
import type { ProviderName } from "../lib/validators";

const options = { maxParallelism: 10, retryActionsByDefault: false, logLevel: "WARN" } as const;

export const pools: Record<ProviderName, Workpool> = {
  convex: new Workpool(components.convexPool, options),
  workos: new Workpool(components.workosPool, options),
  cloudflare: new Workpool(components.cloudflarePool, options),
  stripe: new Workpool(components.stripePool, options),
  github: new Workpool(components.githubPool, options),
  brain: new Workpool(components.brainPool, options),
};
