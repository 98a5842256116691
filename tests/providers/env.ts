// Runs a live adapter directly against the provider fakes, with a real convex-test backend
// behind it (the adapters use it for request budgets and caches).
import { loadConfig } from "../../convex/lib/config";
import { ProviderError, type ProviderCtx, type ProviderEnv } from "../../convex/providers/types";
import { startFakes, type Fakes } from "../fakes";
import { setupBackend, type TestBackend } from "../harness";

export type AdapterHarness = { fakes: Fakes; t: TestBackend; env: ProviderEnv; close: () => Promise<void> };

/** Fakes + backend + a ProviderEnv for calling a live adapter; `env` overrides Brain's settings. */
export async function adapterHarness(env: Record<string, string> = {}): Promise<AdapterHarness> {
  const fakes = await startFakes();
  const t = setupBackend({ env: { ...fakes.env, ...env } });
  fakes.attach(t);
  type Caller = (ref: unknown, args: unknown) => Promise<unknown>;
  const backend = t as unknown as { query: Caller; mutation: Caller; action: Caller };
  const ctx = {
    runQuery: (ref: unknown, args: unknown) => backend.query(ref, args),
    runMutation: (ref: unknown, args: unknown) => backend.mutation(ref, args),
    runAction: (ref: unknown, args: unknown) => backend.action(ref, args),
  } as unknown as ProviderCtx;
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
