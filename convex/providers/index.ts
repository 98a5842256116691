// Picks each provider's adapter from the config: sandbox (the default) or live.
import { providerMode } from "../lib/config";
import { liveProviders } from "./live";
import { sandboxProviders } from "./sandbox";
import type { ProviderEnv, Providers } from "./types";

export function providersFor(env: ProviderEnv): Providers {
  const sandbox = sandboxProviders(env);
  const live = liveProviders();
  const pick = <K extends keyof Providers>(provider: K): Providers[K] =>
    providerMode(env.config, provider) === "live" ? live[provider] : sandbox[provider];
  return {
    convex: pick("convex"),
    workos: pick("workos"),
    cloudflare: pick("cloudflare"),
    stripe: pick("stripe"),
    github: pick("github"),
  };
}
