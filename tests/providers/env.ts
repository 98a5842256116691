// Runs a live adapter directly against the provider fakes, with a real convex-test backend
// behind it (the adapters use it for request budgets and caches).
import { loadConfig } from "../../convex/lib/config";
import type { ProviderCtx, ProviderEnv } from "../../convex/providers/types";
import { startFakes, type Fakes } from "../fakes";
import { setupBackend, type TestBackend } from "../harness";

export type AdapterHarness = { fakes: Fakes; t: TestBackend; env: ProviderEnv; close: () => Promise<void> };

/** Fakes + backend + a ProviderEnv for calling a live adapter; `env` overrides Brain's settings. */
export async function adapterHarness(env: Record<string, string> = {}): Promise<AdapterHarness> {
  const fakes = await startFakes();
  const t = setupBackend({ env: { ...fakes.env, ...env } });
  fakes.attach(t);
  const ctx = {
    runQuery: (ref: never, args: never) => t.query(ref, args),
    runMutation: (ref: never, args: never) => t.mutation(ref, args),
    runAction: (ref: never, args: never) => t.action(ref, args),
  } as unknown as ProviderCtx;
  return {
    fakes,
    t,
    env: { ctx, config: loadConfig(), correlationId: "contract-test" },
    close: () => fakes.close(),
  };
}
