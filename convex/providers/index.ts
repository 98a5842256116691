// Picks each provider's adapter from the config: sandbox (the default) or live. Live
// adapters are built only for providers in live mode, so sandbox needs no credentials.
import { providerMode, type LiveProviderName } from "../lib/config";
import { liveCloudflare } from "./cloudflare";
import { liveConvex } from "./convex";
import { liveGithub } from "./github";
import { liveResend } from "./resend";
import { sandboxProviders } from "./sandbox";
import { liveStripe } from "./stripe";
import type { ProviderEnv, Providers } from "./types";
import { liveWorkos } from "./workos";

const LIVE: { [K in keyof Providers]: (env: ProviderEnv) => Providers[K] } = {
  convex: liveConvex,
  workos: liveWorkos,
  cloudflare: liveCloudflare,
  stripe: liveStripe,
  github: liveGithub,
  resend: liveResend,
};

export function providersFor(env: ProviderEnv): Providers {
  const sandbox = sandboxProviders(env);
  const pick = <K extends keyof Providers & LiveProviderName>(provider: K): Providers[K] =>
    providerMode(env.config, provider) === "live" ? LIVE[provider](env) : sandbox[provider];
  return {
    convex: pick("convex"),
    workos: pick("workos"),
    cloudflare: pick("cloudflare"),
    stripe: pick("stripe"),
    github: pick("github"),
    resend: pick("resend"),
  };
}
