// What a step's run (registry.ts) gets and the helpers it shares: deterministic names
// derived from the instance, so a re-run adopts what an earlier attempt made.
import type { Infer } from "convex/values";
import type { Config } from "../lib/config";
import type { InstanceResources, vStepInput } from "../lib/validators";
import { ProviderError, type Providers } from "../providers/types";

/** A step action's input, as its dispatch carries it (validators.ts vStepInput). */
export type StepInput = Infer<typeof vStepInput>;

export type StepEnv = {
  providers: Providers;
  config: Config;
  input: StepInput;
  attempt: number;
  /** This attempt's deadline: a step that waits for a report waits at most this long. */
  deadlineMs: number;
};

/** The DNS-safe, deterministic name of an instance's Convex and Pages projects. */
export function resourceName(prefix: string, instanceId: string): string {
  return `${prefix}-${instanceId.toLowerCase().replace(/[^a-z0-9]/g, "")}`.slice(0, 58);
}

export function need<K extends keyof InstanceResources>(input: StepInput, key: K): NonNullable<InstanceResources[K]> {
  const value = input.resources[key];
  // The DAG guarantees inputs; a missing one means the record was damaged, and retrying won't help.
  if (value === undefined) throw new ProviderError("brain", "permanent", `missing input ${String(key)}`);
  return value as NonNullable<InstanceResources[K]>;
}


/** The tenant variables PLANS gives a plan (by its name), or none. */
export function planVariables(config: Config, plan: string): Record<string, string> {
  for (const entry of Object.values(config.PLANS)) if (entry.plan === plan) return { ...entry.env };
  return {};
}

/** The plan PLANS maps a Stripe price to, or null when the price is unknown. */
export function planForPrice(config: Config, priceId: string): { plan: string; env: Record<string, string> } | null {
  const entry = config.PLANS[priceId];
  return entry ? { plan: entry.plan, env: { ...entry.env } } : null;
}
