// One work pool per provider (registry.ts): its parallelism is that provider's concurrency
// budget. Brain makes its own retry decisions (model/decide.ts), so the pools never retry.
// Options travel with every enqueue, so they are built per call.
import { Workpool } from "@convex-dev/workpool";
import { numericSetting, type Config } from "../lib/config";
import type { ProviderName } from "../lib/validators";
import { POOL_COMPONENTS, PROVIDERS } from "../registry";

export function poolFor(config: Config, provider: ProviderName): Workpool {
  const { name, concurrency } = PROVIDERS[provider].pool;
  return new Workpool(POOL_COMPONENTS[name], {
    maxParallelism: numericSetting(config, concurrency.variable),
    retryActionsByDefault: false,
    logLevel: "WARN",
  });
}
