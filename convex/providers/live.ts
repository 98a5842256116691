// Live adapters on the real SDKs arrive with issue #3. Until then a provider set to
// live refuses every call with a permanent, readable "not configured" error, so a
// job fails cleanly at its first step instead of pretending to provision.
import type { ProviderName } from "../lib/validators";
import { ProviderError, type Providers } from "./types";

function refuse(provider: ProviderName): never {
  const variable = `PROVIDER_MODE_${provider.toUpperCase()}`;
  throw new ProviderError(
    provider,
    "permanent",
    `live ${provider} adapter is not configured in this version of Brain; set ${variable}=sandbox (or PROVIDER_MODE=sandbox)`,
    undefined,
    "not_configured",
  );
}

export function liveProviders(): Providers {
  const refuseAll = <T extends object>(provider: ProviderName, methods: (keyof T)[]): T =>
    Object.fromEntries(methods.map((method) => [method, async () => refuse(provider)])) as T;
  return {
    convex: refuseAll("convex", ["ensureProject", "setEnvironment", "probeDeployment"]),
    workos: refuseAll("workos", ["ensureOrganization", "ensureMembership", "probeOrganization"]),
    cloudflare: refuseAll("cloudflare", ["ensurePagesProject", "setEnvironment", "probePagesProject"]),
    stripe: refuseAll("stripe", ["ensureWebhookEndpoint", "probeWebhookEndpoint"]),
    github: refuseAll("github", ["dispatchDeploy"]),
  };
}
