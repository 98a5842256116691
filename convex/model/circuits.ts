// Circuit breakers, one per provider. Repeated transient failures open a provider's circuit;
// while open, its steps wait for the cool-down instead of burning retries; the first attempt
// after it (half-open) is the probe: success closes the circuit, failure opens it again.
import type { MutationCtx, QueryCtx } from "../_generated/server";
import type { Config } from "../lib/config";
import type { ProviderName } from "../lib/validators";

export const CIRCUIT_PROVIDERS = ["convex", "workos", "cloudflare", "stripe", "github", "resend"] as const;
export type CircuitProvider = (typeof CIRCUIT_PROVIDERS)[number];
export type CircuitState = "closed" | "open" | "half_open";

const guarded = (provider: ProviderName): provider is CircuitProvider => provider !== "brain";

async function load(ctx: QueryCtx, provider: CircuitProvider) {
  return ctx.db
    .query("circuits")
    .withIndex("by_provider", (q) => q.eq("provider", provider))
    .unique();
}

export function stateOf(
  row: { failures: number; openedAt?: number } | null,
  config: Config,
  now: number,
): CircuitState {
  if (!row || row.openedAt === undefined) return "closed";
  return now - row.openedAt >= config.CIRCUIT_COOLDOWN_MS ? "half_open" : "open";
}

/** Milliseconds a step of `provider` should wait before its next attempt (0 when it may go now). */
export async function circuitWaitMs(ctx: QueryCtx, config: Config, provider: ProviderName, now: number): Promise<number> {
  if (!guarded(provider)) return 0;
  const row = await load(ctx, provider);
  if (!row || row.openedAt === undefined) return 0;
  return Math.max(0, row.openedAt + config.CIRCUIT_COOLDOWN_MS - now);
}

/**
 * Records one attempt's result for the provider's circuit. Returns whether the circuit was
 * open or half-open, or opened now: such failures do not count against the step's budget.
 */
export async function recordCircuit(
  ctx: MutationCtx,
  config: Config,
  provider: ProviderName,
  failed: boolean,
  now: number,
): Promise<{ tripped: boolean }> {
  if (!guarded(provider)) return { tripped: false };
  const row = await load(ctx, provider);
  if (!failed) {
    // Only write when there is something to reset: successes are the hot path.
    if (row && (row.failures > 0 || row.openedAt !== undefined)) {
      await ctx.db.patch("circuits", row._id, { failures: 0, openedAt: undefined, updatedAt: now });
    }
    return { tripped: false };
  }
  const wasOpen = row?.openedAt !== undefined;
  const failures = (row?.failures ?? 0) + 1;
  // A failed probe (half-open) re-opens at once; a closed circuit opens at the threshold.
  const open = wasOpen || failures >= config.CIRCUIT_FAILURE_THRESHOLD;
  const openedAt = open ? (wasOpen && stateOf(row, config, now) === "open" ? row!.openedAt : now) : undefined;
  if (row) await ctx.db.patch("circuits", row._id, { failures, openedAt, updatedAt: now });
  else await ctx.db.insert("circuits", { provider, failures, openedAt, updatedAt: now });
  return { tripped: open };
}

export async function listCircuits(ctx: QueryCtx, config: Config, now: number) {
  const rows = await Promise.all(CIRCUIT_PROVIDERS.map((provider) => load(ctx, provider)));
  return CIRCUIT_PROVIDERS.map((provider, i) => {
    const row = rows[i];
    const state = stateOf(row, config, now);
    return {
      provider,
      state,
      failures: row?.failures ?? 0,
      ...(row?.openedAt !== undefined ? { openedAt: row.openedAt } : {}),
    };
  });
}
