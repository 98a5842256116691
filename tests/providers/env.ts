// Runs a live adapter directly against the provider fakes, with a real convex-test backend
// behind it (the adapters use it for request budgets and caches).
import { loadConfig } from "../../convex/lib/config";
import { ProviderError, type ProviderEnv } from "../../convex/providers/types";
import { startFakes, type Fakes } from "../fakes";
import { actionCtxOf, setupBackend, type TestBackend } from "../harness";

export type AdapterHarness = { fakes: Fakes; t: TestBackend; env: ProviderEnv; close: () => Promise<void> };

/** Fakes + backend + a ProviderEnv for calling a live adapter; `env` overrides Brain's settings. */
export async function adapterHarness(env: Record<string, string> = {}): Promise<AdapterHarness> {
  const fakes = await startFakes();
  const t = setupBackend({ env: { ...fakes.env, ...env } });
  fakes.attach(t);
  const ctx = actionCtxOf(t);
  return {
    fakes,
    t,
    env: { ctx, config: loadConfig(), correlationId: "contract-test" },
    close: () => fakes.close(),
  };
}

/** The ProviderError a call rejects with; fails the test if it resolves or throws anything else. */
export async function providerError(promise: Promise<unknown>): Promise<ProviderError> {
  const error: unknown = await promise.then(
    () => new Error("expected the call to fail"),
    (e: unknown) => e,
  );
  if (!(error instanceof ProviderError)) throw error;
  return error;
}
